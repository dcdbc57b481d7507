// The Kubernetes objects `microseg import k8s` reads, as it needs them:
// Namespace and Pod (v1), NetworkPolicy (networking.k8s.io/v1),
// AdminNetworkPolicy and BaselineAdminNetworkPolicy
// (policy.networking.k8s.io/v1alpha1). The three policy kinds share one
// form (PolicyObject): a subject, a tier, and ordered rules of peers and
// ports, so the translation (translate.h) has one path for all of them.
// Pure data; read_objects.h fills it from YAML or JSON.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "policy/cidr.h"
#include "policy/model.h"

namespace microseg::k8s {

using policy::Labels;
using policy::SourceLocation;

// Which object something came from, for messages: "NetworkPolicy shop/api-in".
struct ObjectRef {
  std::string kind;
  std::string ns;  // "" for cluster-scoped kinds
  std::string name;
  SourceLocation loc;  // the object's first line
  std::string text() const { return kind + " " + (ns.empty() ? name : ns + "/" + name); }
};

// A Kubernetes label selector. An empty one selects everything.
struct Selector {
  Labels matchLabels;
  std::vector<policy::LabelRequirement> matchExpressions;
  bool empty() const { return matchLabels.empty() && matchExpressions.empty(); }
  // Kubernetes semantics (those of policy::LabelSelector::matches).
  bool matches(const Labels& labels) const;
};

enum class Protocol : uint8_t { TCP, UDP, SCTP };
const char* protocolName(Protocol p);

struct Namespace {
  ObjectRef ref;
  Labels labels;
};

struct ContainerPort {
  std::string name;  // "" if unnamed
  uint16_t port = 0;
  Protocol protocol = Protocol::TCP;
};

struct Pod {
  ObjectRef ref;
  std::string uid;       // metadata.uid, "" if absent
  Labels labels;
  std::vector<ContainerPort> ports;  // spec.containers[*].ports
  std::string qosClass;  // status.qosClass, "" if absent
  std::vector<ms_addr> ips;  // status.podIP and status.podIPs
  bool hostNetwork = false;
  std::string phase;  // status.phase
  // Its IPs name it (ipBlock / networks peers): not on the node's network,
  // not finished (a finished pod's address may already be another pod's).
  bool ipsNameIt() const { return !hostNetwork && phase != "Succeeded" && phase != "Failed"; }
  // The port named `name` (with `protocol`, if given), if the pod has one.
  std::optional<ContainerPort> namedPort(const std::string& name, std::optional<Protocol> protocol) const;
};

enum class Tier : uint8_t { Admin, Application, Baseline };
enum class Action : uint8_t { Allow, Deny, Pass };

// One port item. Neither `port` nor `named`: every port of `protocol`.
struct Port {
  SourceLocation loc;
  std::string path;  // "spec.ingress[0].ports[1]"
  // A named port: nullopt means the container port's own protocol (ANP's
  // namedPort); a NetworkPolicy's named port has its item's protocol.
  std::optional<Protocol> protocol = Protocol::TCP;
  uint16_t port = 0;     // 0: every port, or named
  uint16_t endPort = 0;  // 0: just `port`
  std::string named;
};

struct IpBlock {
  policy::Cidr cidr;
  std::vector<policy::Cidr> except;
  bool contains(const ms_addr& a) const;
};

// A set of pods (by namespace and pod labels) or of addresses.
struct Peer {
  enum class Kind : uint8_t { Pods, Addresses };
  Kind kind = Kind::Pods;
  SourceLocation loc;
  std::string path;
  // Pods: in the namespaces `namespaces` selects, or, if nullopt, in
  // namespace `ns` only; with labels `pods` selects (nullopt: every pod).
  std::optional<Selector> namespaces;
  std::string ns;
  std::optional<Selector> pods;
  // Addresses: NetworkPolicy's ipBlock, ANP's networks (one IpBlock each).
  std::vector<IpBlock> blocks;
};

struct Rule {
  SourceLocation loc;
  std::string path;  // "spec.egress[2]"
  Action action = Action::Allow;
  std::optional<std::vector<Peer>> peers;  // nullopt: every peer
  std::vector<Port> ports;                 // empty: every port of every protocol
};

// A NetworkPolicy, AdminNetworkPolicy or BaselineAdminNetworkPolicy.
struct PolicyObject {
  ObjectRef ref;
  Tier tier = Tier::Application;
  int priority = 0;  // Admin only
  Peer subject;      // Kind::Pods
  // The directions it governs (NetworkPolicy: policyTypes, with their
  // defaults; the admin kinds: the rule lists present).
  bool ingressOn = false;
  bool egressOn = false;
  std::vector<Rule> ingress;
  std::vector<Rule> egress;
};

struct Objects {
  std::vector<Namespace> namespaces;
  std::vector<Pod> pods;
  std::vector<PolicyObject> policies;
};

// Whether `pod` (whose namespace has labels `nsLabels`) is in `peer`
// (Kind::Pods; Kubernetes semantics).
bool selectsPod(const Peer& peer, const Pod& pod, const Labels& nsLabels);

}  // namespace microseg::k8s
