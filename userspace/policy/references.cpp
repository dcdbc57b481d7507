#include "policy/references.h"

#include <string>
#include <string_view>
#include <algorithm>
#include <map>
#include <unordered_map>

namespace microseg::policy {

namespace {

std::string locStr(const SourceLocation& l) {
  return l.file.str() + ":" + std::to_string(l.line) + ":" + std::to_string(l.column);
}

std::string nsText(const std::string& ns) { return ns.empty() ? "no namespace" : "namespace '" + ns + "'"; }

// The first Workload and External of each name (what findWorkload and
// findExternal return), indexed: references are checked for every rule.
struct Names {
  std::unordered_map<std::string_view, const Workload*> workloads;
  std::unordered_map<std::string_view, const External*> externals;
  template <typename T>
  static const T* find(const std::unordered_map<std::string_view, const T*>& m, std::string_view name) {
    auto it = m.find(name);
    return it == m.end() ? nullptr : it->second;
  }
  const Workload* workload(std::string_view name) const { return find(workloads, name); }
  const External* external(std::string_view name) const { return find(externals, name); }
};

void checkSubjectRef(const Names& b, const Policy& p, std::vector<Diagnostic>& errors) {
  const Peer& s = p.selector;
  if (s.kind != Peer::Kind::Identity) return;
  const Workload* w = b.workload(s.identity);
  if (w == nullptr) {
    errors.push_back({s.loc, "spec.selector: identity '" + s.identity + "' " +
                                 (b.external(s.identity) != nullptr
                                      ? "is an External; a policy's selector selects Workloads only"
                                      : "names no Workload")});
    return;
  }
  if (p.namespaceName.empty()) return;
  const Labels l = w->effectiveLabels();
  auto it = l.find(kNamespaceLabel);
  const std::string wns = it == l.end() ? "" : it->second;
  if (wns != p.namespaceName) {
    errors.push_back({s.loc, "spec.selector: workload '" + s.identity + "' is in " + nsText(wns) +
                                 ", not in the policy's namespace '" + p.namespaceName + "'"});
  }
}

void checkPeerRef(const Names& b, const Peer& p, std::vector<Diagnostic>& errors) {
  if (p.kind == Peer::Kind::Identity && b.workload(p.identity) == nullptr && b.external(p.identity) == nullptr) {
    errors.push_back({p.loc, "peer: identity '" + p.identity + "' names no Workload or External"});
  }
}

// The names index of `bundle`'s Workloads and Externals (their duplicates and
// clashes reported).
void indexNames(const Bundle& bundle, Names& names, std::vector<Diagnostic>& errors) {
  auto& workloads = names.workloads;
  for (const auto& w : bundle.workloads) {
    auto [it, fresh] = workloads.emplace(w.name, &w);
    if (!fresh) {
      errors.push_back({w.loc, "duplicate Workload name '" + w.name + "' (first defined at " +
                                   locStr(it->second->loc) + ")"});
    }
  }
  auto& externals = names.externals;
  for (const auto& e : bundle.externals) {
    auto [it, fresh] = externals.emplace(e.name, &e);
    if (!fresh) {
      errors.push_back({e.loc, "duplicate External name '" + e.name + "' (first defined at " +
                                   locStr(it->second->loc) + ")"});
    } else if (auto w = workloads.find(e.name); w != workloads.end()) {
      errors.push_back({e.loc, "External name '" + e.name + "' is also a Workload's (defined at " +
                                   locStr(w->second->loc) + "); 'identity: " + e.name +
                                   "' must name one thing"});
    }
  }
}

// A policy's references to Workloads and Externals; true if all resolve.
bool checkRefs(const Names& names, const Policy& p, std::vector<Diagnostic>& errors) {
  const size_t before = errors.size();
  checkSubjectRef(names, p, errors);
  forEachRulePeer(p, [&](const Peer& peer) { checkPeerRef(names, peer, errors); });
  return errors.size() == before;
}

// A policy as the last validation found it: held (a key of the index
// views its name), whether its references resolved, and the load that last
// found it in the bundle.
struct CheckedPolicy {
  std::shared_ptr<const Policy> policy;
  bool resolved = false;
  uint64_t seen = 0;
};
using PolicyIndex = std::unordered_map<std::string_view, CheckedPolicy>;

// Every policy's name (no duplicates) and references, in file order, into
// a new `index` (the first policy of each name). `known(p)` says p's
// references were checked against the same names before and all resolved
// (not checked again). True if the names are unique.
template <typename Known>
bool checkPolicies(const Bundle& bundle, const Names& names, Known known, std::vector<Diagnostic>& errors,
                   PolicyIndex& index, uint64_t load, size_t& checked) {
  index.clear();
  index.reserve(bundle.policies.size());
  bool unique = true;
  for (size_t i = 0; i < bundle.policies.size(); i++) {
    const Policy& p = bundle.policies[i];
    auto [it, fresh] = index.try_emplace(p.name);
    if (!fresh) {
      unique = false;
      errors.push_back({p.loc, "duplicate Policy name '" + p.name + "' (first defined at " +
                                   locStr(it->second.policy->loc) + ")"});
    }
    const bool resolved = known(&p) || (checked++, checkRefs(names, p, errors));
    if (fresh) it->second = {bundle.policies.shared(i), resolved, load};
  }
  return unique;
}

// checkPolicies() for a bundle whose names are those `index` was built
// against, with no duplicates then: only the policies that are not the
// same objects as last time, or whose references did not resolve, are
// looked at, and the index is updated in place (a one-rule change touches
// one entry of 10,000). False, with `index` and `errors` as they came,
// where a name is now taken twice (checkPolicies() reports it).
bool recheckPolicies(const Bundle& bundle, const Names& names, std::vector<Diagnostic>& errors, PolicyIndex& index,
                     uint64_t load, size_t& checked) {
  std::vector<size_t> check;  // in file order
  for (size_t i = 0; i < bundle.policies.size(); i++) {
    const Policy& p = bundle.policies[i];
    auto it = index.find(p.name);
    if (it != index.end() && it->second.policy.get() == &p) {
      if (it->second.seen == load) return false;  // the same object twice
      it->second.seen = load;
      if (it->second.resolved) continue;
    }
    check.push_back(i);
  }
  const size_t errorsBefore = errors.size();
  for (size_t i : check) {
    const Policy& p = bundle.policies[i];
    auto it = index.find(p.name);
    if (it == index.end() || it->second.policy.get() != &p) {
      if (it != index.end() && it->second.seen == load) {  // a duplicate
        errors.resize(errorsBefore);
        return false;
      }
      // A new object; the old one of that name (if any) is gone, and the
      // key must view the new one's name.
      if (it != index.end()) index.erase(it);
      it = index.emplace(p.name, CheckedPolicy{bundle.policies.shared(i), false, load}).first;
    }
    it->second.resolved = checkRefs(names, p, errors);
  }
  checked = check.size();
  if (index.size() != bundle.policies.size()) {  // policies removed
    std::erase_if(index, [&](const auto& e) { return e.second.seen != load; });
  }
  return true;
}

}  // namespace

void validateBundle(const Bundle& bundle, std::vector<Diagnostic>& errors) {
  Names names;
  indexNames(bundle, names, errors);
  PolicyIndex index;
  size_t checked = 0;
  checkPolicies(bundle, names, [](const Policy*) { return false; }, errors, index, 0, checked);
}

// What the last check established, so that the next one checks only what
// changed: the Workload and External lists the names index was built from
// (held, so their objects stay alive and pointers keep their meaning), the
// index and its errors, and every policy by name with whether its
// references resolved in it.
struct ReferenceCheck::State {
  SharedList<Workload> workloads;
  SharedList<External> externals;
  Names names;
  std::vector<Diagnostic> nameErrors;
  PolicyIndex policies;
  bool unique = false;  // no policy name was taken twice
  uint64_t loads = 0;
};

ReferenceCheck::ReferenceCheck() : state_(std::make_unique<State>()) {}
ReferenceCheck::~ReferenceCheck() = default;

void ReferenceCheck::check(const Bundle& bundle, std::vector<Diagnostic>& errors, size_t& checked) {
  State& v = *state_;
  const bool sameNames = v.loads > 0 && bundle.workloads.sameObjects(v.workloads) &&
                         bundle.externals.sameObjects(v.externals);
  const uint64_t load = ++v.loads;
  if (!sameNames) {
    v.names = {};  // its keys view the names of the lists it was built from
    v.nameErrors.clear();
    v.workloads = bundle.workloads;
    v.externals = bundle.externals;
    indexNames(bundle, v.names, v.nameErrors);
  }
  errors.insert(errors.end(), v.nameErrors.begin(), v.nameErrors.end());
  checked = 0;
  if (sameNames && v.unique && recheckPolicies(bundle, v.names, errors, v.policies, load, checked)) {
    return;
  }
  PolicyIndex before;
  if (sameNames) before = std::move(v.policies);
  auto known = [&](const Policy* p) {
    auto it = before.find(p->name);
    return it != before.end() && it->second.policy.get() == p && it->second.resolved;
  };
  v.unique = checkPolicies(bundle, v.names, known, errors, v.policies, load, checked);
}

std::vector<Diagnostic> tierWarnings(const Bundle& bundle) {
  std::map<uint16_t, std::vector<const Policy*>> byPriority;
  for (const auto& p : bundle.policies) {
    if (p.tier == Tier::Admin) byPriority[p.priority].push_back(&p);
  }
  std::vector<Diagnostic> out;
  for (auto& [priority, list] : byPriority) {
    if (list.size() < 2) continue;
    std::sort(list.begin(), list.end(), [](const Policy* a, const Policy* b) { return a->name < b->name; });
    for (size_t i = 1; i < list.size(); i++) {
      out.push_back({list[i]->loc, "admin policy '" + list[i]->name + "' has priority " + std::to_string(priority) +
                                       " like '" + list[0]->name +
                                       "': policies of one priority are evaluated in name order"});
    }
  }
  return out;
}

}  // namespace microseg::policy
