// The reference check: for namespaces x, y, z of pods a, b, c each (the
// upstream "truth table" style), the reachability Kubernetes semantics
// give the objects (a small evaluator written here, from the API's
// documented semantics, independent of the importer) must be the
// reachability microseg gives the imported documents: its compiler and
// reference evaluator (compiler/explain.h), the caller's egress AND the
// callee's ingress, --default-enforcement selected. Every ordered pair of
// distinct pods, TCP and UDP ports, for each policy set below.
#include <gtest/gtest.h>

#include <arpa/inet.h>

#include <iostream>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "compiler/compiler.h"
#include "compiler/explain.h"
#include "identity/identities.h"
#include "k8s_import/importer.h"
#include "policy/parser.h"

#include "k8s_import_documents_eval.h"
#include "k8s_import_truth.h"

namespace microseg::k8s {
namespace {

using namespace truth;

// ---- the comparison -----------------------------------------------------------------
struct Probe {
  int proto, port;
};
const Probe kProbes[] = {{IPPROTO_TCP, 80}, {IPPROTO_TCP, 81}, {IPPROTO_TCP, 82}, {IPPROTO_UDP, 80}, {IPPROTO_UDP, 81}};

// Who judges the imported documents: microseg's compiler and reference
// evaluator (the policy language must parse them), or the documents
// evaluator (k8s_import_documents_eval.h: the tier semantics the import
// assumes, read from the import's own documents, without the parser).
enum class Judge { Compiler, Documents };

struct Tally {
  size_t checked = 0, allowed = 0;
};

// Differences from Kubernetes, one line each; "" if none. `reference`: the
// set Kubernetes evaluates, if not `set` (to show the check can fail).
std::string compare(const std::vector<KPolicy>& set, Tally* tally, Judge judge = Judge::Compiler,
                    const std::vector<KPolicy>* reference = nullptr) {
  if (reference == nullptr) reference = &set;
  std::string text = clusterYaml();
  for (size_t i = 0; i < set.size(); i++) text += policyYaml(set[i], static_cast<int>(i));
  TranslateOptions opts;
  opts.cgroupPattern = "{namespace}/{name}";
  auto imported = importTexts({{"set.yaml", text}}, opts);
  if (!imported.ok()) {
    std::string s = "import failed:\n";
    for (const auto& d : imported.errors) s += d.str() + "\n";
    return s + text;
  }
  std::map<std::string, const OutWorkload*> workloads;
  for (const auto& w : imported.documents.workloads) workloads[w.name] = &w;
  policy::ParseResult parsed;
  identity::IdentityTable ids;
  compiler::CompiledPolicy compiled;
  if (judge == Judge::Compiler) {
    parsed = policy::parseText(imported.yaml, "imported.yaml");
    if (parsed.ok()) policy::validateBundle(parsed.bundle, parsed.errors);
    if (!parsed.ok()) {
      std::string s = "imported documents do not validate:\n";
      for (const auto& d : parsed.errors) s += d.str() + "\n";
      return s + imported.yaml;
    }
    ids = identity::assignIdentities(parsed.bundle);
    compiler::RuleRegistry reg;
    compiler::Options o;
    o.defaultEnforcement = compiler::DefaultEnforcement::Selected;
    compiled = compiler::compile(parsed.bundle, ids, reg, o);
  }
  std::string diffs;
  for (const auto& src : pods()) {
    for (const auto& dst : pods()) {
      if (src.ns == dst.ns && src.name == dst.name) continue;
      const std::string sn = src.ns + "-" + src.name, dn = dst.ns + "-" + dst.name;
      for (const auto& pr : kProbes) {
        const bool want = k8sAllows(*reference, src, dst, true, pr.proto, pr.port) &&
                          k8sAllows(*reference, dst, src, false, pr.proto, pr.port);
        bool got = false;
        if (judge == Judge::Compiler) {
          const uint32_t s = ids.byWorkload.at(sn), d = ids.byWorkload.at(dn);
          const auto eg = compiler::evaluate(compiled, s, d, policy::Direction::Egress, pr.proto, pr.port);
          const auto in = compiler::evaluate(compiled, d, s, policy::Direction::Ingress, pr.proto, pr.port);
          got = eg.verdict == MS_VERDICT_ALLOW && in.verdict == MS_VERDICT_ALLOW;
        } else {
          const Protocol proto = pr.proto == IPPROTO_TCP ? Protocol::TCP : Protocol::UDP;
          got = docs::allows(imported.documents, *workloads.at(sn), *workloads.at(dn), true, proto, pr.port) &&
                docs::allows(imported.documents, *workloads.at(dn), *workloads.at(sn), false, proto, pr.port);
        }
        tally->checked++;
        tally->allowed += want ? 1 : 0;
        if (want != got) {
          diffs += src.ns + "/" + src.name + " -> " + dst.ns + "/" + dst.name + " " +
                   (pr.proto == IPPROTO_TCP ? "TCP" : "UDP") + " " + std::to_string(pr.port) +
                   ": kubernetes " + (want ? "allows" : "denies") + ", microseg " + (got ? "allows" : "denies") + "\n";
        }
      }
    }
  }
  return diffs.empty() ? "" : diffs + imported.yaml;
}

KPeer pods(std::optional<std::string> pod) { return KPeer{std::nullopt, std::nullopt, std::move(pod), "", ""}; }
KPeer nsPods(std::map<std::string, std::string> ns, std::optional<std::string> pod) {
  return KPeer{std::move(ns), std::nullopt, std::move(pod), "", ""};
}
KPeer block(std::string cidr, std::string except = "") { return KPeer{std::nullopt, std::nullopt, std::nullopt, cidr, except}; }
KPolicy np(std::string ns, std::string podSel, bool in, bool eg) {
  KPolicy p;
  p.ns = std::move(ns);
  p.podSel = std::move(podSel);
  p.ingressOn = in;
  p.egressOn = eg;
  return p;
}

// NetworkPolicy sets: each alone, then all at once.
std::vector<std::vector<KPolicy>> networkPolicySets() {
  std::vector<std::vector<KPolicy>> sets;
  // 1. default deny ingress in x.
  sets.push_back({np("x", "", true, false)});
  // 2. y: ingress from its own namespace only.
  {
    auto p = np("y", "", true, false);
    p.ingress.push_back({"Allow", std::vector<KPeer>{pods("")}, {}});
    sets.push_back({p});
  }
  // 3. AND: y/b from pods a of namespaces with tier=front, TCP 80.
  {
    auto p = np("y", "b", true, false);
    p.ingress.push_back({"Allow", std::vector<KPeer>{nsPods({{"tier", "front"}}, "a")}, {kp(IPPROTO_TCP, 80)}});
    sets.push_back({p});
  }
  // 4. OR: the same two selectors as two peers.
  {
    auto p = np("y", "b", true, false);
    p.ingress.push_back(
        {"Allow", std::vector<KPeer>{nsPods({{"tier", "front"}}, std::nullopt), pods("a")}, {kp(IPPROTO_TCP, 80)}});
    sets.push_back({p});
  }
  // 5. z/c egress: only the named port "serve" (TCP) in namespace y.
  {
    auto p = np("z", "c", false, true);
    p.egress.push_back({"Allow", std::vector<KPeer>{nsPods({{"ns", "y"}}, std::nullopt)}, {kp(IPPROTO_TCP, 0, 0, "serve")}});
    sets.push_back({p});
  }
  // 6. x ingress on the named port "serve" (the subject's: 80 on a, 81 on b, none on c for TCP) from anywhere.
  {
    auto p = np("x", "", true, false);
    p.ingress.push_back({"Allow", std::nullopt, {kp(IPPROTO_TCP, 0, 0, "serve")}});
    sets.push_back({p});
  }
  // 7. z ingress from an ipBlock with a hole: x's pods but x/b.
  {
    auto p = np("z", "", true, false);
    p.ingress.push_back({"Allow", std::vector<KPeer>{block("10.1.0.0/16", "10.1.0.2/32")}, {}});
    sets.push_back({p});
  }
  // 8. x/a egress: TCP 80-81 anywhere, and UDP (every port) to z.
  {
    auto p = np("x", "a", false, true);
    p.egress.push_back({"Allow", std::nullopt, {kp(IPPROTO_TCP, 80, 81)}});
    p.egress.push_back({"Allow", std::vector<KPeer>{nsPods({{"ns", "z"}}, std::nullopt)}, {kp(IPPROTO_UDP, 0)}});
    sets.push_back({p});
  }
  // 9. y/c ingress: UDP only, from namespaces other than x (NotIn).
  {
    auto p = np("y", "c", true, false);
    KPeer k;
    k.nsNotIn = "x";
    p.ingress.push_back({"Allow", std::vector<KPeer>{k}, {kp(IPPROTO_UDP, 0)}});
    sets.push_back({p});
  }
  // 10. egress isolation with no rules for z (default deny egress) and an ingress allow-all in y.
  {
    auto deny = np("z", "", false, true);
    auto all = np("y", "", true, false);
    all.ingress.push_back({"Allow", std::nullopt, {}});
    sets.push_back({deny, all});
  }
  // 11. policyTypes left out: z/b gets Ingress (no rules: isolated) and,
  // having egress rules, Egress: only y on TCP 81.
  {
    auto p = np("z", "b", true, true);
    p.omitTypes = true;
    p.egress.push_back({"Allow", std::vector<KPeer>{nsPods({{"ns", "y"}}, std::nullopt)}, {kp(IPPROTO_TCP, 81)}});
    sets.push_back({p});
  }
  std::vector<KPolicy> everything;
  for (const auto& s : sets) everything.insert(everything.end(), s.begin(), s.end());
  sets.push_back(everything);
  return sets;
}

TEST(K8sImportReference, NetworkPoliciesReachTheSamePairs) {
  const auto sets = networkPolicySets();
  for (Judge judge : {Judge::Compiler, Judge::Documents}) {
    Tally tally;
    for (size_t i = 0; i < sets.size(); i++) {
      EXPECT_EQ(compare(sets[i], &tally, judge), "") << "policy set " << i + 1;
    }
    EXPECT_EQ(tally.checked, sets.size() * 72 * 5);
    // Both answers are frequent: the sets decide something (3308 of 4320
    // allowed when written).
    EXPECT_GT(tally.allowed, 500u);
    EXPECT_GT(tally.checked - tally.allowed, 500u);
    std::cout << tally.checked << " pairs x ports checked, " << tally.allowed << " allowed\n";
  }
}

// The checks themselves: a set where microseg would have to agree with a
// wrong answer is caught (the evaluator is not vacuous).
TEST(K8sImportReference, TheCheckSeesADifference) {
  Tally checked;
  auto p = np("x", "", true, false);
  p.ingress.push_back({"Allow", std::nullopt, {kp(IPPROTO_TCP, 0, 0, "serve")}});
  std::vector<KPolicy> set{p};
  ASSERT_EQ(compare(set, &checked), "");
  // Kubernetes with the named port read as the PEER's port (the mistake
  // the split avoids) would let y/b reach x/a on 81: not what microseg does.
  auto wrong = set;
  wrong[0].ingress[0].ports = {kp(IPPROTO_TCP, 80, 81)};
  const std::string diff = compare(set, &checked, Judge::Compiler, &wrong);
  EXPECT_NE(diff.find("y/b -> x/a TCP 81: kubernetes allows, microseg denies"), std::string::npos) << diff;
}

KPolicy admin(int priority, std::optional<std::string> ns, std::optional<std::string> pod = std::nullopt) {
  KPolicy p;
  p.kind = "AdminNetworkPolicy";
  p.priority = priority;
  p.subjectNs = std::move(ns);
  p.podSel = std::move(pod);
  return p;
}

std::vector<std::vector<KPolicy>> adminSets() {
  std::vector<std::vector<KPolicy>> sets;
  // x: y/a allowed, the rest of y passed on, everyone else denied on TCP 80.
  auto anp = admin(10, "x");
  anp.ingressOn = true;
  anp.ingress.push_back({"Allow", std::vector<KPeer>{nsPods({{"ns", "y"}}, "a")}, {}});
  anp.ingress.push_back({"Pass", std::vector<KPeer>{nsPods({{"ns", "y"}}, std::nullopt)}, {}});
  anp.ingress.push_back({"Deny", std::vector<KPeer>{nsPods({}, std::nullopt)}, {kp(IPPROTO_TCP, 80)}});
  // Every pod: z may not use the named port "serve" (the subject's, any
  // protocol); nothing may call 10.2.0.0/16 (y, by IP) on TCP 81.
  auto anp2 = admin(20, std::nullopt);
  anp2.ingressOn = anp2.egressOn = true;
  anp2.ingress = {{"Deny", std::vector<KPeer>{nsPods({{"ns", "z"}}, std::nullopt)}, {kp(0, 0, 0, "serve")}}};
  anp2.egress = {{"Deny", std::vector<KPeer>{block("10.2.0.0/16")}, {kp(IPPROTO_TCP, 81)}}};
  // Pods c: egress passed to z, allowed to the named port of b pods
  // (the peer's), denied on a port range elsewhere.
  auto anp3 = admin(5, std::nullopt, "c");
  anp3.egressOn = true;
  anp3.egress = {{"Pass", std::vector<KPeer>{nsPods({{"ns", "z"}}, std::nullopt)}, {}},
                 {"Allow", std::vector<KPeer>{nsPods({}, "b")}, {kp(0, 0, 0, "serve")}},
                 {"Deny", std::vector<KPeer>{nsPods({}, std::nullopt)}, {kp(IPPROTO_TCP, 80, 81), kp(IPPROTO_UDP, 81)}}};
  KPolicy banp;
  banp.kind = "BaselineAdminNetworkPolicy";
  banp.ingressOn = banp.egressOn = true;
  banp.ingress.push_back({"Allow", std::vector<KPeer>{nsPods({{"ns", "x"}}, std::nullopt)}, {}});
  banp.ingress.push_back({"Deny", std::vector<KPeer>{nsPods({}, std::nullopt)}, {}});
  banp.egress.push_back({"Deny", std::vector<KPeer>{nsPods({{"tier", "back"}}, std::nullopt)}, {kp(IPPROTO_UDP, 0)}});
  auto nsY = np("y", "b", true, false);
  nsY.ingress.push_back({"Allow", std::vector<KPeer>{pods("a")}, {}});
  auto zOut = np("z", "", false, true);
  zOut.egress.push_back({"Allow", std::vector<KPeer>{nsPods({{"tier", "front"}}, std::nullopt)}, {kp(IPPROTO_TCP, 80)}});
  sets.push_back({anp});
  sets.push_back({anp2});
  sets.push_back({anp3});
  sets.push_back({banp});
  sets.push_back({anp, nsY});
  sets.push_back({anp3, zOut, banp});
  sets.push_back({anp, anp2, anp3, banp, nsY, zOut});
  return sets;
}

// The admin kinds' translation, read by the semantics it assumes (the
// documents evaluator): identical to Kubernetes on every pair.
TEST(K8sImportReference, AdminTiersByTheAssumedSemantics) {
  Tally tally;
  const auto sets = adminSets();
  for (size_t i = 0; i < sets.size(); i++) {
    EXPECT_EQ(compare(sets[i], &tally, Judge::Documents), "") << "policy set " << i + 1;
  }
  EXPECT_GT(tally.allowed, 300u);
  EXPECT_GT(tally.checked - tally.allowed, 300u);
  std::cout << tally.checked << " pairs x ports checked, " << tally.allowed << " allowed\n";
}

// ... and by microseg's compiler (the tiers of the policy language).
TEST(K8sImportReference, AdminTiersReachTheSamePairs) {
  Tally tally;
  const auto sets = adminSets();
  for (size_t i = 0; i < sets.size(); i++) {
    EXPECT_EQ(compare(sets[i], &tally, Judge::Compiler), "") << "policy set " << i + 1;
  }
}

}  // namespace
}  // namespace microseg::k8s
