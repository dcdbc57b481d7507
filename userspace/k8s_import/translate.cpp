#include "k8s_import/translate.h"

#include <algorithm>
#include <map>
#include <set>
#include <tuple>

#include "k8s_import/labels.h"
#include "k8s_import/names.h"
#include "k8s_import/translate_rules.h"

namespace microseg::k8s {

namespace {

using policy::Diagnostic;

constexpr size_t kMaxLabels = 64;
constexpr const char* kSourceAnnotation = "k8s.microseg.dev/source";

std::string quoted(std::string_view s) { return "'" + std::string(s) + "'"; }

std::string replaceAll(std::string s, const std::string& from, const std::string& to) {
  for (size_t at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size())) s.replace(at, from.size(), to);
  return s;
}

bool validUid(const std::string& uid) {
  return !uid.empty() && std::all_of(uid.begin(), uid.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-';
  });
}

// The kubelet's cgroup of a pod with the systemd driver.
std::string kubeletSlice(const std::string& qos, const std::string& uid_) {
  if (qos == "Guaranteed") return "kubepods.slice/kubepods-pod" + uid_ + ".slice";
  const std::string level = qos == "Burstable" ? "burstable" : "besteffort";
  return "kubepods.slice/kubepods-" + level + ".slice/kubepods-" + level + "-pod" + uid_ + ".slice";
}

class Translation {
 public:
  Translation(const Objects& in, const TranslateOptions& options, TranslateResult& out)
      : in_(in), options_(options), out_(out) {}

  void run() {
    namespaces();
    pods();
    if (!out_.ok()) return;
    std::string why;
    if (!workloadNames_.assign(why)) {
      out_.errors.push_back({{}, "workload names: " + why});
      return;
    }
    for (const Pod* pod : pods_) ctx_.workloadName[pod] = workloadNames_.name(podKey(*pod));
    for (const Pod* pod : pods_) workload(*pod);
    std::vector<const PolicyObject*> policies;
    for (const auto& p : in_.policies) policies.push_back(&p);
    std::sort(policies.begin(), policies.end(), [](const PolicyObject* a, const PolicyObject* b) {
      return std::tie(a->ref.kind, a->ref.ns, a->ref.name) < std::tie(b->ref.kind, b->ref.ns, b->ref.name);
    });
    for (size_t i = 1; i < policies.size(); i++) {
      if (policies[i]->ref.text() == policies[i - 1]->ref.text()) {
        out_.errors.push_back({policies[i]->ref.loc, policies[i]->ref.text() + ": defined twice (also at " +
                                                          locText(policies[i - 1]->ref.loc) + ")"});
      }
    }
    if (!out_.ok()) return;
    samePriorities(policies);
    std::vector<std::pair<std::string, OutPolicy>> built;
    for (const PolicyObject* p : policies) policy(*p, built);
    if (!out_.ok()) return;
    if (!policyNames_.assign(why)) {
      out_.errors.push_back({{}, "policy names: " + why});
      return;
    }
    for (auto& [key, pol] : built) {
      pol.name = policyNames_.name(key);
      out_.documents.policies.push_back(std::move(pol));
    }
    auto byName = [](const auto& a, const auto& b) { return a.name < b.name; };
    std::sort(out_.documents.workloads.begin(), out_.documents.workloads.end(), byName);
    std::sort(out_.documents.policies.begin(), out_.documents.policies.end(), byName);
  }

 private:
  static std::string podKey(const Pod& p) { return "Pod/" + p.ref.ns + "/" + p.ref.name; }
  static std::string locText(const SourceLocation& l) {
    return l.file.str() + ":" + std::to_string(l.line) + ":" + std::to_string(l.column);
  }
  void error(const ObjectRef& ref, const SourceLocation& loc, const std::string& path, const std::string& msg) {
    out_.errors.push_back({loc, ref.text() + ": " + (path.empty() ? "" : path + ": ") + msg});
  }

  // Kubernetes leaves the order of two AdminNetworkPolicies of one
  // priority undefined: whatever microseg does with them may differ from
  // a cluster's, so it is said.
  void samePriorities(const std::vector<const PolicyObject*>& policies) {
    std::map<int, const PolicyObject*> first;
    for (const PolicyObject* p : policies) {
      if (p->tier != Tier::Admin) continue;
      if (auto [it, fresh] = first.emplace(p->priority, p); !fresh) {
        out_.warnings.push_back({p->ref.loc, p->ref.text() + ": spec.priority: " + std::to_string(p->priority) +
                                                 " is also the priority of " + it->second->ref.text() +
                                                 " (Kubernetes leaves their order undefined)"});
      }
    }
  }

  void namespaces() {
    std::map<std::string, const Namespace*> seen;
    for (const auto& ns : in_.namespaces) {
      if (auto [it, fresh] = seen.emplace(ns.ref.name, &ns); !fresh) {
        error(ns.ref, ns.ref.loc, "", "defined twice (also at " + locText(it->second->ref.loc) + ")");
        continue;
      }
      Labels l = ns.labels;
      auto [it, fresh] = l.emplace("kubernetes.io/metadata.name", ns.ref.name);
      if (!fresh && it->second != ns.ref.name) {
        error(ns.ref, ns.ref.loc, "metadata.labels.kubernetes.io/metadata.name",
              quoted(it->second) + " is not the namespace's name (the API server sets it to the name)");
      }
      ctx_.nsLabels[ns.ref.name] = std::move(l);
    }
  }

  void pods() {
    for (const auto& p : in_.pods) pods_.push_back(&p);
    std::sort(pods_.begin(), pods_.end(), [](const Pod* a, const Pod* b) {
      return std::tie(a->ref.ns, a->ref.name) < std::tie(b->ref.ns, b->ref.name);
    });
    for (size_t i = 0; i < pods_.size(); i++) {
      const Pod& p = *pods_[i];
      if (i > 0 && pods_[i - 1]->ref.ns == p.ref.ns && pods_[i - 1]->ref.name == p.ref.name) {
        error(p.ref, p.ref.loc, "", "defined twice (also at " + locText(pods_[i - 1]->ref.loc) + ")");
        continue;
      }
      if (ctx_.nsLabels.try_emplace(p.ref.ns, Labels{{"kubernetes.io/metadata.name", p.ref.ns}}).second) {
        // A namespaceSelector on its other labels would miss these pods.
        out_.warnings.push_back({p.ref.loc, p.ref.text() + ": no Namespace '" + p.ref.ns +
                                                "' in the input: its pods carry only its name label"});
      }
      workloadNames_.add(podKey(p), {p.ref.ns, p.ref.name});
    }
    ctx_.pods = pods_;
  }

  std::optional<std::string> cgroupOf(const Pod& p) {
    const std::string uid_ = replaceAll(p.uid, "-", "_");
    if (!options_.cgroupPattern) {
      if (p.qosClass.empty() || !validUid(p.uid)) {
        error(p.ref, p.ref.loc, p.qosClass.empty() ? "status.qosClass" : "metadata.uid",
              std::string(p.qosClass.empty() ? "required" : "missing or not a UID") +
                  " for the kubelet's cgroup path (or give --cgroup-pattern)");
        return std::nullopt;
      }
      return kubeletSlice(p.qosClass, uid_);
    }
    const std::string& pat = *options_.cgroupPattern;
    if ((pat.find("{uid}") != std::string::npos || pat.find("{uid_}") != std::string::npos) && !validUid(p.uid)) {
      error(p.ref, p.ref.loc, "metadata.uid", "missing or not a UID, and --cgroup-pattern uses it");
      return std::nullopt;
    }
    std::string s = replaceAll(pat, "{namespace}", p.ref.ns);
    s = replaceAll(s, "{name}", p.ref.name);
    s = replaceAll(s, "{uid_}", uid_);
    return replaceAll(s, "{uid}", p.uid);
  }

  void workload(const Pod& p) {
    OutWorkload w;
    w.name = ctx_.workloadName.at(&p);
    w.ns = p.ref.ns;
    w.annotations[kSourceAnnotation] = p.ref.text();
    auto cg = cgroupOf(p);
    if (!cg) return;
    w.cgroups.push_back(*cg);
    w.labels = p.labels;
    w.labels[kPodKey] = w.name;
    for (const auto& [k, v] : ctx_.nsLabels.at(p.ref.ns)) {
      auto key = namespaceKey(k);
      if (!key) {
        error(p.ref, p.ref.loc, "", "the label " + quoted(k) + " of namespace " + quoted(p.ref.ns) +
                                        " is too long to carry as " + quoted(std::string(kNamespaceSuffix)) +
                                        " label");
        return;
      }
      w.labels[*key] = v;
    }
    if (w.labels.size() > kMaxLabels) {
      error(p.ref, p.ref.loc, "metadata.labels",
            std::to_string(w.labels.size()) + " labels with its namespace's and the import's own; microseg allows " +
                std::to_string(kMaxLabels));
      return;
    }
    out_.documents.workloads.push_back(std::move(w));
  }

  void policy(const PolicyObject& p, std::vector<std::pair<std::string, OutPolicy>>& built) {
    if (!p.ingressOn && !p.egressOn) {
      out_.warnings.push_back({p.ref.loc, p.ref.text() + ": no ingress or egress rules: nothing to translate"});
      return;
    }
    RuleTranslator rt(ctx_, p, out_);
    // Which subject pods give the ingress rules' named ports which numbers.
    std::map<std::vector<int>, std::vector<const Pod*>> classes;
    for (const Pod* pod : pods_) {
      if (selectsPod(p.subject, *pod, ctx_.nsLabels.at(pod->ref.ns))) classes[rt.resolution(*pod)].push_back(pod);
    }
    const std::string key = p.ref.kind + "/" + p.ref.ns + "/" + p.ref.name;
    std::vector<std::string> base;
    if (p.tier == Tier::Application) {
      base = {p.ref.ns, p.ref.name};
    } else {
      base = {p.tier == Tier::Admin ? "anp" : "banp", p.ref.name};
    }
    auto selector = rt.selector(p.subject);
    if (!selector) return;
    if (classes.size() <= 1) {
      const std::vector<int> res = classes.empty() ? rt.resolution(Pod{}) : classes.begin()->first;
      policyNames_.add(key, base);
      built.emplace_back(key, make(p, rt, *selector, res, classes.empty() ? "any selected pod" : "the selected pods"));
      return;
    }
    size_t i = 0;
    for (const auto& [res, members] : classes) {
      const std::string k = key + "#" + std::to_string(++i);
      std::vector<std::string> parts = base;
      parts.push_back(std::to_string(i));
      policyNames_.add(k, parts);
      OutSelector s = *selector;
      policy::LabelRequirement in{kPodKey, policy::SelectorOp::In, {}};
      for (const Pod* m : members) in.values.push_back(ctx_.workloadName.at(m));
      std::string who = in.values.size() == 1 ? "pod" : "pods";
      for (size_t j = 0; j < in.values.size(); j++) who += (j == 0 ? " " : ", ") + in.values[j];
      s.matchExpressions.push_back(std::move(in));
      built.emplace_back(k, make(p, rt, s, res, who));
    }
  }

  OutPolicy make(const PolicyObject& p, RuleTranslator& rt, const OutSelector& selector, const std::vector<int>& res,
                 const std::string& who) {
    OutPolicy o;
    o.ns = p.tier == Tier::Application ? p.ref.ns : "";
    o.annotations[kSourceAnnotation] = p.ref.text();
    o.tier = p.tier;
    o.priority = p.priority;
    o.selector = selector;
    if (p.ingressOn) o.ingress = rt.rules(p.ingress, false, res, who);
    if (p.egressOn) o.egress = rt.rules(p.egress, true, res, who);
    return o;
  }

  const Objects& in_;
  const TranslateOptions& options_;
  TranslateResult& out_;
  TranslationContext ctx_;
  std::vector<const Pod*> pods_;
  Namer workloadNames_, policyNames_;
};

}  // namespace

TranslateResult translate(const Objects& objects, const TranslateOptions& options) {
  TranslateResult out;
  if (options.cgroupPattern) {
    if (std::string why = checkCgroupPattern(*options.cgroupPattern); !why.empty()) {
      out.errors.push_back({{}, "--cgroup-pattern: " + why});
      return out;
    }
  }
  Translation(objects, options, out).run();
  return out;
}

std::string checkCgroupPattern(const std::string& pattern) {
  if (pattern.empty()) return "empty";
  if (pattern.front() == '/') return "'" + pattern + "' must be relative to microsegd's --cgroup-root (no leading '/')";
  for (size_t open = pattern.find('{'); open != std::string::npos; open = pattern.find('{', open + 1)) {
    const size_t close = pattern.find('}', open);
    const std::string name = close == std::string::npos ? pattern.substr(open) : pattern.substr(open, close - open + 1);
    if (name != "{namespace}" && name != "{name}" && name != "{uid}" && name != "{uid_}") {
      return "unknown placeholder '" + name + "' (allowed: {namespace}, {name}, {uid}, {uid_})";
    }
  }
  size_t from = 0;
  for (;;) {
    const size_t slash = pattern.find('/', from);
    const std::string part = pattern.substr(from, slash == std::string::npos ? std::string::npos : slash - from);
    if (part.empty() || part == "." || part == "..") {
      return "'" + pattern + "' has an empty, '.' or '..' path component";
    }
    if (slash == std::string::npos) break;
    from = slash + 1;
  }
  return "";
}

}  // namespace microseg::k8s
