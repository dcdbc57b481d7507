// Who a policy governs and whom a rule names: selectors and peers expanded
// into numeric identities (compiler.cpp compiles with them, explain.cpp
// checks rules with them).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "identity/identities.h"
#include "policy/model.h"

namespace microseg::compiler {

// A policy's namespace is part of its selector: only workloads carrying the
// namespace label are its subjects.
inline bool inNamespace(const policy::Policy& p, const policy::Labels& labels) {
  if (p.namespaceName.empty()) return true;
  auto it = labels.find(policy::kNamespaceLabel);
  return it != labels.end() && it->second == p.namespaceName;
}

// Is workload identity `identity` a subject of `p`?
bool subjectMatches(const policy::Policy& p, uint32_t identity, const identity::IdentityTable& ids);
// Subject identities of `p`, sorted.
std::vector<uint32_t> subjectsOf(const policy::Policy& p, const identity::IdentityTable& ids);

// What peers expand against: the identities, plus the Externals' labels
// (label selectors match Externals too, and reach their range identities).
class PeerExpander {
 public:
  // `many`: many peers will be expanded (a full compile), worth hashing
  // the workload names first (10k names: ~1.5 ms, more than a few lookups
  // in the sorted map cost).
  PeerExpander(const policy::Bundle& bundle, const identity::IdentityTable& ids, bool many = true);

  // Appends the identities `p` names (unsorted, maybe repeated).
  void expandInto(const policy::Peer& p, std::vector<uint32_t>& out) const;
  // Does peer `p` name identity `id`? `world` also names every range.
  bool covers(const policy::Peer& p, uint32_t id) const;

 private:
  std::optional<uint32_t> workload(const std::string& name) const;
  const identity::IdentityTable& ids_;
  std::vector<std::pair<std::string, policy::Labels>> externalLabels_;  // External name -> effective labels
  std::unordered_map<std::string_view, uint32_t> workloads_;            // ids_.byWorkload, hashed (if many)
  bool hashed_ = true;
};

}  // namespace microseg::compiler
