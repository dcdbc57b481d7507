// Tier resolution (policies/README.md, "Tiers"): the rules of one
// (subject, direction, protocol) from admin, application and baseline
// policies, resolved into the entries the kernel's lookup already reads
// (bpf/lib/decide.bpf.h: the peer's own entry, else world's for a range
// identity, else any peer's, else the subject's default). The datapath
// does not know tiers: a verdict is still one lookup chain per flow.
//
// Per peer class (any peer; world; each peer a rule names) the chain is
// evaluated on every port piece: the admin rules in (priority, name, rule)
// order, the first match deciding (pass: on to the application tier); the
// application tier where some application policy selects the subject for
// the direction (deny wins, allows add up, otherwise the default, which is
// then deny); else the baseline's first match; else the default. A class's
// entries are written where its outcome differs from what the kernel falls
// back to (world -> any -> default; a range identity -> world), so a peer
// without rules of its own costs nothing.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "compiler/intervals.h"
#include "policy/model.h"

namespace microseg::compiler {

// A pass rule's contribution (never written to the kernel).
inline constexpr uint8_t kVerdictPass = 0xfe;

struct TierItem {
  uint32_t peer;
  uint64_t order;  // chain order: (policy rank << 32) | rule position; ranks are by tier, priority, name
  uint32_t first, last;
  uint32_t ruleId;
  uint8_t verdict;  // MS_VERDICT_ALLOW | MS_VERDICT_DENY | kVerdictPass
  policy::Tier tier;
};

struct TierContext {
  bool applicationSelects = false;  // some application policy selects the subject for this direction
  uint8_t defaultVerdict = MS_VERDICT_DENY;  // the subject's default in this direction
};

// `items`: one (subject, direction, protocol)'s contributions, any order.
// Calls emit(peer, intervals) once per peer that needs entries (intervals
// disjoint, in port order, merged where verdict and rule are the same).
void resolveTiers(const std::vector<TierItem>& items, const TierContext& ctx,
                  const std::function<void(uint32_t peer, const Intervals&)>& emit);

}  // namespace microseg::compiler
