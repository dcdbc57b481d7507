// The daemon's side of cluster mode (README "Cluster"; the agent,
// cluster/agent.h, does the talking to etcd on a thread of its own):
//  - what this node has goes to the agent (publishLocalLocked): its
//    addresses, its workloads' own-netns addresses, its host-netns
//    workloads' listeners, the label sets its policy needs identities for,
//    which policy revision it runs;
//  - what the agent knows comes back (clusterTickLocked): the fleet's
//    identities (a change is a reload: workloads that were pending get
//    theirs), the other nodes' addresses and listeners (the ipcache and
//    ms_remote_listeners), the pushed policy (--policy etcd: a reload), the
//    cluster keys of identity on the wire (ms_wire_keys; chosen again when
//    they change and when a key's activation or retirement time passes).
#include <unistd.h>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <tuple>
#include <cstring>
#include <thread>

#include <arpa/inet.h>

#include "common/version.h"
#include "daemon/daemon.h"
#include "policy/cidr.h"

namespace microseg::daemon {
namespace {

bool isLinkLocalOrLoopback(const ms_addr& a) {
  const bool v4 = a.a[10] == 0xff && a.a[11] == 0xff;
  if (v4) return a.a[12] == 127 || (a.a[12] == 169 && a.a[13] == 254);
  static const uint8_t kLoop6[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
  return std::memcmp(a.a, kLoop6, 16) == 0 || (a.a[0] == 0xfe && (a.a[1] & 0xc0) == 0x80);
}

int64_t unixNow() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string hostName() {
  char buf[256] = {};
  if (gethostname(buf, sizeof(buf) - 1) != 0) return "node";
  std::string s(buf);
  return s.substr(0, s.find('.'));
}

// status: the cluster keys by id and time (never their bytes), and what the
// kernel was given.
nlohmann::json wireIdentityStatus(const cluster::AgentSnapshot* s, bool enabled, const cluster::WireKeysInForce& f) {
  using nlohmann::json;
  json keys = json::array();
  const int64_t now = unixNow();
  if (s != nullptr) {
    for (const auto& [id, r] : s->wireKeys) {
      const bool retired = r.retireAt != 0 && now >= r.retireAt;
      const char* state = retired                 ? "retired"
                          : f.written && id == f.signKeyId ? "signing"
                          : r.activateAt > now     ? "pending"
                                                   : "accepted";
      keys.push_back(json{{"id", id},
                          {"created", r.created},
                          {"activate_at", r.activateAt},
                          {"retire_at", r.retireAt},
                          {"state", state}});
    }
  }
  return json{{"enabled", enabled},
              {"known", s != nullptr && s->wireKeysKnown},
              {"written", f.written},
              {"signing_key_id", f.signKeyId},
              {"accepted_key_ids", f.acceptedIds},
              {"next_change_at", f.nextChangeAt},
              {"keys", std::move(keys)},
              {"ignored_records", s != nullptr ? s->wireKeysIgnored : 0},
              {"error", f.error}};
}

}  // namespace

Result<void> Daemon::startClusterLocked() {
  if (!config_.cluster.enabled()) return {};
  cluster::AgentOptions o;
  o.etcd.endpoints = config_.cluster.etcdEndpoints;
  o.etcd.caFile = config_.cluster.etcdCaCert;
  o.etcd.certFile = config_.cluster.etcdCert;
  o.etcd.keyFile = config_.cluster.etcdKey;
  o.prefix = config_.cluster.prefix;
  o.nodeName = config_.cluster.nodeName.empty() ? hostName() : config_.cluster.nodeName;
  config_.cluster.nodeName = o.nodeName;
  o.nodeTtlSeconds = config_.cluster.nodeTtlSeconds;
  o.dataDir = config_.dataDir + "/cluster";
  o.policyFromEtcd = config_.policyFromEtcd();
  o.version = kVersion;
  o.onChange = [this] { wake(); };
  for (const auto& a : config_.cluster.nodeAddresses) {
    auto addr = policy::parseAddress(a);
    if (!addr) return Error{"start cluster mode", a, EINVAL, "--node-address is not an address"};
    nodeAddresses_.push_back(*addr);
  }
  auto agent = cluster::Agent::start(std::move(o));
  if (!agent) return agent.error();
  agent_ = std::move(*agent);
  spdlog::info("cluster: node {} with etcd at {}", config_.cluster.nodeName, agent_->options().etcd.endpoints.front());
  return {};
}

void Daemon::waitForClusterLocked(std::unique_lock<std::mutex>& lock) {
  if (!agent_) return;
  // The first generation should have this node's identities (and, with
  // --policy etcd, the pushed set): wait a little for the agent, which
  // starts from its cached view if etcd is away. What is still missing
  // after that stays pending (fail closed) until it comes.
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  publishLocalLocked();
  for (;;) {
    auto s = agent_->snapshot();
    const bool policyReady = !config_.policyFromEtcd() || s->policyRevision != 0;
    const bool idsReady = s->synced && s->pendingLabelSets == 0 && s->nodeIdentity != 0 && s->wireKeysKnown;
    if ((policyReady && idsReady) || std::chrono::steady_clock::now() >= until) break;
    lock.unlock();
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    lock.lock();
    publishLocalLocked();
  }
  takeAgentSnapshotLocked();
}

void Daemon::takeAgentSnapshotLocked() {
  auto s = agent_->snapshot();
  if (s == agentSnap_) return;
  agentSnap_ = s;
  if (fleet_.version == 0 || s->identitiesVersion != fleetFrom_) {
    identity::FleetIdentities f;
    for (const auto& [id, rec] : s->identities) f.byLabels[rec.labels] = id;
    // Names for the label sets no local workload has: the other nodes'
    // workloads (from their endpoints), the nodes.
    for (const auto& a : s->addresses) {
      if (!a.workload.empty()) f.names[a.identity].push_back(a.workload);
    }
    for (const auto& l : s->listeners) f.names[l.identity].push_back(l.workload);
    for (const auto& [name, node] : s->nodes) {
      if (node.identity != 0) f.names[node.identity] = {"node:" + name};
    }
    for (auto& [id, names] : f.names) {
      std::sort(names.begin(), names.end());
      names.erase(std::unique(names.begin(), names.end()), names.end());
    }
    f.version = fleet_.version + 1;
    fleetFrom_ = s->identitiesVersion;
    fleet_ = std::move(f);
  }
}

std::vector<std::string> Daemon::policyPathsLocked() const {
  if (config_.policyFromEtcd()) {
    if (agentSnap_ && !agentSnap_->policyDir.empty()) return {agentSnap_->policyDir};
    return {};
  }
  return config_.policyPaths;
}

void Daemon::clusterTickLocked() {
  if (!agent_) return;
  auto old = agentSnap_;
  takeAgentSnapshotLocked();
  const auto& s = agentSnap_;
  cluster::applyWireKeys(*datapath_, s->wireKeys, s->wireKeysKnown, s->wireKeysVersion, config_.cluster.wireIdentity,
                         unixNow(), wireKeys_);
  if (s == old) return;
  const bool idsChanged = !old || old->identitiesVersion != s->identitiesVersion;
  const bool endpointsChanged = !old || old->endpointsVersion != s->endpointsVersion || old->nodesVersion != s->nodesVersion;
  // A pushed policy revision this node has not tried yet.
  if (config_.policyFromEtcd() && s->policyRevision != 0 && s->policyRevision != appliedPolicyRevision_ &&
      s->policyRevision != rejectedPolicyRevision_) {
    auto r = reloadLocked({s->policyDir}, "etcd policy revision " + std::to_string(s->policyRevision));
    if (r.ok) {
      appliedPolicyRevision_ = s->policyRevision;
      rejectedPolicyRevision_ = 0;
      rejectedPolicyError_.clear();
    } else {
      rejectedPolicyRevision_ = s->policyRevision;
      rejectedPolicyError_ = r.errors.empty() ? "rejected" : r.errors.front();
    }
  } else if (idsChanged && gen().loaded) {
    auto paths = policyPathsLocked();
    if (!paths.empty()) reloadLocked(paths, "cluster identities changed");
  }
  if (endpointsChanged) {
    const auto t0 = std::chrono::steady_clock::now();
    std::vector<datapath::RemoteListenerEntry> listeners;
    for (const auto& l : s->listeners) {
      datapath::RemoteListenerEntry e;
      e.key.addr = l.addr;
      e.key.port = htons(l.port);
      e.key.protocol = l.proto;
      e.value.identity = l.identity;
      listeners.push_back(e);
    }
    if (auto r = datapath_->setRemoteListeners(listeners); !r) spdlog::warn("cluster: {}", r.error().str());
    addrSnapshot_.reset();  // written again with the other nodes' addresses
    refreshAddressesLocked();
    // What a change of the other nodes' endpoints costs here (README
    // "Cluster"; scripts/bench.sh measures it with 10k remote endpoints).
    lastEndpointsApplyUs_ = static_cast<uint64_t>(
        std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - t0).count());
    ++endpointsApplies_;
    spdlog::debug("cluster: {} remote addresses and {} listeners in the kernel in {} us", s->addresses.size(),
                  s->listeners.size(), lastEndpointsApplyUs_);
  }
  publishLocalLocked();
  publishStatusLocked();
}

std::vector<datapath::AddressEntry> Daemon::remoteAddressEntriesLocked() const {
  std::vector<datapath::AddressEntry> out;
  if (!agentSnap_) return out;
  for (const auto& a : agentSnap_->addresses) {
    datapath::AddressEntry e;
    e.key.prefixlen = 128;
    e.key.addr = a.addr;
    e.value.identity = a.identity;
    // A node's own address may have its workloads' listeners.
    e.value.flags = a.kind == "host" ? MS_IPCACHE_F_REMOTE_NODE : 0;
    out.push_back(e);
  }
  return out;
}

void Daemon::publishLocalLocked() {
  if (!agent_) return;
  cluster::LocalState l;
  if (!nodeAddresses_.empty()) {
    l.hostAddresses = nodeAddresses_;
  } else if (addrSnapshot_) {
    for (const auto& a : addrSnapshot_->host) {
      if (!isLinkLocalOrLoopback(a)) l.hostAddresses.push_back(a);
    }
  }
  std::map<std::string, policy::Labels> labelsOf;
  for (const auto& w : gen().bundle.workloads) labelsOf[w.name] = w.effectiveLabels();
  for (const auto& [name, labels] : labelsOf) l.labelSets.push_back(labels);
  if (addrSnapshot_) {
    for (const auto& n : addrSnapshot_->netns) {
      if (!n.trusted || !labelsOf.count(n.workload)) continue;
      for (const auto& a : n.addrs) {
        if (!isLinkLocalOrLoopback(a)) l.netnsAddresses.push_back({a, n.workload, labelsOf[n.workload]});
      }
    }
  }
  // Listeners of host-netns workloads: a wildcard one listens on every
  // address of the node (of its family; a dual-stack IPv6 one on both).
  for (const auto& s : listeners_) {
    auto c = cgroups_.find(s.cgroupId);
    if (c == cgroups_.end() || c->second.workload.empty() || !labelsOf.count(c->second.workload)) continue;
    const auto& labels = labelsOf[c->second.workload];
    auto add = [&](const ms_addr& a) { l.listeners.push_back({a, s.port, s.proto, c->second.workload, labels}); };
    if (!identity::isWildcard(s.addr)) {
      for (const auto& h : l.hostAddresses) {
        if (std::memcmp(&h, &s.addr, sizeof(h)) == 0) add(h);
      }
      continue;
    }
    const bool v4wild = policy::isMapped(s.addr);
    for (const auto& h : l.hostAddresses) {
      if (policy::isMapped(h) ? (v4wild || !s.v6only) : !v4wild) add(h);
    }
  }
  std::sort(l.listeners.begin(), l.listeners.end(), [](const auto& x, const auto& y) {
    return std::tie(x.port, x.proto, x.workload) < std::tie(y.port, y.proto, y.workload) ||
           (std::tie(x.port, x.proto, x.workload) == std::tie(y.port, y.proto, y.workload) &&
            std::memcmp(&x.addr, &y.addr, sizeof(x.addr)) < 0);
  });
  l.policyRevision = config_.policyFromEtcd() ? appliedPolicyRevision_ : 0;
  l.policySource = config_.policyFromEtcd() ? "etcd" : "files";
  l.policyError = rejectedPolicyError_;
  l.policyRejectedRevision = rejectedPolicyRevision_;
  for (const auto& [id, c] : cgroups_) l.workloads += !c.workload.empty() && !c.inherited;
  l.endpointsKnown = listenersScanned_;
  agent_->setLocal(std::move(l));
}

void Daemon::scanListenersLocked() {
  if (!agent_) return;
  auto found = identity::listeningSockets();
  listenersScanned_ = true;
  if (!found) {
    spdlog::warn("cluster: listeners: {}", found.error().str());
    return;
  }
  listeners_ = std::move(*found);
}

nlohmann::json Daemon::clusterStatusLocked() const {
  using nlohmann::json;
  if (!agent_) return nullptr;
  const auto& s = agentSnap_;
  json pending = json::array();
  for (const auto& w : gen().ids.pending) pending.push_back(w);
  json out{{"node", config_.cluster.nodeName},
           {"etcd_endpoints", config_.cluster.etcdEndpoints},
           {"prefix", config_.cluster.prefix},
           {"connected", s && s->connected},
           {"synced", s && s->synced},
           {"last_error", s ? s->lastError : ""},
           {"revision", s ? s->revision : 0},
           {"lease", s ? s->leaseId : 0},
           {"node_identity", s ? s->nodeIdentity : 0},
           {"nodes", s ? s->nodes.size() : 0},
           {"identities", s ? s->identities.size() : 0},
           {"pending_label_sets", s ? s->pendingLabelSets : 0},
           {"pending_workloads", pending},
           {"remote_addresses", s ? s->addresses.size() : 0},
           {"remote_listeners", s ? s->listeners.size() : 0},
           {"endpoints_applied", endpointsApplies_},
           {"endpoints_apply_us_last", lastEndpointsApplyUs_},
           {"allocation_failures", s ? s->allocationFailures : 0},
           {"reconnects", s ? s->reconnects : 0},
           {"ignored_records", s ? s->ignoredRecords : 0},
           {"policy_source", config_.policyFromEtcd() ? "etcd" : "files"},
           {"policy_revision", appliedPolicyRevision_},
           {"policy_rejected_revision", rejectedPolicyRevision_},
           {"policy_error", rejectedPolicyError_},
           {"wire_identity", wireIdentityStatus(s.get(), config_.cluster.wireIdentity, wireKeys_)}};
  return out;
}

nlohmann::json Daemon::clusterReportLocked(nlohmann::json etcd) const {
  using nlohmann::json;
  json nodes = json::array();
  json identities = json::array();
  if (agentSnap_) {
    const int64_t latest = agentSnap_->policyRevision;  // the pushed set's revision as this node knows it
    for (const auto& [name, n] : agentSnap_->nodes) {
      const bool policyBehind = n.policySource == "etcd" && latest != 0 && n.policyRevision != latest;
      nodes.push_back(json{{"name", name},
                           {"addresses", n.addresses},
                           {"version", n.version},
                           {"last_seen", n.updatedAt != 0 ? flows::isoTime(n.updatedAt * 1000000000) : ""},
                           {"policy_source", n.policySource},
                           {"policy_revision", n.policyRevision},
                           {"policy_rejected_revision", n.policyRejectedRevision},
                           {"policy_error", n.policyError},
                           {"workloads", n.workloads},
                           {"identity", n.identity},
                           {"mismatch", json{{"policy_revision", policyBehind},
                                             {"policy_rejected", n.policyRejectedRevision != 0},
                                             {"version", n.version != kVersion}}}});
    }
    for (const auto& [id, rec] : agentSnap_->identities) {
      auto refs = agentSnap_->identityRefs.find(id);
      identities.push_back(json{{"id", id},
                                {"labels", rec.labels},
                                {"nodes", refs != agentSnap_->identityRefs.end() ? json(refs->second) : json::array()}});
    }
  }
  return json{{"etcd", std::move(etcd)},
              {"this_node", clusterStatusLocked()},
              {"nodes", std::move(nodes)},
              {"identities", std::move(identities)}};
}

}  // namespace microseg::daemon
