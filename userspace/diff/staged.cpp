#include "diff/staged.h"

#include "common/names.h"
#include "compiler/explain.h"
#include "diff/diff.h"

namespace microseg::diff {

std::shared_ptr<const StagedSet> buildStaged(const policy::Bundle& bundle, const identity::IdentityTable& inForce,
                                             const identity::FleetIdentities* fleet,
                                             compiler::DefaultEnforcement defaultEnforcement) {
  if (bundle.stagedPolicies() == 0) return nullptr;
  auto out = std::make_shared<StagedSet>();
  bool cidrPeers = false;
  for (size_t i = 0; i < bundle.policies.size(); i++) {
    if (!bundle.policies[i].staged) continue;
    out->policies.push_back(bundle.policies.shared(i));
    cidrPeers |= bundle.policies[i].hasCidrPeers;
  }
  // Only cidr peers of policies add identities (identities.h): without
  // staged ones the table in force is the table of "in force + staged".
  if (cidrPeers) out->ids = std::make_unique<identity::IdentityTable>(identity::assignIdentities(bundle, inForce, fleet));
  compiler::Options o;
  o.defaultEnforcement = defaultEnforcement;
  o.includeStaged = true;
  out->compiled = compiler::compile(bundle, out->ids ? *out->ids : inForce, out->rules, o);
  for (const auto& setting : out->compiled.identities) out->bySubject[setting.first].identities.push_back(setting);
  for (const auto& e : out->compiled.entries) {
    // An entry of a subject without settings is never consulted (evaluate).
    if (auto it = out->bySubject.find(e.key.subject); it != out->bySubject.end()) it->second.entries.push_back(e);
  }
  return out;
}

StagedVerdict judgeStaged(const StagedSet& staged, const identity::IdentityTable& inForce, const JudgedFlow& f) {
  StagedVerdict v;
  if (f.reason != MS_REASON_RULE && f.reason != MS_REASON_DEFAULT_DENY && f.reason != MS_REASON_NOT_ISOLATED) {
    // Not a policy decision: the same whatever is staged. An audit (monitor
    // mode) was a deny the policy made; the rest keep their verdict.
    v.verdict = f.verdict == MS_VERDICT_ALLOW ? MS_VERDICT_ALLOW : MS_VERDICT_DENY;
    v.reason = f.reason;
    return v;
  }
  uint32_t src = f.src, dst = f.dst;
  if (staged.ids) {
    src = mapIdentity(f.src, f.srcAddr, inForce, *staged.ids);
    dst = mapIdentity(f.dst, f.dstAddr, inForce, *staged.ids);
  }
  const bool egress = f.direction != MS_DIR_INGRESS;
  const uint32_t subject = egress ? src : dst;
  static const compiler::CompiledPolicy kNone;  // no settings: not isolated, as evaluate() says
  const auto share = staged.bySubject.find(subject);
  const compiler::Decision d =
      compiler::evaluate(share != staged.bySubject.end() ? share->second : kNone, subject, egress ? dst : src,
                         egress ? policy::Direction::Egress : policy::Direction::Ingress, f.protocol, f.port);
  v.verdict = d.verdict;
  v.ruleId = d.ruleId;
  v.reason = d.reason;
  return v;
}

std::string stagedRuleName(const StagedSet& staged, const StagedVerdict& v) {
  if (v.reason == MS_REASON_RULE && v.ruleId != MS_RULE_NONE) return staged.rules.nameOf(v.ruleId);
  return reasonName(v.reason);
}

}  // namespace microseg::diff
