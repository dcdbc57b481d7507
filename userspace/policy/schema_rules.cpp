// Rule lists, rules, peers and ports of a Policy (schema.h).
#include "policy/schema.h"
#include "policy/progress.h"
#include "policy/value_checks.h"
#include "fqdn/dns_names.h"

#include <algorithm>

namespace microseg::policy {

std::optional<Peer> DocParser::peer(const yaml::Node& node, const std::string& path, Direction dir) {
  auto reserved = [&](const yaml::Node& n, const std::string& name) -> std::optional<Peer> {
    Peer p;
    p.kind = Peer::Kind::Reserved;
    p.loc = loc(n);
    if (name == "host") {
      p.reserved = ReservedPeer::Host;
    } else if (name == "world") {
      p.reserved = ReservedPeer::World;
    } else if (name == "unmanaged") {
      p.reserved = ReservedPeer::Unmanaged;
    } else {
      error(n, path + ": '" + shown(name) + "' is not a reserved peer (host, world, unmanaged)");
      return std::nullopt;
    }
    return p;
  };
  if (node.IsScalar()) return reserved(node, std::string(node.Scalar()));
  if (!checkMap(node, path, {"matchLabels", "matchExpressions", "identity", "reserved", "cidr", "except", "fqdn"})) {
    return std::nullopt;
  }
  int forms = (node["identity"] ? 1 : 0) + (node["reserved"] ? 1 : 0) +
              ((node["matchLabels"] || node["matchExpressions"]) ? 1 : 0) +
              ((node["cidr"] || node["except"]) ? 1 : 0) + (node["fqdn"] ? 1 : 0);
  if (forms > 1) {
    error(node, path + ": a peer is exactly one of: a selector (matchLabels/matchExpressions), "
                       "identity, reserved, cidr, fqdn");
    return std::nullopt;
  }
  if (node["cidr"] || node["except"]) return cidrPeer(node, path);
  if (auto f = node["fqdn"]) return fqdnPeer(f, path + ".fqdn", dir);
  if (auto r = node["reserved"]) {
    auto name = scalar(r, path + ".reserved");
    if (!name) return std::nullopt;
    return reserved(r, *name);
  }
  return selectorOrIdentity(node, path);
}

// `{fqdn: NAME}`: a name or `*.suffix` (fqdn/dns_names.h), egress only (the
// kernel binds names from the DNS answers a workload receives: it knows
// where a workload connects by name, not who calls it).
std::optional<Peer> DocParser::fqdnPeer(const yaml::Node& node, const std::string& path, Direction dir) {
  if (dir == Direction::Ingress) {
    error(node, path + ": an fqdn peer is only valid in 'to' (egress): a name says where a workload connects, "
                       "not who calls it");
    return std::nullopt;
  }
  auto text = scalar(node, path);
  if (!text) return std::nullopt;
  std::string why;
  auto pattern = fqdn::parsePattern(*text, why);
  if (!pattern) {
    error(node, path + ": '" + shown(*text) + "' is " + why);
    return std::nullopt;
  }
  Peer p;
  p.kind = Peer::Kind::Fqdn;
  p.loc = loc(node);
  p.identity = pattern->text();
  return p;
}

std::optional<Peer> DocParser::cidrPeer(const yaml::Node& node, const std::string& path) {
  const size_t before = errors_.size();
  if (!node["cidr"]) {
    error(node["except"], path + ": 'except' needs 'cidr' (the range to take the exceptions out of)");
    return std::nullopt;
  }
  Peer p;
  p.kind = Peer::Kind::Cidr;
  p.loc = loc(node["cidr"]);
  auto c = cidrValue(node["cidr"], path + ".cidr");
  if (c) p.edit().cidr = *c;
  auto items = node["except"] ? cidrList(node["except"], path + ".except", false) : std::nullopt;
  if (items && c) {  // without a cidr there is nothing to check the holes against
    for (const auto& it : *items) {
      const std::string ip = path + ".except[" + std::to_string(it.index) + "]";
      if (it.cidr.contains(*c)) {
        error(it.node, ip + ": " + it.cidr.str() + " covers all of cidr " + c->str() + " (nothing would be left)");
      } else if (!c->contains(it.cidr)) {
        error(it.node, ip + ": " + it.cidr.str() + " is not inside cidr " + c->str() + familyHint(it.cidr, {*c}));
      } else {
        p.edit().except.push_back(it.cidr);
      }
    }
  }
  if (errors_.size() != before) return std::nullopt;
  return p;
}

std::optional<PortRange> DocParser::port(const yaml::Node& node, const std::string& path) {
  if (node.IsScalar()) {
    error(node, path + ": must be a mapping; write {port: " + shown(node.Scalar()) + "}");
    return std::nullopt;
  }
  if (!checkMap(node, path, {"port", "endPort", "protocol"})) return std::nullopt;
  PortRange pr;
  pr.loc = loc(node);
  bool ok = true;
  if (auto p = node["port"]) {
    auto v = integer(p, path + ".port");
    if (!v) {
      ok = false;
    } else if (*v < 1 || *v > 65535) {
      error(p, path + ".port: " + std::to_string(*v) + " is out of range (1-65535)");
      ok = false;
    } else {
      pr.first = pr.last = static_cast<uint16_t>(*v);
    }
  }
  if (auto e = node["endPort"]) {
    auto v = integer(e, path + ".endPort");
    if (!node["port"]) {
      error(e, path + ".endPort: needs 'port' (the start of the range)");
      ok = false;
    } else if (!v) {
      ok = false;
    } else if (*v < 1 || *v > 65535) {
      error(e, path + ".endPort: " + std::to_string(*v) + " is out of range (1-65535)");
      ok = false;
    } else if (ok && *v < pr.first) {
      error(e, path + ".endPort: " + std::to_string(*v) + " is below port " +
                   std::to_string(pr.first));
      ok = false;
    } else if (ok) {
      pr.last = static_cast<uint16_t>(*v);
    }
  }
  if (auto p = node["protocol"]) {
    auto v = scalar(p, path + ".protocol");
    if (!v) {
      ok = false;
    } else if (*v == "TCP") {
      pr.protocol = Protocol::TCP;
    } else if (*v == "UDP") {
      pr.protocol = Protocol::UDP;
    } else {
      std::string upper = *v;
      std::transform(upper.begin(), upper.end(), upper.begin(), ::toupper);
      error(p, path + ".protocol: '" + *v + "' is not TCP or UDP" +
                   ((upper == "TCP" || upper == "UDP") ? " (use " + upper + ")" : ""));
      ok = false;
    }
  }
  if (!node["port"] && !node["protocol"]) {
    error(node, path + ": empty port item: give 'port' and/or 'protocol'");
    ok = false;
  }
  if (!ok) return std::nullopt;
  return pr;
}

std::vector<Rule> DocParser::rules(const yaml::Node& node, const std::string& path, Direction dir) {
  std::vector<Rule> out;
  if (ruleSource_ && ruleSource_(node, path, dir, out)) return out;
  if (!node.IsSequence()) {
    error(node, path + ": must be a list of rules");
    return out;
  }
  out.reserve(node.size());  // exactly: 100k rules are 8 MB, and growth leaves up to half of it unused
  size_t i = 0;
  for (const yaml::Node item : yaml::items(node)) {
    progressTick();
    if (auto r = ruleItem(item, path + "[" + std::to_string(i++) + "]", dir)) out.push_back(std::move(*r));
  }
  return out;
}

std::optional<Rule> DocParser::ruleItem(const yaml::Node& item, const std::string& rp, Direction dir) {
  const char* peersKey = dir == Direction::Egress ? "to" : "from";
  const char* wrongKey = dir == Direction::Egress ? "from" : "to";
  if (item.IsMap() && item[wrongKey]) {
    error(item[wrongKey], rp + ": '" + wrongKey + "' is not valid in an " +
                              (dir == Direction::Egress ? "egress" : "ingress") + " rule; use '" + peersKey +
                              "'");
  }
  if (!checkMap(item, rp, {"action", peersKey, "ports", wrongKey})) return std::nullopt;
  Rule r;
  r.loc = loc(item);
  if (auto a = item["action"]) {
    auto v = scalar(a, rp + ".action");
    if (v && *v == "allow") {
      r.action = Action::Allow;
    } else if (v && *v == "deny") {
      r.action = Action::Deny;
    } else if (v && *v == "pass") {
      // Only the admin tier has a lower tier to pass to: policyDoc() checks
      // it once the tier is known (the rule lists may be read before it).
      r.action = Action::Pass;
    } else if (v) {
      error(a, rp + ".action: '" + *v + "' is not allow, deny or pass");
    }
  }
  if (auto peers = item[peersKey]) {
    const std::string pp = rp + "." + peersKey;
    if (!peers.IsSequence()) {
      error(peers, pp + ": must be a list of peers");
    } else if (peers.size() == 0) {
      error(peers, pp + ": empty list; omit '" + std::string(peersKey) + "' to mean any peer");
    } else {
      r.peers.emplace();
      r.peers->reserve(peers.size());
      size_t j = 0;
      for (const yaml::Node p : yaml::items(peers)) {
        if (auto parsed = peer(p, pp + "[" + std::to_string(j) + "]", dir)) r.peers->push_back(std::move(*parsed));
        j++;
      }
    }
  }
  if (auto ports = item["ports"]) {
    const std::string pp = rp + ".ports";
    if (!ports.IsSequence()) {
      error(ports, pp + ": must be a list");
    } else if (ports.size() == 0) {
      error(ports, pp + ": empty list; omit 'ports' to mean every port and protocol");
    } else {
      r.ports.reserve(ports.size());
      size_t j = 0;
      for (const yaml::Node p : yaml::items(ports)) {
        if (auto parsed = port(p, pp + "[" + std::to_string(j) + "]")) r.ports.push_back(*parsed);
        j++;
      }
    }
  }
  return r;
}


}  // namespace microseg::policy
