// The Kubernetes side of the reference check (k8s_import_reference_test.cpp):
// a cluster of namespaces x, y, z with pods a, b, c, policies described
// as plain data, what Kubernetes' documented semantics give them (written
// here from the API documentation, independent of the importer), and the
// same policies as Kubernetes YAML for the importer.
#pragma once

#include <arpa/inet.h>

#include <algorithm>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace microseg::k8s::truth {

// ---- the cluster -----------------------------------------------------------------
// Pod P of namespace N: labels {pod: P}, IP 10.<N+1>.0.<P+1>; named port
// "serve": a TCP 80, b TCP 81, c UDP 81 (a name, three meanings).
inline const char* kNs[] = {"x", "y", "z"};
inline const char* kPods[] = {"a", "b", "c"};

struct KPod {
  std::string ns, name, ip;
  int servePort;
  int serveProto;  // IPPROTO_TCP / IPPROTO_UDP
};

inline std::vector<KPod> pods() {
  std::vector<KPod> out;
  for (int n = 0; n < 3; n++) {
    for (int p = 0; p < 3; p++) {
      out.push_back({kNs[n], kPods[p], "10." + std::to_string(n + 1) + ".0." + std::to_string(p + 1), p == 0 ? 80 : 81,
                     p == 2 ? IPPROTO_UDP : IPPROTO_TCP});
    }
  }
  return out;
}

inline std::string clusterYaml() {
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
inline KPort kp(int proto, int port = 0, int end = 0, std::string named = "") { return KPort{proto, port, end, std::move(named)}; }
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

inline std::map<std::string, std::string> nsLabelsOf(const std::string& ns) {
  return {{"ns", ns}, {"tier", ns == "z" ? "back" : "front"}, {"kubernetes.io/metadata.name", ns}};
}

inline uint32_t ip4(const std::string& s) {
  in_addr a{};
  inet_pton(AF_INET, s.c_str(), &a);
  return ntohl(a.s_addr);
}
inline bool inCidr(const std::string& ip, const std::string& cidr) {
  const auto slash = cidr.find('/');
  const int len = std::stoi(cidr.substr(slash + 1));
  const uint32_t mask = len == 0 ? 0 : ~uint32_t(0) << (32 - len);
  return (ip4(ip) & mask) == (ip4(cidr.substr(0, slash)) & mask);
}

inline bool peerMatches(const KPeer& peer, const std::string& policyNs, const KPod& other) {
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
inline bool portMatches(const std::vector<KPort>& ports, const KPod& target, int proto, int port) {
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

inline bool selects(const KPolicy& p, const KPod& pod) {
  if (p.kind == "NetworkPolicy") return pod.ns == p.ns && (p.podSel->empty() || *p.podSel == pod.name);
  if (p.subjectNs && *p.subjectNs != pod.ns) return false;
  return !p.podSel || p.podSel->empty() || *p.podSel == pod.name;
}

// First matching rule's action of an ordered list, or "".
inline std::string firstMatch(const KPolicy& p, const std::vector<KRule>& rules, const KPod& subject, const KPod& other,
                       bool egress, int proto, int port) {
  for (const auto& r : rules) {
    const bool peer = !r.peers || std::any_of(r.peers->begin(), r.peers->end(),
                                              [&](const KPeer& k) { return peerMatches(k, p.ns, other); });
    if (peer && portMatches(r.ports, egress ? other : subject, proto, port)) return r.action;
  }
  return "";
}

// One direction at `subject` (ingress: from `other`; egress: to `other`).
inline bool k8sAllows(const std::vector<KPolicy>& set, const KPod& subject, const KPod& other, bool egress, int proto,
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
inline std::string peerYaml(const KPolicy& p, const KPeer& k) {
  const bool anp = p.kind != "NetworkPolicy";
  if (!k.cidr.empty() && anp) return "{networks: [" + k.cidr + "]}";  // (no except there)
  if (!k.cidr.empty()) {
    return "{ipBlock: {cidr: " + k.cidr + (k.except.empty() ? "" : ", except: [" + k.except + "]") + "}}";
  }
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

inline std::string portYaml(const KPolicy& p, const KPort& k) {
  const std::string proto = k.proto == IPPROTO_UDP ? "UDP" : "TCP";
  if (p.kind != "NetworkPolicy") {
    if (!k.named.empty()) return "{namedPort: " + k.named + "}";
    // Every port of a protocol: the whole range (the API has no port-less form).
    if (k.port == 0) return "{portRange: {protocol: " + proto + ", start: 1, end: 65535}}";
    if (k.end) return "{portRange: {protocol: " + proto + ", start: " + std::to_string(k.port) + ", end: " + std::to_string(k.end) + "}}";
    return "{portNumber: {protocol: " + proto + ", port: " + std::to_string(k.port) + "}}";
  }
  std::string s = "{protocol: " + proto;
  if (!k.named.empty()) s += ", port: " + k.named;
  if (k.port) s += ", port: " + std::to_string(k.port);
  if (k.end) s += ", endPort: " + std::to_string(k.end);
  return s + "}";
}

inline std::string rulesYaml(const KPolicy& p, const std::vector<KRule>& rules, const char* peersKey) {
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

inline std::string policyYaml(const KPolicy& p, int i) {
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

}  // namespace microseg::k8s::truth
