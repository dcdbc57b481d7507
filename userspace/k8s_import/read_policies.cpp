// NetworkPolicy, AdminNetworkPolicy and BaselineAdminNetworkPolicy into
// PolicyObject (objects.h). Field sets, defaults and limits are those of
// the APIs (networking.k8s.io/v1; policy.networking.k8s.io/v1alpha1 as
// published by sigs.k8s.io/network-policy-api); what microseg cannot do
// (SCTP, `nodes` peers) is an error here, where the field is known.
#include <algorithm>
#include <set>
#include <span>

#include "k8s_import/labels.h"
#include "k8s_import/reader.h"

namespace microseg::k8s {

namespace {

std::string quoted(std::string_view s) { return "'" + std::string(s) + "'"; }
std::string at(const std::string& path, size_t i) { return path + "[" + std::to_string(i) + "]"; }

// A selector of pod labels may not name microseg's own keys (labels.h).
bool podSelectorKeys(Reader& r, const yaml::Node& n, const std::string& path, const Selector& s) {
  bool ok = true;
  auto refuse = [&](const std::string& key) {
    r.error(n, path, "label key " + quoted(key) + " is reserved for microseg (pods cannot carry it)");
    ok = false;
  };
  for (const auto& [k, v] : s.matchLabels) {
    if (reservedKey(k)) refuse(k);
  }
  for (const auto& e : s.matchExpressions) {
    if (reservedKey(e.key)) refuse(e.key);
  }
  return ok;
}

std::optional<Selector> podSelector(Reader& r, const yaml::Node& n, const std::string& path) {
  auto s = r.selector(n, path);
  if (s && !podSelectorKeys(r, n, path, *s)) return std::nullopt;
  return s;
}

// ---- NetworkPolicy ------------------------------------------------------------

std::optional<Port> npPort(Reader& r, const yaml::Node& n, const std::string& path) {
  if (!r.fields(n, path, {"protocol", "port", "endPort"})) return std::nullopt;
  Port p;
  p.loc = r.loc(n);
  p.path = path;
  if (auto pr = n["protocol"]) {
    auto proto = r.protocol(pr, path + ".protocol");
    if (!proto) return std::nullopt;
    p.protocol = *proto;
  }
  if (auto port = n["port"]) {
    if (port.IsScalar() && port.Tag() == "?" && !port.Scalar().empty() &&
        std::all_of(port.Scalar().begin(), port.Scalar().end(), ::isdigit)) {
      auto v = r.integer(port, path + ".port", 1, 65535);
      if (!v) return std::nullopt;
      p.port = static_cast<uint16_t>(*v);
    } else {
      auto name = r.string(port, path + ".port");
      if (!name) return std::nullopt;
      if (!validPortName(*name)) {
        const bool digits = !name->empty() && std::all_of(name->begin(), name->end(), ::isdigit);
        r.error(port, path + ".port",
                quoted(*name) + " is not a port number or a valid port name" +
                    (digits ? " (a quoted number is a name: write the number unquoted)" : ""));
        return std::nullopt;
      }
      p.named = *name;
    }
  }
  if (auto end = n["endPort"]) {
    auto v = r.integer(end, path + ".endPort", 1, 65535);
    if (!v) return std::nullopt;
    if (p.port == 0) {
      r.error(end, path + ".endPort", p.named.empty() ? "needs a port" : "needs a numeric port, not a named one");
      return std::nullopt;
    }
    if (*v < p.port) {
      r.error(end, path + ".endPort", std::to_string(*v) + " is below port " + std::to_string(p.port));
      return std::nullopt;
    }
    if (*v > p.port) p.endPort = static_cast<uint16_t>(*v);
  }
  return p;
}

std::optional<Peer> npPeer(Reader& r, const yaml::Node& n, const std::string& path, const std::string& ns) {
  if (!r.fields(n, path, {"podSelector", "namespaceSelector", "ipBlock"})) return std::nullopt;
  Peer p;
  p.loc = r.loc(n);
  p.path = path;
  const yaml::Node pods = n["podSelector"], nss = n["namespaceSelector"], block = n["ipBlock"];
  if (block) {
    if (pods || nss) {
      r.error(n, path, "ipBlock cannot be combined with podSelector or namespaceSelector");
      return std::nullopt;
    }
    const std::string bp = path + ".ipBlock";
    if (!r.fields(block, bp, {"cidr", "except"})) return std::nullopt;
    if (!block["cidr"]) {
      r.error(block, bp + ".cidr", "required");
      return std::nullopt;
    }
    auto cidr = r.cidr(block["cidr"], bp + ".cidr");
    if (!cidr) return std::nullopt;
    IpBlock b;
    b.cidr = *cidr;
    if (auto ex = block["except"]; ex && r.sequence(ex, bp + ".except")) {
      for (size_t i = 0; i < ex.size(); i++) {
        auto e = r.cidr(ex.item(i), at(bp + ".except", i));
        if (!e) return std::nullopt;
        if (!b.cidr.contains(*e)) {
          r.error(ex.item(i), at(bp + ".except", i), e->str() + " is not inside " + b.cidr.str());
          return std::nullopt;
        }
        b.except.push_back(*e);
      }
    }
    p.kind = Peer::Kind::Addresses;
    p.blocks.push_back(std::move(b));
    return p;
  }
  if (!pods && !nss) {
    r.error(n, path, "a peer needs podSelector, namespaceSelector or ipBlock");
    return std::nullopt;
  }
  p.ns = ns;
  if (nss) {
    auto s = r.selector(nss, path + ".namespaceSelector");
    if (!s) return std::nullopt;
    p.namespaces = *s;
  }
  if (pods) {
    auto s = podSelector(r, pods, path + ".podSelector");
    if (!s) return std::nullopt;
    p.pods = *s;
  }
  return p;
}

std::vector<Rule> npRules(Reader& r, const yaml::Node& list, const std::string& path, const char* peersKey,
                          const std::string& ns) {
  std::vector<Rule> out;
  if (!r.sequence(list, path)) return out;
  for (size_t i = 0; i < list.size(); i++) {
    const yaml::Node n = list.item(i);
    const std::string rp = at(path, i);
    if (!r.fields(n, rp, {peersKey, "ports"})) continue;
    Rule rule;
    rule.loc = r.loc(n);
    rule.path = rp;
    // `from`/`to` omitted, null or empty: every peer.
    if (auto peers = n[peersKey]; peers && r.sequence(peers, rp + "." + peersKey) && peers.size() > 0) {
      rule.peers.emplace();
      for (size_t j = 0; j < peers.size(); j++) {
        if (auto p = npPeer(r, peers.item(j), at(rp + "." + peersKey, j), ns)) rule.peers->push_back(std::move(*p));
      }
    }
    if (auto ports = n["ports"]; ports && r.sequence(ports, rp + ".ports")) {
      for (size_t j = 0; j < ports.size(); j++) {
        if (auto p = npPort(r, ports.item(j), at(rp + ".ports", j))) rule.ports.push_back(std::move(*p));
      }
    }
    out.push_back(std::move(rule));
  }
  return out;
}

// ---- AdminNetworkPolicy, BaselineAdminNetworkPolicy ---------------------------

std::optional<Peer> anpPods(Reader& r, const yaml::Node& n, const std::string& path) {
  Peer p;
  p.loc = r.loc(n);
  p.path = path;
  if (!r.fields(n, path, {"namespaceSelector", "podSelector"})) return std::nullopt;
  for (const char* key : {"namespaceSelector", "podSelector"}) {
    if (!n[key]) {
      r.error(n, path + "." + key, "required");
      return std::nullopt;
    }
  }
  auto nss = r.selector(n["namespaceSelector"], path + ".namespaceSelector");
  auto pods = podSelector(r, n["podSelector"], path + ".podSelector");
  if (!nss || !pods) return std::nullopt;
  p.namespaces = *nss;
  p.pods = *pods;
  return p;
}

// subject, or a peer of `from` / `to` (`egress`: networks and nodes allowed).
std::optional<Peer> anpPeer(Reader& r, const yaml::Node& n, const std::string& path, bool egress) {
  const bool ok = egress ? r.fields(n, path, {"namespaces", "pods", "nodes", "networks"})
                         : r.fields(n, path, {"namespaces", "pods"});
  if (!ok) return std::nullopt;
  if (n.size() != 1) {
    r.error(n, path, std::string("exactly one of namespaces, pods") + (egress ? ", nodes, networks" : "") +
                         " is required");
    return std::nullopt;
  }
  const std::string key(n.key(0).Scalar());
  const yaml::Node v = n.value(0);
  if (key == "namespaces") {
    auto s = r.selector(v, path + ".namespaces");
    if (!s) return std::nullopt;
    Peer p;
    p.loc = r.loc(n);
    p.path = path;
    p.namespaces = *s;
    return p;
  }
  if (key == "pods") return anpPods(r, v, path + ".pods");
  if (key == "nodes") {
    r.error(n.key(0), path + ".nodes",
            "cannot be translated: microseg knows no nodes (name their addresses with networks instead)");
    return std::nullopt;
  }
  // networks
  const std::string np = path + ".networks";
  if (!r.sequence(v, np, false)) return std::nullopt;
  if (v.size() == 0 || v.size() > 25) {
    r.error(v, np, "1 to 25 CIDRs are required");
    return std::nullopt;
  }
  Peer p;
  p.kind = Peer::Kind::Addresses;
  p.loc = r.loc(n);
  p.path = path;
  for (size_t i = 0; i < v.size(); i++) {
    auto c = r.cidr(v.item(i), at(np, i));
    if (!c) return std::nullopt;
    p.blocks.push_back({*c, {}});
  }
  return p;
}

std::optional<Port> anpPort(Reader& r, const yaml::Node& n, const std::string& path) {
  if (!r.fields(n, path, {"portNumber", "namedPort", "portRange"})) return std::nullopt;
  if (n.size() != 1) {
    r.error(n, path, "exactly one of portNumber, namedPort, portRange is required");
    return std::nullopt;
  }
  Port p;
  p.loc = r.loc(n);
  const std::string key(n.key(0).Scalar());
  const yaml::Node v = n.value(0);
  p.path = path + "." + key;
  if (key == "namedPort") {
    auto name = r.string(v, p.path);
    if (!name) return std::nullopt;
    if (!validPortName(*name)) {
      r.error(v, p.path, quoted(*name) + " is not a valid port name");
      return std::nullopt;
    }
    p.named = *name;
    p.protocol.reset();  // the container port's own
    return p;
  }
  const bool range = key == "portRange";
  if (!(range ? r.fields(v, p.path, {"protocol", "start", "end"}) : r.fields(v, p.path, {"protocol", "port"}))) {
    return std::nullopt;
  }
  if (auto pr = v["protocol"]) {
    auto proto = r.protocol(pr, p.path + ".protocol");
    if (!proto) return std::nullopt;
    p.protocol = *proto;
  }
  static constexpr const char* kRangeKeys[] = {"start", "end"};
  static constexpr const char* kNumberKeys[] = {"port"};
  for (const char* k : range ? std::span<const char* const>(kRangeKeys) : std::span<const char* const>(kNumberKeys)) {
    if (!v[k]) {
      r.error(v, p.path + "." + k, "required");
      return std::nullopt;
    }
  }
  auto first = r.integer(v[range ? "start" : "port"], p.path + (range ? ".start" : ".port"), 1, 65535);
  if (!first) return std::nullopt;
  p.port = static_cast<uint16_t>(*first);
  if (range) {
    auto last = r.integer(v["end"], p.path + ".end", 1, 65535);
    if (!last) return std::nullopt;
    if (*last < *first) {
      r.error(v["end"], p.path + ".end", std::to_string(*last) + " is below start " + std::to_string(*first));
      return std::nullopt;
    }
    if (*last > *first) p.endPort = static_cast<uint16_t>(*last);
  }
  return p;
}

std::vector<Rule> anpRules(Reader& r, const yaml::Node& list, const std::string& path, Tier tier, bool egress) {
  std::vector<Rule> out;
  if (!r.sequence(list, path)) return out;
  if (list.size() > 100) r.error(list, path, "at most 100 rules");
  const char* peersKey = egress ? "to" : "from";
  for (size_t i = 0; i < list.size(); i++) {
    const yaml::Node n = list.item(i);
    const std::string rp = at(path, i);
    if (!r.fields(n, rp, {"name", "action", peersKey, "ports"})) continue;
    Rule rule;
    rule.loc = r.loc(n);
    rule.path = rp;
    if (auto name = n["name"]) {
      // Informational in the API; the microseg rule is named by its index.
      auto s = r.string(name, rp + ".name");
      if (s && s->size() > 100) r.error(name, rp + ".name", "at most 100 characters");
    }
    const yaml::Node action = n["action"];
    auto a = action ? r.string(action, rp + ".action") : std::nullopt;
    if (!action) r.error(n, rp + ".action", "required");
    if (!a) continue;
    if (*a == "Allow") {
      rule.action = Action::Allow;
    } else if (*a == "Deny") {
      rule.action = Action::Deny;
    } else if (*a == "Pass" && tier == Tier::Admin) {
      rule.action = Action::Pass;
    } else {
      r.error(action, rp + ".action",
              quoted(*a) + " is not an action (" + (tier == Tier::Admin ? "Allow, Deny, Pass)" : "Allow, Deny)"));
      continue;
    }
    const yaml::Node peers = n[peersKey];
    const std::string pp = rp + "." + peersKey;
    if (!peers || !r.sequence(peers, pp, false) || peers.size() == 0 || peers.size() > 100) {
      if (!peers || peers.IsSequence()) r.error(peers ? peers : n, pp, "1 to 100 peers are required");
      continue;
    }
    rule.peers.emplace();
    for (size_t j = 0; j < peers.size(); j++) {
      if (auto p = anpPeer(r, peers.item(j), at(pp, j), egress)) rule.peers->push_back(std::move(*p));
    }
    if (auto ports = n["ports"]; ports && r.sequence(ports, rp + ".ports", false)) {
      if (ports.size() == 0 || ports.size() > 100) r.error(ports, rp + ".ports", "1 to 100 ports are required");
      for (size_t j = 0; j < ports.size(); j++) {
        if (auto p = anpPort(r, ports.item(j), at(rp + ".ports", j))) rule.ports.push_back(std::move(*p));
      }
    }
    out.push_back(std::move(rule));
  }
  return out;
}

}  // namespace

void readNetworkPolicy(Reader& r, const yaml::Node& obj, Objects& out) {
  if (!r.metadata(obj, "NetworkPolicy", true)) return;
  const size_t before = r.errorCount();
  r.fields(obj, "", {"apiVersion", "kind", "metadata", "spec", "status"});
  PolicyObject p;
  p.ref = r.object();
  p.tier = Tier::Application;
  const yaml::Node spec = obj["spec"];
  if (!spec) {
    r.error(obj, "spec", "required");
    return;
  }
  if (!r.fields(spec, "spec", {"podSelector", "policyTypes", "ingress", "egress"})) return;
  p.subject.loc = r.loc(spec);
  p.subject.path = "spec.podSelector";
  p.subject.ns = p.ref.ns;
  if (!spec["podSelector"]) {
    r.error(spec, "spec.podSelector", "required (write {} for every pod of the namespace)");
  } else if (auto s = podSelector(r, spec["podSelector"], "spec.podSelector")) {
    p.subject.pods = *s;
  }
  if (auto in = spec["ingress"]) p.ingress = npRules(r, in, "spec.ingress", "from", p.ref.ns);
  if (auto eg = spec["egress"]) p.egress = npRules(r, eg, "spec.egress", "to", p.ref.ns);
  const yaml::Node types = spec["policyTypes"];
  if (types && r.sequence(types, "spec.policyTypes") && types.size() > 0) {
    std::set<std::string> seen;
    for (size_t i = 0; i < types.size(); i++) {
      auto t = r.string(types.item(i), at("spec.policyTypes", i));
      if (!t) continue;
      if (*t != "Ingress" && *t != "Egress") {
        r.error(types.item(i), at("spec.policyTypes", i), quoted(*t) + " is not a policy type (Ingress, Egress)");
      } else if (!seen.insert(*t).second) {
        r.error(types.item(i), at("spec.policyTypes", i), "duplicate " + quoted(*t));
      }
    }
    p.ingressOn = seen.count("Ingress") > 0;
    p.egressOn = seen.count("Egress") > 0;
    // Kubernetes ignores the rules of a direction policyTypes leaves out.
    if (!p.ingressOn && !p.ingress.empty()) {
      r.warning(spec["ingress"], "spec.ingress", "ignored: policyTypes does not list Ingress (as in Kubernetes)");
      p.ingress.clear();
    }
    if (!p.egressOn && !p.egress.empty()) {
      r.warning(spec["egress"], "spec.egress", "ignored: policyTypes does not list Egress (as in Kubernetes)");
      p.egress.clear();
    }
  } else {
    // The API's defaults: Ingress always, Egress when there are egress rules.
    p.ingressOn = true;
    p.egressOn = !p.egress.empty();
  }
  if (r.errorCount() == before) out.policies.push_back(std::move(p));
}

void readAdminPolicy(Reader& r, const yaml::Node& obj, Tier tier, Objects& out) {
  const char* kind = tier == Tier::Admin ? "AdminNetworkPolicy" : "BaselineAdminNetworkPolicy";
  if (!r.metadata(obj, kind, false)) return;
  const size_t before = r.errorCount();
  r.fields(obj, "", {"apiVersion", "kind", "metadata", "spec", "status"});
  PolicyObject p;
  p.ref = r.object();
  p.tier = tier;
  if (tier == Tier::Baseline && p.ref.name != "default") {
    r.error(obj["metadata"]["name"], "metadata.name", "a BaselineAdminNetworkPolicy must be named 'default'");
  }
  const yaml::Node spec = obj["spec"];
  if (!spec) {
    r.error(obj, "spec", "required");
    return;
  }
  const bool ok = tier == Tier::Admin ? r.fields(spec, "spec", {"priority", "subject", "ingress", "egress"})
                                      : r.fields(spec, "spec", {"subject", "ingress", "egress"});
  if (!ok) return;
  if (tier == Tier::Admin) {
    if (!spec["priority"]) {
      r.error(spec, "spec.priority", "required");
    } else if (auto v = r.integer(spec["priority"], "spec.priority", 0, 1000)) {
      p.priority = static_cast<int>(*v);
    }
  }
  if (!spec["subject"]) {
    r.error(spec, "spec.subject", "required");
  } else if (auto s = anpPeer(r, spec["subject"], "spec.subject", false)) {
    p.subject = std::move(*s);
  }
  if (auto in = spec["ingress"]) {
    p.ingressOn = true;
    p.ingress = anpRules(r, in, "spec.ingress", tier, false);
  }
  if (auto eg = spec["egress"]) {
    p.egressOn = true;
    p.egress = anpRules(r, eg, "spec.egress", tier, true);
  }
  if (r.errorCount() == before) out.policies.push_back(std::move(p));
}

}  // namespace microseg::k8s
