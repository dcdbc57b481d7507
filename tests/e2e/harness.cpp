#include "harness.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <thread>

#include <bpf/bpf.h>

#include "control/client.h"

namespace microseg::e2e {
namespace fs = std::filesystem;
namespace {

std::atomic<int> gCounter{0};
pid_t gMainPid = 0;
constexpr const char* kTfoSysctl = "/proc/sys/net/ipv4/tcp_fastopen";
constexpr int kServerLifetimeMs = 60000;  // servers end by themselves even if never killed

// ---- what must be undone, also from a signal handler ------------------------
// Fixed-size lock-free tables: the signal path may only read memory and make
// async-signal-safe calls.
enum PidKind : int { kWorker = 1, kDaemon = 2, kTool = 3 };
struct PidSlot {
  std::atomic<pid_t> pid{0};
  std::atomic<int> kind{0};
};
constexpr int kMaxPids = 1024;  // the churn test runs 300 workers at once
PidSlot gPids[kMaxPids];

enum PathKind : int { kBusy = -1, kCgroupTree = 1, kStateDir = 2, kTempDir = 3, kNetns = 4 };
struct PathSlot {
  std::atomic<int> kind{0};
  char path[512] = {};
};
constexpr int kMaxPaths = 64;
PathSlot gPaths[kMaxPaths];
std::atomic<int> gTfoOriginal{-1};

void trackPid(pid_t pid, PidKind kind) {
  if (pid <= 0) return;
  for (auto& s : gPids) {
    pid_t free = 0;
    if (s.pid.compare_exchange_strong(free, pid)) {
      s.kind = kind;
      return;
    }
  }
  std::cerr << "e2e harness: pid table full, pid " << pid << " is not tracked\n";
}

void untrackPid(pid_t pid) {
  for (auto& s : gPids) {
    pid_t expected = pid;
    if (s.pid.compare_exchange_strong(expected, 0)) {
      s.kind = 0;
      return;
    }
  }
}

void trackPath(const std::string& path, PathKind kind) {
  for (auto& s : gPaths) {
    int free = 0;
    if (!s.kind.compare_exchange_strong(free, kBusy)) continue;
    std::snprintf(s.path, sizeof(s.path), "%s", path.c_str());
    s.kind = kind;
    return;
  }
  std::cerr << "e2e harness: path table full, " << path << " is not tracked\n";
}

void untrackPath(const std::string& path) {
  for (auto& s : gPaths) {
    if (s.kind.load() > 0 && path == s.path) {
      s.kind = 0;
      return;
    }
  }
}

// ---- async-signal-safe helpers -------------------------------------------------
void sleepMs(int ms) {
  timespec ts{ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

// waitpid with a bound; the pid is untracked once reaped.
bool reap(pid_t pid, int timeoutMs, int* status) {
  for (int waited = 0;; waited += 5) {
    pid_t r = waitpid(pid, status, WNOHANG);
    if (r == pid || (r < 0 && errno == ECHILD)) {
      untrackPid(pid);
      return r == pid;
    }
    if (r < 0 && errno != EINTR) return false;
    if (waited >= timeoutMs) return false;
    sleepMs(5);
  }
}

bool rmdirRetry(const char* path) {
  // A cgroup whose last process just died reports EBUSY for a moment.
  for (int i = 0; i < 50; i++) {
    if (rmdir(path) == 0 || errno == ENOENT) return true;
    if (errno != EBUSY) return false;
    sleepMs(20);
  }
  return false;
}

bool joinPath(char* out, size_t size, const char* dir, const char* name) {
  size_t i = 0;
  for (const char* p = dir; *p != 0; p++) {
    if (i + 1 >= size) return false;
    out[i++] = *p;
  }
  if (i + 1 >= size) return false;
  out[i++] = '/';
  for (const char* p = name; *p != 0; p++) {
    if (i + 1 >= size) return false;
    out[i++] = *p;
  }
  out[i] = 0;
  return true;
}

struct LinuxDirent64 {
  uint64_t d_ino;
  int64_t d_off;
  unsigned short d_reclen;
  unsigned char d_type;
  char d_name[];
};

// Removes every directory below `path`, deepest first (a cgroup directory holds
// only interface files, which go with it). getdents64 rather than opendir: no
// malloc, so it also runs from the signal handler.
void rmdirBelow(const char* path, int depth) {
  if (depth > 64) return;  // (attack tests nest 40 cgroups deep)
  for (int pass = 0; pass < 8; pass++) {
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return;
    bool removedAny = false;
    alignas(8) char buf[2048];
    long n;
    while ((n = syscall(SYS_getdents64, fd, buf, sizeof(buf))) > 0) {
      for (long off = 0; off < n;) {
        auto* d = reinterpret_cast<LinuxDirent64*>(buf + off);
        off += d->d_reclen;
        if (d->d_type != DT_DIR) continue;
        if (std::strcmp(d->d_name, ".") == 0 || std::strcmp(d->d_name, "..") == 0) continue;
        char child[1024];
        if (!joinPath(child, sizeof(child), path, d->d_name)) continue;
        rmdirBelow(child, depth + 1);
        if (rmdirRetry(child)) removedAny = true;
      }
    }
    close(fd);
    if (!removedAny) return;
  }
}

// fork + execve with a bounded wait; -1 if it did not finish in time.
int runTool(const char* const argv[], int timeoutMs) {
  pid_t pid = fork();
  if (pid == 0) {
    int devnull = open("/dev/null", O_WRONLY);
    if (devnull >= 0) {
      dup2(devnull, 1);
      dup2(devnull, 2);
    }
    execve(argv[0], const_cast<char* const*>(argv), environ);
    _exit(127);
  }
  if (pid < 0) return -1;
  trackPid(pid, kTool);
  int st = 0;
  if (!reap(pid, timeoutMs, &st)) {
    kill(pid, SIGKILL);
    reap(pid, 1000, &st);
    return -1;
  }
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

void writeAll(int fd, const char* s) {
  size_t len = std::strlen(s);
  while (len > 0) {
    ssize_t n = write(fd, s, len);
    if (n <= 0) return;
    s += n;
    len -= static_cast<size_t>(n);
  }
}

bool writeSysctl(const char* path, int value) {
  char buf[16];
  int len = std::snprintf(buf, sizeof(buf), "%d\n", value);
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return false;
  bool ok = write(fd, buf, static_cast<size_t>(len)) == len;
  close(fd);
  return ok;
}

// Everything the tests left behind: our processes (by pid), the daemons'
// pinned state, the cgroup trees, the temp dirs, the sysctl.
void cleanupEverything() {
  for (auto& s : gPids) {
    const pid_t p = s.pid.load();
    if (p > 0) kill(p, SIGKILL);
  }
  for (auto& s : gPids) {
    const pid_t p = s.pid.load();
    int st;
    if (p > 0) reap(p, 2000, &st);
  }
  for (auto& s : gPaths) {
    if (s.kind.load() != kStateDir) continue;
    const char* cleanup[] = {MS_BUILD_DIR "/microsegd", "--cleanup", "--state-dir", s.path, nullptr};
    runTool(cleanup, 10000);
    const char* rm[] = {"/bin/rm", "-rf", s.path, nullptr};
    runTool(rm, 5000);
  }
  for (auto& s : gPaths) {
    if (s.kind.load() != kCgroupTree) continue;
    rmdirBelow(s.path, 0);
    rmdirRetry(s.path);
  }
  for (auto& s : gPaths) {
    if (s.kind.load() != kTempDir) continue;
    const char* rm[] = {"/bin/rm", "-rf", s.path, nullptr};
    runTool(rm, 5000);
  }
  for (auto& s : gPaths) {
    if (s.kind.load() != kNetns) continue;
    const char* del[] = {"/usr/sbin/ip", "netns", "delete", s.path, nullptr};
    runTool(del, 5000);
  }
  const int tfo = gTfoOriginal.load();
  if (tfo >= 0) writeSysctl(kTfoSysctl, tfo);
}

void onFatalSignal(int sig) {
  // Forked workers inherit this handler (and get the terminal's ^C too).
  if (getpid() != gMainPid) _exit(128 + sig);
  static std::atomic<bool> once{false};
  if (!once.exchange(true)) {
    writeAll(2, "\ne2e: interrupted, removing the test processes, pinned state, cgroups and temp files\n");
    cleanupEverything();
  }
  signal(sig, SIG_DFL);
  raise(sig);
}

// ---- ordinary helpers ----------------------------------------------------------
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

// ... and, if given, into the netns at `netnsPath`.
bool enter(const std::string& cgroup, const std::string& netnsPath) {
  if (!enterCgroup(cgroup)) return false;
  if (netnsPath.empty()) return true;
  int fd = open(netnsPath.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  const bool ok = setns(fd, CLONE_NEWNET) == 0;
  close(fd);
  return ok;
}


bool waitPid(pid_t pid, int timeoutMs, int* status) { return reap(pid, timeoutMs, status); }

// Kills and reaps the still-running tracked processes of `kind`.
void killTracked(PidKind kind) {
  for (auto& s : gPids) {
    const pid_t p = s.pid.load();
    if (p > 0 && s.kind.load() == kind) kill(p, SIGKILL);
  }
  for (auto& s : gPids) {
    const pid_t p = s.pid.load();
    int st;
    if (p > 0 && s.kind.load() == kind) reap(p, 2000, &st);
  }
}

}  // namespace

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

int attachedPrograms(const std::string& path, int type) {
  const int fd = open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return -1;
  uint32_t ids[16], count = 16, flags = 0;
  const int rc = bpf_prog_query(fd, static_cast<bpf_attach_type>(type), 0, &flags, ids, &count);
  close(fd);
  return rc == 0 ? static_cast<int>(count) : -1;
}

std::string cgroup2Mount() {
  std::ifstream in("/proc/mounts");
  std::string dev, dir, type, rest;
  while (in >> dev >> dir >> type) {
    std::getline(in, rest);
    if (type == "cgroup2") return dir;
  }
  return {};
}

bool ensureBpffs() {
  std::ifstream in("/proc/mounts");
  std::string dev, dir, type, rest;
  while (in >> dev >> dir >> type) {
    std::getline(in, rest);
    if (type == "bpf" && dir == "/sys/fs/bpf") return true;
  }
  mkdir("/sys/fs/bpf", 0700);
  if (mount("bpf", "/sys/fs/bpf", "bpf", 0, "mode=0700") != 0) {
    std::cerr << "cannot mount bpffs at /sys/fs/bpf: " << std::strerror(errno) << "\n";
    return false;
  }
  return true;
}

void installCleanupOnSignal() {
  gMainPid = getpid();
  struct sigaction sa {};
  sa.sa_handler = onFatalSignal;
  sigemptyset(&sa.sa_mask);
  // SIGABRT too: std::terminate (e.g. a joinable thread left behind by a
  // failed ASSERT) must not leak pinned programs on cgroups.
  for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGABRT}) sigaction(sig, &sa, nullptr);
}

TcpFastOpenClient::TcpFastOpenClient() {
  const std::string v = readFile(kTfoSysctl);
  if (v.empty()) return;
  const int current = std::atoi(v.c_str());
  if ((current & 1) != 0) {
    ok_ = true;  // already on: nothing to restore
    return;
  }
  original_ = current;
  gTfoOriginal = current;
  ok_ = writeSysctl(kTfoSysctl, current | 1);
}

TcpFastOpenClient::~TcpFastOpenClient() {
  if (original_ < 0) return;
  writeSysctl(kTfoSysctl, original_);
  gTfoOriginal = -1;
}

void trackServer(pid_t pid) { trackPid(pid, kDaemon); }
void untrackServer(pid_t pid) { untrackPid(pid); }
void trackTempDir(const std::string& path) { trackPath(path, kTempDir); }
void untrackTempDir(const std::string& path) { untrackPath(path); }

CgroupTree::CgroupTree() {
  root_ = cgroup2Mount() + "/microseg-test-" + std::to_string(getpid()) + "-" +
          std::to_string(gCounter++);
  if (mkdir(root_.c_str(), 0755) != 0) {
    std::cerr << "e2e harness: mkdir " << root_ << ": " << std::strerror(errno) << "\n";
  }
  trackPath(root_, kCgroupTree);
}

CgroupTree::~CgroupTree() {
  killTracked(kWorker);
  rmdirBelow(root_.c_str(), 0);
  if (!rmdirRetry(root_.c_str())) {
    // Never kill what we did not fork: say what is left instead.
    std::cerr << "e2e harness: cannot remove " << root_ << ": " << std::strerror(errno) << "\n";
    std::error_code ec;
    for (auto it = fs::recursive_directory_iterator(root_, ec); !ec && it != fs::end(it); it.increment(ec)) {
      if (it->path().filename() == "cgroup.procs") {
        const std::string procs = readFile(it->path().string());
        if (!procs.empty()) std::cerr << "  " << it->path().string() << ": " << procs;
      }
    }
  }
  untrackPath(root_);
}

std::string CgroupTree::create(const std::string& rel) {
  std::string p = path(rel);
  fs::create_directories(p);
  return p;
}

int runIn(const std::string& cgroup, const std::function<int()>& fn, int timeoutMs,
          const std::string& netnsPath) {
  int pfd[2];
  if (pipe2(pfd, O_CLOEXEC) != 0) return -1;
  pid_t pid = fork();
  if (pid == 0) {
    close(pfd[0]);
    int result = enter(cgroup, netnsPath) ? fn() : -1000;
    (void)!write(pfd[1], &result, sizeof(result));
    _exit(0);
  }
  close(pfd[1]);
  if (pid < 0) {
    close(pfd[0]);
    return -1;
  }
  trackPid(pid, kWorker);
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
             const std::function<void(int)>& serve, const std::string& netnsPath) {
  int pfd[2];
  if (pipe2(pfd, O_CLOEXEC) != 0) return;
  pid_ = fork();
  if (pid_ == 0) {
    close(pfd[0]);
    int fd = enter(cgroup, netnsPath) ? setup() : -1;
    char ok = fd >= 0 ? 1 : 0;
    (void)!write(pfd[1], &ok, 1);
    close(pfd[1]);
    if (fd >= 0) serve(fd);
    _exit(0);
  }
  close(pfd[1]);
  if (pid_ < 0) {
    close(pfd[0]);
    return;
  }
  trackPid(pid_, kWorker);
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

Child tcpServer(const std::string& cgroup, int family, const std::string& addr, int port,
                const std::string& netnsPath) {
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
        if (bind(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0 || listen(fd, 4096) != 0) return -1;
        return fd;
      },
      [](int fd) {
        const int64_t end = nowMs() + kServerLifetimeMs;
        while (nowMs() < end) {
          pollfd p{fd, POLLIN, 0};
          if (poll(&p, 1, 200) > 0) {
            int c = accept(fd, nullptr, nullptr);
            if (c >= 0) close(c);
          }
        }
      },
      netnsPath);
}

Child udpEchoServer(const std::string& cgroup, int family, const std::string& addr, int port,
                    const std::string& netnsPath) {
  return Child(
      cgroup,
      [=]() {
        int fd = socket(family, SOCK_DGRAM, 0);
        int one = 1;
        // IPv6 only, so "::" and "0.0.0.0" of one port can both be bound.
        if (family == AF_INET6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
        sockaddr_storage ss;
        socklen_t len = makeAddr(family, addr, port, ss);
        if (bind(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0) return -1;
        return fd;
      },
      [](int fd) {
        const int64_t end = nowMs() + kServerLifetimeMs;
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
      },
      netnsPath);
}

namespace {

// Binds `fd` to `srcAddr` (port 0); 0 or errno.
int bindSource(int fd, int family, const std::string& srcAddr) {
  if (srcAddr.empty()) return 0;
  sockaddr_storage src;
  socklen_t sl = makeAddr(family, srcAddr, 0, src);
  return bind(fd, reinterpret_cast<sockaddr*>(&src), sl) == 0 ? 0 : errno;
}

}  // namespace

namespace {

// tcpConnect() with `prepare(fd)` (0 or an errno) before the connect.
int tcpConnectPrepared(int family, const std::string& addr, int port, int timeoutMs,
                       const std::function<int(int)>& prepare) {
  int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK, 0);
  if (fd < 0) return errno;
  if (int rc = prepare(fd); rc != 0) {
    close(fd);
    return rc;
  }
  sockaddr_storage ss;
  socklen_t len = makeAddr(family, addr, port, ss);
  int rc = 0;
  if (connect(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0) {
    rc = errno;
    if (rc == EINPROGRESS) {
      pollfd p{fd, POLLOUT, 0};
      if (poll(&p, 1, timeoutMs) <= 0) {
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

}  // namespace

int tcpConnect(int family, const std::string& addr, int port, int timeoutMs, const std::string& srcAddr) {
  return tcpConnectPrepared(family, addr, port, timeoutMs, [&](int fd) { return bindSource(fd, family, srcAddr); });
}

int tcpConnectWithIpv6Options(const std::string& addr, int port, int optname, int timeoutMs) {
  return tcpConnectPrepared(AF_INET6, addr, port, timeoutMs, [&](int fd) {
    // One 8-byte options header holding a PadN option (type 1, 4 bytes of
    // padding); the kernel fills in the next-header byte.
    const unsigned char opts[8] = {0, 0, 1, 4, 0, 0, 0, 0};
    return setsockopt(fd, IPPROTO_IPV6, optname, opts, sizeof(opts)) == 0 ? 0 : errno;
  });
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
    if (bind(fd, reinterpret_cast<sockaddr*>(&src), sl) != 0) {
      const int rc = errno;
      close(fd);
      return rc;
    }
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

int udpRequest(int family, const std::string& addr, int port, bool connected, int timeoutMs,
               const std::string& srcAddr) {
  int fd = socket(family, SOCK_DGRAM, 0);
  if (fd < 0) return errno;
  if (int rc = bindSource(fd, family, srcAddr); rc != 0) {
    close(fd);
    return rc;
  }
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
    if (poll(&p, 1, timeoutMs) <= 0 || recv(fd, buf, sizeof(buf), 0) != 4) rc = ETIMEDOUT;
  }
  close(fd);
  return rc;
}

Daemon::Daemon(const CgroupTree& tree, const std::string& policyYaml, const std::string& mode,
               const std::vector<std::string>& extraArgs)
    : Daemon(tree, policyYaml, mode, DaemonOptions{extraArgs, "", false}) {}

Daemon::Daemon(const CgroupTree& tree, const std::string& policyYaml, const std::string& mode,
               const DaemonOptions& options) {
  char tmpl[] = "/tmp/microseg-e2e.XXXXXX";
  if (mkdtemp(tmpl) == nullptr) {
    std::cerr << "e2e harness: mkdtemp: " << std::strerror(errno) << "\n";
    return;
  }
  dir_ = tmpl;
  trackPath(dir_, kTempDir);
  policyDir_ = dir_ + "/policies";
  fs::create_directories(policyDir_);
  writePolicy("policy.yaml", policyYaml);
  socket_ = dir_ + "/ctl.sock";
  stateDir_ = "/sys/fs/bpf/microseg-test-" + std::to_string(getpid()) + "-" + std::to_string(gCounter++);
  trackPath(stateDir_, kStateDir);
  flowLog_ = dir_ + "/flows.jsonl";
  logFile_ = dir_ + "/microsegd.log";
  // A --policy of the caller's (`--policy etcd`) replaces the policy dir,
  // as does options.policyFromEtcd; a --data-dir of the caller's the temp one.
  const auto& extra = options.extraArgs;
  const bool ownPolicy = options.policyFromEtcd || std::find(extra.begin(), extra.end(), "--policy") != extra.end();
  const bool ownDataDir = std::find(extra.begin(), extra.end(), "--data-dir") != extra.end();
  args_ = {MS_BUILD_DIR "/microsegd", "--cgroup-root", tree.root(), "--mode", mode, "--socket", socket_,
           "--state-dir", stateDir_, "--flow-log", flowLog_, "--log-level", "debug"};
  if (options.policyFromEtcd) {
    args_.insert(args_.end(), {"--policy", "etcd"});
  } else if (!ownPolicy) {
    args_.insert(args_.end(), {"--policy", policyDir_});
  }
  if (!ownDataDir) args_.insert(args_.end(), {"--data-dir", dir_ + "/data"});
  args_.insert(args_.end(), extra.begin(), extra.end());
  netnsPath_ = options.netnsPath;
  start();
}

bool Daemon::start() {
  started_ = false;
  pid_ = fork();
  if (pid_ == 0) {
    int fd = open(logFile_.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    dup2(fd, 2);
    if (!netnsPath_.empty()) {
      int ns = open(netnsPath_.c_str(), O_RDONLY | O_CLOEXEC);
      if (ns < 0 || setns(ns, CLONE_NEWNET) != 0) _exit(126);
    }
    std::vector<char*> argv;
    for (auto& a : args_) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv(argv[0], argv.data());
    _exit(127);
  }
  if (pid_ < 0) return false;
  trackPid(pid_, kDaemon);
  // Ready = the control socket answers `status` (it exists only once the
  // programs are attached and the policy is in force).
  const int64_t end = nowMs() + 10000;
  while (nowMs() < end) {
    if (status()) {
      started_ = true;
      return true;
    }
    int st;
    if (reap(pid_, 0, &st)) {
      std::cerr << "e2e harness: microsegd exited during startup (status " << st << ")\n";
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
  if (pid < 0) return -1;
  trackPid(pid, kTool);
  int st = 0;
  if (!waitPid(pid, 10000, &st)) {
    kill(pid, SIGKILL);
    waitPid(pid, 2000, &st);
    return -1;
  }
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

Daemon::~Daemon() {
  if (dir_.empty()) return;
  if (pid_ > 0) stop();
  // SIGTERM leaves the pinned links enforcing (by design); detach them.
  cleanup();
  std::error_code ec;
  fs::remove_all(dir_, ec);
  fs::remove_all(stateDir_, ec);
  untrackPath(stateDir_);
  untrackPath(dir_);
}

void Daemon::writePolicy(const std::string& file, const std::string& yaml) {
  writeFile(policyDir_ + "/" + file, yaml);
}

int Daemon::stop() {
  if (pid_ <= 0) return -1;
  kill(pid_, SIGTERM);
  int st = 0;
  if (!waitPid(pid_, 10000, &st)) {
    std::cerr << "e2e harness: microsegd did not exit within 10 s of SIGTERM; killed\n";
    kill(pid_, SIGKILL);
    waitPid(pid_, 2000, &st);
    pid_ = -1;
    return -1;
  }
  pid_ = -1;
  if (WIFSIGNALED(st)) {
    std::cerr << "e2e harness: microsegd died of signal " << WTERMSIG(st) << " (" << strsignal(WTERMSIG(st))
              << ") after SIGTERM\n";
    return -1;
  }
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

CliResult Daemon::cli(const std::vector<std::string>& args) const {
  CliResult r;
  const std::string n = std::to_string(gCounter++);
  const std::string out = dir_ + "/cli" + n + ".out", err = dir_ + "/cli" + n + ".err";
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
  if (pid < 0) return r;
  trackPid(pid, kTool);
  int st = 0;
  if (waitPid(pid, 15000, &st)) {
    r.rc = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  } else {
    kill(pid, SIGKILL);
    waitPid(pid, 2000, &st);
    r.err = "(microseg did not finish within 15 s)\n";
  }
  r.out = readFile(out);
  r.err += readFile(err);
  std::error_code ec;
  fs::remove(out, ec);
  fs::remove(err, ec);
  return r;
}

std::optional<nlohmann::json> Daemon::status() const {
  auto reply = control::call(socket_, {{"command", "status"}}, 2000);
  if (!reply || !reply->value("ok", false)) return std::nullopt;
  return (*reply)["result"];
}

std::optional<nlohmann::json> Daemon::request(const std::string& command, const nlohmann::json& fields) const {
  nlohmann::json body = fields;
  body["command"] = command;
  auto reply = control::call(socket_, body, 5000);
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

namespace {

bool portFree(int family, int type, int port) {
  int fd = socket(family, type, 0);
  if (fd < 0) return false;
  int one = 1;
  if (family == AF_INET6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
  sockaddr_storage ss;
  socklen_t len = makeAddr(family, family == AF_INET ? "0.0.0.0" : "::", port, ss);
  bool ok = bind(fd, reinterpret_cast<sockaddr*>(&ss), len) == 0;
  close(fd);
  return ok;
}

}  // namespace

int freePortBase() {
  // Below the ephemeral range: the tests' own clients (thousands of
  // connects, TIME_WAIT) must never occupy a port a server is about to bind.
  int low = 32768;
  std::ifstream("/proc/sys/net/ipv4/ip_local_port_range") >> low;
  const int span = std::max(1000, low - 10000 - 40);
  static int next = 0;
  for (int attempt = 0; attempt < 500; attempt++) {
    const int base = 10000 + ((getpid() * 97 + next) % span);
    next += 20;
    bool free = true;
    for (int p = base; p < base + 20 && free; p++) {
      free = portFree(AF_INET, SOCK_STREAM, p) && portFree(AF_INET, SOCK_DGRAM, p) &&
             portFree(AF_INET6, SOCK_STREAM, p) && portFree(AF_INET6, SOCK_DGRAM, p);
    }
    if (free) return base;
  }
  return 10000 + getpid() % 20000;
}

}  // namespace microseg::e2e

// The harness owns main(): the tests must not silently skip when they cannot
// touch the kernel, that would hide a broken datapath.
int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  // Listing needs no kernel: ctest discovers the tests at build time, and a
  // build may run unprivileged.
  if (GTEST_FLAG_GET(list_tests)) return RUN_ALL_TESTS();
  if (geteuid() != 0) {
    std::cerr << "e2e tests must run as root: they load BPF programs into throwaway cgroups "
                 "(run `sudo ctest -L e2e` or `sudo ./e2e_tests`)\n";
    return 1;
  }
  if (microseg::e2e::cgroup2Mount().empty()) {
    std::cerr << "e2e tests need a cgroup2 mount (none in /proc/mounts)\n";
    return 1;
  }
  if (!microseg::e2e::ensureBpffs()) return 1;
  signal(SIGPIPE, SIG_IGN);
  microseg::e2e::installCleanupOnSignal();
  return RUN_ALL_TESTS();
}

namespace microseg::e2e {

std::string streamExchange(const sockaddr* addr, unsigned addrLen, int family, const std::string& bytes) {
  int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0 || connect(fd, addr, addrLen) != 0) {
    if (fd >= 0) close(fd);
    return "connect failed";
  }
  size_t off = 0;
  while (off < bytes.size()) {
    ssize_t n = send(fd, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
    if (n <= 0) break;
    off += static_cast<size_t>(n);
  }
  timeval tv{3, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = recv(fd, buf, sizeof(buf), 0)) > 0) out.append(buf, static_cast<size_t>(n));
  close(fd);
  return out;
}

std::string unixExchange(const std::string& path, const std::string& bytes) {
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::strncpy(a.sun_path, path.c_str(), sizeof(a.sun_path) - 1);
  return streamExchange(reinterpret_cast<sockaddr*>(&a), sizeof(a), AF_UNIX, bytes);
}

Netns::Netns() {
  name_ = "microseg-test-" + std::to_string(getpid()) + "-" + std::to_string(gCounter++);
  trackPath(name_, kNetns);
  const char* add[] = {"/usr/sbin/ip", "netns", "add", name_.c_str(), nullptr};
  ok_ = runTool(add, 5000) == 0 && ip({"link", "set", "lo", "up"});
  if (!ok_) std::cerr << "e2e harness: cannot create netns " << name_ << "\n";
}

Netns::~Netns() {
  const char* del[] = {"/usr/sbin/ip", "netns", "delete", name_.c_str(), nullptr};
  if (runTool(del, 5000) != 0) std::cerr << "e2e harness: cannot delete netns " << name_ << "\n";
  untrackPath(name_);
}

bool Netns::ip(const std::vector<std::string>& args) const {
  std::vector<std::string> full = {"/usr/sbin/ip", "-n", name_};
  full.insert(full.end(), args.begin(), args.end());
  std::vector<const char*> argv;
  for (const auto& a : full) argv.push_back(a.c_str());
  argv.push_back(nullptr);
  return runTool(argv.data(), 5000) == 0;
}

bool vethPair(const Netns& a, const std::vector<std::string>& aAddrs, const Netns& b,
              const std::vector<std::string>& bAddrs, const std::string& prefix) {
  const std::string an = prefix + "a", bn = prefix + "b";
  // Fixed MACs and permanent neighbour entries: the first IPv6 packet on a
  // fresh veth is otherwise lost to neighbour discovery (a 1 s SYN retry).
  static std::atomic<int> pairs{0};
  const int n = pairs++;
  char macA[32], macB[32];
  std::snprintf(macA, sizeof(macA), "02:4d:%02x:%02x:%02x:01", (getpid() >> 8) & 0xff, getpid() & 0xff, n & 0xff);
  std::snprintf(macB, sizeof(macB), "02:4d:%02x:%02x:%02x:02", (getpid() >> 8) & 0xff, getpid() & 0xff, n & 0xff);
  if (!a.ip({"link", "add", an, "address", macA, "type", "veth", "peer", "name", bn, "address", macB, "netns",
             b.name()})) {
    return false;
  }
  auto setup = [](const Netns& ns, const std::string& dev, const std::vector<std::string>& addrs) {
    for (const auto& addr : addrs) {
      std::vector<std::string> args = {"addr", "add", addr, "dev", dev};
      if (addr.find(':') != std::string::npos) args.push_back("nodad");
      if (!ns.ip(args)) return false;
    }
    return ns.ip({"link", "set", dev, "up"});
  };
  auto neighbours = [](const Netns& ns, const std::string& dev, const std::vector<std::string>& peerAddrs,
                       const char* peerMac) {
    for (const auto& addr : peerAddrs) {
      const std::string ip = addr.substr(0, addr.find('/'));
      if (!ns.ip({"neigh", "replace", ip, "lladdr", peerMac, "dev", dev, "nud", "permanent"})) return false;
    }
    return true;
  };
  return setup(a, an, aAddrs) && setup(b, bn, bAddrs) && neighbours(a, an, bAddrs, macB) &&
         neighbours(b, bn, aAddrs, macA);
}

std::string ownCgroup() {
  std::ifstream in("/proc/self/cgroup");
  std::string line, path;
  while (std::getline(in, line)) {
    if (line.rfind("0::", 0) == 0) path = line.substr(3);
  }
  return cgroup2Mount() + (path == "/" ? std::string() : path);
}

std::string loopbackExchange(int port, const std::string& bytes) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return streamExchange(reinterpret_cast<sockaddr*>(&a), sizeof(a), AF_INET, bytes);
}

}  // namespace microseg::e2e
