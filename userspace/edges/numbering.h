// The numbers the flow records and the kernel's edges are written in:
// identities (a workload label set's, an address range's member set's) and
// rule ids. Saved with the records (edge_history.h) and handed back to the
// first reload of a restarted daemon, so the same label set, range and rule
// get the same numbers again even when the policy set changed meanwhile:
// records saved before, and edges the kernel counted while the daemon was
// away, keep naming what they named. Pure logic.
#pragma once

#include <cstdint>
#include <map>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/result.h"
#include "compiler/rule_registry.h"
#include "identity/identities.h"

namespace microseg::edges {

struct Numbering {
  std::map<uint32_t, policy::Labels> workloads;            // identity -> label set
  std::map<uint32_t, identity::ExternalIdentity> ranges;   // identity -> members (no prefixes)
  std::map<uint32_t, std::string> names;                   // identity -> fqdn pattern
  std::vector<compiler::RuleRegistry::PolicyIds> rules;
  uint32_t nextRuleId = 1;
};

Numbering numberingOf(const identity::IdentityTable& ids, const compiler::RuleRegistry& rules);
// A table that only says which numbers were given to what: what
// identity::assignIdentities() takes as `previous`.
identity::IdentityTable previousTable(const Numbering& n);

nlohmann::json numberingToJson(const Numbering& n);
Result<Numbering> numberingFromJson(const nlohmann::json& j);

}  // namespace microseg::edges
