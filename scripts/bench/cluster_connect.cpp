#include "cluster_connect.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <sys/prctl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <map>
#include <optional>

#include "cluster_util.h"
#include "common/cgroup.h"

namespace microseg::bench {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

struct ProgStat {
  uint64_t runNs = 0, runCnt = 0;
};

// Programs behind every pinned link (link_*) under `dir`, by name: what
// section 1 reads (bench_main.cpp's pinnedProgStats), for the same figures.
std::map<std::string, ProgStat> pinnedProgStats(const std::string& dir) {
  std::map<std::string, ProgStat> out;
  std::error_code ec;
  for (const auto& e : fs::recursive_directory_iterator(dir, ec)) {
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
        if (bpf_obj_get_info_by_fd(pfd, &info, &ilen) == 0) out[info.name] = {info.run_time_ns, info.run_cnt};
        close(pfd);
      }
    }
    close(lfd);
  }
  return out;
}

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

// The listener: joins its cgroup / netns, listens, reports ready (1) or the
// errno of what failed, then accepts and closes until killed.
pid_t startListener(const ConnectTarget& t, std::string* why) {
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
    if (!t.listenerCgroup.empty() && !joinCgroup(t.listenerCgroup)) fail('c');
    if (!t.listenerNetns.empty()) {
      int nfd = open(t.listenerNetns.c_str(), O_RDONLY | O_CLOEXEC);
      if (nfd < 0 || setns(nfd, CLONE_NEWNET) != 0) fail('n');
      close(nfd);
    }
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (lfd < 0 || bind(lfd, reinterpret_cast<const sockaddr*>(&t.addr), sizeof(t.addr)) != 0 ||
        listen(lfd, 4096) != 0) {
      fail('l');
    }
    char b[2] = {'r', 0};
    if (write(up[1], b, 2) != 2) _exit(3);
    for (;;) {
      int c = accept4(lfd, nullptr, nullptr, SOCK_CLOEXEC);
      if (c >= 0) close(c);
    }
  }
  close(up[1]);
  char b[2] = {};
  const bool got = readByte(up[0], &b[0], 5000) && readByte(up[0], &b[1], 1000);
  close(up[0]);
  if (!got || b[0] != 'r') {
    const char* stage = b[0] == 'c' ? "join its cgroup" : b[0] == 'n' ? "enter the netns" : "listen";
    *why = std::string("listener could not ") + stage + (got ? std::string(": ") + std::strerror(b[1]) : "");
    reap(pid);
    return -1;
  }
  return pid;
}

struct LoopResult {
  uint64_t iters = 0, ns = 0, errors = 0;
  int firstErrno = 0;
};

}  // namespace

json measureConnects(const std::string& cgroup, const ConnectTarget& target, uint64_t iters, double seconds,
                     const std::string& statsPinDir) {
  auto level = cgroupLevel(cgroup);
  if (!level || *level < 1) die("--cgroup must be a cgroup below the cgroup2 root: " + cgroup);
  char addrText[INET_ADDRSTRLEN] = {};
  inet_ntop(AF_INET, &target.addr.sin_addr, addrText, sizeof(addrText));
  const std::string dest = std::string(addrText) + ":" + std::to_string(ntohs(target.addr.sin_port));
  std::string why;
  const pid_t listener = startListener(target, &why);
  if (listener < 0) die(why + " (" + dest + ")");

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
    LoopResult r;
    const uint64_t t0 = nowNs();
    const uint64_t deadline = seconds > 0 ? t0 + uint64_t(seconds * 1e9) : UINT64_MAX;
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
      if (connect(s, reinterpret_cast<const sockaddr*>(&target.addr), sizeof(target.addr)) != 0) {
        if (r.errors++ == 0) r.firstErrno = errno;
      }
      close(s);
    }
    r.ns = nowNs() - t0;
    r.iters = i;
    if (write(up[1], &r, sizeof(r)) != ssize_t(sizeof(r))) _exit(4);
    _exit(0);
  }
  close(up[1]);
  close(down[0]);
  char ok = 0;
  if (!readByte(up[0], &ok, 5000) || !ok) {
    reap(pid);
    reap(listener);
    die("the connect loop could not join cgroup " + cgroup);
  }
  int statsFd = bpf_enable_stats(BPF_STATS_RUN_TIME);
  if (statsFd < 0) die("BPF_ENABLE_STATS failed (kernel >= 5.8 needed)");
  const auto before = pinnedProgStats(statsPinDir);
  char go = 1;
  if (write(down[1], &go, 1) != 1) die("the connect loop vanished");
  LoopResult r;
  pollfd pf{up[0], POLLIN, 0};
  const int timeoutMs = seconds > 0 ? int(seconds * 1000) + 60000 : 600000;
  if (poll(&pf, 1, timeoutMs) != 1 || read(up[0], &r, sizeof(r)) != ssize_t(sizeof(r))) {
    reap(pid);
    reap(listener);
    die("the connect loop to " + dest + " did not finish in time");
  }
  const auto after = pinnedProgStats(statsPinDir);
  close(statsFd);
  waitpid(pid, nullptr, 0);
  reap(listener);
  close(up[0]);
  close(down[1]);
  json progs = json::object();
  for (const auto& [name, a] : after) {
    auto it = before.find(name);
    const uint64_t ns = a.runNs - (it == before.end() ? 0 : it->second.runNs);
    const uint64_t cnt = a.runCnt - (it == before.end() ? 0 : it->second.runCnt);
    if (cnt != 0) progs[name] = json{{"runs", cnt}, {"ns", ns}, {"ns_per_run", double(ns) / double(cnt)}};
  }
  return json{{"dest", dest},
              {"iters", r.iters},
              {"errors", r.errors},
              {"errno", r.firstErrno ? std::strerror(r.firstErrno) : ""},
              {"ns_per_op", r.iters ? double(r.ns) / double(r.iters) : 0.0},
              {"progs", progs}};
}

}  // namespace microseg::bench
