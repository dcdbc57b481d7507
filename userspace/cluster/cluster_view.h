// What this node knows of the cluster: everything under <prefix>/state/,
// rebuilt from a list and kept by applying watch events in revision order.
// Pure data (no etcd, no kernel): the agent feeds it, the daemon reads
// copies of it. A record this version does not understand is ignored and
// counted, never half-used.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "cluster/records.h"

namespace microseg::cluster {

struct RemoteAddress {
  ms_addr addr{};
  uint32_t identity = 0;
  std::string node;
  std::string workload;  // "" for the node's own address
  std::string kind;      // "host" or "netns"
};

struct RemoteListener {
  ms_addr addr{};
  uint16_t port = 0;
  uint8_t proto = 0;  // MS_PROTO_TCP | MS_PROTO_UDP
  uint32_t identity = 0;
  std::string node;
  std::string workload;
};

class ClusterView {
 public:
  ClusterView(Keys keys, std::string self);

  // Forget everything (before a full list).
  void clear();
  // A key's value at some revision, or its deletion.
  void apply(const std::string& key, const std::string& value, bool deleted);
  void setRevision(int64_t revision) { revision_ = revision; }
  int64_t revision() const { return revision_; }

  const std::string& self() const { return self_; }
  const std::map<std::string, NodeRecord>& nodes() const { return nodes_; }
  // Every identity the cluster gave, by id.
  const std::map<uint32_t, IdentityRecord>& identities() const { return identities_; }
  std::optional<uint32_t> identityOf(const policy::Labels& labels) const;
  bool idTaken(uint32_t id) const { return ids_.count(id) > 0; }
  // Which nodes hold a reference to a label set's identity, by labels hash.
  const std::map<std::string, std::set<std::string>>& refs() const { return refs_; }
  // The labels hash of an identity ("" if unknown).
  std::string hashOf(uint32_t id) const;

  // Endpoints published by OTHER nodes (what the kernel learns), by key.
  const std::map<std::string, RemoteAddress>& addresses() const { return addresses_; }
  const std::map<std::string, RemoteListener>& listeners() const { return listeners_; }
  // This node's own published endpoints (what it must keep or withdraw), by key.
  const std::map<std::string, EndpointRecord>& own() const { return own_; }

  const std::optional<PolicyManifest>& policy() const { return policy_; }
  int64_t policyRevision() const { return policyRevision_; }  // the mod revision of the manifest

  // Bumped by every change of addresses()/listeners() (a write of the same
  // value changes nothing), and of nodes() likewise.
  uint64_t endpointsVersion() const { return endpointsVersion_; }
  uint64_t nodesVersion() const { return nodesVersion_; }
  uint64_t identitiesVersion() const { return identitiesVersion_; }
  size_t ignored() const { return ignored_; }

  // For apply(): the manifest's revision is the key's mod revision.
  void setPolicyRevision(int64_t r) { policyRevision_ = r; }

 private:
  void applyEndpoint(const std::string& key, const std::string& rest, const std::string& value, bool deleted);
  Keys keys_;
  std::string self_;
  int64_t revision_ = 0;
  std::map<std::string, NodeRecord> nodes_;
  std::map<uint32_t, IdentityRecord> identities_;
  std::map<std::string, uint32_t> byHash_;  // labels hash -> id
  std::map<uint32_t, std::string> ids_;     // id -> labels hash (identity-ids)
  std::map<std::string, std::set<std::string>> refs_;
  std::map<std::string, RemoteAddress> addresses_;
  std::map<std::string, RemoteListener> listeners_;
  std::map<std::string, EndpointRecord> own_;
  std::optional<PolicyManifest> policy_;
  int64_t policyRevision_ = 0;
  uint64_t endpointsVersion_ = 0;
  uint64_t nodesVersion_ = 0;
  uint64_t identitiesVersion_ = 0;
  size_t ignored_ = 0;
};

}  // namespace microseg::cluster
