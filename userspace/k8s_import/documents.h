// The microseg documents an import produces (microseg.dev/v1, see
// policies/README.md), as plain data: what translate.h builds and
// emit_yaml.h prints. Kept apart from policy/model.h, which is the parsed
// form of the language (the round trip through the parser is tested), and
// which does not carry tiers yet.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "k8s_import/objects.h"

namespace microseg::k8s {

using Annotations = std::map<std::string, std::string>;

// matchLabels + matchExpressions (never both empty: every selector of an
// import requires at least the namespace name key, labels.h).
struct OutSelector {
  Labels matchLabels;
  std::vector<policy::LabelRequirement> matchExpressions;
};

struct OutPeer {
  enum class Kind : uint8_t { Selector, Identity, Cidr };
  Kind kind = Kind::Selector;
  OutSelector selector;
  std::string identity;            // a Workload's name
  policy::Cidr cidr;               // Kind::Cidr
  std::vector<policy::Cidr> except;
};

// port 0: every port of `protocol`.
struct OutPort {
  uint16_t port = 0;
  uint16_t endPort = 0;  // 0: just port
  Protocol protocol = Protocol::TCP;
  friend bool operator==(const OutPort&, const OutPort&) = default;
};

struct OutRule {
  Action action = Action::Allow;
  bool explicitAction = false;        // write `action:` even for allow (admin tiers)
  std::optional<std::vector<OutPeer>> peers;  // nullopt: any peer
  std::vector<OutPort> ports;                 // empty: every port
};

struct OutWorkload {
  std::string name, ns;
  std::vector<std::string> cgroups;
  Labels labels;
  Annotations annotations;
};

struct OutPolicy {
  std::string name, ns;  // ns "" for the cluster-scoped kinds
  Annotations annotations;
  Tier tier = Tier::Application;
  int priority = 0;  // Tier::Admin
  OutSelector selector;
  std::optional<std::vector<OutRule>> ingress, egress;  // nullopt: section absent
};

struct Documents {
  std::vector<OutWorkload> workloads;  // sorted by name
  std::vector<OutPolicy> policies;     // sorted by name
};

}  // namespace microseg::k8s
