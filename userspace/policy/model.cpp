#include "policy/model.h"

namespace microseg::policy {

std::string Diagnostic::str() const {
  std::string s = loc.file.empty() ? "<input>" : loc.file;
  if (loc.line > 0) {
    s += ":" + std::to_string(loc.line);
    if (loc.column > 0) s += ":" + std::to_string(loc.column);
  }
  return s + ": error: " + message;
}

const Workload* Bundle::findWorkload(const std::string& name) const {
  for (const auto& w : workloads) {
    if (w.name == name) return &w;
  }
  return nullptr;
}

}  // namespace microseg::policy
