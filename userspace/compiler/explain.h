// The reference evaluator (a verdict computed from the compiled entries with
// the kernel's lookup order, bpf/lib/decide.bpf.h) and `microseg explain`
// (which rules of which policies matched a flow, and why the verdict is
// what it is).
#pragma once

#include <cstdint>
#include <memory>
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

// The verdict of one side read from the documents themselves, by the tier
// semantics of policies/README.md ("Tiers"), not from the compiled entries:
// the reference the compiler's resolution is tested against, and the tier
// chain `explain` shows. Peers and subjects match as the compiler matches
// them (peers.h).
struct DocumentVerdict {
  uint8_t verdict = MS_VERDICT_DENY;
  bool isDefault = true;        // no rule decided: the application tier's or --default-enforcement's
  policy::Tier tier = policy::Tier::Application;  // of the deciding rule (a rule decided)
  const policy::Policy* policy = nullptr;         // of the deciding rule
  uint32_t index = 0;                             // of the deciding rule in its direction's list
  const policy::Policy* passedBy = nullptr;       // an admin pass rule sent the flow on: its policy
  uint32_t passIndex = 0;
  bool applicationSelects = false;  // some application policy selects the subject for the direction
};

class DocumentEvaluator {
 public:
  DocumentEvaluator(const policy::Bundle& bundle, const identity::IdentityTable& ids,
                    DefaultEnforcement defaultEnforcement);
  ~DocumentEvaluator();
  DocumentVerdict operator()(uint32_t subject, uint32_t peer, policy::Direction dir, uint8_t protocol,
                             uint16_t port) const;
  // Does rule `r` of a policy match the flow (peer, protocol and port)?
  // Empty if so, else why not ("wrong peer: ...").
  std::string mismatch(const policy::Rule& r, uint32_t peer, uint8_t protocol, uint16_t port) const;
  // The policies in chain order: admin by (priority, name), application by
  // name, baseline by name.
  const std::vector<const policy::Policy*>& chain() const { return chain_; }

 private:
  const identity::IdentityTable& ids_;
  DefaultEnforcement defaultEnforcement_;
  std::vector<const policy::Policy*> chain_;
  std::unique_ptr<PeerExpander> expander_;
};

// Why the current policy gives a flow its verdict (for `microseg explain`).
struct Explanation {
  Decision decision;
  std::vector<std::string> selectingPolicies;  // policies whose selector matches the subject
  // The tier chain: which tier decided ("admin", "application", "baseline",
  // or "default": no rule did), the application policies that select the
  // subject in this direction (where there are none, the baseline tier
  // applies), and the admin pass rule that sent the flow on ("" if none).
  std::string tier;
  std::vector<std::string> applicationPolicies;
  std::string passedBy;
  struct RuleCheck {
    uint32_t ruleId = MS_RULE_NONE;
    std::string rule;  // "<policy>/<index>"
    std::string tier;  // its policy's
    std::string text;
    bool matches = false;  // peer, protocol and port all match
    std::string why;       // for a non-match: "wrong peer: ...", "wrong port: ..."
  };
  // Every rule of the selecting policies in the asked direction, in chain
  // order (admin, application, baseline; see DocumentEvaluator::chain()).
  std::vector<RuleCheck> rules;
};

Explanation explain(const policy::Bundle& bundle, const identity::IdentityTable& ids,
                    const CompiledPolicy& compiled, uint32_t subject, uint32_t peer,
                    policy::Direction dir, uint8_t protocol, uint16_t port);

}  // namespace microseg::compiler
