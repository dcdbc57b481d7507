#include "harness.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "control/client.h"

namespace microseg::e2e {
namespace fs = std::filesystem;
namespace {

std::atomic<int> gCounter{0};

int64_t nowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

void writeFile(const std::string& path, const std::string& data) {
  std::ofstream out(path);
  out << data;
}

std::string readFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Moves the calling process into `cgroup`; returns false on failure.
bool enterCgroup(const std::string& cgroup) {
  int fd = open((cgroup + "/cgroup.procs").c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return false;
  std::string pid = std::to_string(getpid());
  bool ok = write(fd, pid.data(), pid.size()) == static_cast<ssize_t>(pid.size());
  close(fd);
  return ok;
}

socklen_t makeAddr(int family, const std::string& addr, int port, sockaddr_storage& ss) {
  std::memset(&ss, 0, sizeof(ss));
  if (family == AF_INET) {
    auto* a = reinterpret_cast<sockaddr_in*>(&ss);
    a->sin_family = AF_INET;
    a->sin_port = htons(static_cast<uint16_t>(port));
    inet_pton(AF_INET, addr.c_str(), &a->sin_addr);
    return sizeof(*a);
  }
  auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
  a->sin6_family = AF_INET6;
  a->sin6_port = htons(static_cast<uint16_t>(port));
  inet_pton(AF_INET6, addr.c_str(), &a->sin6_addr);
  return sizeof(*a);
}

bool waitPid(pid_t pid, int timeoutMs, int* status) {
  const int64_t end = nowMs() + timeoutMs;
  while (nowMs() < end) {
    pid_t r = waitpid(pid, status, WNOHANG);
    if (r == pid) return true;
    if (r < 0) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

}  // namespace

std::string cgroup2Mount() {
  std::ifstream in("/proc/mounts");
  std::string dev, dir, type, rest;
  while (in >> dev >> dir >> type) {
    std::getline(in, rest);
    if (type == "cgroup2") return dir;
  }
  return {};
}

CgroupTree::CgroupTree() {
  root_ = cgroup2Mount() + "/microseg-test-" + std::to_string(getpid()) + "-" +
          std::to_string(gCounter++);
  mkdir(root_.c_str(), 0755);
}

CgroupTree::~CgroupTree() {
  writeFile(root_ + "/cgroup.kill", "1");
  // rmdir deepest first; a cgroup whose last process just died may report
  // EBUSY for a moment.
  for (int attempt = 0; attempt < 50; attempt++) {
    std::vector<std::string> dirs;
    std::error_code ec;
    for (auto it = fs::recursive_directory_iterator(root_, ec); !ec && it != fs::end(it); it.increment(ec)) {
      if (it->is_directory()) dirs.push_back(it->path().string());
    }
    std::sort(dirs.begin(), dirs.end(), [](const auto& a, const auto& b) { return a.size() > b.size(); });
    for (const auto& d : dirs) rmdir(d.c_str());
    if (rmdir(root_.c_str()) == 0 || errno == ENOENT) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

std::string CgroupTree::create(const std::string& rel) {
  std::string p = path(rel);
  fs::create_directories(p);
  return p;
}

int runIn(const std::string& cgroup, const std::function<int()>& fn, int timeoutMs) {
  int pfd[2];
  if (pipe2(pfd, O_CLOEXEC) != 0) return -1;
  pid_t pid = fork();
  if (pid == 0) {
    close(pfd[0]);
    int result = enterCgroup(cgroup) ? fn() : -1000;
    (void)!write(pfd[1], &result, sizeof(result));
    _exit(0);
  }
  close(pfd[1]);
  int result = -1;
  pollfd p{pfd[0], POLLIN, 0};
  if (poll(&p, 1, timeoutMs) > 0) {
    if (read(pfd[0], &result, sizeof(result)) != sizeof(result)) result = -1;
  } else {
    result = -2;  // timeout
    kill(pid, SIGKILL);
  }
  close(pfd[0]);
  int st;
  waitPid(pid, 2000, &st);
  return result;
}

Child::Child(const std::string& cgroup, const std::function<int()>& setup,
             const std::function<void(int)>& serve) {
  int pfd[2];
  if (pipe2(pfd, O_CLOEXEC) != 0) return;
  pid_ = fork();
  if (pid_ == 0) {
    close(pfd[0]);
    // Die with the test process, whatever happens to it.
    signal(SIGTERM, SIG_DFL);
    int fd = enterCgroup(cgroup) ? setup() : -1;
    char ok = fd >= 0 ? 1 : 0;
    (void)!write(pfd[1], &ok, 1);
    close(pfd[1]);
    if (fd >= 0) serve(fd);
    _exit(0);
  }
  close(pfd[1]);
  char ok = 0;
  pollfd p{pfd[0], POLLIN, 0};
  if (poll(&p, 1, 5000) > 0 && read(pfd[0], &ok, 1) == 1) ready_ = ok == 1;
  close(pfd[0]);
}

Child::~Child() {
  if (pid_ > 0) {
    kill(pid_, SIGKILL);
    int st;
    waitPid(pid_, 2000, &st);
  }
}

Child tcpServer(const std::string& cgroup, int family, const std::string& addr, int port) {
  return Child(
      cgroup,
      [=]() {
        int fd = socket(family, SOCK_STREAM, 0);
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        setsockopt(fd, IPPROTO_TCP, TCP_FASTOPEN, &one, sizeof(one));
        if (family == AF_INET6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
        sockaddr_storage ss;
        socklen_t len = makeAddr(family, addr, port, ss);
        if (bind(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0 || listen(fd, 128) != 0) return -1;
        return fd;
      },
      [](int fd) {
        const int64_t end = nowMs() + 120000;  // bounded: a test never runs that long
        while (nowMs() < end) {
          pollfd p{fd, POLLIN, 0};
          if (poll(&p, 1, 200) > 0) {
            int c = accept(fd, nullptr, nullptr);
            if (c >= 0) close(c);
          }
        }
      });
}

Child udpEchoServer(const std::string& cgroup, int family, const std::string& addr, int port) {
  return Child(
      cgroup,
      [=]() {
        int fd = socket(family, SOCK_DGRAM, 0);
        sockaddr_storage ss;
        socklen_t len = makeAddr(family, addr, port, ss);
        if (bind(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0) return -1;
        return fd;
      },
      [](int fd) {
        const int64_t end = nowMs() + 120000;
        char buf[2048];
        while (nowMs() < end) {
          pollfd p{fd, POLLIN, 0};
          if (poll(&p, 1, 200) <= 0) continue;
          sockaddr_storage from;
          socklen_t flen = sizeof(from);
          ssize_t n = recvfrom(fd, buf, sizeof(buf), 0, reinterpret_cast<sockaddr*>(&from), &flen);
          if (n < 0) continue;
          if (n > 8 && std::memcmp(buf, "unsolic:", 8) == 0) {
            // "unsolic:<port>": send from this socket to <port> of the asker's
            // address (a port it never heard from), answer with the errno.
            sockaddr_storage to = from;
            const int target = std::atoi(std::string(buf + 8, static_cast<size_t>(n - 8)).c_str());
            if (to.ss_family == AF_INET) {
              reinterpret_cast<sockaddr_in*>(&to)->sin_port = htons(static_cast<uint16_t>(target));
            } else {
              reinterpret_cast<sockaddr_in6*>(&to)->sin6_port = htons(static_cast<uint16_t>(target));
            }
            const int rc = sendto(fd, "x", 1, 0, reinterpret_cast<sockaddr*>(&to), flen) < 0 ? errno : 0;
            const std::string answer = "rc:" + std::to_string(rc);
            sendto(fd, answer.data(), answer.size(), 0, reinterpret_cast<sockaddr*>(&from), flen);
            continue;
          }
          sendto(fd, buf, static_cast<size_t>(n), 0, reinterpret_cast<sockaddr*>(&from), flen);
        }
      });
}

int tcpConnect(int family, const std::string& addr, int port) {
  int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK, 0);
  if (fd < 0) return errno;
  sockaddr_storage ss;
  socklen_t len = makeAddr(family, addr, port, ss);
  int rc = 0;
  if (connect(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0) {
    rc = errno;
    if (rc == EINPROGRESS) {
      pollfd p{fd, POLLOUT, 0};
      if (poll(&p, 1, 2000) <= 0) {
        rc = ETIMEDOUT;
      } else {
        socklen_t el = sizeof(rc);
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &rc, &el);
      }
    }
  }
  close(fd);
  return rc;
}

int tcpConnectV4Mapped(const std::string& v4, int port) {
  return tcpConnect(AF_INET6, "::ffff:" + v4, port);
}

int tfoSendto(int family, const std::string& addr, int port) {
  int fd = socket(family, SOCK_STREAM, 0);
  if (fd < 0) return errno;
  sockaddr_storage ss;
  socklen_t len = makeAddr(family, addr, port, ss);
  int rc = 0;
  if (sendto(fd, "hello", 5, MSG_FASTOPEN, reinterpret_cast<sockaddr*>(&ss), len) < 0) rc = errno;
  close(fd);
  return rc;
}

int udpSendto(int family, const std::string& addr, int port, int srcPort) {
  int fd = socket(family, SOCK_DGRAM, 0);
  if (fd < 0) return errno;
  if (srcPort != 0) {
    sockaddr_storage src;
    socklen_t sl = makeAddr(family, family == AF_INET ? "0.0.0.0" : "::", srcPort, src);
    bind(fd, reinterpret_cast<sockaddr*>(&src), sl);
  }
  sockaddr_storage ss;
  socklen_t len = makeAddr(family, addr, port, ss);
  int rc = sendto(fd, "ping", 4, 0, reinterpret_cast<sockaddr*>(&ss), len) < 0 ? errno : 0;
  close(fd);
  return rc;
}

int udpConnectSend(int family, const std::string& addr, int port) {
  int fd = socket(family, SOCK_DGRAM, 0);
  if (fd < 0) return errno;
  sockaddr_storage ss;
  socklen_t len = makeAddr(family, addr, port, ss);
  int rc = 0;
  if (connect(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0) {
    rc = errno;
  } else if (send(fd, "ping", 4, 0) < 0) {
    rc = errno;
  }
  close(fd);
  return rc;
}

int udpAskUnsolicited(int family, const std::string& addr, int port, int targetPort) {
  int fd = socket(family, SOCK_DGRAM, 0);
  if (fd < 0) return -errno;
  sockaddr_storage ss;
  socklen_t len = makeAddr(family, addr, port, ss);
  const std::string q = "unsolic:" + std::to_string(targetPort);
  int rc = -ETIMEDOUT;
  if (sendto(fd, q.data(), q.size(), 0, reinterpret_cast<sockaddr*>(&ss), len) < 0) {
    rc = -errno;
  } else {
    pollfd p{fd, POLLIN, 0};
    char buf[64] = {};
    ssize_t n = poll(&p, 1, 1000) > 0 ? recv(fd, buf, sizeof(buf) - 1, 0) : -1;
    if (n > 3 && std::memcmp(buf, "rc:", 3) == 0) rc = std::atoi(buf + 3);
  }
  close(fd);
  return rc;
}

int udpRequest(int family, const std::string& addr, int port, bool connected) {
  int fd = socket(family, SOCK_DGRAM, 0);
  if (fd < 0) return errno;
  sockaddr_storage ss;
  socklen_t len = makeAddr(family, addr, port, ss);
  int rc = 0;
  if (connected) {
    if (connect(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0 || send(fd, "ping", 4, 0) < 0) rc = errno;
  } else if (sendto(fd, "ping", 4, 0, reinterpret_cast<sockaddr*>(&ss), len) < 0) {
    rc = errno;
  }
  if (rc == 0) {
    pollfd p{fd, POLLIN, 0};
    char buf[64];
    if (poll(&p, 1, 1000) <= 0 || recv(fd, buf, sizeof(buf), 0) != 4) rc = ETIMEDOUT;
  }
  close(fd);
  return rc;
}

Daemon::Daemon(const CgroupTree& tree, const std::string& policyYaml, const std::string& mode,
               const std::vector<std::string>& extraArgs) {
  char tmpl[] = "/tmp/microseg-e2e.XXXXXX";
  dir_ = mkdtemp(tmpl);
  policyDir_ = dir_ + "/policies";
  fs::create_directories(policyDir_);
  writePolicy("policy.yaml", policyYaml);
  socket_ = dir_ + "/ctl.sock";
  stateDir_ = "/sys/fs/bpf/microseg-test-" + std::to_string(getpid()) + "-" + std::to_string(gCounter++);
  flowLog_ = dir_ + "/flows.jsonl";
  logFile_ = dir_ + "/microsegd.log";
  args_ = {MS_BUILD_DIR "/microsegd", "--cgroup-root", tree.root(), "--policy", policyDir_,
           "--mode", mode, "--socket", socket_, "--state-dir", stateDir_, "--flow-log", flowLog_,
           "--log-level", "debug"};
  args_.insert(args_.end(), extraArgs.begin(), extraArgs.end());
  start();
}

bool Daemon::start() {
  started_ = false;
  pid_ = fork();
  if (pid_ == 0) {
    int fd = open(logFile_.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    dup2(fd, 2);
    std::vector<char*> argv;
    for (auto& a : args_) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv(argv[0], argv.data());
    _exit(127);
  }
  const int64_t end = nowMs() + 10000;
  while (nowMs() < end) {
    if (status()) {
      started_ = true;
      return true;
    }
    int st;
    if (waitpid(pid_, &st, WNOHANG) == pid_) {
      pid_ = -1;
      return false;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

void Daemon::crash() {
  if (pid_ <= 0) return;
  kill(pid_, SIGKILL);
  int st;
  waitPid(pid_, 5000, &st);
  pid_ = -1;
}

int Daemon::cleanup() const {
  pid_t pid = fork();
  if (pid == 0) {
    int fd = open(logFile_.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    dup2(fd, 2);
    execl(MS_BUILD_DIR "/microsegd", "microsegd", "--cleanup", "--state-dir", stateDir_.c_str(),
          static_cast<char*>(nullptr));
    _exit(127);
  }
  int st = 0;
  if (!waitPid(pid, 10000, &st)) return -1;
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

Daemon::~Daemon() {
  if (pid_ > 0) stop();
  cleanup();
  std::error_code ec;
  fs::remove_all(dir_, ec);
  fs::remove_all(stateDir_, ec);
}

void Daemon::writePolicy(const std::string& file, const std::string& yaml) {
  writeFile(policyDir_ + "/" + file, yaml);
}

int Daemon::stop() {
  if (pid_ <= 0) return -1;
  kill(pid_, SIGTERM);
  int st = 0;
  if (!waitPid(pid_, 10000, &st)) {
    kill(pid_, SIGKILL);
    waitPid(pid_, 2000, &st);
    pid_ = -1;
    return -1;
  }
  pid_ = -1;
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

CliResult Daemon::cli(const std::vector<std::string>& args) const {
  CliResult r;
  const std::string out = dir_ + "/cli.out", err = dir_ + "/cli.err";
  pid_t pid = fork();
  if (pid == 0) {
    int o = open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int e = open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(o, 1);
    dup2(e, 2);
    std::vector<std::string> full = {MS_BUILD_DIR "/microseg", "--socket", socket_};
    full.insert(full.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& a : full) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv(argv[0], argv.data());
    _exit(127);
  }
  int st = 0;
  if (waitPid(pid, 15000, &st)) r.rc = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  r.out = readFile(out);
  r.err = readFile(err);
  return r;
}

std::optional<nlohmann::json> Daemon::status() const {
  auto reply = control::call(socket_, {{"command", "status"}}, 2000);
  if (!reply || !reply->value("ok", false)) return std::nullopt;
  return (*reply)["result"];
}

std::vector<nlohmann::json> Daemon::flows() const {
  std::vector<nlohmann::json> out;
  std::istringstream in(readFile(flowLog_));
  std::string line;
  while (std::getline(in, line)) {
    try {
      out.push_back(nlohmann::json::parse(line));
    } catch (...) {
    }
  }
  return out;
}

std::optional<nlohmann::json> Daemon::waitFlow(const std::function<bool(const nlohmann::json&)>& pred,
                                               int timeoutMs) const {
  const int64_t end = nowMs() + timeoutMs;
  do {
    for (const auto& f : flows()) {
      if (pred(f)) return f;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  } while (nowMs() < end);
  return std::nullopt;
}

std::string Daemon::log() const {
  return readFile(logFile_) + "\n--- flow log ---\n" + readFile(flowLog_);
}

int freePortBase() {
  static int next = 0;
  int base = 20000 + (getpid() * 37 % 20000) + next;
  next += 20;
  return base;
}

}  // namespace microseg::e2e
