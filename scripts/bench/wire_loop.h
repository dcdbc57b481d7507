// microseg-bench-wire: the loops of bench.sh section 6 (wire identity). A
// listener that stays up for the whole run (in the server's cgroup and in
// node B's network namespace: B's daemon publishes it, A learns it), and
// TCP connect+accept+close / UDP sendto loops from a cgroup of node A to it,
// with the kernel's per-program accounting (run_time_ns / run_cnt) of the
// programs pinned under both nodes' state dirs.
#pragma once

#include <netinet/in.h>
#include <sys/types.h>

#include <cstdint>
#include <map>
#include <string>

#include <nlohmann/json.hpp>

namespace microseg::bench {

struct ProgStat {
  uint64_t runNs = 0, runCnt = 0;
};

// Programs behind the pinned links (link_*) under each dir, named
// "<prefix>.<program name>" (e.g. "a.ms_sockops").
std::map<std::string, ProgStat> progStats(const std::map<std::string, std::string>& prefixToDir);

// Forks the listener: joins `cgroup` and the netns at `netnsPath`, binds TCP
// (accepting and closing) and UDP (draining) on `addr`. Dies naming what
// failed. The child dies with the caller (PR_SET_PDEATHSIG).
pid_t startWireListener(const sockaddr_in& addr, const std::string& cgroup, const std::string& netnsPath);

enum class LoopKind { Tcp, Udp };

// Runs up to `iters` operations (bounded by `seconds` if > 0) from a child
// in `cgroup` to `dest`: a TCP connect+close (RST: no TIME_WAIT), or one UDP
// sendto on one socket. Returns {kind, dest, iters, errors, errno,
// ns_per_op, progs: {name: {runs, ns, ns_per_run, runs_per_op, ns_per_op}}}.
nlohmann::json runLoop(LoopKind kind, const std::string& cgroup, const sockaddr_in& dest, uint64_t iters,
                       double seconds, const std::map<std::string, std::string>& statsDirs);

}  // namespace microseg::bench
