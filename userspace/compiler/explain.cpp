#include "compiler/explain.h"

#include <arpa/inet.h>

#include <algorithm>
#include <map>
#include <string_view>
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

DocumentEvaluator::DocumentEvaluator(const policy::Bundle& bundle, const identity::IdentityTable& ids,
                                     DefaultEnforcement defaultEnforcement)
    : ids_(ids), defaultEnforcement_(defaultEnforcement), expander_(std::make_unique<PeerExpander>(bundle, ids)) {
  for (const auto& p : bundle.policies) {
    if (!p.staged) chain_.push_back(&p);  // never enforced: not in the chain
  }
  auto key = [](const policy::Policy* p) {
    return std::make_tuple(p->tier, p->tier == policy::Tier::Admin ? p->priority : 0, std::string_view(p->name));
  };
  std::sort(chain_.begin(), chain_.end(), [&](const auto* a, const auto* b) { return key(a) < key(b); });
}

DocumentEvaluator::~DocumentEvaluator() = default;

std::string DocumentEvaluator::mismatch(const policy::Rule& r, uint32_t peer, uint8_t protocol, uint16_t port) const {
  const char* protoName = protocol == MS_PROTO_TCP ? "TCP" : protocol == MS_PROTO_UDP ? "UDP" : "other";
  bool peerOk = !r.peers.has_value();
  if (!peerOk) {
    for (const auto& pe : *r.peers) peerOk |= expander_->covers(pe, peer);
  }
  bool protoOk = r.ports.empty(), portOk = r.ports.empty();
  for (const auto& pr : r.ports) {
    const bool pMatch = pr.protocol == policy::Protocol::Any || static_cast<uint8_t>(pr.protocol) == protocol;
    protoOk |= pMatch;
    if (pMatch && (pr.anyPort() || (port >= pr.first && port <= pr.last))) portOk = true;
  }
  if (!peerOk) return "wrong peer: " + ids_.nameOf(peer) + " is not among the rule's peers";
  if (!protoOk) return std::string("wrong protocol: ") + protoName + " is not among the rule's ports";
  if (!portOk) return "wrong port: " + std::to_string(port) + "/" + protoName + " is not among the rule's ports";
  return "";
}

DocumentVerdict DocumentEvaluator::operator()(uint32_t subject, uint32_t peer, Direction dir, uint8_t protocol,
                                              uint16_t port) const {
  DocumentVerdict v;
  auto decided = [&](const policy::Policy* p, uint32_t i, uint8_t verdict) {
    v.isDefault = false;
    v.verdict = verdict;
    v.tier = p->tier;
    v.policy = p;
    v.index = i;
    return v;
  };
  auto rulesOf = [&](const policy::Policy* p) -> const std::vector<policy::Rule>& {
    return dir == Direction::Egress ? p->egress : p->ingress;
  };
  // 1. admin: the first matching rule decides; pass skips the rest of the tier.
  bool passed = false;
  for (const auto* p : chain_) {
    if (passed || p->tier != policy::Tier::Admin) break;
    if (!subjectMatches(*p, subject, ids_)) continue;
    const auto& rules = rulesOf(p);
    for (uint32_t i = 0; i < rules.size(); i++) {
      if (!mismatch(rules[i], peer, protocol, port).empty()) continue;
      if (rules[i].action == Action::Pass) {
        v.passedBy = p;
        v.passIndex = i;
        passed = true;
        break;
      }
      return decided(p, i, rules[i].action == Action::Deny ? MS_VERDICT_DENY : MS_VERDICT_ALLOW);
    }
  }
  // 2. application, where a policy of it selects the subject for the direction.
  const policy::Policy* firstAllow = nullptr;
  uint32_t allowIndex = 0;
  for (const auto* p : chain_) {
    if (p->tier != policy::Tier::Application || !subjectMatches(*p, subject, ids_)) continue;
    if (!(dir == Direction::Egress ? p->hasEgress : p->hasIngress)) continue;
    v.applicationSelects = true;
    const auto& rules = rulesOf(p);
    for (uint32_t i = 0; i < rules.size(); i++) {
      if (!mismatch(rules[i], peer, protocol, port).empty()) continue;
      if (rules[i].action == Action::Deny) return decided(p, i, MS_VERDICT_DENY);  // deny wins
      if (firstAllow == nullptr) {
        firstAllow = p;
        allowIndex = i;
      }
    }
  }
  if (firstAllow != nullptr) return decided(firstAllow, allowIndex, MS_VERDICT_ALLOW);
  if (v.applicationSelects) {
    v.verdict = MS_VERDICT_DENY;  // selected, nothing allows it
    return v;
  }
  // 3. baseline, only where no application policy selects the subject.
  for (const auto* p : chain_) {
    if (p->tier != policy::Tier::Baseline || !subjectMatches(*p, subject, ids_)) continue;
    const auto& rules = rulesOf(p);
    for (uint32_t i = 0; i < rules.size(); i++) {
      if (!mismatch(rules[i], peer, protocol, port).empty()) continue;
      return decided(p, i, rules[i].action == Action::Deny ? MS_VERDICT_DENY : MS_VERDICT_ALLOW);
    }
  }
  // 4. the default.
  v.verdict = defaultEnforcement_ == DefaultEnforcement::Always ? MS_VERDICT_DENY : MS_VERDICT_ALLOW;
  return v;
}

Explanation explain(const policy::Bundle& bundle, const identity::IdentityTable& ids,
                    const CompiledPolicy& compiled, uint32_t subject, uint32_t peer,
                    policy::Direction dir, uint8_t protocol, uint16_t port) {
  Explanation out;
  out.decision = evaluate(compiled, subject, peer, dir, protocol, port);
  std::map<std::tuple<std::string, Direction, uint32_t>, uint32_t> ruleIds;
  for (const auto& [id, info] : compiled.rules) ruleIds[{info.policy(), info.direction, info.index}] = id;
  // The tier chain from the documents (the verdict is the compiled one: the
  // default's is not known here, the flags in `compiled` are).
  const DocumentEvaluator docs(bundle, ids, DefaultEnforcement::Always);
  const DocumentVerdict chain = docs(subject, peer, dir, protocol, port);
  out.tier = chain.isDefault ? "default" : policy::tierName(chain.tier);
  if (chain.passedBy != nullptr) out.passedBy = chain.passedBy->name + "/" + std::to_string(chain.passIndex);
  bool tiered = false;
  for (const auto* p : docs.chain()) {
    if (!subjectMatches(*p, subject, ids)) continue;
    tiered |= p->tier != policy::Tier::Application;
    out.selectingPolicies.push_back(p->name);
    if (p->tier == policy::Tier::Application && (dir == Direction::Egress ? p->hasEgress : p->hasIngress)) {
      out.applicationPolicies.push_back(p->name);
    }
  }
  // Where no admin or baseline policy selects the subject, the reasons read
  // as they did before tiers.
  for (const auto* p : docs.chain()) {
    if (!subjectMatches(*p, subject, ids)) continue;
    const auto& rules = dir == Direction::Egress ? p->egress : p->ingress;
    for (uint32_t i = 0; i < rules.size(); i++) {
      const policy::Rule& r = rules[i];
      Explanation::RuleCheck c;
      c.rule = p->name + "/" + std::to_string(i);
      c.tier = policy::tierName(p->tier);
      c.text = p->tier == policy::Tier::Application ? ruleText(r, dir)
               : p->tier == policy::Tier::Admin
                   ? "[admin " + std::to_string(p->priority) + "] " + ruleText(r, dir)
                   : "[baseline] " + ruleText(r, dir);
      if (auto id = ruleIds.find({p->name, dir, i}); id != ruleIds.end()) c.ruleId = id->second;
      c.why = docs.mismatch(r, peer, protocol, port);
      c.matches = c.why.empty();
      const bool decides = !chain.isDefault && chain.policy == p && chain.index == i;
      if (!c.matches) {
        // the reason says why not
      } else if (!tiered) {
        if (c.ruleId != out.decision.ruleId) {
          c.why = (r.action == Action::Allow && out.decision.verdict == MS_VERDICT_DENY)
                      ? "matches, but a deny rule wins"
                      : "matches, but an earlier rule names the verdict";
        }
      } else if (decides) {
        // the deciding rule needs no reason
      } else if (chain.passedBy == p && chain.passIndex == i) {
        c.why = "matches: pass, on to the application tier";
      } else if (p->tier == policy::Tier::Admin && chain.passedBy != nullptr) {
        c.why = "matches, but skipped: an earlier admin rule passed";
      } else if (p->tier == policy::Tier::Baseline && chain.applicationSelects) {
        c.why = "matches, but not consulted: application policies select the workload";
      } else if (!chain.isDefault && chain.tier < p->tier) {
        c.why = std::string("matches, but not consulted: the ") + policy::tierName(chain.tier) + " tier decided";
      } else if (r.action == Action::Allow && out.decision.verdict == MS_VERDICT_DENY &&
                 p->tier == policy::Tier::Application) {
        c.why = "matches, but a deny rule wins";
      } else {
        c.why = "matches, but an earlier rule of its tier decides";
      }
      out.rules.push_back(std::move(c));
    }
  }
  return out;
}

}  // namespace microseg::compiler
