// The imported documents read by the semantics the import assumes
// (policies/README.md, "AdminNetworkPolicy and BaselineAdminNetworkPolicy"):
// admin policies first, by priority, the first matching rule of each
// deciding (pass: on to the application tier); the application tier's
// isolation and allows (deny wins); the baseline's first matching rule for
// a direction the application tier leaves open; else allowed. Read from
// the documents themselves (no parser, no compiler): a reading of the
// translation independent of the policy language's tiers, next to the
// compiler check of k8s_import_reference_test.cpp, which judges the same
// documents through the parser and the compiler's tier resolution.
#pragma once

#include <algorithm>
#include <map>
#include <string>
#include <vector>

#include "k8s_import/documents.h"
#include "policy/model.h"

namespace microseg::k8s::docs {

inline policy::Labels labelsOf(const OutWorkload& w) {
  policy::Labels l = w.labels;
  l[policy::kNamespaceLabel] = w.ns;
  return l;
}

inline bool selectorMatches(const OutSelector& s, const policy::Labels& labels) {
  policy::LabelSelector sel;
  sel.matchLabels = s.matchLabels;
  sel.matchExpressions = s.matchExpressions;
  return sel.matches(labels);
}

inline bool selectsSubject(const OutPolicy& p, const OutWorkload& w) {
  if (!p.ns.empty() && p.ns != w.ns) return false;
  return selectorMatches(p.selector, labelsOf(w));
}

// `port` is the callee's port in both directions.
inline bool ruleMatches(const OutRule& r, const OutWorkload& peer, Protocol proto, int port) {
  const bool peerOk = !r.peers || std::any_of(r.peers->begin(), r.peers->end(), [&](const OutPeer& p) {
    switch (p.kind) {
      case OutPeer::Kind::Selector: return selectorMatches(p.selector, labelsOf(peer));
      case OutPeer::Kind::Identity: return p.identity == peer.name;
      case OutPeer::Kind::Cidr: return false;  // a local pod is never an address
    }
    return false;
  });
  if (!peerOk) return false;
  if (r.ports.empty()) return true;
  return std::any_of(r.ports.begin(), r.ports.end(), [&](const OutPort& p) {
    return p.protocol == proto && (p.port == 0 || (port >= p.port && port <= (p.endPort ? p.endPort : p.port)));
  });
}

inline const std::vector<OutRule>* section(const OutPolicy& p, bool egress) {
  const auto& s = egress ? p.egress : p.ingress;
  return s ? &*s : nullptr;
}

// One direction at `subject`: its egress to `peer`, or its ingress from it.
inline bool allows(const Documents& d, const OutWorkload& subject, const OutWorkload& peer, bool egress, Protocol proto,
                   int port) {
  std::vector<const OutPolicy*> admin;
  for (const auto& p : d.policies) {
    if (p.tier == Tier::Admin && section(p, egress) && selectsSubject(p, subject)) admin.push_back(&p);
  }
  std::stable_sort(admin.begin(), admin.end(), [](auto* a, auto* b) { return a->priority < b->priority; });
  for (const OutPolicy* p : admin) {
    const Action* decided = nullptr;
    for (const auto& r : *section(*p, egress)) {
      if (ruleMatches(r, peer, proto, port)) {
        decided = &r.action;
        break;
      }
    }
    if (decided == nullptr) continue;
    if (*decided == Action::Pass) break;
    return *decided == Action::Allow;
  }
  bool isolated = false, allowed = false, denied = false;
  for (const auto& p : d.policies) {
    if (p.tier != Tier::Application || !section(p, egress) || !selectsSubject(p, subject)) continue;
    isolated = true;
    for (const auto& r : *section(p, egress)) {
      if (!ruleMatches(r, peer, proto, port)) continue;
      (r.action == Action::Deny ? denied : allowed) = true;
    }
  }
  if (isolated) return allowed && !denied;
  for (const auto& p : d.policies) {
    if (p.tier != Tier::Baseline || !section(p, egress) || !selectsSubject(p, subject)) continue;
    for (const auto& r : *section(p, egress)) {
      if (ruleMatches(r, peer, proto, port)) return r.action == Action::Allow;
    }
  }
  return true;
}

}  // namespace microseg::k8s::docs
