#include "policy/model.h"

#include <algorithm>
#include <memory>
#include <mutex>
#include <unordered_map>

namespace microseg::policy {

namespace {

// Interned file names by id (0: none), in chunks that never move: a name is
// written before its id is handed out, and whoever reads a location got it
// through the same synchronization as the rest of the model, so reads take
// no lock while another thread interns a new name.
struct FileNames {
  static constexpr uint32_t kChunk = 1024, kChunks = 4096;
  std::mutex lock;
  std::unordered_map<std::string, uint32_t> ids;        // under lock
  std::unique_ptr<const std::string*[]> chunks[kChunks];  // made and filled under lock
  uint32_t next = 1;                                     // under lock

  static FileNames& get() {
    static FileNames* names = new FileNames();  // never freed: names outlive every model
    return *names;
  }
};

}  // namespace

FileName::FileName(const std::string& name) {
  if (name.empty()) return;
  FileNames& t = FileNames::get();
  std::lock_guard<std::mutex> g(t.lock);
  if (auto it = t.ids.find(name); it != t.ids.end()) {
    id_ = it->second;
    return;
  }
  const uint32_t id = t.next;
  const uint32_t c = id / FileNames::kChunk;
  if (c >= FileNames::kChunks) return;  // 4M names: not kept
  if (!t.chunks[c]) t.chunks[c] = std::make_unique<const std::string*[]>(FileNames::kChunk);
  auto it = t.ids.emplace(name, id).first;
  t.chunks[c][id % FileNames::kChunk] = &it->first;  // unordered_map nodes never move
  t.next++;
  id_ = id;
}

const std::string& FileName::str() const {
  static const std::string none;
  if (id_ == 0) return none;
  return *FileNames::get().chunks[id_ / FileNames::kChunk][id_ % FileNames::kChunk];
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

const char* tierName(Tier t) {
  switch (t) {
    case Tier::Admin: return "admin";
    case Tier::Application: return "application";
    case Tier::Baseline: return "baseline";
  }
  return "application";
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

size_t Bundle::stagedPolicies() const {
  size_t n = 0;
  for (const auto& p : policies) n += p.staged;
  return n;
}

Bundle withoutStaged(const Bundle& b) {
  if (b.stagedPolicies() == 0) return b;
  Bundle out;
  out.workloads = b.workloads;
  out.externals = b.externals;
  for (size_t i = 0; i < b.policies.size(); i++) {
    if (!b.policies[i].staged) out.policies.push_back(b.policies.shared(i));
  }
  return out;
}

}  // namespace microseg::policy
