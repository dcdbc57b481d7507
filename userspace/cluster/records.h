// What cluster mode keeps in etcd: the key layout under the cluster prefix
// and the JSON records stored there. One place for both, so every reader and
// writer agrees (README "Cluster": keys in etcd).
//
//   <prefix>/state/nodes/<node>                       NodeRecord, under the node's lease
//   <prefix>/state/identities/<labels hash>           IdentityRecord (one numeric id per label set)
//   <prefix>/state/identity-ids/<id>                  <labels hash>: no id is given twice
//   <prefix>/state/identity-refs/<labels hash>/<node> "", under the node's lease: who uses it
//   <prefix>/state/endpoints/<node>/addr/<address>    EndpointRecord, under the node's lease
//   <prefix>/state/endpoints/<node>/listen/<proto>/<address>/<port>   EndpointRecord, likewise
//   <prefix>/state/policy                             PolicyManifest: the fleet's policy set
//   <prefix>/blobs/<hash>                             a chunk of a policy set's text
//   <prefix>/wire-keys/<id>                           WireKeyRecord (cluster/wire_keys.h)
//
// Everything a node needs to follow is under <prefix>/state/ (one watch);
// policy text is fetched by hash when a manifest names it. The cluster keys
// have a watch of their own (secret, and changed by `rotate-key` only).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "bpf/abi.h"
#include "policy/model.h"

namespace microseg::cluster {

// A node's name: what --node-name accepts ([A-Za-z0-9._-], 1..63, not . or ..).
bool validNodeName(const std::string& name);

class Keys {
 public:
  explicit Keys(std::string prefix);  // "/microseg"; a trailing '/' is dropped
  const std::string& prefix() const { return prefix_; }
  std::string state() const { return prefix_ + "/state/"; }
  std::string nodes() const { return state() + "nodes/"; }
  std::string node(const std::string& name) const { return nodes() + name; }
  std::string identities() const { return state() + "identities/"; }
  std::string identity(const std::string& labelsHash) const { return identities() + labelsHash; }
  std::string identityIds() const { return state() + "identity-ids/"; }
  std::string identityId(uint32_t id) const { return identityIds() + std::to_string(id); }
  std::string identityRefs() const { return state() + "identity-refs/"; }
  std::string identityRefs(const std::string& labelsHash) const { return identityRefs() + labelsHash + "/"; }
  std::string identityRef(const std::string& labelsHash, const std::string& node) const {
    return identityRefs(labelsHash) + node;
  }
  std::string endpoints() const { return state() + "endpoints/"; }
  std::string endpoints(const std::string& node) const { return endpoints() + node + "/"; }
  std::string addressEndpoint(const std::string& node, const ms_addr& a) const;
  std::string listenerEndpoint(const std::string& node, uint8_t proto, const ms_addr& a, uint16_t port) const;
  std::string policy() const { return state() + "policy"; }
  std::string blobs() const { return prefix_ + "/blobs/"; }
  std::string blob(const std::string& hash) const { return blobs() + hash; }
  std::string wireKeys() const { return prefix_ + "/wire-keys/"; }
  std::string wireKey(uint8_t id) const { return wireKeys() + std::to_string(id); }

 private:
  std::string prefix_;
};

// The stable text of a label set ("k=v\n" sorted) and its hash (32 hex
// digits of XXH3-128): the key of its identity.
std::string labelsText(const policy::Labels& labels);
std::string labelsHash(const policy::Labels& labels);
std::string hashText(const std::string& text);  // the same hash of any text (policy blobs)

struct NodeRecord {
  std::string name;
  std::vector<std::string> addresses;  // the node's own addresses (host netns)
  std::string version;
  int64_t policyRevision = 0;  // the etcd revision of the policy set in force there (0: local files)
  std::string policySource;    // "etcd" or "files"
  std::string policyError;     // why the last pushed set was rejected there, if it was
  int64_t policyRejectedRevision = 0;
  size_t workloads = 0;        // local workloads with cgroups
  uint32_t identity = 0;       // the node's own identity (labels microseg.dev/node=<name>)
  int64_t updatedAt = 0;       // unix seconds
};

struct IdentityRecord {
  uint32_t id = 0;
  policy::Labels labels;
};

struct EndpointRecord {
  uint32_t identity = 0;
  std::string workload;  // "" for a node's own address
  std::string kind;      // "host", "netns" (addresses) or "listener"
};

struct PolicyFile {
  std::string name;                 // as pushed (a relative path)
  std::vector<std::string> blobs;   // hashes of its chunks, in order
  size_t size = 0;
};

struct PolicyManifest {
  std::string id;                   // hash of every file's name and text: the set's identity
  std::vector<PolicyFile> files;
  std::string pushedBy;             // user@host of the pusher
  int64_t pushedAt = 0;             // unix seconds
};

std::string encode(const NodeRecord& r);
std::string encode(const IdentityRecord& r);
std::string encode(const EndpointRecord& r);
std::string encode(const PolicyManifest& r);
// nullopt for a value that is not such a record (written by something else:
// ignored and counted by the reader, never trusted half-way).
std::optional<NodeRecord> decodeNode(const std::string& text);
std::optional<IdentityRecord> decodeIdentity(const std::string& text);
std::optional<EndpointRecord> decodeEndpoint(const std::string& text);
std::optional<PolicyManifest> decodeManifest(const std::string& text);

// The label every node's own identity has: microseg.dev/node=<name>.
inline constexpr const char* kNodeLabel = "microseg.dev/node";

}  // namespace microseg::cluster
