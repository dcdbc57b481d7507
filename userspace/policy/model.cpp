#include "policy/model.h"

#include <algorithm>
#include <mutex>
#include <unordered_set>

namespace microseg::policy {

const std::string FileName::empty_;

FileName::FileName(const std::string& name) {
  if (name.empty()) return;
  static std::mutex lock;
  static std::unordered_set<std::string>* names = new std::unordered_set<std::string>();  // never freed
  std::lock_guard<std::mutex> g(lock);
  name_ = &*names->insert(name).first;
}

std::string Diagnostic::str() const {
  std::string s = loc.file.empty() ? "<input>" : loc.file.str();
  if (loc.line > 0) {
    s += ":" + std::to_string(loc.line);
    if (loc.column > 0) s += ":" + std::to_string(loc.column);
  }
  return s + ": error: " + message;
}

const PeerDetail& Peer::detail() const {
  static const PeerDetail none;
  return detail_ ? *detail_ : none;
}

std::string Peer::cidrText() const {
  std::string s = cidr().str();
  if (except().empty()) return s;
  // Sorted, so the same range written with its holes in another order is the
  // same peer (and shares its identity).
  std::vector<Cidr> holes = except();
  std::sort(holes.begin(), holes.end());
  s += " except ";
  for (size_t i = 0; i < holes.size(); i++) s += (i ? "," : "") + holes[i].str();
  return s;
}

Labels Workload::effectiveLabels() const {
  Labels l = labels.empty() ? Labels{{kWorkloadLabel, name}} : labels;
  if (!namespaceName.empty()) l[kNamespaceLabel] = namespaceName;
  return l;
}

Labels External::effectiveLabels() const {
  Labels l = labels;
  if (!namespaceName.empty()) l[kNamespaceLabel] = namespaceName;
  return l;
}

bool External::contains(const ms_addr& a) const {
  auto in = [&](const Cidr& c) { return c.contains(a); };
  return std::any_of(cidrs.begin(), cidrs.end(), in) && std::none_of(except.begin(), except.end(), in);
}

const Workload* Bundle::findWorkload(const std::string& name) const {
  for (const auto& w : workloads) {
    if (w.name == name) return &w;
  }
  return nullptr;
}

const External* Bundle::findExternal(const std::string& name) const {
  for (const auto& e : externals) {
    if (e.name == name) return &e;
  }
  return nullptr;
}

const Policy* Bundle::findPolicy(const std::string& name) const {
  for (const auto& p : policies) {
    if (p.name == name) return &p;
  }
  return nullptr;
}

}  // namespace microseg::policy
