#include "revoke/revocation_plan.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cstring>
#include <map>
#include <tuple>

#include "policy/cidr.h"

namespace microseg::revoke {
namespace {

// BPF_TCP_* (linux/bpf.h), the states a connection carries data in.
constexpr uint8_t kEstablished = 1, kSynSent = 2, kSynRecv = 3, kFinWait1 = 4, kFinWait2 = 5, kCloseWait = 8,
                  kListen = 10;

bool connectedState(const ms_sock_record& s) {
  if (s.protocol == IPPROTO_UDP) return s.state == kEstablished && s.remote_port != 0;
  switch (s.state) {
    case kEstablished:
    case kSynSent:
    case kSynRecv:
    case kFinWait1:
    case kFinWait2:
    case kCloseWait:
      return true;
    default:
      return false;
  }
}

using Ends = std::tuple<std::string, uint16_t, std::string, uint16_t, uint8_t>;  // local, lport, remote, rport, proto

std::string key(const ms_addr& a) { return std::string(reinterpret_cast<const char*>(a.a), 16); }

}  // namespace

Plan planRevocation(const std::vector<ms_sock_record>& records, const Resolver& r) {
  Plan plan;
  // Listeners by (protocol, port): an accepted socket has a listener on its
  // local port, bound to its local address or to the wildcard.
  std::multimap<std::pair<uint8_t, uint16_t>, const ms_sock_record*> listeners;
  // Connected sockets by their ends: the other end of a connection within
  // this netns is the socket with the ends swapped.
  std::map<Ends, const ms_sock_record*> byEnds;
  for (const auto& s : records) {
    const bool boundUdp = s.protocol == IPPROTO_UDP && s.remote_port == 0 && s.local_port != 0;
    if ((s.protocol == IPPROTO_TCP && s.state == kListen) || boundUdp) {
      listeners.emplace(std::pair{s.protocol, s.local_port}, &s);
    }
    if (connectedState(s)) {
      byEnds[{key(s.local), s.local_port, key(s.remote), s.remote_port, s.protocol}] = &s;
    }
  }
  // The TCP listener or bound UDP socket of this netns on (addr, port).
  auto listenerAt = [&](uint8_t protocol, const ms_addr& addr, uint16_t port) -> const ms_sock_record* {
    auto [lo, hi] = listeners.equal_range({protocol, port});
    for (auto it = lo; it != hi; ++it) {
      if (policy::isUnspecified(it->second->local) || std::memcmp(it->second->local.a, addr.a, 16) == 0) return it->second;
    }
    return nullptr;
  };
  auto accepted = [&](const ms_sock_record& s) {
    return s.protocol == IPPROTO_TCP && listenerAt(s.protocol, s.local, s.local_port) != nullptr;
  };
  for (const auto& s : records) {
    if (!connectedState(s)) continue;
    const auto subject = r.subjectOf(s.cgroup_id);
    if (!subject) continue;
    Judged j;
    j.socket = s;
    j.subject = *subject;
    j.direction = accepted(s) ? policy::Direction::Ingress : policy::Direction::Egress;
    j.port = ntohs(j.direction == policy::Direction::Ingress ? s.local_port : s.remote_port);
    auto other = byEnds.find({key(s.remote), s.remote_port, key(s.local), s.local_port, s.protocol});
    // A UDP socket's peer of this netns is the one bound to the port
    // (it answers from it without connecting).
    const ms_sock_record* local = other != byEnds.end() ? other->second : nullptr;
    if (!local && s.protocol == IPPROTO_UDP) {
      const ms_sock_record* bound = listenerAt(s.protocol, s.remote, s.remote_port);
      // A wildcard-bound socket answers a remote address only if it is
      // this netns's: loopback is; others are not known here.
      if (bound && (policy::isLoopback(s.remote) || !policy::isUnspecified(bound->local))) local = bound;
    }
    std::optional<uint32_t> peer;
    if (local) {
      j.peerIsLocalSocket = true;
      peer = r.subjectOf(local->cgroup_id);
      // A socket of this netns outside every workload.
      if (!peer) peer = r.localPeerOf ? r.localPeerOf(local->cgroup_id) : MS_IDENTITY_HOST;
    } else {
      peer = r.peerOf(s.remote, ntohs(s.remote_port), s.protocol, j.direction);
    }
    if (!peer) {
      plan.unknownPeer++;
      continue;
    }
    j.peer = *peer;
    plan.judged++;
    if (r.allows(j.subject, j.peer, j.direction, s.protocol, j.port, &j.why)) {
      plan.allowed++;
      continue;
    }
    plan.revoke.push_back(std::move(j));
  }
  return plan;
}

}  // namespace microseg::revoke
