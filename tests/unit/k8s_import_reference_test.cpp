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
#include <optional>
#include <string>
#include <vector>

#include "compiler/compiler.h"
#include "compiler/explain.h"
#include "identity/identities.h"
#include "k8s_import/importer.h"
#include "policy/parser.h"

namespace microseg::k8s {
namespace {

// ---- the cluster -----------------------------------------------------------------
// Pod P of namespace N: labels {pod: P}, IP 10.<N+1>.0.<P+1>; named port
// "serve": a TCP 80, b TCP 81, c UDP 81 (a name, three meanings).
const char* kNs[] = {"x", "y", "z"};
const char* kPods[] = {"a", "b", "c"};

struct KPod {
  std::string ns, name, ip;
  int servePort;
  int serveProto;  // IPPROTO_TCP / IPPROTO_UDP
};

std::vector<KPod> pods() {
  std::vector<KPod> out;
  for (int n = 0; n < 3; n++) {
    for (int p = 0; p < 3; p++) {
      out.push_back({kNs[n], kPods[p], "10." + std::to_string(n + 1) + ".0." + std::to_string(p + 1), p == 0 ? 80 : 81,
                     p == 2 ? IPPROTO_UDP : IPPROTO_TCP});
    }
  }
  return out;
}

std::string clusterYaml() {
  std::string s;
  for (const char* ns : kNs) {
    s += "---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: " + std::string(ns) + "\n  labels: {ns: " + ns +
         (std::string(ns) == "z" ? ", tier: back" : ", tier: front") + "}\n";
  }
  for (const auto& p : pods()) {
    s += "---\napiVersion: v1\nkind: Pod\nmetadata: {name: " + p.name + ", namespace: " + p.ns +
         ", labels: {pod: " + p.name + "}}\nspec:\n  containers:\n  - name: c\n    ports:\n" +
         "    - {name: serve, containerPort: " + std::to_string(p.servePort) +
         ", protocol: " + (p.serveProto == IPPROTO_TCP ? "TCP" : "UDP") + "}\n" +
         "status: {phase: Running, podIP: " + p.ip + "}\n";
  }
  return s;
}

// ---- Kubernetes semantics, by hand ------------------------------------------------
// The policies of a scenario, as the evaluator reads them (the same
// objects the YAML below spells).
struct KPeer {
  // pods: nsSel/podSel, each nullopt = not given. ipBlock: cidr + except.
  std::optional<std::map<std::string, std::string>> nsLabels;
  std::optional<std::string> nsNotIn;  // namespaceSelector {ns NotIn [v]}
  std::optional<std::string> pod;      // podSelector {pod: v}; "" = {}
  std::string cidr, except;           // "10.1.0.0/16", "10.1.0.2/32"
};
struct KPort {
  int proto = IPPROTO_TCP;
  int port = 0, end = 0;  // 0: every port
  std::string named;
};
KPort kp(int proto, int port = 0, int end = 0, std::string named = "") { return KPort{proto, port, end, std::move(named)}; }
struct KRule {
  std::string action = "Allow";
  std::optional<std::vector<KPeer>> peers;
  std::vector<KPort> ports;
};
struct KPolicy {
  std::string kind = "NetworkPolicy";  // or AdminNetworkPolicy / BaselineAdminNetworkPolicy
  std::string ns;                      // NetworkPolicy
  std::optional<std::string> podSel;   // subject pod label, "" = every pod
  std::optional<std::string> subjectNs;  // admin kinds: namespace name, nullopt = all
  int priority = 0;
  bool ingressOn = false, egressOn = false;
  // NetworkPolicy without policyTypes: ingressOn must be true, egressOn
  // true iff there are egress rules (the API's defaults, which the
  // evaluator takes from these two).
  bool omitTypes = false;
  std::vector<KRule> ingress, egress;
};

std::map<std::string, std::string> nsLabelsOf(const std::string& ns) {
  return {{"ns", ns}, {"tier", ns == "z" ? "back" : "front"}, {"kubernetes.io/metadata.name", ns}};
}

uint32_t ip4(const std::string& s) {
  in_addr a{};
  inet_pton(AF_INET, s.c_str(), &a);
  return ntohl(a.s_addr);
}
bool inCidr(const std::string& ip, const std::string& cidr) {
  const auto slash = cidr.find('/');
  const int len = std::stoi(cidr.substr(slash + 1));
  const uint32_t mask = len == 0 ? 0 : ~uint32_t(0) << (32 - len);
  return (ip4(ip) & mask) == (ip4(cidr.substr(0, slash)) & mask);
}

bool peerMatches(const KPeer& peer, const std::string& policyNs, const KPod& other) {
  if (!peer.cidr.empty()) return inCidr(other.ip, peer.cidr) && (peer.except.empty() || !inCidr(other.ip, peer.except));
  const auto nsl = nsLabelsOf(other.ns);
  if (peer.nsLabels || peer.nsNotIn) {
    if (peer.nsLabels) {
      for (const auto& [k, v] : *peer.nsLabels) {
        auto it = nsl.find(k);
        if (it == nsl.end() || it->second != v) return false;
      }
    }
    if (peer.nsNotIn && nsl.at("ns") == *peer.nsNotIn) return false;
  } else if (other.ns != policyNs) {
    return false;
  }
  return !peer.pod || peer.pod->empty() || *peer.pod == other.name;
}

// `target`: whose port it is (the subject for ingress, the peer for egress).
bool portMatches(const std::vector<KPort>& ports, const KPod& target, int proto, int port) {
  if (ports.empty()) return true;
  for (const auto& p : ports) {
    if (!p.named.empty()) {
      if (target.servePort == port && target.serveProto == proto && p.named == "serve" &&
          (p.proto == 0 || p.proto == proto)) {
        return true;
      }
      continue;
    }
    if (p.proto != proto) continue;
    if (p.port == 0 || (port >= p.port && port <= (p.end ? p.end : p.port))) return true;
  }
  return false;
}

bool selects(const KPolicy& p, const KPod& pod) {
  if (p.kind == "NetworkPolicy") return pod.ns == p.ns && (p.podSel->empty() || *p.podSel == pod.name);
  if (p.subjectNs && *p.subjectNs != pod.ns) return false;
  return !p.podSel || p.podSel->empty() || *p.podSel == pod.name;
}

// First matching rule's action of an ordered list, or "".
std::string firstMatch(const KPolicy& p, const std::vector<KRule>& rules, const KPod& subject, const KPod& other,
                       bool egress, int proto, int port) {
  for (const auto& r : rules) {
    const bool peer = !r.peers || std::any_of(r.peers->begin(), r.peers->end(),
                                              [&](const KPeer& k) { return peerMatches(k, p.ns, other); });
    if (peer && portMatches(r.ports, egress ? other : subject, proto, port)) return r.action;
  }
  return "";
}

// One direction at `subject` (ingress: from `other`; egress: to `other`).
bool k8sAllows(const std::vector<KPolicy>& set, const KPod& subject, const KPod& other, bool egress, int proto,
               int port) {
  std::vector<const KPolicy*> admin;
  for (const auto& p : set) {
    if (p.kind == "AdminNetworkPolicy" && selects(p, subject) && (egress ? p.egressOn : p.ingressOn)) admin.push_back(&p);
  }
  std::sort(admin.begin(), admin.end(), [](auto* a, auto* b) { return a->priority < b->priority; });
  for (const KPolicy* p : admin) {
    const std::string a = firstMatch(*p, egress ? p->egress : p->ingress, subject, other, egress, proto, port);
    if (a == "Allow") return true;
    if (a == "Deny") return false;
    if (a == "Pass") break;
  }
  bool isolated = false, allowed = false;
  for (const auto& p : set) {
    if (p.kind != "NetworkPolicy" || !selects(p, subject) || !(egress ? p.egressOn : p.ingressOn)) continue;
    isolated = true;
    allowed = allowed || firstMatch(p, egress ? p.egress : p.ingress, subject, other, egress, proto, port) == "Allow";
  }
  if (isolated) return allowed;
  for (const auto& p : set) {
    if (p.kind != "BaselineAdminNetworkPolicy" || !selects(p, subject)) continue;
    const std::string a = firstMatch(p, egress ? p.egress : p.ingress, subject, other, egress, proto, port);
    if (!a.empty()) return a == "Allow";
  }
  return true;
}

// ---- the same policies as YAML ----------------------------------------------------
std::string peerYaml(const KPolicy& p, const KPeer& k) {
  if (!k.cidr.empty()) {
    return "{ipBlock: {cidr: " + k.cidr + (k.except.empty() ? "" : ", except: [" + k.except + "]") + "}}";
  }
  const bool anp = p.kind != "NetworkPolicy";
  std::string ns;
  if (k.nsLabels || k.nsNotIn) {
    ns = "{";
    if (k.nsLabels) {
      ns += "matchLabels: {";
      for (const auto& [a, b] : *k.nsLabels) ns += a + ": " + b + ", ";
      ns += "}";
    }
    if (k.nsNotIn) ns += std::string(k.nsLabels ? ", " : "") + "matchExpressions: [{key: ns, operator: NotIn, values: [" + *k.nsNotIn + "]}]";
    ns += "}";
  }
  const std::string pod = !k.pod ? "" : k.pod->empty() ? "{}" : "{matchLabels: {pod: " + *k.pod + "}}";
  if (anp) {
    if (!k.pod) return "{namespaces: " + (ns.empty() ? "{}" : ns) + "}";
    return "{pods: {namespaceSelector: " + (ns.empty() ? "{}" : ns) + ", podSelector: " + pod + "}}";
  }
  std::string s = "{";
  if (!ns.empty()) s += "namespaceSelector: " + ns;
  if (!pod.empty()) s += std::string(ns.empty() ? "" : ", ") + "podSelector: " + pod;
  return s + "}";
}

std::string portYaml(const KPolicy& p, const KPort& k) {
  const std::string proto = k.proto == IPPROTO_UDP ? "UDP" : "TCP";
  if (p.kind != "NetworkPolicy") {
    if (!k.named.empty()) return "{namedPort: " + k.named + "}";
    if (k.end) return "{portRange: {protocol: " + proto + ", start: " + std::to_string(k.port) + ", end: " + std::to_string(k.end) + "}}";
    return "{portNumber: {protocol: " + proto + ", port: " + std::to_string(k.port) + "}}";
  }
  std::string s = "{protocol: " + proto;
  if (!k.named.empty()) s += ", port: " + k.named;
  if (k.port) s += ", port: " + std::to_string(k.port);
  if (k.end) s += ", endPort: " + std::to_string(k.end);
  return s + "}";
}

std::string rulesYaml(const KPolicy& p, const std::vector<KRule>& rules, const char* peersKey) {
  std::string s = "[";
  for (const auto& r : rules) {
    s += "{";
    if (p.kind != "NetworkPolicy") s += "action: " + r.action + ", ";
    if (r.peers) {
      s += std::string(peersKey) + ": [";
      for (const auto& k : *r.peers) s += peerYaml(p, k) + ", ";
      s += "], ";
    }
    if (!r.ports.empty()) {
      s += "ports: [";
      for (const auto& k : r.ports) s += portYaml(p, k) + ", ";
      s += "]";
    }
    s += "}, ";
  }
  return s + "]";
}

std::string policyYaml(const KPolicy& p, int i) {
  std::string s = "---\n";
  if (p.kind == "NetworkPolicy") {
    s += "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: p" + std::to_string(i) +
         ", namespace: " + p.ns + "}\nspec:\n  podSelector: " +
         (p.podSel->empty() ? "{}" : "{matchLabels: {pod: " + *p.podSel + "}}") + "\n";
    if (!p.omitTypes) {
      s += "  policyTypes: [";
      if (p.ingressOn) s += "Ingress, ";
      if (p.egressOn) s += "Egress";
      s += "]\n";
    }
  } else {
    s += "apiVersion: policy.networking.k8s.io/v1alpha1\nkind: " + p.kind + "\nmetadata: {name: " +
         (p.kind == "AdminNetworkPolicy" ? "p" + std::to_string(i) : "default") + "}\nspec:\n";
    if (p.kind == "AdminNetworkPolicy") s += "  priority: " + std::to_string(p.priority) + "\n";
    const std::string nsSel = p.subjectNs ? "{matchLabels: {ns: " + *p.subjectNs + "}}" : "{}";
    if (p.podSel) {
      s += "  subject: {pods: {namespaceSelector: " + nsSel + ", podSelector: " +
           (p.podSel->empty() ? "{}" : "{matchLabels: {pod: " + *p.podSel + "}}") + "}}\n";
    } else {
      s += "  subject: {namespaces: " + nsSel + "}\n";
    }
  }
  if (p.ingressOn) s += "  ingress: " + rulesYaml(p, p.ingress, "from") + "\n";
  if (p.egressOn) s += "  egress: " + rulesYaml(p, p.egress, "to") + "\n";
  return s;
}

// ---- the comparison -----------------------------------------------------------------
struct Probe {
  int proto, port;
};
const Probe kProbes[] = {{IPPROTO_TCP, 80}, {IPPROTO_TCP, 81}, {IPPROTO_TCP, 82}, {IPPROTO_UDP, 80}, {IPPROTO_UDP, 81}};

// Differences between the two, one line each; "" if none. `truth`: the
// set Kubernetes evaluates, if not `set` (to show the check can fail).
struct Tally {
  size_t checked = 0, allowed = 0;
};
std::string compare(const std::vector<KPolicy>& set, Tally* tally, const std::vector<KPolicy>* truth = nullptr) {
  if (truth == nullptr) truth = &set;
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
  auto parsed = policy::parseText(imported.yaml, "imported.yaml");
  if (parsed.ok()) policy::validateBundle(parsed.bundle, parsed.errors);
  if (!parsed.ok()) {
    std::string s = "imported documents do not validate:\n";
    for (const auto& d : parsed.errors) s += d.str() + "\n";
    return s + imported.yaml;
  }
  const auto ids = identity::assignIdentities(parsed.bundle);
  compiler::RuleRegistry reg;
  compiler::Options o;
  o.defaultEnforcement = compiler::DefaultEnforcement::Selected;
  const auto compiled = compiler::compile(parsed.bundle, ids, reg, o);
  std::string diffs;
  for (const auto& src : pods()) {
    for (const auto& dst : pods()) {
      if (src.ns == dst.ns && src.name == dst.name) continue;
      const uint32_t s = ids.byWorkload.at(src.ns + "-" + src.name), d = ids.byWorkload.at(dst.ns + "-" + dst.name);
      for (const auto& pr : kProbes) {
        const bool want = k8sAllows(*truth, src, dst, true, pr.proto, pr.port) &&
                          k8sAllows(*truth, dst, src, false, pr.proto, pr.port);
        const auto eg = compiler::evaluate(compiled, s, d, policy::Direction::Egress, pr.proto, pr.port);
        const auto in = compiler::evaluate(compiled, d, s, policy::Direction::Ingress, pr.proto, pr.port);
        const bool got = eg.verdict == MS_VERDICT_ALLOW && in.verdict == MS_VERDICT_ALLOW;
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
  Tally tally;
  const auto sets = networkPolicySets();
  for (size_t i = 0; i < sets.size(); i++) {
    EXPECT_EQ(compare(sets[i], &tally), "") << "policy set " << i + 1;
  }
  EXPECT_EQ(tally.checked, sets.size() * 72 * 5);
  // Both answers are frequent: the sets decide something (3022 of 3960
  // allowed when written).
  EXPECT_GT(tally.allowed, 500u);
  EXPECT_GT(tally.checked - tally.allowed, 500u);
  std::cout << tally.checked << " pairs x ports checked, " << tally.allowed << " allowed\n";
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
  const std::string diff = compare(set, &checked, &wrong);
  EXPECT_NE(diff.find("y/b -> x/a TCP 81: kubernetes allows, microseg denies"), std::string::npos) << diff;
}

bool tiersKnown() {
  auto r = policy::parseText(
      "apiVersion: microseg.dev/v1\nkind: Policy\nmetadata: {name: t}\n"
      "spec: {tier: baseline, selector: {matchLabels: {a: b}}, ingress: []}\n",
      "probe.yaml");
  return r.ok();
}

TEST(K8sImportReference, AdminTiersReachTheSamePairs) {
  if (!tiersKnown()) GTEST_SKIP() << "the policy language has no tiers yet: this check runs once it has";
  std::vector<std::vector<KPolicy>> sets;
  KPolicy anp;
  anp.kind = "AdminNetworkPolicy";
  anp.priority = 10;
  anp.subjectNs = "x";
  anp.ingressOn = true;
  anp.ingress.push_back({"Allow", std::vector<KPeer>{nsPods({{"ns", "y"}}, "a")}, {}});
  anp.ingress.push_back({"Pass", std::vector<KPeer>{nsPods({{"ns", "y"}}, std::nullopt)}, {}});
  anp.ingress.push_back({"Deny", std::vector<KPeer>{nsPods({}, std::nullopt)}, {kp(IPPROTO_TCP, 80)}});
  KPolicy anp2 = anp;
  anp2.priority = 20;
  anp2.subjectNs.reset();
  anp2.ingress = {{"Deny", std::vector<KPeer>{nsPods({{"ns", "z"}}, std::nullopt)}, {kp(0, 0, 0, "serve")}}};
  anp2.egressOn = true;
  anp2.egress = {{"Deny", std::vector<KPeer>{block("10.2.0.0/16")}, {kp(IPPROTO_TCP, 81)}}};
  KPolicy banp;
  banp.kind = "BaselineAdminNetworkPolicy";
  banp.ingressOn = true;
  banp.ingress.push_back({"Allow", std::vector<KPeer>{nsPods({{"ns", "x"}}, std::nullopt)}, {}});
  banp.ingress.push_back({"Deny", std::vector<KPeer>{nsPods({}, std::nullopt)}, {}});
  auto nsY = np("y", "b", true, false);
  nsY.ingress.push_back({"Allow", std::vector<KPeer>{pods("a")}, {}});
  sets.push_back({anp});
  sets.push_back({anp2});
  sets.push_back({banp});
  sets.push_back({anp, anp2, banp, nsY});
  Tally checked;
  for (size_t i = 0; i < sets.size(); i++) EXPECT_EQ(compare(sets[i], &checked), "") << "policy set " << i + 1;
}

}  // namespace
}  // namespace microseg::k8s
