#include "compiler/rule_text.h"

#include <algorithm>
#include <vector>

namespace microseg::compiler {
namespace {

using policy::Action;
using policy::Direction;

std::string selectorText(const policy::LabelSelector& s) {
  std::string out;
  if (!s.matchLabels.empty()) {
    out += "matchLabels: ";
    bool first = true;
    for (const auto& [k, v] : s.matchLabels) {
      out += (first ? "" : ",") + k + "=" + v;
      first = false;
    }
  }
  for (const auto& e : s.matchExpressions) {
    static const char* ops[] = {"In", "NotIn", "Exists", "DoesNotExist"};
    if (!out.empty()) out += "; ";
    out += e.key + " " + ops[static_cast<int>(e.op)];
    if (!e.values.empty()) {
      out += " (";
      for (size_t i = 0; i < e.values.size(); i++) out += (i ? "," : "") + e.values[i];
      out += ")";
    }
  }
  return out;
}

}  // namespace

std::string peerText(const policy::Peer& p) {
  switch (p.kind) {
    case policy::Peer::Kind::Identity: return "identity: " + p.identity;
    case policy::Peer::Kind::Reserved:
      return std::string("reserved: ") +
             (p.reserved == policy::ReservedPeer::Host    ? "host"
              : p.reserved == policy::ReservedPeer::World ? "world"
                                                          : "unmanaged");
    case policy::Peer::Kind::Selector: return selectorText(p.selector());
    case policy::Peer::Kind::Fqdn: return "fqdn: " + p.identity;
    case policy::Peer::Kind::Cidr: {
      std::string s = "cidr: " + p.cidr().str();
      if (p.except().empty()) return s;
      std::vector<policy::Cidr> holes = p.except();
      std::sort(holes.begin(), holes.end());
      s += " except [";
      for (size_t i = 0; i < holes.size(); i++) s += (i ? ", " : "") + holes[i].str();
      return s + "]";
    }
  }
  return "?";
}

std::string ruleText(const policy::Rule& r, Direction dir) {
  std::string s = r.action == Action::Allow ? "allow" : r.action == Action::Deny ? "deny" : "pass";
  s += dir == Direction::Egress ? " to " : " from ";
  if (!r.peers) {
    s += "any";
  } else {
    s += "[";
    for (size_t i = 0; i < r.peers->size(); i++) s += (i ? "; " : "") + peerText((*r.peers)[i]);
    s += "]";
  }
  s += " ports ";
  if (r.ports.empty()) return s + "any";
  s += "[";
  for (size_t i = 0; i < r.ports.size(); i++) {
    const auto& p = r.ports[i];
    if (i) s += ", ";
    if (p.anyPort()) {
      s += "*";
    } else {
      s += std::to_string(p.first);
      if (p.last != p.first) s += "-" + std::to_string(p.last);
    }
    s += p.protocol == policy::Protocol::TCP   ? "/TCP"
         : p.protocol == policy::Protocol::UDP ? "/UDP"
                                               : "/any";
  }
  return s + "]";
}

std::string ruleText(const policy::Policy& policy, const RuleInfo& rule) {
  const auto& list = rule.direction == Direction::Egress ? policy.egress : policy.ingress;
  if (policy.name != rule.policy() || rule.index >= list.size()) return "";
  // The tier is named where it is not the application tier (whose rules
  // read as they did before tiers).
  std::string tier;
  if (policy.tier == policy::Tier::Admin) tier = "[admin " + std::to_string(policy.priority) + "] ";
  if (policy.tier == policy::Tier::Baseline) tier = "[baseline] ";
  return tier + ruleText(list[rule.index], rule.direction);
}

}  // namespace microseg::compiler
