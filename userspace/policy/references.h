// Cross-document checks: names unique per kind (a Workload and an External
// may not share one either), every `identity:` a policy names resolves, a
// namespaced policy selects only Workloads of its namespace.
// validateBundle() checks a whole bundle; ReferenceCheck does the same
// again and again over the bundles of successive loads, checking only what
// changed (PolicyLoader's).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "policy/model.h"

namespace microseg::policy {

// Cross-document checks on an already parsed bundle; appends to `errors`.
void validateBundle(const Bundle& bundle, std::vector<Diagnostic>& errors);

// What is valid but probably not meant (for `microseg policy validate`):
// admin tier policies that share a priority (evaluated in name order, which
// a rename changes): each after the first of its priority, located at it.
std::vector<Diagnostic> tierWarnings(const Bundle& bundle);

// validateBundle(), checking again only the policies that are new since
// the last check (or whose references did not resolve), as long as the
// Workloads and Externals are the same objects; with unique policy names,
// what it keeps is updated for those policies only (a one-rule change in a
// set of 10,000 policies checks and re-indexes one).
class ReferenceCheck {
 public:
  ReferenceCheck();
  ~ReferenceCheck();
  ReferenceCheck(const ReferenceCheck&) = delete;
  ReferenceCheck& operator=(const ReferenceCheck&) = delete;

  // Appends to `errors`; `checked` gets the number of policies whose
  // references were checked.
  void check(const Bundle& bundle, std::vector<Diagnostic>& errors, size_t& checked);

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace microseg::policy
