// microseg-bench-cluster: the connect loop of bench.sh section 5. A TCP
// connect loop from a cgroup of the bench to one IPv4 address and port, with
// the kernel's per-program accounting (BPF_ENABLE_STATS run_time_ns /
// run_cnt) of the programs pinned under a microseg state dir, the same
// figures section 1 reads. The listener runs in a child of its own, in a
// cgroup and/or a network namespace the bench created (a loopback listener
// next to the caller, or one behind a veth in the bench's netns: the
// "remote node").
#pragma once

#include <netinet/in.h>

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

namespace microseg::bench {

struct ConnectTarget {
  sockaddr_in addr{};
  std::string listenerCgroup;  // "" = stay in the tool's cgroup
  std::string listenerNetns;   // "" = this netns, else a /run/netns/<name> path
};

// Runs `iters` connects (bounded by `seconds` too, if > 0) from a child in
// `cgroup` to `target` and returns {kind, iters, errors, errno, ns_per_op,
// progs: {name: {runs, ns, ns_per_run}}}. Dies with a message naming what
// failed (the cgroup, the listener, the netns).
nlohmann::json measureConnects(const std::string& cgroup, const ConnectTarget& target, uint64_t iters,
                               double seconds, const std::string& statsPinDir);

}  // namespace microseg::bench
