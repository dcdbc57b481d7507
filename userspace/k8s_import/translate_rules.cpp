#include "k8s_import/translate_rules.h"

#include <algorithm>

#include "k8s_import/labels.h"

namespace microseg::k8s {

namespace {

OutPort decode(int v) {
  OutPort p;
  p.port = static_cast<uint16_t>(v / 4);
  p.protocol = static_cast<Protocol>(v % 4);
  return p;
}

}  // namespace

RuleTranslator::RuleTranslator(const TranslationContext& ctx, const PolicyObject& p, TranslateResult& out)
    : ctx_(ctx), p_(p), out_(out) {
  for (const auto& r : p.ingress) {
    for (const auto& port : r.ports) {
      if (!port.named.empty()) named_.emplace_back(port.named, port.protocol);
    }
  }
  std::sort(named_.begin(), named_.end());
  named_.erase(std::unique(named_.begin(), named_.end()), named_.end());
}

int RuleTranslator::encode(const Pod& pod, const NamedItem& item) {
  auto cp = pod.namedPort(item.first, item.second);
  // An SCTP port is no port microseg polices.
  if (!cp || cp->protocol == Protocol::SCTP) return -1;
  return cp->port * 4 + static_cast<int>(cp->protocol);
}

std::vector<int> RuleTranslator::resolution(const Pod& pod) const {
  std::vector<int> out;
  for (const auto& item : named_) out.push_back(encode(pod, item));
  return out;
}

std::optional<OutSelector> RuleTranslator::selector(const Peer& peer) {
  OutSelector s;
  if (peer.pods) {
    s.matchLabels = peer.pods->matchLabels;
    s.matchExpressions = peer.pods->matchExpressions;
  }
  if (!peer.namespaces) {
    s.matchLabels[kNamespaceNameKey] = peer.ns;
    return s;
  }
  bool ok = true;
  auto encoded = [&](const std::string& key) {
    auto k = namespaceKey(key);
    if (!k) {
      out_.errors.push_back({peer.loc, p_.ref.text() + ": " + peer.path + ": the namespace label key '" + key +
                                           "' is too long to select as '" + std::string(kNamespaceSuffix) +
                                           "' label"});
      ok = false;
    }
    return k.value_or("");
  };
  for (const auto& [k, v] : peer.namespaces->matchLabels) s.matchLabels[encoded(k)] = v;
  for (auto e : peer.namespaces->matchExpressions) {
    e.key = encoded(e.key);
    s.matchExpressions.push_back(std::move(e));
  }
  if (!ok) return std::nullopt;
  // Pods only, in any namespace the rest allows.
  if (!s.matchLabels.count(kNamespaceNameKey)) {
    s.matchExpressions.push_back({kNamespaceNameKey, policy::SelectorOp::Exists, {}});
  }
  return s;
}

bool RuleTranslator::inPeer(const Peer& peer, const Pod& pod) const {
  if (peer.kind == Peer::Kind::Pods) return selectsPod(peer, pod, ctx_.nsLabels.at(pod.ref.ns));
  if (!pod.ipsNameIt()) return false;
  for (const auto& b : peer.blocks) {
    for (const auto& ip : pod.ips) {
      if (b.contains(ip)) return true;
    }
  }
  return false;
}

bool RuleTranslator::addPeer(const Peer& peer, std::vector<OutPeer>& out, std::set<std::string>& identities) {
  if (peer.kind == Peer::Kind::Pods) {
    auto s = selector(peer);
    if (!s) return false;
    OutPeer o;
    o.selector = std::move(*s);
    out.push_back(std::move(o));
    return true;
  }
  for (const auto& b : peer.blocks) {
    // Holes inside other holes change nothing; a hole that is the whole
    // block leaves no address.
    std::vector<policy::Cidr> holes;
    bool whole = false;
    for (const auto& e : b.except) {
      whole = whole || e == b.cidr;
      const bool inner = std::any_of(b.except.begin(), b.except.end(),
                                     [&](const policy::Cidr& o) { return !(o == e) && o.contains(e); });
      if (!inner && std::find(holes.begin(), holes.end(), e) == holes.end()) holes.push_back(e);
    }
    if (whole) continue;
    std::sort(holes.begin(), holes.end());
    OutPeer o;
    o.kind = OutPeer::Kind::Cidr;
    o.cidr = b.cidr;
    o.except = std::move(holes);
    out.push_back(std::move(o));
  }
  for (const Pod* pod : ctx_.pods) {
    if (inPeer(peer, *pod)) identities.insert(ctx_.workloadName.at(pod));
  }
  return true;
}

void RuleTranslator::warn(const Rule& r, const std::string& message) {
  const std::string text = p_.ref.text() + ": " + r.path + ": " + message;
  if (warned_.insert(text).second) out_.warnings.push_back({r.loc, text});
}

std::vector<OutRule> RuleTranslator::rules(const std::vector<Rule>& rules, bool egress,
                                           const std::vector<int>& subject, const std::string& who) {
  std::vector<OutRule> out;
  for (const auto& r : rules) {
    OutRule base;
    base.action = r.action;
    base.explicitAction = p_.tier != Tier::Application;
    if (r.peers) {
      std::vector<OutPeer> peers;
      std::set<std::string> identities;
      bool ok = true;
      for (const auto& peer : *r.peers) ok = addPeer(peer, peers, identities) && ok;
      if (!ok) continue;
      for (const auto& id : identities) {
        OutPeer o;
        o.kind = OutPeer::Kind::Identity;
        o.identity = id;
        peers.push_back(std::move(o));
      }
      if (peers.empty()) {
        warn(r, "matches no peer (its address blocks are all excepted, and no pod's IP is in them): left out");
        continue;
      }
      base.peers = std::move(peers);
    }
    if (r.ports.empty()) {
      out.push_back(std::move(base));
      continue;
    }
    auto addPort = [](std::vector<OutPort>& ports, const OutPort& p) {
      if (std::find(ports.begin(), ports.end(), p) == ports.end()) ports.push_back(p);
    };
    std::vector<OutPort> ports;
    // Egress named ports: number -> the peer pods that give it.
    std::map<int, std::set<std::string>> byNumber;
    std::vector<const Pod*> targets;
    if (egress) {
      for (const Pod* pod : ctx_.pods) {
        if (!r.peers || std::any_of(r.peers->begin(), r.peers->end(),
                                    [&](const Peer& peer) { return inPeer(peer, *pod); })) {
          targets.push_back(pod);
        }
      }
    }
    std::vector<std::string> unresolved;
    for (const auto& port : r.ports) {
      if (port.named.empty()) {
        OutPort o;
        o.port = port.port;
        o.endPort = port.endPort;
        o.protocol = *port.protocol;
        addPort(ports, o);
        continue;
      }
      const NamedItem item{port.named, port.protocol};
      if (!egress) {
        const auto at = std::find(named_.begin(), named_.end(), item) - named_.begin();
        if (subject[at] >= 0) {
          addPort(ports, decode(subject[at]));
        } else {
          unresolved.push_back(port.named);
        }
        continue;
      }
      bool any = false;
      for (const Pod* pod : targets) {
        if (int v = encode(*pod, item); v >= 0) {
          byNumber[v].insert(ctx_.workloadName.at(pod));
          any = true;
        }
      }
      if (!any) unresolved.push_back(port.named);
    }
    for (const auto& name : unresolved) {
      warn(r, "named port '" + name + "' is not a port of " + (egress ? "any peer pod" : who) + ": it matches nothing there");
    }
    const bool numbered = !ports.empty();
    if (numbered) {
      OutRule o = base;
      o.ports = std::move(ports);
      out.push_back(std::move(o));
    }
    for (const auto& [v, names] : byNumber) {
      OutRule o = base;
      o.peers.emplace();
      for (const auto& n : names) {
        OutPeer peer;
        peer.kind = OutPeer::Kind::Identity;
        peer.identity = n;
        o.peers->push_back(std::move(peer));
      }
      o.ports = {decode(v)};
      out.push_back(std::move(o));
    }
    if (!numbered && byNumber.empty()) {
      warn(r, std::string("none of its ports is a port of ") + (egress ? "any peer pod" : who) + ": the rule is left out");
    }
  }
  return out;
}

}  // namespace microseg::k8s
