// Which established connections of one network namespace the policy in
// force no longer allows: each connected socket judged for its own side
// (the connecting socket by its egress, the accepted one by its ingress),
// from the records the socket iterator lists (datapath/socket_iterator.h)
// and a judge the caller gives (the reference evaluator over the
// generation in force). Pure logic: what to do with the answer (destroy,
// or record `would-revoke` in monitor mode) is the daemon's.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "bpf/abi.h"
#include "policy/model.h"

namespace microseg::revoke {

// What the planner asks of the daemon.
struct Resolver {
  // The workload identity of a socket created in `cgroupId`; nothing for a
  // socket that is not a managed workload's (never judged, never revoked).
  std::function<std::optional<uint32_t>(uint64_t cgroupId)> subjectOf;
  // The identity of a socket of this netns that is no workload's (the
  // kernel's: unmanaged below the managed root, else host); unset: host.
  std::function<uint32_t(uint64_t cgroupId)> localPeerOf;
  // The identity of a peer that is not a socket of this netns, by its
  // address (and port: a listener of another node); nothing when it cannot
  // be known now (a peer named by its wire identity at accept time: the
  // address says only "node"), in which case the socket is left alone.
  std::function<std::optional<uint32_t>(const ms_addr& addr, uint16_t port, uint8_t protocol,
                                        policy::Direction dir)>
      peerOf;
  // The verdict the datapath would give the connection now (true: allowed),
  // and the rule or reason that decides it.
  std::function<bool(uint32_t subject, uint32_t peer, policy::Direction dir, uint8_t protocol, uint16_t port,
                     std::string* why)>
      allows;
};

struct Judged {
  ms_sock_record socket;
  policy::Direction direction = policy::Direction::Egress;  // the side this socket is
  uint32_t subject = 0;
  uint32_t peer = 0;
  uint16_t port = 0;  // the port the flow is judged on (the accepting side's)
  bool peerIsLocalSocket = false;
  std::string why;  // the deciding rule or reason
};

struct Plan {
  std::vector<Judged> revoke;  // no longer allowed
  size_t judged = 0;           // connected sockets of managed workloads judged
  size_t allowed = 0;
  size_t unknownPeer = 0;      // left alone: the peer's identity cannot be known now
};

// `records`: every socket of one netns (listeners too: they tell accepted
// sockets from connecting ones). TCP sockets in a connected state and
// connected UDP sockets are judged; listeners, closing and unconnected
// sockets are not.
Plan planRevocation(const std::vector<ms_sock_record>& records, const Resolver& r);

}  // namespace microseg::revoke
