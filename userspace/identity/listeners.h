// Who listens where, from the kernel's socket diagnostics (NETLINK_SOCK_DIAG).
//
// cgroup/post_bind records listeners that bind while microseg is attached;
// sockets bound BEFORE (workloads started before the daemon, or while it was
// down) are found here, with their socket cookie and cgroup id, so local
// destinations get the right identity from the first connect.
#pragma once

#include <cstdint>
#include <vector>

#include "bpf/abi.h"
#include "common/result.h"

namespace microseg::identity {

struct Listener {
  ms_bind_key key{};      // netns, address (IPv4 mapped), port (network order), protocol
  uint64_t cookie = 0;    // socket cookie (same as bpf_get_socket_cookie)
  uint64_t cgroupId = 0;  // cgroup v2 id of the socket
};

// TCP sockets in LISTEN state and bound UDP sockets, IPv4 and IPv6, in the
// calling thread's network namespace, whose cookie is `netnsCookie` (it goes
// into every key).
Result<std::vector<Listener>> dumpListeners(uint64_t netnsCookie);

}  // namespace microseg::identity
