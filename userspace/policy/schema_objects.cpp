// The specs of Workloads, Externals and Policies, their selectors and
// address lists (schema.h); rule lists, peers and ports are in
// schema_rules.cpp, the document and its metadata in schema.cpp.
#include "policy/schema.h"
#include "policy/value_checks.h"

#include <algorithm>
#include <sstream>

namespace microseg::policy {

void DocParser::namespaceLabel(const yaml::Node& labelsNode, const std::string& path, const std::string& ns) {
  if (ns.empty() || !labelsNode.IsMap()) return;
  const yaml::Node v = labelsNode[kNamespaceLabel];
  if (v && v.IsScalar() && v.Scalar() != ns) {
    error(v, path + "." + kNamespaceLabel + ": '" + shown(v.Scalar()) + "' contradicts metadata.namespace '" + ns +
                 "' (the namespace sets this label)");
  }
}

std::optional<Cidr> DocParser::cidrValue(const yaml::Node& node, const std::string& path) {
  auto text = scalar(node, path);
  if (!text) return std::nullopt;
  CidrError why;
  auto c = parseCidr(*text, &why);
  if (!c) error(node, path + ": " + why.message);
  return c;
}

// Every item is parsed and checked for duplicates; nullopt only when the
// node is not a list at all.
std::optional<std::vector<DocParser::CidrItem>> DocParser::cidrList(const yaml::Node& node, const std::string& path,
                                                                     bool required) {
  if (!node.IsSequence()) {
    error(node, path + ": must be a list of CIDRs (e.g. [\"10.0.0.0/8\"])");
    return std::nullopt;
  }
  if (required && node.size() == 0) {
    error(node, path + ": must be a non-empty list of CIDRs");
    return std::nullopt;
  }
  std::vector<CidrItem> out;
  size_t i = 0;
  for (const yaml::Node item : yaml::items(node)) {
    const std::string ip = path + "[" + std::to_string(i) + "]";
    if (auto c = cidrValue(item, ip)) {
      auto dup = std::find_if(out.begin(), out.end(), [&](const CidrItem& o) { return o.cidr == *c; });
      if (dup != out.end()) {
        error(item, ip + ": " + c->str() + " is listed twice (first at " + path + "[" +
                        std::to_string(dup->index) + "])");
      } else {
        out.push_back({*c, i, item});
      }
    }
    i++;
  }
  return out;
}

std::optional<LabelSelector> DocParser::selector(const yaml::Node& node, const std::string& path) {
  LabelSelector sel;
  bool ok = true;
  bool any = false;
  if (auto ml = node["matchLabels"]) {
    const size_t before = errors_.size();
    sel.matchLabels = labels(ml, path + ".matchLabels");
    ok &= errors_.size() == before;
    any |= !sel.matchLabels.empty();
  }
  if (auto me = node["matchExpressions"]) {
    if (!me.IsSequence()) {
      error(me, path + ".matchExpressions: must be a list");
      return std::nullopt;
    }
    size_t i = 0;
    for (const yaml::Node item : yaml::items(me)) {
      const std::string ip = path + ".matchExpressions[" + std::to_string(i++) + "]";
      if (!checkMap(item, ip, {"key", "operator", "values"})) {
        ok = false;
        continue;
      }
      LabelRequirement req;
      if (!item["key"]) {
        error(item, ip + ": 'key' is required");
        ok = false;
        continue;
      }
      auto key = scalar(item["key"], ip + ".key");
      if (!key) {
        ok = false;
        continue;
      }
      if (!validLabelKey(*key)) {
        error(item["key"], ip + ".key: '" + *key + "' is not a valid label key");
        ok = false;
      }
      req.key = *key;
      if (!item["operator"]) {
        error(item, ip + ": 'operator' is required (In, NotIn, Exists, DoesNotExist)");
        ok = false;
        continue;
      }
      auto op = scalar(item["operator"], ip + ".operator");
      if (!op) {
        ok = false;
        continue;
      }
      if (*op == "In") {
        req.op = SelectorOp::In;
      } else if (*op == "NotIn") {
        req.op = SelectorOp::NotIn;
      } else if (*op == "Exists") {
        req.op = SelectorOp::Exists;
      } else if (*op == "DoesNotExist") {
        req.op = SelectorOp::DoesNotExist;
      } else {
        error(item["operator"], ip + ".operator: '" + *op +
                                    "' is not one of In, NotIn, Exists, DoesNotExist");
        ok = false;
        continue;
      }
      const bool needsValues = req.op == SelectorOp::In || req.op == SelectorOp::NotIn;
      if (auto vals = item["values"]) {
        if (!vals.IsSequence()) {
          error(vals, ip + ".values: must be a list of strings");
          ok = false;
          continue;
        }
        for (const yaml::Node v : yaml::items(vals)) {
          if (!v.IsScalar()) {
            error(v, ip + ".values: must be a list of strings");
            ok = false;
            continue;
          }
          if (const size_t at = controlCharAt(v.Scalar()); at != std::string_view::npos) {
            error(v, ip + ".values: contains a control character" + controlCharText(v.Scalar(), at));
            ok = false;  // kept below all the same: the list is not empty
          }
          req.values.emplace_back(v.Scalar());
        }
        if (!needsValues && !req.values.empty()) {
          error(vals, ip + ".values: must be empty for operator " + *op);
          ok = false;
        }
      }
      if (needsValues && req.values.empty()) {
        error(item, ip + ": operator " + *op + " needs a non-empty 'values' list");
        ok = false;
      }
      sel.matchExpressions.push_back(std::move(req));
      any = true;
    }
  }
  if (!ok) return std::nullopt;
  if (!any) {
    error(node, path + ": empty selector: give matchLabels, matchExpressions or identity "
                       "(an empty selector would silently match everything or nothing)");
    return std::nullopt;
  }
  return sel;
}

std::optional<Peer> DocParser::subject(const yaml::Node& node, const std::string& path) {
  if (!checkMap(node, path, {"matchLabels", "matchExpressions", "identity"})) return std::nullopt;
  return selectorOrIdentity(node, path);
}

// Keys already checked by the caller.
std::optional<Peer> DocParser::selectorOrIdentity(const yaml::Node& node, const std::string& path) {
  Peer p;
  p.loc = loc(node);
  if (auto id = node["identity"]) {
    if (node["matchLabels"] || node["matchExpressions"]) {
      error(node, path + ": use either 'identity' or matchLabels/matchExpressions, not both");
      return std::nullopt;
    }
    auto name = scalar(id, path + ".identity");
    if (!name) return std::nullopt;
    p.kind = Peer::Kind::Identity;
    p.identity = *name;
    p.loc = loc(id);
    return p;
  }
  auto sel = selector(node, path);
  if (!sel) return std::nullopt;
  p.kind = Peer::Kind::Selector;
  p.edit().selector = std::move(*sel);
  return p;
}


void DocParser::workload(const yaml::Node& spec, const Meta& meta, Bundle& out) {
  if (!checkMap(spec, "spec", {"cgroups", "labels", "spiffeId"})) return;
  Workload w;
  w.name = meta.name;
  w.namespaceName = meta.ns;
  w.loc = meta.at;
  if (auto cg = spec["cgroups"]) {
    if (!cg.IsSequence() || cg.size() == 0) {
      error(cg, "spec.cgroups: must be a non-empty list of cgroup path patterns");
    } else {
      size_t i = 0;
      for (const yaml::Node c : yaml::items(cg)) {
        const std::string cp = "spec.cgroups[" + std::to_string(i++) + "]";
        auto v = scalar(c, cp);
        if (!v) continue;
        if (v->empty()) {
          error(c, cp + ": empty path");
          continue;
        }
        if ((*v)[0] == '/') {
          error(c, cp + ": '" + *v + "' must be relative to the daemon's cgroup root (no leading '/')");
          continue;
        }
        std::stringstream ss(*v);
        std::string comp;
        bool bad = false;
        while (std::getline(ss, comp, '/')) {
          if (comp.empty() || comp == "." || comp == "..") bad = true;
        }
        if (bad || v->back() == '/') {
          error(c, cp + ": '" + *v + "' has an empty, '.' or '..' path component");
          continue;
        }
        if (auto why = globProblem(*v)) {
          error(c, cp + ": '" + *v + "': " + *why);
          continue;
        }
        w.cgroups.push_back(*v);
      }
    }
  } else {
    error(spec, "spec: 'cgroups' is required");
  }
  if (auto l = spec["labels"]) {
    w.labels = labels(l, "spec.labels");
    namespaceLabel(l, "spec.labels", meta.ns);
  }
  if (auto s = spec["spiffeId"]) {
    auto v = scalar(s, "spec.spiffeId");
    if (v && v->rfind("spiffe://", 0) != 0) {
      error(s, "spec.spiffeId: '" + *v + "' must start with spiffe://");
    } else if (v) {
      w.spiffeId = *v;
    }
  }
  out.workloads.push_back(std::move(w));
}

void DocParser::external(const yaml::Node& spec, const Meta& meta, Bundle& out) {
  if (!checkMap(spec, "spec", {"labels", "cidrs", "except"})) return;
  External e;
  e.name = meta.name;
  e.namespaceName = meta.ns;
  e.loc = meta.at;
  if (auto l = spec["labels"]) {
    e.labels = labels(l, "spec.labels");
    namespaceLabel(l, "spec.labels", meta.ns);
  }
  std::vector<CidrItem> cidrs;
  bool cidrsOk = false;
  if (auto c = spec["cidrs"]) {
    const size_t before = errors_.size();
    if (auto items = cidrList(c, "spec.cidrs", true)) cidrs = *items;
    cidrsOk = errors_.size() == before;
  } else {
    error(spec, "spec: 'cidrs' is required (the address ranges this External stands for)");
  }
  for (const auto& c : cidrs) e.cidrs.push_back(c.cidr);
  auto items = spec["except"] ? cidrList(spec["except"], "spec.except", false) : std::nullopt;
  // A hole is judged against the ranges only when they all parsed, so a typo
  // in cidrs is not reported a second time as a misplaced except.
  if (items && cidrsOk) {
    for (const auto& it : *items) {
      const std::string ip = "spec.except[" + std::to_string(it.index) + "]";
      auto covered =
          std::find_if(cidrs.begin(), cidrs.end(), [&](const CidrItem& c) { return it.cidr.contains(c.cidr); });
      const bool inside =
          std::any_of(cidrs.begin(), cidrs.end(), [&](const CidrItem& c) { return c.cidr.contains(it.cidr); });
      if (covered != cidrs.end()) {
        error(it.node, ip + ": " + it.cidr.str() + " covers all of spec.cidrs[" + std::to_string(covered->index) +
                           "] (" + covered->cidr.str() + "); remove that cidr instead");
      } else if (!inside) {
        error(it.node, ip + ": " + it.cidr.str() + " is not inside any of spec.cidrs" + familyHint(it.cidr, e.cidrs));
      } else {
        e.except.push_back(it.cidr);
      }
    }
  }
  out.externals.push_back(std::move(e));
}

void DocParser::policyDoc(const yaml::Node& spec, const Meta& meta, Bundle& out) {
  if (!checkMap(spec, "spec", {"selector", "enforcement", "tier", "priority", "staged", "revokeEstablished",
                            "egress", "ingress"})) {
    return;
  }
  Policy p;
  p.name = meta.name;
  p.namespaceName = meta.ns;
  p.loc = meta.at;
  bool ok = true;
  if (auto sel = spec["selector"]) {
    auto s = subject(sel, "spec.selector");
    if (s) {
      p.selector = *s;
      if (s->kind == Peer::Kind::Selector && sel["matchLabels"].IsMap()) {
        namespaceLabel(sel["matchLabels"], "spec.selector.matchLabels", meta.ns);
      }
    } else {
      ok = false;
    }
  } else {
    error(spec, "spec: 'selector' is required (which workloads this policy governs)");
    ok = false;
  }
  if (auto e = spec["enforcement"]) {
    auto v = scalar(e, "spec.enforcement");
    if (v && *v == "monitor") {
      p.enforcement = Enforcement::Monitor;
    } else if (v && *v == "enforce") {
      p.enforcement = Enforcement::Enforce;
    } else if (v) {
      error(e, "spec.enforcement: '" + *v + "' is not monitor or enforce");
    }
  }
  if (auto st = spec["staged"]) {
    auto v = scalar(st, "spec.staged");
    if (v && *v == "true") {
      p.staged = true;
      p.stagedLoc = loc(st);
    } else if (v && *v != "false") {
      error(st, "spec.staged: '" + *v + "' is not true or false");
    }
  }
  if (auto re = spec["revokeEstablished"]) {
    auto v = scalar(re, "spec.revokeEstablished");
    if (v && *v == "on-change") {
      p.revokeOnChange = true;
    } else if (v && *v != "never") {
      error(re, "spec.revokeEstablished: '" + *v + "' is not never or on-change");
    }
  }
  if (auto t = spec["tier"]) {
    auto v = scalar(t, "spec.tier");
    if (v && *v == "admin") {
      p.tier = Tier::Admin;
    } else if (v && *v == "application") {
      p.tier = Tier::Application;
    } else if (v && *v == "baseline") {
      p.tier = Tier::Baseline;
    } else if (v) {
      error(t, "spec.tier: '" + *v + "' is not admin, application or baseline");
    }
  }
  if (auto pr = spec["priority"]) {
    if (p.tier != Tier::Admin) {
      error(pr, std::string("spec.priority: only an admin tier policy has a priority (this one is ") +
                    tierName(p.tier) + ")");
    } else if (auto v = integer(pr, "spec.priority")) {
      if (*v < 0 || *v > kMaxPriority) {
        error(pr, "spec.priority: " + std::to_string(*v) + " is out of range 0.." + std::to_string(kMaxPriority));
      } else {
        p.priority = static_cast<uint16_t>(*v);
      }
    }
  } else if (p.tier == Tier::Admin) {
    error(spec["tier"], "spec.priority: required in the admin tier (0.." + std::to_string(kMaxPriority) +
                            ", lower is evaluated first)");
  }
  // A bare `egress:` is rejected rather than read as `[]`: it is as likely a
  // mis-indented rule list as a deliberate "allow nothing".
  if (auto e = spec["egress"]) {
    p.hasEgress = true;
    if (e.IsNull()) {
      error(e, "spec.egress: must be a list of rules (write [] to allow nothing)");
    } else {
      p.egress = rules(e, "spec.egress", Direction::Egress);
    }
  }
  if (auto i = spec["ingress"]) {
    p.hasIngress = true;
    if (i.IsNull()) {
      error(i, "spec.ingress: must be a list of rules (write [] to allow nothing)");
    } else {
      p.ingress = rules(i, "spec.ingress", Direction::Ingress);
    }
  }
  if (!p.hasEgress && !p.hasIngress) {
    error(spec, "spec: a policy needs 'egress' and/or 'ingress' rules");
  }
  if (p.tier != Tier::Admin) {
    for (const auto* list : {&p.egress, &p.ingress}) {
      for (size_t i = 0; i < list->size(); i++) {
        if ((*list)[i].action != Action::Pass) continue;
        error((*list)[i].loc, std::string(list == &p.egress ? "spec.egress[" : "spec.ingress[") + std::to_string(i) +
                                  "].action: 'pass' is only valid in the admin tier (this policy is " +
                                  tierName(p.tier) + ")");
      }
    }
  }
  forEachRulePeer(p, [&](const Peer& peer) { p.hasCidrPeers |= peer.kind == Peer::Kind::Cidr || peer.kind == Peer::Kind::Fqdn; });
  if (ok) out.policies.push_back(std::move(p));
}

}  // namespace microseg::policy
