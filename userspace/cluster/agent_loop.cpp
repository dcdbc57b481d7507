// The agent's thread: one pass brings etcd in line with this node (lease,
// node record, identity references, endpoints) and this node's view in line
// with etcd (list, then watch; policy). A pass that meets an unreachable
// etcd stops there and is tried again with backoff; what was known stays.
#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <set>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "cluster/agent.h"
#include "cluster/agent_work.h"
#include "cluster/policy_store.h"
#include "common/atomic_file.h"
#include "policy/cidr.h"

namespace microseg::cluster {
namespace fs = std::filesystem;
namespace {

int64_t unixNow() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// A cache file of the agent's, replaced whole; a failure is logged (the
// next save tries again; a restart without etcd then starts from the
// previous one).
void saveCacheFile(const std::string& path, const std::string& text, const std::string& what) {
  if (auto r = writeFileAtomically(path, text, what); !r) spdlog::warn("cluster: {}", r.error().str());
}

constexpr size_t kOpsPerTxn = 64;  // etcd allows 128 operations per transaction by default

policy::Labels nodeLabels(const std::string& node) { return {{kNodeLabel, node}}; }

}  // namespace

// What one pass needs from the caller's side, taken under the lock.
struct Pass {
  LocalState local;
  std::vector<WatchBatch> batches;
  int64_t compacted = 0;
  std::vector<WatchBatch> wireBatches;
  int64_t wireCompacted = 0;
  bool leaseLost = false;
};

class AgentPass {
 public:
  AgentPass(const AgentOptions& o, EtcdClient& etcd, AgentWork& w) : o_(o), etcd_(etcd), w_(w) {}

  // The lease this node's keys live under: the one it had if still alive.
  bool ensureLease(bool lost, const std::function<void()>& onExpired);
  bool list(const std::function<void(const WatchBatch&)>& onBatch, const std::function<void(int64_t)>& onCompacted);
  bool wireKeys(const std::function<void(const WatchBatch&)>& onBatch, const std::function<void(int64_t)>& onCompacted) {
    return w_.wire.listed || check(listWireKeys(etcd_, w_, onBatch, onCompacted));
  }
  bool identities(const LocalState& local);
  bool node(const LocalState& local);
  bool endpoints(const LocalState& local);
  bool policy();
  void collectGarbage();
  void saveCache(bool now = false);

 private:
  bool check(const Result<void>& r) { return note(r.ok() ? std::nullopt : std::optional<Error>(r.error())); }
  template <typename T>
  bool check(const Result<T>& r) {
    return note(r.ok() ? std::nullopt : std::optional<Error>(r.error()));
  }
  bool note(const std::optional<Error>& e) {
    if (e) {
      w_.fail(*e);
      return false;
    }
    if (!w_.connected) spdlog::info("cluster: etcd answers again ({})", etcd_.currentEndpoint());
    w_.connected = true;
    w_.lastError.clear();
    return true;
  }
  std::optional<uint32_t> allocate(const policy::Labels& labels);
  bool writeOps(std::vector<TxnOp>& ops);

  const AgentOptions& o_;
  EtcdClient& etcd_;
  AgentWork& w_;
};

bool AgentPass::ensureLease(bool lost, const std::function<void()>& onExpired) {
  if (w_.lease != 0 && !lost) return true;
  w_.keeper.reset();
  const std::string file = w_.leaseFile(o_);
  int64_t id = 0;
  if (!lost) {
    std::ifstream in(file);
    in >> id;
  }
  if (id != 0) {
    auto left = etcd_.leaseRemaining(id);
    if (!check(left)) return false;
    if (*left <= 0) id = 0;
  }
  if (id == 0) {
    auto granted = etcd_.grantLease(o_.nodeTtlSeconds);
    if (!check(granted)) return false;
    id = *granted;
    spdlog::info("cluster: node {} registered with lease {:x} (TTL {} s)", o_.nodeName, id, o_.nodeTtlSeconds);
  } else {
    spdlog::info("cluster: node {} took its lease {:x} back", o_.nodeName, id);
  }
  saveCacheFile(file, std::to_string(id) + "\n", "node lease");
  w_.lease = id;
  w_.keeper = etcd_.keepAlive(id, o_.nodeTtlSeconds, onExpired);
  return true;
}

bool AgentPass::list(const std::function<void(const WatchBatch&)>& onBatch,
                     const std::function<void(int64_t)>& onCompacted) {
  auto all = etcd_.get(w_.keys.state(), true);
  if (!check(all)) return false;
  w_.watcher.reset();
  w_.view.clear();
  for (const auto& kv : all->kvs) {
    w_.view.apply(kv.key, kv.value, false);
    if (kv.key == w_.keys.policy()) w_.view.setPolicyRevision(kv.modRevision);
  }
  w_.view.setRevision(all->revision);
  w_.listed = true;
  w_.fromCache = false;
  w_.watcher = etcd_.watch(w_.keys.state(), all->revision + 1, onBatch, onCompacted);
  spdlog::info("cluster: listed {} keys at revision {}; watching from there", all->kvs.size(), all->revision);
  return true;
}

std::optional<uint32_t> AgentPass::allocate(const policy::Labels& labels) {
  const std::string hash = labelsHash(labels);
  const std::string record = encode(IdentityRecord{0, labels});
  std::set<uint32_t> tried;
  for (int attempt = 0; attempt < 32; attempt++) {
    uint32_t id = MS_IDENTITY_FIRST_WORKLOAD;
    while (w_.view.idTaken(id) || w_.view.identities().count(id) || tried.count(id)) id++;
    if (id >= MS_IDENTITY_FIRST_EXTERNAL) return std::nullopt;
    const IdentityRecord rec{id, labels};
    auto r = etcd_.txn({Compare::absent(w_.keys.identity(hash)), Compare::absent(w_.keys.identityId(id))},
                       {TxnOp::put(w_.keys.identity(hash), encode(rec)), TxnOp::put(w_.keys.identityId(id), hash),
                        TxnOp::put(w_.keys.identityRef(hash, o_.nodeName), "", w_.lease)},
                       {TxnOp::get(w_.keys.identity(hash)), TxnOp::get(w_.keys.identityId(id))});
    if (!check(r)) return std::nullopt;
    if (r->succeeded) {
      w_.view.apply(w_.keys.identity(hash), encode(rec), false);
      w_.view.apply(w_.keys.identityId(id), hash, false);
      w_.view.apply(w_.keys.identityRef(hash, o_.nodeName), "", false);
      spdlog::info("cluster: identity {} allocated for {}", id, labelsText(labels));
      return id;
    }
    // Someone was first: with these labels (take theirs), or with this id.
    if (r->ranges.size() == 2 && !r->ranges[0].kvs.empty()) {
      w_.view.apply(w_.keys.identity(hash), r->ranges[0].kvs[0].value, false);
      return w_.view.identityOf(labels);  // referenced by the caller
    }
    if (r->ranges.size() == 2 && !r->ranges[1].kvs.empty()) {
      w_.view.apply(w_.keys.identityId(id), r->ranges[1].kvs[0].value, false);
    }
    tried.insert(id);
  }
  w_.allocationFailures++;
  return std::nullopt;
}

bool AgentPass::identities(const LocalState& local) {
  std::vector<policy::Labels> wanted = local.labelSets;
  wanted.push_back(nodeLabels(o_.nodeName));
  std::set<std::string> wantedHashes;
  w_.pending = 0;
  for (const auto& labels : wanted) {
    const std::string hash = labelsHash(labels);
    wantedHashes.insert(hash);
    auto id = w_.view.identityOf(labels);
    if (!id) {
      id = allocate(labels);
      if (!id) {
        w_.pending++;
        if (!w_.connected) continue;  // etcd is away: pending until it is back
        continue;
      }
    }
    auto refs = w_.view.refs().find(hash);
    if (refs != w_.view.refs().end() && refs->second.count(o_.nodeName)) continue;
    // Reference it, as long as it is (still) there: a collector that
    // removed it meanwhile makes this fail, and the next pass allocates anew.
    auto r = etcd_.txn({Compare::present(w_.keys.identity(hash))},
                       {TxnOp::put(w_.keys.identityRef(hash, o_.nodeName), "", w_.lease)});
    if (!check(r)) return false;
    if (r->succeeded) w_.view.apply(w_.keys.identityRef(hash, o_.nodeName), "", false);
  }
  // References this node no longer needs.
  std::vector<TxnOp> drop;
  for (const auto& [hash, nodes] : w_.view.refs()) {
    if (nodes.count(o_.nodeName) && !wantedHashes.count(hash)) {
      drop.push_back(TxnOp::remove(w_.keys.identityRef(hash, o_.nodeName)));
    }
  }
  return writeOps(drop);
}

bool AgentPass::writeOps(std::vector<TxnOp>& ops) {
  for (size_t i = 0; i < ops.size(); i += kOpsPerTxn) {
    std::vector<TxnOp> batch(ops.begin() + static_cast<long>(i),
                             ops.begin() + static_cast<long>(std::min(ops.size(), i + kOpsPerTxn)));
    auto r = etcd_.txn({}, batch);
    if (!check(r)) return false;
    for (const auto& op : batch) {
      w_.view.apply(op.key, op.value, op.kind == TxnOp::Kind::Delete);
    }
  }
  ops.clear();
  return true;
}

bool AgentPass::node(const LocalState& local) {
  NodeRecord r;
  r.name = o_.nodeName;
  for (const auto& a : local.hostAddresses) r.addresses.push_back(policy::formatAddress(a));
  r.version = o_.version;
  r.policyRevision = local.policyRevision;
  r.policySource = local.policySource;
  r.policyError = local.policyError;
  r.policyRejectedRevision = local.policyRejectedRevision;
  r.workloads = local.workloads;
  r.identity = w_.view.identityOf(nodeLabels(o_.nodeName)).value_or(0);
  auto it = w_.view.nodes().find(o_.nodeName);
  const bool fresh = Clock::now() - w_.nodeWrittenAt < std::chrono::seconds(30);
  if (it != w_.view.nodes().end() && fresh) {
    NodeRecord cur = it->second;
    cur.updatedAt = 0;
    if (encode(cur) == encode(r)) return true;
  }
  r.updatedAt = unixNow();
  auto put = etcd_.put(w_.keys.node(o_.nodeName), encode(r), w_.lease);
  if (!check(put)) return false;
  w_.view.apply(w_.keys.node(o_.nodeName), encode(r), false);
  w_.nodeWrittenAt = Clock::now();
  return true;
}

bool AgentPass::endpoints(const LocalState& local) {
  if (!local.endpointsKnown) return true;
  std::map<std::string, EndpointRecord> want;
  if (auto nodeId = w_.view.identityOf(nodeLabels(o_.nodeName))) {
    for (const auto& a : local.hostAddresses) {
      want[w_.keys.addressEndpoint(o_.nodeName, a)] = EndpointRecord{*nodeId, "", "host"};
    }
  }
  for (const auto& n : local.netnsAddresses) {
    if (auto id = w_.view.identityOf(n.labels)) {
      want[w_.keys.addressEndpoint(o_.nodeName, n.addr)] = EndpointRecord{*id, n.workload, "netns"};
    }
  }
  for (const auto& l : local.listeners) {
    if (auto id = w_.view.identityOf(l.labels)) {
      want[w_.keys.listenerEndpoint(o_.nodeName, l.proto, l.addr, l.port)] = EndpointRecord{*id, l.workload, "listener"};
    }
  }
  std::vector<TxnOp> ops;
  for (const auto& [key, rec] : want) {
    auto it = w_.view.own().find(key);
    if (it != w_.view.own().end() && encode(it->second) == encode(rec)) continue;
    ops.push_back(TxnOp::put(key, encode(rec), w_.lease));
  }
  for (const auto& [key, rec] : w_.view.own()) {
    if (!want.count(key)) ops.push_back(TxnOp::remove(key));
  }
  return writeOps(ops);
}

bool AgentPass::policy() {
  if (!o_.policyFromEtcd || !w_.view.policy()) return true;
  const PolicyManifest& m = *w_.view.policy();
  if (m.id == w_.policyId && w_.view.policyRevision() == w_.policyRevision) return true;
  auto files = fetchPolicy(etcd_, w_.keys, m);
  if (!files) {
    w_.policyFetchError = files.error().str();
    return check(files);
  }
  const std::string dir = o_.dataDir + "/policy";
  if (auto r = materializePolicy(*files, dir); !r) {
    w_.policyFetchError = r.error().str();
    spdlog::error("cluster: {}", w_.policyFetchError);
    return true;
  }
  w_.policyFetchError.clear();
  w_.policyDir = dir;
  w_.policyId = m.id;
  w_.policyRevision = w_.view.policyRevision();
  saveCacheFile(w_.policyMetaFile(o_), nlohmann::json{{"revision", w_.policyRevision}, {"id", w_.policyId}}.dump() + "\n",
                "policy revision");
  spdlog::info("cluster: policy revision {} ({} files, pushed by {}) fetched", w_.policyRevision, m.files.size(),
               m.pushedBy);
  return true;
}

void AgentPass::collectGarbage() {
  if (Clock::now() - w_.gcAt < std::chrono::seconds(5)) return;
  w_.gcAt = Clock::now();
  // One collector at a time: the live node first by name.
  if (w_.view.nodes().empty() || w_.view.nodes().begin()->first != o_.nodeName) return;
  const auto grace = std::chrono::seconds(o_.identityGcGraceSeconds);
  for (const auto& [id, rec] : w_.view.identities()) {
    const std::string hash = labelsHash(rec.labels);
    if (w_.view.refs().count(hash)) {
      w_.unreferencedSince.erase(hash);
      continue;
    }
    auto [it, first] = w_.unreferencedSince.emplace(hash, Clock::now());
    if (first || Clock::now() - it->second < grace) continue;
    // Only while still nobody's: a node that references it meanwhile wins.
    auto r = etcd_.txn({Compare::noneUnder(w_.keys.identityRefs(hash)), Compare::present(w_.keys.identity(hash))},
                       {TxnOp::remove(w_.keys.identity(hash)), TxnOp::remove(w_.keys.identityId(id))});
    if (!check(r)) return;
    if (r->succeeded) spdlog::info("cluster: identity {} ({}) unused for {} s: removed", id, labelsText(rec.labels),
                                   o_.identityGcGraceSeconds);
    w_.unreferencedSince.erase(hash);
  }
}

void AgentPass::saveCache(bool now) {
  // Endpoints churn: written at most once a second. Identities are written
  // at once, and everything when the agent stops: a restart while etcd is
  // away starts from them.
  const uint64_t v = w_.view.endpointsVersion() + w_.view.identitiesVersion();
  if (v == w_.cachedVersion || !w_.listed) return;
  const bool idsChanged = w_.view.identitiesVersion() != w_.cachedIdentitiesVersion;
  if (!now && !idsChanged && Clock::now() - w_.cacheSavedAt < std::chrono::seconds(1)) return;
  nlohmann::json kvs = nlohmann::json::object();
  for (const auto& [id, rec] : w_.view.identities()) kvs[w_.keys.identity(labelsHash(rec.labels))] = encode(rec);
  for (const auto& [name, rec] : w_.view.nodes()) kvs[w_.keys.node(name)] = encode(rec);
  for (const auto& [key, a] : w_.view.addresses()) kvs[key] = encode(EndpointRecord{a.identity, a.workload, a.kind});
  for (const auto& [key, l] : w_.view.listeners()) kvs[key] = encode(EndpointRecord{l.identity, l.workload, "listener"});
  nlohmann::json j{{"revision", w_.view.revision()}, {"kvs", kvs}};
  saveCacheFile(w_.cacheFile(o_), j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace), "etcd cache");
  w_.cachedVersion = v;
  w_.cachedIdentitiesVersion = w_.view.identitiesVersion();
  w_.cacheSavedAt = Clock::now();
}

std::shared_ptr<AgentSnapshot> buildSnapshot(const AgentWork& w, const std::string& nodeName) {
  auto s = std::make_shared<AgentSnapshot>();
  s->connected = w.connected;
  s->synced = w.listed || w.fromCache;
  s->lastError = w.lastError;
  s->revision = w.view.revision();
  s->leaseId = w.lease;
  s->nodeIdentity = w.view.identityOf({{kNodeLabel, nodeName}}).value_or(0);
  s->nodes = w.view.nodes();
  s->identities = w.view.identities();
  for (const auto& [id, rec] : s->identities) {
    s->identityByLabels[labelsText(rec.labels)] = id;
    if (auto r = w.view.refs().find(labelsHash(rec.labels)); r != w.view.refs().end()) {
      s->identityRefs[id].assign(r->second.begin(), r->second.end());
    }
  }
  for (const auto& [k, a] : w.view.addresses()) s->addresses.push_back(a);
  for (const auto& [k, l] : w.view.listeners()) s->listeners.push_back(l);
  s->endpointsVersion = w.view.endpointsVersion();
  s->nodesVersion = w.view.nodesVersion();
  s->identitiesVersion = w.view.identitiesVersion();
  s->pendingLabelSets = w.pending;
  s->policyDir = w.policyDir;
  s->policyRevision = w.policyRevision;
  s->policyId = w.policyId;
  s->policyFetchError = w.policyFetchError;
  s->allocationFailures = w.allocationFailures;
  s->reconnects = w.reconnects;
  s->ignoredRecords = w.view.ignored();
  s->wireKeys = w.wire.records;
  s->wireKeysKnown = w.wire.known;
  s->wireKeysVersion = w.wire.version;
  s->wireKeysRevision = w.wire.revision;
  s->wireKeysIgnored = w.wire.ignored.size();
  return s;
}

void Agent::run() {
  AgentWork& w = *work_;
  uint64_t localSeen = ~uint64_t{0};
  int backoffMs = 200;
  bool failed = false;
  for (;;) {
    Pass pass;
    bool leaving = false;
    {
      std::unique_lock<std::mutex> lock(mu_);
      wake_.wait_for(lock, std::chrono::milliseconds(failed ? backoffMs : 1000), [&] {
        return stop_ || leave_ || localSeq_ != localSeen || !batches_.empty() || compactedAt_ != 0 || leaseLost_ ||
               !wireBatches_.empty() || wireCompactedAt_ != 0;
      });
      if (stop_) break;
      leaving = leave_;
      pass.local = local_;
      localSeen = localSeq_;
      pass.batches = std::move(batches_);
      batches_.clear();
      pass.compacted = std::exchange(compactedAt_, 0);
      pass.wireBatches = std::move(wireBatches_);
      wireBatches_.clear();
      pass.wireCompacted = std::exchange(wireCompactedAt_, 0);
      pass.leaseLost = std::exchange(leaseLost_, false);
    }
    if (leaving) {
      w.watcher.reset();
      w.wire.watcher.reset();
      w.keeper.reset();
      if (w.lease != 0) {
        if (auto r = etcd_->revokeLease(w.lease); !r) spdlog::warn("cluster: {}", r.error().str());
      }
      std::error_code ec;
      fs::remove(w.leaseFile(options_), ec);
      return;
    }
    AgentPass p(options_, *etcd_, w);
    for (const auto& b : pass.batches) {
      if (!w.listed) break;
      for (const auto& e : b.events) {
        // A batch of a watch from before the last list: already in it.
        if (e.kv.modRevision <= w.view.revision()) continue;
        w.view.apply(e.kv.key, e.kv.value, e.deleted);
        if (e.kv.key == w.keys.policy() && !e.deleted) w.view.setPolicyRevision(e.kv.modRevision);
      }
      w.view.setRevision(std::max(w.view.revision(), b.revision));
    }
    if (pass.compacted != 0) {
      spdlog::warn("cluster: the watch fell behind etcd's compaction (revision {}): listing again", pass.compacted);
      w.listed = false;
    }
    for (const auto& b : pass.wireBatches) {
      if (!w.wire.listed) break;
      for (const auto& e : b.events) {
        if (e.kv.modRevision <= w.wire.revision) continue;  // in the last list already
        applyWireKeyEvent(w, e.kv.key, e.kv.value, e.deleted);
      }
      w.wire.revision = std::max(w.wire.revision, b.revision);
    }
    if (pass.wireCompacted != 0) {
      spdlog::warn("cluster: the cluster keys' watch fell behind etcd's compaction (revision {}): listing again",
                   pass.wireCompacted);
      w.wire.listed = false;
    }
    auto onExpired = [this] {
      {
        std::lock_guard<std::mutex> lock(mu_);
        leaseLost_ = true;
      }
      wake_.notify_all();
    };
    auto onBatch = [this](const WatchBatch& b) {
      {
        std::lock_guard<std::mutex> lock(mu_);
        batches_.push_back(b);
      }
      wake_.notify_all();
    };
    auto onCompacted = [this](int64_t rev) {
      {
        std::lock_guard<std::mutex> lock(mu_);
        compactedAt_ = rev;
      }
      wake_.notify_all();
    };
    auto onWireBatch = [this](const WatchBatch& b) {
      {
        std::lock_guard<std::mutex> lock(mu_);
        wireBatches_.push_back(b);
      }
      wake_.notify_all();
    };
    auto onWireCompacted = [this](int64_t rev) {
      {
        std::lock_guard<std::mutex> lock(mu_);
        wireCompactedAt_ = rev;
      }
      wake_.notify_all();
    };
    const bool wasConnected = w.connected;
    bool ok = p.ensureLease(pass.leaseLost, onExpired) && (w.listed || p.list(onBatch, onCompacted)) &&
              p.wireKeys(onWireBatch, onWireCompacted) && p.identities(pass.local) && p.node(pass.local) &&
              p.endpoints(pass.local) && p.policy();
    if (ok) p.collectGarbage();
    p.saveCache();
    saveWireKeyCache(options_, w);  // before the daemon can see them (agent_wire_keys.cpp)
    if (!ok && wasConnected) w.reconnects++;
    failed = !ok;
    backoffMs = ok ? 200 : std::min(backoffMs * 2, 2000);

    auto s = buildSnapshot(w, options_.nodeName);
    bool changed;
    {
      std::lock_guard<std::mutex> lock(mu_);
      const auto& old = *snapshot_;
      changed = old.connected != s->connected || old.revision != s->revision || old.synced != s->synced ||
                old.endpointsVersion != s->endpointsVersion || old.identitiesVersion != s->identitiesVersion ||
                old.policyRevision != s->policyRevision || old.pendingLabelSets != s->pendingLabelSets ||
                old.nodeIdentity != s->nodeIdentity || old.lastError != s->lastError || old.nodesVersion != s->nodesVersion ||
                old.wireKeysVersion != s->wireKeysVersion || old.wireKeysKnown != s->wireKeysKnown ||
                old.wireKeysIgnored != s->wireKeysIgnored;
      s->version = old.version + (changed ? 1 : 0);
      snapshot_ = std::move(s);
    }
    if (changed && options_.onChange) options_.onChange();
  }
  // Stopped (daemon exit): the lease is kept; a restart within its TTL takes it back.
  AgentPass(options_, *etcd_, w).saveCache(true);
  w.watcher.reset();
  w.wire.watcher.reset();
  w.keeper.reset();
}

}  // namespace microseg::cluster
