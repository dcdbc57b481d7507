#include "k8s_import/objects.h"

namespace microseg::k8s {

bool Selector::matches(const Labels& labels) const {
  // The same semantics as microseg's selectors: one implementation.
  policy::LabelSelector s;
  s.matchLabels = matchLabels;
  s.matchExpressions = matchExpressions;
  return s.matches(labels);
}

const char* protocolName(Protocol p) {
  switch (p) {
    case Protocol::TCP: return "TCP";
    case Protocol::UDP: return "UDP";
    case Protocol::SCTP: return "SCTP";
  }
  return "?";
}

std::optional<ContainerPort> Pod::namedPort(const std::string& name, std::optional<Protocol> protocol) const {
  for (const auto& p : ports) {
    if (p.name == name && (!protocol || p.protocol == *protocol)) return p;
  }
  return std::nullopt;
}

bool IpBlock::contains(const ms_addr& a) const {
  if (!cidr.contains(a)) return false;
  for (const auto& e : except) {
    if (e.contains(a)) return false;
  }
  return true;
}

bool selectsPod(const Peer& peer, const Pod& pod, const Labels& nsLabels) {
  if (peer.kind != Peer::Kind::Pods) return false;
  if (peer.namespaces) {
    if (!peer.namespaces->matches(nsLabels)) return false;
  } else if (pod.ref.ns != peer.ns) {
    return false;
  }
  return !peer.pods || peer.pods->matches(pod.labels);
}

}  // namespace microseg::k8s
