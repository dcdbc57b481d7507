// The reference evaluator (a verdict computed from the compiled entries with
// the kernel's lookup order, bpf/lib/decide.bpf.h) and `microseg explain`
// (which rules of which policies matched a flow, and why the verdict is
// what it is).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "compiler/compiler.h"

namespace microseg::compiler {

// What the datapath decides for a new flow, computed from the compiled entries
// with exactly the kernel's lookup order. Used by tests and by `explain`.
struct Decision {
  uint8_t verdict = MS_VERDICT_DENY;  // MS_VERDICT_ALLOW | MS_VERDICT_DENY
  uint32_t ruleId = MS_RULE_NONE;
  uint8_t reason = MS_REASON_DEFAULT_DENY;  // enum ms_reason
};

Decision evaluate(const CompiledPolicy& compiled, uint32_t subject, uint32_t peer,
                  policy::Direction dir, uint8_t protocol, uint16_t port);

// Why the current policy gives a flow its verdict (for `microseg explain`).
struct Explanation {
  Decision decision;
  std::vector<std::string> selectingPolicies;  // policies whose selector matches the subject
  struct RuleCheck {
    uint32_t ruleId = MS_RULE_NONE;
    std::string rule;  // "<policy>/<index>"
    std::string text;
    bool matches = false;  // peer, protocol and port all match
    std::string why;       // for a non-match: "wrong peer: ...", "wrong port: ..."
  };
  // Every rule of the selecting policies in the asked direction, in order.
  std::vector<RuleCheck> rules;
};

Explanation explain(const policy::Bundle& bundle, const identity::IdentityTable& ids,
                    const CompiledPolicy& compiled, uint32_t subject, uint32_t peer,
                    policy::Direction dir, uint8_t protocol, uint16_t port);

}  // namespace microseg::compiler
