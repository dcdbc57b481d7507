// A node's part in cluster mode (README "Cluster"): on a thread of its own,
// everything microsegd says to and hears from etcd.
//
//  - membership: the node's record under a lease kept alive (a restarted
//    daemon takes its lease back if it is still alive, so its keys never
//    flap); a node whose lease expires vanishes from every other view;
//  - identities: one numeric identity per label set for the whole fleet,
//    allocated by a create-if-absent transaction, referenced by each node
//    that uses it (under its lease) and removed when nobody has for a while;
//  - endpoints: this node's addresses, its workloads' own-netns addresses and
//    its host-netns workloads' listeners, published under its lease; every
//    other node's, followed by one watch;
//  - policy (--policy etcd): the fleet's set, written into a directory of
//    this node's that the daemon loads;
//  - the cluster keys of identity on the wire (cluster/wire_keys.h): made
//    if there is none yet, followed by a watch of their own, cached in the
//    data dir (0600).
// The daemon tells it what this node has (setLocal) and reads what it knows
// (snapshot()); it never waits on etcd. When etcd is unreachable the last
// known state stays (cached in the data dir across restarts too), label
// sets without an identity stay pending, and the agent reconnects and
// resynchronises from the last revision it saw (or a new list if that was
// compacted).
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "cluster/cluster_view.h"
#include "cluster/etcd_client.h"
#include "cluster/records.h"
#include "cluster/wire_keys.h"

namespace microseg::cluster {

struct AgentOptions {
  EtcdOptions etcd;
  std::string prefix = "/microseg";
  std::string nodeName;
  int64_t nodeTtlSeconds = 30;  // long enough to ride out a daemon restart
  std::string dataDir;          // lease id, last known identities and policy (created if missing)
  bool policyFromEtcd = false;  // follow the pushed set (materialized under dataDir/policy)
  std::string version;          // of microsegd, in the node record
  std::function<void()> onChange;  // a new snapshot (called on the agent's thread)
  int identityGcGraceSeconds = 60; // unreferenced this long, an identity is removed
};

// What this node has, as the daemon sees it.
struct LocalState {
  std::vector<ms_addr> hostAddresses;
  struct NetnsAddress {
    ms_addr addr{};
    std::string workload;
    policy::Labels labels;
  };
  std::vector<NetnsAddress> netnsAddresses;
  struct Listener {
    ms_addr addr{};
    uint16_t port = 0;
    uint8_t proto = 0;
    std::string workload;
    policy::Labels labels;
  };
  std::vector<Listener> listeners;
  // Every label set the local policy set needs an identity for.
  std::vector<policy::Labels> labelSets;
  // The addresses and listeners above have been read. Until then (a daemon
  // starting: identities come first) the agent leaves the endpoints it
  // published before as they are: a node restarted within its TTL must not
  // take its listeners away from the fleet and put them back.
  bool endpointsKnown = true;
  // For the node record.
  int64_t policyRevision = 0;
  std::string policySource = "files";
  std::string policyError;
  int64_t policyRejectedRevision = 0;
  size_t workloads = 0;
  friend bool operator==(const LocalState&, const LocalState&);
};

struct AgentSnapshot {
  uint64_t version = 0;
  bool connected = false;       // etcd answered the last request
  bool synced = false;          // the view has been listed from etcd (or its cache) at least once
  std::string lastError;
  int64_t revision = 0;         // of the view
  int64_t leaseId = 0;
  uint32_t nodeIdentity = 0;    // 0 while pending
  std::map<std::string, NodeRecord> nodes;       // every live node, this one included
  std::map<uint32_t, IdentityRecord> identities; // every identity of the fleet
  std::map<std::string, uint32_t> identityByLabels;  // labelsText -> id
  std::map<uint32_t, std::vector<std::string>> identityRefs;  // id -> the nodes that use it
  std::vector<RemoteAddress> addresses;          // other nodes' addresses and workload-netns addresses
  std::vector<RemoteListener> listeners;         // other nodes' host-netns listeners
  uint64_t endpointsVersion = 0;
  uint64_t nodesVersion = 0;
  uint64_t identitiesVersion = 0;
  size_t pendingLabelSets = 0;  // asked for, no identity yet
  // --policy etcd: the directory holding the pushed set, and which it is (0: none yet).
  std::string policyDir;
  int64_t policyRevision = 0;
  std::string policyId;
  std::string policyFetchError;
  uint64_t allocationFailures = 0;
  uint64_t reconnects = 0;
  size_t ignoredRecords = 0;
  // The cluster keys (secret: the daemon gives them to the kernel and shows
  // their ids and times only). Until they are known (listed from etcd, or
  // read from the cache) the kernel's own keys must stay as they are.
  WireKeyRecords wireKeys;
  bool wireKeysKnown = false;
  uint64_t wireKeysVersion = 0;  // changes with wireKeys
  int64_t wireKeysRevision = 0;
  size_t wireKeysIgnored = 0;    // records under wire-keys/ that do not decode
  // The id of a label set, if the fleet gave it one.
  std::optional<uint32_t> identityOf(const policy::Labels& labels) const;
};

struct AgentWork;

class Agent {
 public:
  static Result<std::unique_ptr<Agent>> start(AgentOptions options);
  ~Agent();  // stops the thread; the lease is NOT revoked (a restart takes it back)
  Agent(const Agent&) = delete;
  Agent& operator=(const Agent&) = delete;

  void setLocal(LocalState state);
  std::shared_ptr<const AgentSnapshot> snapshot() const;
  // Each endpoint's health (asks them: up to 1 s each; call off the daemon's lock).
  std::vector<EtcdClient::EndpointStatus> health();
  const AgentOptions& options() const { return options_; }
  // Revokes the lease: this node's keys vanish at once (`microseg uninstall`).
  void leave();

 private:
  explicit Agent(AgentOptions options);
  void run();
  AgentOptions options_;
  std::unique_ptr<EtcdClient> etcd_;
  std::unique_ptr<AgentWork> work_;  // the thread's own state (agent_work.h)
  mutable std::mutex mu_;
  std::condition_variable wake_;
  bool stop_ = false;
  bool leave_ = false;
  // Nothing is known of this node until the daemon says (setLocal): a pass
  // before that (a restart within the TTL) leaves the endpoints published
  // before alone instead of withdrawing them and putting them back.
  LocalState local_ = [] {
    LocalState s;
    s.endpointsKnown = false;
    return s;
  }();
  uint64_t localSeq_ = 0;
  std::vector<WatchBatch> batches_;  // from the watch, not applied yet
  int64_t compactedAt_ = 0;          // the watch fell behind a compaction
  std::vector<WatchBatch> wireBatches_;  // the same, of the cluster keys' watch
  int64_t wireCompactedAt_ = 0;
  bool leaseLost_ = false;
  std::shared_ptr<const AgentSnapshot> snapshot_;
  std::thread thread_;
};

}  // namespace microseg::cluster
