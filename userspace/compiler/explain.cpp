#include "compiler/explain.h"

#include <arpa/inet.h>

#include <algorithm>
#include <map>
#include <tuple>

#include "compiler/peers.h"
#include "compiler/rule_text.h"

namespace microseg::compiler {

using policy::Action;
using policy::Direction;

Decision evaluate(const CompiledPolicy& compiled, uint32_t subject, uint32_t peer,
                  policy::Direction dir, uint8_t protocol, uint16_t port) {
  Decision d;
  const ms_identity_value* ident = compiled.identity(subject);
  if (ident == nullptr) {
    d.verdict = MS_VERDICT_ALLOW;
    d.reason = MS_REASON_NOT_ISOLATED;
    return d;
  }
  auto lookup = [&](uint32_t p) -> const PolicyEntry* {
    const PolicyEntry* best = nullptr;
    for (const auto& e : compiled.entries) {
      if (e.key.subject != subject || e.key.peer != p || e.key.direction != static_cast<uint8_t>(dir) ||
          e.key.protocol != protocol) {
        continue;
      }
      const uint32_t bits = e.key.prefixlen - MS_POLICY_PREFIX_FIXED;
      const uint32_t mask = bits == 0 ? 0 : (0xffffu << (16 - bits)) & 0xffffu;
      if ((port & mask) != (ntohs(e.key.port) & mask)) continue;
      if (best == nullptr || e.key.prefixlen > best->key.prefixlen) best = &e;
    }
    return best;
  };
  const PolicyEntry* hit = lookup(peer);
  if (hit == nullptr && peer >= MS_IDENTITY_FIRST_EXTERNAL) hit = lookup(MS_IDENTITY_WORLD);
  if (hit == nullptr) hit = lookup(MS_IDENTITY_ANY);
  if (hit != nullptr) {
    d.verdict = hit->value.verdict;
    d.ruleId = hit->value.rule_id;
    d.reason = MS_REASON_RULE;
    return d;
  }
  const uint32_t isolate =
      dir == policy::Direction::Egress ? MS_IDENT_F_ISOLATE_EGRESS : MS_IDENT_F_ISOLATE_INGRESS;
  if (ident->flags & isolate) {
    d.verdict = MS_VERDICT_DENY;
    d.reason = MS_REASON_DEFAULT_DENY;
  } else {
    d.verdict = MS_VERDICT_ALLOW;
    d.reason = MS_REASON_NOT_ISOLATED;
  }
  return d;
}

Explanation explain(const policy::Bundle& bundle, const identity::IdentityTable& ids,
                    const CompiledPolicy& compiled, uint32_t subject, uint32_t peer,
                    policy::Direction dir, uint8_t protocol, uint16_t port) {
  Explanation out;
  out.decision = evaluate(compiled, subject, peer, dir, protocol, port);
  std::vector<const policy::Policy*> policies;
  for (const auto& p : bundle.policies) policies.push_back(&p);
  std::sort(policies.begin(), policies.end(),
            [](const auto* a, const auto* b) { return a->name < b->name; });
  const char* protoName = protocol == MS_PROTO_TCP ? "TCP" : protocol == MS_PROTO_UDP ? "UDP" : "other";
  std::map<std::tuple<std::string, Direction, uint32_t>, uint32_t> ruleIds;
  for (const auto& [id, info] : compiled.rules) ruleIds[{info.policy(), info.direction, info.index}] = id;
  const PeerExpander expander(bundle, ids);
  for (const auto* p : policies) {
    if (!subjectMatches(*p, subject, ids)) continue;
    out.selectingPolicies.push_back(p->name);
    const auto& rules = dir == Direction::Egress ? p->egress : p->ingress;
    for (uint32_t i = 0; i < rules.size(); i++) {
      const policy::Rule& r = rules[i];
      Explanation::RuleCheck c;
      c.rule = p->name + "/" + std::to_string(i);
      c.text = ruleText(r, dir);
      if (auto id = ruleIds.find({p->name, dir, i}); id != ruleIds.end()) c.ruleId = id->second;
      bool peerOk = !r.peers.has_value();
      if (!peerOk) {
        for (const auto& pe : *r.peers) peerOk |= expander.covers(pe, peer);
      }
      bool protoOk = r.ports.empty(), portOk = r.ports.empty();
      for (const auto& pr : r.ports) {
        const bool pMatch = pr.protocol == policy::Protocol::Any ||
                            static_cast<uint8_t>(pr.protocol) == protocol;
        protoOk |= pMatch;
        if (pMatch && (pr.anyPort() || (port >= pr.first && port <= pr.last))) portOk = true;
      }
      c.matches = peerOk && protoOk && portOk;
      if (!peerOk) {
        c.why = "wrong peer: " + ids.nameOf(peer) + " is not among the rule's peers";
      } else if (!protoOk) {
        c.why = std::string("wrong protocol: ") + protoName + " is not among the rule's ports";
      } else if (!portOk) {
        c.why = "wrong port: " + std::to_string(port) + "/" + protoName + " is not among the rule's ports";
      } else if (c.ruleId != out.decision.ruleId) {
        c.why = (r.action == Action::Allow && out.decision.verdict == MS_VERDICT_DENY)
                    ? "matches, but a deny rule wins"
                    : "matches, but an earlier rule names the verdict";
      }
      out.rules.push_back(std::move(c));
    }
  }
  return out;
}

}  // namespace microseg::compiler
