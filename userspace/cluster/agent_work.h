// Inside the cluster agent: what its thread keeps between passes
// (agent.cpp starts it, agent_loop.cpp runs the passes).
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <set>
#include <memory>
#include <string>

#include <spdlog/spdlog.h>

#include "cluster/agent.h"
#include "cluster/wire_keys.h"

namespace microseg::cluster {

using Clock = std::chrono::steady_clock;

// The cluster keys as this node knows them (agent_wire_keys.cpp): listed,
// then watched, under <prefix>/wire-keys/ (a watch of their own).
struct WireKeysWork {
  WireKeyRecords records;
  std::set<std::string> ignored;  // keys whose record does not decode (not in `records`)
  int64_t revision = 0;           // of the last list or event applied
  bool listed = false;            // from etcd, since the last (re)list
  bool known = false;             // listed from etcd or read from the cache, once
  uint64_t version = 0;           // bumped by every change of `records`
  uint64_t cachedVersion = 0;     // the version in the data dir's cache
  std::unique_ptr<EtcdClient::Watcher> watcher;
};

// The agent thread's own state.
struct AgentWork {
  Keys keys;
  ClusterView view;
  int64_t lease = 0;
  std::unique_ptr<EtcdClient::LeaseKeeper> keeper;
  std::unique_ptr<EtcdClient::Watcher> watcher;
  bool listed = false;       // from etcd (not only the cache)
  bool fromCache = false;
  bool connected = false;
  std::string lastError;
  std::string policyDir, policyId, policyFetchError;
  int64_t policyRevision = 0;
  uint64_t allocationFailures = 0, reconnects = 0;
  Clock::time_point nodeWrittenAt{};
  Clock::time_point gcAt{};
  Clock::time_point cacheSavedAt{};
  uint64_t cachedVersion = 0;
  uint64_t cachedIdentitiesVersion = 0;  // identities go to the cache at once (a restart needs them)
  std::map<std::string, Clock::time_point> unreferencedSince;  // by labels hash
  size_t pending = 0;
  uint64_t published = 0;
  WireKeysWork wire;

  explicit AgentWork(const AgentOptions& o) : keys(o.prefix), view(Keys(o.prefix), o.nodeName) {}

  std::string leaseFile(const AgentOptions& o) const { return o.dataDir + "/cluster-lease"; }
  std::string cacheFile(const AgentOptions& o) const { return o.dataDir + "/cluster-state.json"; }
  std::string policyMetaFile(const AgentOptions& o) const { return o.dataDir + "/cluster-policy.json"; }
  std::string wireKeysFile(const AgentOptions& o) const { return o.dataDir + "/cluster-wire-keys.json"; }

  void fail(const Error& e) {
    if (connected || lastError != e.str()) spdlog::warn("cluster: {}", e.str());
    connected = false;
    lastError = e.str();
  }
};

// agent_wire_keys.cpp: the cluster keys' list (which creates key 1 if there
// is none), events, and cache (0600: the keys are secret).
Result<void> listWireKeys(EtcdClient& etcd, AgentWork& w, const std::function<void(const WatchBatch&)>& onBatch,
                          const std::function<void(int64_t)>& onCompacted);
void applyWireKeyEvent(AgentWork& w, const std::string& key, const std::string& value, bool deleted);
void loadWireKeyCache(const AgentOptions& o, AgentWork& w);
void saveWireKeyCache(const AgentOptions& o, AgentWork& w);

// What the daemon gets to see of `w`.
std::shared_ptr<AgentSnapshot> buildSnapshot(const AgentWork& w, const std::string& nodeName);

}  // namespace microseg::cluster
