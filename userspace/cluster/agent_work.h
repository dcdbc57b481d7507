// Inside the cluster agent: what its thread keeps between passes
// (agent.cpp starts it, agent_loop.cpp runs the passes).
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <string>

#include <spdlog/spdlog.h>

#include "cluster/agent.h"

namespace microseg::cluster {

using Clock = std::chrono::steady_clock;

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

  explicit AgentWork(const AgentOptions& o) : keys(o.prefix), view(Keys(o.prefix), o.nodeName) {}

  std::string leaseFile(const AgentOptions& o) const { return o.dataDir + "/cluster-lease"; }
  std::string cacheFile(const AgentOptions& o) const { return o.dataDir + "/cluster-state.json"; }
  std::string policyMetaFile(const AgentOptions& o) const { return o.dataDir + "/cluster-policy.json"; }

  void fail(const Error& e) {
    if (connected || lastError != e.str()) spdlog::warn("cluster: {}", e.str());
    connected = false;
    lastError = e.str();
  }
};

// What the daemon gets to see of `w`.
std::shared_ptr<AgentSnapshot> buildSnapshot(const AgentWork& w, const std::string& nodeName);

}  // namespace microseg::cluster
