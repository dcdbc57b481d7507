#include "wire_loop.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "cluster_util.h"
#include "common/cgroup.h"

namespace microseg::bench {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

bool joinCgroup(const std::string& cg) {
  int fd = open((cg + "/cgroup.procs").c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return false;
  const std::string pid = std::to_string(getpid());
  const bool ok = write(fd, pid.data(), pid.size()) == ssize_t(pid.size());
  close(fd);
  return ok;
}

bool readByte(int fd, char* c, int timeoutMs) {
  pollfd pf{fd, POLLIN, 0};
  return poll(&pf, 1, timeoutMs) == 1 && read(fd, c, 1) == 1;
}

void reap(pid_t pid) {
  kill(pid, SIGKILL);
  waitpid(pid, nullptr, 0);
}

std::string text(const sockaddr_in& a) {
  char t[INET_ADDRSTRLEN] = {};
  inet_ntop(AF_INET, &a.sin_addr, t, sizeof(t));
  return std::string(t) + ":" + std::to_string(ntohs(a.sin_port));
}

struct LoopResult {
  uint64_t iters = 0, ns = 0, errors = 0;
  int firstErrno = 0;
};

LoopResult tcpLoop(const sockaddr_in& dest, uint64_t iters, uint64_t deadline) {
  LoopResult r;
  uint64_t i = 0;
  for (; i < iters; i++) {
    if ((i & 63) == 0 && nowNs() > deadline) break;
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s < 0) {
      if (r.errors++ == 0) r.firstErrno = errno;
      continue;
    }
    linger lg{1, 0};  // RST on close: no TIME_WAIT pile-up
    setsockopt(s, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    timeval tv{2, 0};  // a dropped SYN fails the connect in 2 s, not after the retries
    setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    if (connect(s, reinterpret_cast<const sockaddr*>(&dest), sizeof(dest)) != 0) {
      if (r.errors++ == 0) r.firstErrno = errno;
    }
    close(s);
  }
  r.iters = i;
  return r;
}

LoopResult udpLoop(const sockaddr_in& dest, uint64_t iters, uint64_t deadline) {
  LoopResult r;
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0) {
    r.errors = 1;
    r.firstErrno = errno;
    return r;
  }
  const char payload[16] = "microseg-bench";
  uint64_t i = 0;
  for (; i < iters; i++) {
    if ((i & 63) == 0 && nowNs() > deadline) break;
    if (sendto(s, payload, sizeof(payload), 0, reinterpret_cast<const sockaddr*>(&dest), sizeof(dest)) < 0) {
      if (r.errors++ == 0) r.firstErrno = errno;
    }
  }
  close(s);
  r.iters = i;
  return r;
}

}  // namespace

std::map<std::string, ProgStat> progStats(const std::map<std::string, std::string>& prefixToDir) {
  std::map<std::string, ProgStat> out;
  for (const auto& [prefix, dir] : prefixToDir) {
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(dir, ec)) {
      if (e.path().filename().string().rfind("link_", 0) != 0) continue;
      int lfd = bpf_obj_get(e.path().c_str());
      if (lfd < 0) continue;
      bpf_link_info li{};
      uint32_t len = sizeof(li);
      if (bpf_obj_get_info_by_fd(lfd, &li, &len) == 0) {
        int pfd = bpf_prog_get_fd_by_id(li.prog_id);
        if (pfd >= 0) {
          bpf_prog_info info{};
          uint32_t ilen = sizeof(info);
          if (bpf_obj_get_info_by_fd(pfd, &info, &ilen) == 0) {
            out[prefix + "." + info.name] = {info.run_time_ns, info.run_cnt};
          }
          close(pfd);
        }
      }
      close(lfd);
    }
    if (ec) die("cannot read the state dir " + dir + ": " + ec.message());
  }
  return out;
}

pid_t startWireListener(const sockaddr_in& addr, const std::string& cgroup, const std::string& netnsPath) {
  int up[2];
  if (pipe2(up, O_CLOEXEC) != 0) die("pipe failed");
  const pid_t pid = fork();
  if (pid < 0) die("fork failed");
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);  // never outlives the bench (it holds the netns)
    close(up[0]);
    auto fail = [&](char stage) {
      char b[2] = {stage, char(errno)};
      (void)!write(up[1], b, 2);
      _exit(2);
    };
    if (!joinCgroup(cgroup)) fail('c');
    int nfd = open(netnsPath.c_str(), O_RDONLY | O_CLOEXEC);
    if (nfd < 0 || setns(nfd, CLONE_NEWNET) != 0) fail('n');
    close(nfd);
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    int ufd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (lfd < 0 || ufd < 0 || bind(lfd, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) != 0 ||
        listen(lfd, 4096) != 0 || bind(ufd, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) != 0) {
      fail('l');
    }
    char b[2] = {'r', 0};
    if (write(up[1], b, 2) != 2) _exit(3);
    char buf[64];
    for (;;) {
      pollfd pf[2] = {{lfd, POLLIN, 0}, {ufd, POLLIN, 0}};
      if (poll(pf, 2, -1) <= 0) continue;
      for (int c; (c = accept4(lfd, nullptr, nullptr, SOCK_CLOEXEC)) >= 0;) close(c);
      while (recv(ufd, buf, sizeof(buf), 0) >= 0) {
      }
    }
  }
  close(up[1]);
  char b[2] = {};
  const bool got = readByte(up[0], &b[0], 5000) && readByte(up[0], &b[1], 1000);
  close(up[0]);
  if (!got || b[0] != 'r') {
    const char* stage = b[0] == 'c' ? "join cgroup " : b[0] == 'n' ? "enter netns " : "listen on ";
    const std::string what = b[0] == 'c' ? cgroup : b[0] == 'n' ? netnsPath : text(addr);
    reap(pid);
    die(std::string("the listener could not ") + stage + what + (got ? std::string(": ") + std::strerror(b[1]) : ""));
  }
  return pid;
}

json runLoop(LoopKind kind, const std::string& cgroup, const sockaddr_in& dest, uint64_t iters, double seconds,
             const std::map<std::string, std::string>& statsDirs) {
  auto level = cgroupLevel(cgroup);
  if (!level || *level < 1) die("the caller's cgroup must be below the cgroup2 root: " + cgroup);
  int up[2], down[2];
  if (pipe2(up, O_CLOEXEC) != 0 || pipe2(down, O_CLOEXEC) != 0) die("pipe failed");
  const pid_t pid = fork();
  if (pid < 0) die("fork failed");
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    close(up[0]);
    close(down[1]);
    char ok = joinCgroup(cgroup) ? 1 : 0;
    if (write(up[1], &ok, 1) != 1 || !ok) _exit(2);
    char go;
    if (read(down[0], &go, 1) != 1) _exit(3);
    const uint64_t t0 = nowNs();
    const uint64_t deadline = seconds > 0 ? t0 + uint64_t(seconds * 1e9) : UINT64_MAX;
    LoopResult r = kind == LoopKind::Tcp ? tcpLoop(dest, iters, deadline) : udpLoop(dest, iters, deadline);
    r.ns = nowNs() - t0;
    if (write(up[1], &r, sizeof(r)) != ssize_t(sizeof(r))) _exit(4);
    _exit(0);
  }
  close(up[1]);
  close(down[0]);
  char ok = 0;
  if (!readByte(up[0], &ok, 5000) || !ok) {
    reap(pid);
    die("the loop could not join cgroup " + cgroup);
  }
  const auto before = progStats(statsDirs);
  char go = 1;
  if (write(down[1], &go, 1) != 1) die("the loop vanished");
  LoopResult r;
  pollfd pf{up[0], POLLIN, 0};
  const int timeoutMs = seconds > 0 ? int(seconds * 1000) + 60000 : 600000;
  if (poll(&pf, 1, timeoutMs) != 1 || read(up[0], &r, sizeof(r)) != ssize_t(sizeof(r))) {
    reap(pid);
    die("the loop to " + text(dest) + " did not finish in time");
  }
  const auto after = progStats(statsDirs);
  waitpid(pid, nullptr, 0);
  close(up[0]);
  close(down[1]);
  json progs = json::object();
  for (const auto& [name, a] : after) {
    auto it = before.find(name);
    const uint64_t ns = a.runNs - (it == before.end() ? 0 : it->second.runNs);
    const uint64_t cnt = a.runCnt - (it == before.end() ? 0 : it->second.runCnt);
    const double ops = r.iters ? double(r.iters) : 1.0;
    // Every program is listed, also those that did not run (the "zero
    // cost" claims are run counts of 0).
    progs[name] = json{{"runs", cnt},
                       {"ns", ns},
                       {"ns_per_run", cnt ? double(ns) / double(cnt) : 0.0},
                       {"runs_per_op", double(cnt) / ops},
                       {"ns_per_op", double(ns) / ops}};
  }
  return json{{"kind", kind == LoopKind::Tcp ? "tcp4" : "udp4"},
              {"dest", text(dest)},
              {"iters", r.iters},
              {"errors", r.errors},
              {"errno", r.firstErrno ? std::strerror(r.firstErrno) : ""},
              {"ns_per_op", r.iters ? double(r.ns) / double(r.iters) : 0.0},
              {"progs", progs}};
}

}  // namespace microseg::bench
