// Rules, peers and selectors as one line of text, for people: explain,
// `policy show`, flow records. Rendered when asked, never kept per rule
// (100k rules' texts are ~10 MiB).
#pragma once

#include <string>

#include "compiler/rule_registry.h"
#include "policy/model.h"

namespace microseg::compiler {

// "allow to [identity: server] ports [8080/TCP]".
std::string ruleText(const policy::Rule& rule, policy::Direction dir);
// The same for a compiled rule; "" if `policy` does not hold it.
std::string ruleText(const policy::Policy& policy, const RuleInfo& rule);
// "identity: api", "reserved: world", "matchLabels: app=x; tier In (a,b)", "cidr: ...".
std::string peerText(const policy::Peer& peer);

}  // namespace microseg::compiler
