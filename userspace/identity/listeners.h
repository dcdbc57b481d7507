// The sockets of this network namespace that wait for others: TCP listeners
// and bound, unconnected UDP sockets, each with the cgroup that created it
// (sock_diag, INET_DIAG_CGROUP_ID, Linux >= 5.9). In cluster mode the
// listeners of host-netns workloads are published, so that other nodes know
// whose port an address:port of this node is.
#pragma once

#include <cstdint>
#include <vector>

#include "bpf/abi.h"
#include "common/result.h"

namespace microseg::identity {

struct ListeningSocket {
  ms_addr addr{};      // the bound address (all-zero: any of this netns; v4 mapped)
  uint16_t port = 0;
  uint8_t proto = 0;   // MS_PROTO_TCP | MS_PROTO_UDP
  bool v6only = false; // an IPv6 wildcard that does not take IPv4 (unknown: false)
  uint64_t cgroupId = 0;
  friend bool operator==(const ListeningSocket&, const ListeningSocket&);
};

// Every TCP socket in LISTEN and every bound unconnected UDP socket of the
// calling thread's netns, sorted and without duplicates (SO_REUSEPORT
// groups and dual-stack twins collapse when they are the same cgroup).
Result<std::vector<ListeningSocket>> listeningSockets();

// Whether `a` is the unspecified address of its family (0.0.0.0 or ::).
bool isWildcard(const ms_addr& a);

}  // namespace microseg::identity
