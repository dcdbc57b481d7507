#include "k8s_import/read_objects.h"

#include <algorithm>
#include <array>
#include <set>

#include "k8s_import/labels.h"
#include "k8s_import/reader.h"
#include "policy/yaml_reader.h"

namespace microseg::k8s {

namespace {

struct KindInfo {
  std::string_view kind, apiVersion;
  bool namespaced;
};
constexpr std::array<KindInfo, 5> kKinds{{
    {"Namespace", "v1", false},
    {"Pod", "v1", true},
    {"NetworkPolicy", "networking.k8s.io/v1", true},
    {"AdminNetworkPolicy", "policy.networking.k8s.io/v1alpha1", false},
    {"BaselineAdminNetworkPolicy", "policy.networking.k8s.io/v1alpha1", false},
}};

const KindInfo* kindInfo(std::string_view kind) {
  for (const auto& k : kKinds) {
    if (k.kind == kind) return &k;
  }
  return nullptr;
}

std::string kindList() {
  std::string s;
  for (const auto& k : kKinds) s += (s.empty() ? "" : ", ") + std::string(k.kind);
  return s;
}

std::string quoted(std::string_view s) { return "'" + std::string(s) + "'"; }

}  // namespace

// ---- Namespace and Pod --------------------------------------------------------

namespace {

void readNamespace(Reader& r, const yaml::Node& obj, Objects& out) {
  Namespace ns;
  if (!r.metadata(obj, "Namespace", false, &ns.labels)) return;
  ns.ref = r.object();
  if (!validDnsLabel(ns.ref.name)) {
    r.error(obj["metadata"]["name"], "metadata.name", quoted(ns.ref.name) + " is not a valid namespace name");
  }
  out.namespaces.push_back(std::move(ns));
}

void readContainerPorts(Reader& r, const yaml::Node& containers, Pod& pod) {
  if (!r.sequence(containers, "spec.containers")) return;
  std::set<std::string> names;
  for (size_t i = 0; i < containers.size(); i++) {
    const yaml::Node c = containers.item(i);
    const std::string path = "spec.containers[" + std::to_string(i) + "].ports";
    if (!c.IsMap()) {
      r.error(c, "spec.containers[" + std::to_string(i) + "]", "expected a mapping");
      continue;
    }
    const yaml::Node ports = c["ports"];
    if (!ports || !r.sequence(ports, path)) continue;
    for (size_t j = 0; j < ports.size(); j++) {
      const yaml::Node p = ports.item(j);
      const std::string at = path + "[" + std::to_string(j) + "]";
      if (!p.IsMap()) {
        r.error(p, at, "expected a mapping");
        continue;
      }
      ContainerPort cp;
      auto number = r.integer(p["containerPort"], at + ".containerPort", 1, 65535);
      if (!number) continue;
      cp.port = static_cast<uint16_t>(*number);
      if (auto pr = p["protocol"]) {
        auto text = r.string(pr, at + ".protocol");
        if (!text) continue;
        // A pod may well serve SCTP: its port is kept (it never matches a
        // TCP or UDP rule), not refused.
        if (*text == "UDP") {
          cp.protocol = Protocol::UDP;
        } else if (*text == "SCTP") {
          cp.protocol = Protocol::SCTP;
        } else if (*text != "TCP") {
          r.error(pr, at + ".protocol", quoted(*text) + " is not a protocol (TCP, UDP, SCTP)");
          continue;
        }
      }
      if (auto n = p["name"]) {
        auto name = r.string(n, at + ".name");
        if (!name) continue;
        if (!validPortName(*name)) {
          r.error(n, at + ".name", quoted(*name) + " is not a valid port name (IANA service name)");
          continue;
        }
        if (!names.insert(*name).second) {
          r.error(n, at + ".name", "port name " + quoted(*name) + " is used twice in this pod");
          continue;
        }
        cp.name = *name;
      }
      pod.ports.push_back(cp);
    }
  }
}

void readPodIps(Reader& r, const yaml::Node& status, Pod& pod) {
  auto add = [&](const yaml::Node& n, const std::string& path) {
    auto text = r.string(n, path);
    if (!text) return;
    auto a = policy::parseAddress(*text);
    if (!a) {
      r.error(n, path, quoted(*text) + " is not an IP address");
      return;
    }
    if (std::find_if(pod.ips.begin(), pod.ips.end(), [&](const ms_addr& b) {
          return std::equal(std::begin(a->a), std::end(a->a), std::begin(b.a));
        }) == pod.ips.end()) {
      pod.ips.push_back(*a);
    }
  };
  if (auto ip = status["podIP"]; ip && !ip.IsNull()) add(ip, "status.podIP");
  if (auto ips = status["podIPs"]; ips && r.sequence(ips, "status.podIPs")) {
    for (size_t i = 0; i < ips.size(); i++) {
      const std::string at = "status.podIPs[" + std::to_string(i) + "]";
      if (!ips.item(i).IsMap() || !ips.item(i)["ip"]) {
        r.error(ips.item(i), at, "expected {ip: ADDRESS}");
        continue;
      }
      add(ips.item(i)["ip"], at + ".ip");
    }
  }
}

void readPod(Reader& r, const yaml::Node& obj, Objects& out) {
  Pod pod;
  if (!r.metadata(obj, "Pod", true, &pod.labels, &pod.uid)) return;
  pod.ref = r.object();
  // A pod labelled like a namespace label (labels.h) would pass for a pod
  // of another namespace.
  if (const yaml::Node l = obj["metadata"]["labels"]; l.IsMap()) {
    for (size_t i = 0; i < l.size(); i++) {
      if (reservedKey(l.key(i).Scalar())) {
        r.error(l.key(i), "metadata.labels",
                "label keys under microseg.dev are reserved for the import (they name namespaces and pods): " +
                    quoted(l.key(i).Scalar()));
      }
    }
  }
  const yaml::Node spec = obj["spec"];
  if (spec && !spec.IsMap()) r.error(spec, "spec", "expected a mapping");
  if (spec && spec.IsMap()) {
    if (auto c = spec["containers"]) readContainerPorts(r, c, pod);
    if (auto h = spec["hostNetwork"]) pod.hostNetwork = r.boolean(h, "spec.hostNetwork").value_or(false);
  }
  const yaml::Node status = obj["status"];
  if (status && !status.IsNull() && !status.IsMap()) r.error(status, "status", "expected a mapping");
  if (status && status.IsMap()) {
    if (auto q = status["qosClass"]) {
      auto text = r.string(q, "status.qosClass");
      if (text && *text != "Guaranteed" && *text != "Burstable" && *text != "BestEffort") {
        r.error(q, "status.qosClass", quoted(*text) + " is not a QoS class (Guaranteed, Burstable, BestEffort)");
      } else if (text) {
        pod.qosClass = *text;
      }
    }
    if (auto p = status["phase"]) pod.phase = r.string(p, "status.phase").value_or("");
    readPodIps(r, status, pod);
  }
  out.pods.push_back(std::move(pod));
}

void readObject(Reader& r, const yaml::Node& obj, std::string_view defaultKind, std::string_view defaultApi,
                Objects& out) {
  ObjectRef ref;
  ref.kind = "object";
  ref.name = "(unnamed)";
  ref.loc = r.loc(obj);
  r.setObject(ref);
  if (!obj.IsMap()) {
    r.error(obj, "", "expected a Kubernetes object (a mapping with apiVersion and kind)");
    return;
  }
  std::string kind(defaultKind), api(defaultApi);
  if (auto k = obj["kind"]) kind = r.string(k, "kind").value_or("");
  if (auto a = obj["apiVersion"]) api = r.string(a, "apiVersion").value_or("");
  if (kind.empty()) {
    r.error(obj, "kind", "required");
    return;
  }
  const bool list = kind == "List" || (kind.size() > 4 && kind.ends_with("List") && kindInfo(kind.substr(0, kind.size() - 4)));
  if (list) {
    ref.kind = kind;
    r.setObject(ref);
    if (!r.fields(obj, "", {"apiVersion", "kind", "metadata", "items"})) return;
    const yaml::Node items = obj["items"];
    if (!items || !r.sequence(items, "items")) {
      if (!items) r.error(obj, "items", "required");
      return;
    }
    // A typed list (PodList) may leave out its items' kind and apiVersion.
    const std::string itemKind = kind == "List" ? "" : kind.substr(0, kind.size() - 4);
    const std::string itemApi = kind == "List" ? "" : api;
    for (size_t i = 0; i < items.size(); i++) readObject(r, items.item(i), itemKind, itemApi, out);
    return;
  }
  const KindInfo* info = kindInfo(kind);
  if (info == nullptr) {
    r.peekObject(obj, kind);
    r.error(obj["kind"], "kind", quoted(kind) + " is not supported (supported: " + kindList() + ", and Lists of them)");
    return;
  }
  if (api != info->apiVersion) {
    r.peekObject(obj, kind);
    r.error(obj["apiVersion"] ? obj["apiVersion"] : obj, "apiVersion",
            quoted(api) + " is not supported for " + kind + " (expected " + std::string(info->apiVersion) + ")");
    return;
  }
  if (kind == "Namespace") {
    readNamespace(r, obj, out);
  } else if (kind == "Pod") {
    readPod(r, obj, out);
  } else if (kind == "NetworkPolicy") {
    readNetworkPolicy(r, obj, out);
  } else {
    readAdminPolicy(r, obj, kind == "AdminNetworkPolicy" ? Tier::Admin : Tier::Baseline, out);
  }
}

}  // namespace

void readObjects(std::string_view text, const std::string& file, ReadResult& out) {
  Reader r(file, out);
  yaml::Tree tree;
  auto err = yaml::readDocuments(text, tree, [&](const yaml::Tree& t) {
    const yaml::Node root = t.root();
    if (!root || root.IsNull()) return;  // an empty document
    try {
      readObject(r, root, "", "", out.objects);
    } catch (const yaml::SubscriptError& e) {
      // A key looked up in a scalar where a mapping was checked for
      // nowhere: still a located error, never a crash.
      SourceLocation l;
      l.file = file;
      l.line = e.mark.line + 1;
      l.column = e.mark.column + 1;
      out.errors.push_back({l, r.object().text() + ": expected a mapping"});
    }
  });
  if (err) {
    SourceLocation l;
    l.file = file;
    if (!err->at.isNull()) {
      l.line = err->at.line + 1;
      l.column = err->at.column + 1;
    }
    out.errors.push_back({l, "YAML/JSON syntax: " + err->text()});
  }
}

}  // namespace microseg::k8s
