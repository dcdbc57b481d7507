#include "flows/flow_store.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cstring>

namespace microseg::flows {

FlowKey edgeFlowKey(const ms_edge_key& e) {
  FlowKey k;
  const bool egress = e.direction == MS_DIR_EGRESS;
  k.direction = e.direction;
  k.srcIdentity = egress ? e.subject : e.peer;
  k.dstIdentity = egress ? e.peer : e.subject;
  k.dstPort = ntohs(e.port);
  k.protocol = e.protocol;
  k.verdict = e.verdict;
  k.ruleId = e.rule_id;
  k.reason = e.reason;
  k.peerVia = e.peer_via;
  return k;
}

FlowRecord& FlowStore::touch(const FlowKey& k, int64_t wallNs,
                             const std::function<void(const FlowRecord&)>& onEvict) {
  auto it = byKey_.find(k);
  if (it == byKey_.end()) {
    if (byKey_.size() >= capacity_) {
      auto victim = std::prev(lru_.end());
      if (onEvict) onEvict(*victim);
      byKey_.erase(victim->key);
      byId_.erase(victim->id);
      lru_.erase(victim);
      evicted_++;
    }
    FlowRecord r;
    r.id = nextId_++;
    r.key = k;
    r.firstSeenNs = wallNs;
    lru_.push_front(std::move(r));
    it = byKey_.emplace(k, lru_.begin()).first;
    byId_[lru_.begin()->id] = lru_.begin();
  } else if (it->second != lru_.begin()) {
    lru_.splice(lru_.begin(), lru_, it->second);
  }
  FlowRecord& r = *it->second;
  r.updateSeq = ++seq_;
  return r;
}

const FlowRecord& FlowStore::add(const ms_event& e, int64_t wallNs,
                                 const std::function<void(const FlowRecord&)>& onEvict, bool counts) {
  FlowKey k;
  k.direction = e.direction;
  k.srcIdentity = e.src_identity;
  k.dstIdentity = e.dst_identity;
  k.dstPort = ntohs(e.dst_port);
  k.protocol = e.protocol;
  k.verdict = e.verdict;
  k.ruleId = e.rule_id;
  k.reason = e.reason;
  k.peerVia = e.peer_via;
  events_++;
  FlowRecord& r = touch(k, wallNs, onEvict);
  r.firstSeenNs = std::min(r.firstSeenNs, wallNs);
  r.lastSeenNs = std::max(r.lastSeenNs, wallNs);
  if (counts) r.count++;
  r.srcCgroupId = e.src_cgroup_id;
  r.dstCgroupId = e.dst_cgroup_id;
  r.pid = e.pid;
  r.comm.assign(e.comm, strnlen(e.comm, sizeof(e.comm)));
  r.fqdnName = e.fqdn_name;
  r.srcAddr = e.src_addr;
  r.srcPort = ntohs(e.src_port);
  r.dstAddr = e.dst_addr;
  r.generation = e.generation;
  r.hook = e.hook;
  return r;
}

const FlowRecord& FlowStore::addEdge(const FlowKey& key, uint64_t delta, int64_t firstWallNs, int64_t lastWallNs,
                                     const std::function<void(const FlowRecord&)>& onEvict) {
  FlowRecord& r = touch(key, firstWallNs, onEvict);
  r.firstSeenNs = std::min(r.firstSeenNs, firstWallNs);
  r.lastSeenNs = std::max(r.lastSeenNs, lastWallNs);
  r.count += delta;
  return r;
}

size_t FlowStore::expire(int64_t cutoffWallNs) {
  size_t n = 0;
  for (auto it = lru_.begin(); it != lru_.end();) {
    if (it->lastSeenNs < cutoffWallNs) {
      byKey_.erase(it->key);
      byId_.erase(it->id);
      it = lru_.erase(it);
      n++;
    } else {
      ++it;
    }
  }
  return n;
}

void FlowStore::restore(std::vector<FlowRecord> records) {
  std::sort(records.begin(), records.end(), [](const auto& a, const auto& b) { return a.lastSeenNs < b.lastSeenNs; });
  for (auto& in : records) {
    FlowRecord& r = touch(in.key, in.firstSeenNs, {});
    const uint64_t id = r.id, seq = r.updateSeq;
    const uint64_t count = r.count + in.count;
    const int64_t first = std::min(r.firstSeenNs, in.firstSeenNs), last = std::max(r.lastSeenNs, in.lastSeenNs);
    r = std::move(in);
    r.id = id;
    r.updateSeq = seq;
    r.count = count;
    r.flushedCount = count;
    r.firstSeenNs = first;
    r.lastSeenNs = last;
    r.stagedStamp = 0;
  }
}

std::vector<FlowRecord> FlowStore::takeUnflushed(bool onlyNew) {
  std::vector<FlowRecord> out;
  for (auto& r : lru_) {
    if (r.count != r.flushedCount && (!onlyNew || r.flushedCount == 0)) {
      out.push_back(r);
      r.flushedCount = r.count;
    }
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.updateSeq < b.updateSeq; });
  return out;
}

std::vector<FlowRecord> FlowStore::all() const { return {lru_.begin(), lru_.end()}; }

std::vector<FlowRecord> FlowStore::updatedAfter(uint64_t seq) const {
  std::vector<FlowRecord> out;
  for (const auto& r : lru_) {
    if (r.updateSeq <= seq) break;  // LRU order = update order
    out.push_back(r);
  }
  std::reverse(out.begin(), out.end());
  return out;
}

std::optional<FlowRecord> FlowStore::find(uint64_t id) const {
  auto it = byId_.find(id);
  if (it == byId_.end()) return std::nullopt;
  return *it->second;
}

void FlowStore::setStaged(uint64_t id, uint64_t stamp, uint8_t verdict, uint8_t reason, uint32_t ruleId) {
  auto it = byId_.find(id);
  if (it == byId_.end()) return;
  FlowRecord& r = *it->second;
  r.stagedStamp = stamp;
  r.stagedVerdict = verdict;
  r.stagedReason = reason;
  r.stagedRuleId = ruleId;
}

void FlowStore::setRevocation(uint64_t id, std::string by, int64_t connectionAgeNs) {
  auto it = byId_.find(id);
  if (it == byId_.end()) return;
  it->second->revokedBy = std::move(by);
  it->second->connectionAgeNs = connectionAgeNs;
}

}  // namespace microseg::flows
