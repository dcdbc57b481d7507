#include <algorithm>

#include "policy/model.h"

namespace microseg::policy {

// Kubernetes semantics: every matchLabels pair AND every expression.
bool LabelSelector::matches(const Labels& labels) const {
  for (const auto& [k, v] : matchLabels) {
    auto it = labels.find(k);
    if (it == labels.end() || it->second != v) return false;
  }
  for (const auto& req : matchExpressions) {
    auto it = labels.find(req.key);
    const bool present = it != labels.end();
    const bool inSet =
        present && std::find(req.values.begin(), req.values.end(), it->second) != req.values.end();
    switch (req.op) {
      case SelectorOp::In:
        if (!inSet) return false;
        break;
      case SelectorOp::NotIn:
        if (inSet) return false;
        break;
      case SelectorOp::Exists:
        if (!present) return false;
        break;
      case SelectorOp::DoesNotExist:
        if (present) return false;
        break;
    }
  }
  return true;
}

}  // namespace microseg::policy
