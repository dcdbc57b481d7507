// Policy model: the parsed, validated form of microseg.dev/v1 YAML documents.
// Pure data; no kernel, no I/O. Produced by the schema (schema.h: DocParser,
// parseText) and PolicyLoader (loader.h), consumed by the
// compiler and the identity resolver.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "policy/cidr.h"
#include "policy/shared_list.h"

namespace microseg::policy {

// Set on every Workload and External with metadata.namespace; policies select
// namespaces through it.
inline constexpr const char* kNamespaceLabel = "microseg.dev/namespace";
// Implicit label of a Workload without spec.labels, so it keeps an identity of
// its own instead of sharing the empty label set with every other such one.
inline constexpr const char* kWorkloadLabel = "microseg.dev/workload";

// A file name, interned: every location in a file shares one copy of its
// name (a 100k-rule policy set has some 400k locations), named by a 32-bit
// id so that a SourceLocation is 12 bytes, not 16. Interned names live as
// long as the process; there are as many as policy files ever read (past
// 4M, a name is not kept and reads as empty).
class FileName {
 public:
  FileName() = default;
  FileName(const std::string& name);  // NOLINT: implicit, as the string it replaces
  FileName(const char* name) : FileName(std::string(name)) {}
  const std::string& str() const;
  operator const std::string&() const { return str(); }
  bool empty() const { return id_ == 0; }
  friend bool operator==(const FileName& a, const FileName& b) { return a.id_ == b.id_; }
  friend bool operator==(const FileName& a, const std::string& b) { return a.str() == b; }
  friend bool operator==(const FileName& a, const char* b) { return a.str() == b; }
  friend std::ostream& operator<<(std::ostream& os, const FileName& f) { return os << f.str(); }

 private:
  uint32_t id_ = 0;  // 0: none
};

// Where something was written. line/column are 1-based (0 = unknown).
struct SourceLocation {
  FileName file;
  int line = 0;
  int column = 0;
};

// One validation problem. str() renders "FILE:LINE:COL: error: MESSAGE".
struct Diagnostic {
  SourceLocation loc;
  std::string message;
  std::string str() const;
};

using Labels = std::map<std::string, std::string>;

enum class Protocol : uint8_t { Any = 0, TCP = 6, UDP = 17 };
// Pass: only in the admin tier (skip the rest of it, on to the application tier).
enum class Action : uint8_t { Allow, Deny, Pass };
// Evaluated per side in this order (policies/README.md, "Tiers"): admin
// (by priority, first match decides, pass skips on), application (deny
// wins, allows add up), baseline (where no application policy selects the
// workload for the direction; first match decides), then the default.
enum class Tier : uint8_t { Admin, Application, Baseline };
inline constexpr uint16_t kMaxPriority = 1000;
const char* tierName(Tier t);
enum class Direction : uint8_t { Egress = 0, Ingress = 1 };
enum class Enforcement : uint8_t { Monitor, Enforce };
enum class ReservedPeer : uint8_t { Host, World, Unmanaged };

enum class SelectorOp : uint8_t { In, NotIn, Exists, DoesNotExist };

struct LabelRequirement {
  std::string key;
  SelectorOp op = SelectorOp::Exists;
  std::vector<std::string> values;  // In/NotIn: non-empty; Exists/DoesNotExist: empty
};

// Kubernetes-style label selector. Both parts must hold (AND). A selector with
// neither part is rejected by the parser ("empty selector").
struct LabelSelector {
  Labels matchLabels;
  std::vector<LabelRequirement> matchExpressions;
  bool matches(const Labels& labels) const;
};

// What only selector and cidr peers have. Kept out of Peer behind one
// pointer: there is a Peer in nearly every rule, and inline these were 112
// of its 176 bytes (11 MB of a 100k-rule model of identity peers).
struct PeerDetail {
  LabelSelector selector;    // Kind::Selector
  Cidr cidr;                 // Kind::Cidr
  std::vector<Cidr> except;  // Kind::Cidr: as written, each strictly inside cidr
};

// Which workloads a policy governs, or which peers a rule names.
// Members by size: 56 bytes (a peer in nearly every rule).
struct Peer {
  enum class Kind : uint8_t { Selector, Identity, Reserved, Cidr, Fqdn };
  // Kind::Identity: a Workload's metadata.name, or (peers only) an External's.
  // Kind::Fqdn (egress peers only): the name pattern in its normal form
  // (fqdn::NamePattern::text(): "api.example.com", "*.example.com").
  std::string identity;
  SourceLocation loc;
  Kind kind = Kind::Selector;
  ReservedPeer reserved = ReservedPeer::World;  // Kind::Reserved

  Peer() = default;
  Peer(const Peer& o) : identity(o.identity), loc(o.loc), kind(o.kind), reserved(o.reserved) {
    if (o.detail_) detail_ = std::make_unique<PeerDetail>(*o.detail_);
  }
  Peer(Peer&&) noexcept = default;
  Peer& operator=(const Peer& o) {
    if (this != &o) *this = Peer(o);
    return *this;
  }
  Peer& operator=(Peer&&) noexcept = default;

  const LabelSelector& selector() const { return detail().selector; }  // Kind::Selector
  const Cidr& cidr() const { return detail().cidr; }                   // Kind::Cidr
  const std::vector<Cidr>& except() const { return detail().except; }  // Kind::Cidr
  // The selector or cidr part, to fill in.
  PeerDetail& edit() {
    if (!detail_) detail_ = std::make_unique<PeerDetail>();
    return *detail_;
  }
  // Kind::Cidr: the text that identifies this inline range wherever it is
  // written, "10.0.0.0/8" or "10.0.0.0/8 except 10.1.0.0/16,10.2.0.0/16"
  // (excepts in address order).
  std::string cidrText() const;

 private:
  const PeerDetail& detail() const;
  std::unique_ptr<PeerDetail> detail_;  // null: all empty
};

// One `ports` item. port omitted = all ports (first=1,last=65535 ... see
// anyPort); endPort omitted = single port.
struct PortRange {
  SourceLocation loc;
  uint16_t first = 0;  // 0 together with last = 0 means "all ports"
  uint16_t last = 0;
  Protocol protocol = Protocol::Any;
  bool anyPort() const { return first == 0 && last == 0; }
};

// Members by size: 72 bytes (100k of them in a big policy set).
struct Rule {
  // nullopt: `to`/`from` omitted = any peer. Never an empty vector (the parser
  // rejects `to: []`).
  std::optional<std::vector<Peer>> peers;
  // empty: `ports` omitted = every port of every protocol.
  std::vector<PortRange> ports;
  SourceLocation loc;
  Action action = Action::Allow;
};
static_assert(sizeof(SourceLocation) == 12 && sizeof(Peer) <= 56 && sizeof(Rule) <= 72,
              "the model's per-rule structs grew (see their comments)");

struct Workload {
  std::string name;
  std::string namespaceName;         // metadata.namespace, "" = none
  std::vector<std::string> cgroups;  // glob patterns relative to the cgroup root
  Labels labels;                     // spec.labels as written
  std::string spiffeId;              // optional, display only
  SourceLocation loc;
  // The label set selectors see and identities are made of: spec.labels (or
  // kWorkloadLabel=<name> without any), plus kNamespaceLabel=<namespace>.
  Labels effectiveLabels() const;
};

// Remote address ranges with an identity of their own.
struct External {
  std::string name;
  std::string namespaceName;  // metadata.namespace, "" = none
  Labels labels;              // spec.labels as written
  std::vector<Cidr> cidrs;    // non-empty, no duplicates
  std::vector<Cidr> except;   // each inside one of cidrs, covering none of them
  SourceLocation loc;
  // spec.labels plus kNamespaceLabel=<namespace> (no implicit name label: an
  // External's identity comes from its addresses, not its labels).
  Labels effectiveLabels() const;
  // Family-aware: in one of cidrs and in none of except.
  bool contains(const ms_addr& a) const;
};

struct Policy {
  std::string name;
  // metadata.namespace, "" = none. Scopes `selector` to workloads with
  // kNamespaceLabel=<namespace>; peers are not scoped.
  std::string namespaceName;
  Peer selector;                     // Kind::Selector or Kind::Identity
  std::optional<Enforcement> enforcement;
  Tier tier = Tier::Application;
  uint16_t priority = 0;  // admin only (0..kMaxPriority): lower is evaluated first
  // has* says whether the key was present (even as an empty list): a policy
  // with `ingress: []` isolates ingress with nothing allowed.
  bool hasEgress = false;
  bool hasIngress = false;
  // Some rule has a `cidr` or an `fqdn` peer (each has identities of its
  // own). Set by the parser; code that builds a Policy by hand must set it
  // too: identity assignment and the reload's "same identity inputs" check
  // look at cidr and fqdn peers only where it is set.
  bool hasCidrPeers = false;
  // spec.staged: validated and compiled beside the set in force, never
  // enforced (policies/README.md, "Staged policies"): the daemon leaves it
  // out of everything the kernel gets and judges observed flows against
  // "in force + staged" in userspace.
  bool staged = false;
  SourceLocation stagedLoc;  // of the `staged: true` value (promote edits that line)
  // spec.revokeEstablished: on-change = when a new generation refuses an
  // established connection of a workload this policy selects, on the side
  // it selects, the connection is destroyed (README "Revocation"); never
  // (the default) = only new connections are refused, unless the daemon's
  // --revoke-established says on-change.
  bool revokeOnChange = false;
  std::vector<Rule> egress;
  std::vector<Rule> ingress;
  SourceLocation loc;
};

// Calls f(peer) for every peer of every rule of `p` (egress, then ingress;
// a rule without peers has none).
template <typename F>
void forEachRulePeer(const Policy& p, F&& f) {
  for (const auto* rules : {&p.egress, &p.ingress}) {
    for (const auto& r : *rules) {
      if (!r.peers) continue;
      for (const auto& peer : *r.peers) f(peer);
    }
  }
}

// Everything loaded from one set of files, in file order (files sorted by path).
// Its objects are immutable and shared: copying a Bundle copies pointers, and
// a reload shares every object of a document it did not have to read again
// with the generation in force.
struct Bundle {
  SharedList<Workload> workloads;
  SharedList<External> externals;
  SharedList<Policy> policies;
  const Workload* findWorkload(const std::string& name) const;
  const External* findExternal(const std::string& name) const;
  const Policy* findPolicy(const std::string& name) const;
  size_t stagedPolicies() const;
};

// The policies in force: `b` without its staged policies (the same shared
// objects, so the compiler's and the loader's caches still know them).
Bundle withoutStaged(const Bundle& b);

}  // namespace microseg::policy
