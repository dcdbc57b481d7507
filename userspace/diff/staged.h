// Staged policies (spec.staged: true) judged beside the set in force: the
// set "in force + staged" compiled in userspace only (the kernel never gets
// it), and the verdict it gives an observed flow, by the reference
// evaluator (compiler/explain.h `evaluate`: the kernel's lookup order), as
// `policy diff` judges a candidate. The daemon builds one per reload that
// has staged policies (daemon/reload.cpp) and judges each flow record with
// it (daemon/events.cpp).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>

#include "bpf/abi.h"
#include "compiler/compiler.h"
#include "compiler/rule_registry.h"
#include "identity/identities.h"
#include "policy/model.h"

namespace microseg::diff {

struct StagedSet {
  policy::SharedList<policy::Policy> policies;  // the staged ones, in file order
  // The identities of "in force + staged": those in force kept, plus range
  // identities of staged cidr peers. Null: the same as in force (no staged
  // policy has a cidr peer), so flows need no mapping.
  std::unique_ptr<identity::IdentityTable> ids;
  compiler::CompiledPolicy compiled;  // in force + staged (never written to the kernel)
  compiler::RuleRegistry rules;       // of `compiled`
  // `compiled` cut per subject (its identity setting and its entries, in
  // order): the reference evaluator reads every entry it is given, and a
  // flow is judged against its subject's share only, not the 100k+ of a
  // big set (a port scan makes a new record per port).
  std::unordered_map<uint32_t, compiler::CompiledPolicy> bySubject;
};

// The staged set of `bundle` (every policy, staged ones included) over the
// identities in force; null when `bundle` has no staged policy.
std::shared_ptr<const StagedSet> buildStaged(const policy::Bundle& bundle, const identity::IdentityTable& inForce,
                                             const identity::FleetIdentities* fleet,
                                             compiler::DefaultEnforcement defaultEnforcement);

// One flow as it was judged, in the identities in force.
struct JudgedFlow {
  uint8_t direction = MS_DIR_EGRESS;
  uint32_t src = 0, dst = 0;
  uint8_t protocol = 0;
  uint16_t port = 0;
  uint8_t verdict = MS_VERDICT_DENY;  // the kernel's
  uint32_t ruleId = MS_RULE_NONE;
  uint8_t reason = MS_REASON_RULE;
  ms_addr srcAddr{}, dstAddr{};
};

struct StagedVerdict {
  uint8_t verdict = MS_VERDICT_DENY;  // allow | deny: what "in force + staged" enforced would decide
  uint32_t ruleId = MS_RULE_NONE;     // of StagedSet::rules
  uint8_t reason = MS_REASON_DEFAULT_DENY;
};
// "<policy>/<index>", "default-deny", "not-isolated", "udp-answer", ...
std::string stagedRuleName(const StagedSet& staged, const StagedVerdict& v);

// The verdict "in force + staged" gives `flow` on the side that judged it.
// Flows the policy did not decide (a UDP answer, a pending cgroup, missing
// maps, a forged wire identity) keep their verdict: staging changes none
// of that.
StagedVerdict judgeStaged(const StagedSet& staged, const identity::IdentityTable& inForce, const JudgedFlow& flow);

}  // namespace microseg::diff
