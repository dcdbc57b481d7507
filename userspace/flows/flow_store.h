// Aggregated flow records: the kernel's observed edges (their counts) and
// verdict events (their details) folded per flow key, so a connect flood
// becomes one record with an exact count instead of a flood of lines.
//
// Bounded: at most `capacity` records; when a new key arrives at capacity the
// least recently seen record is evicted (after its last counts were handed to
// the flow log) and counted in `evicted`. Pure logic, no I/O.
#pragma once

#include <cstdint>
#include <functional>
#include <list>
#include <map>
#include <optional>
#include <string>
#include <tuple>
#include <unordered_map>
#include <vector>

#include "bpf/abi.h"

namespace microseg::flows {

struct FlowKey {
  uint8_t direction = MS_DIR_EGRESS;
  uint32_t srcIdentity = 0;
  uint32_t dstIdentity = 0;
  uint16_t dstPort = 0;  // host order
  uint8_t protocol = 0;
  uint8_t verdict = 0;   // enum ms_verdict
  uint32_t ruleId = 0;
  uint8_t reason = 0;    // enum ms_reason
  uint8_t peerVia = 0;   // enum ms_peer_via: how the other end was identified
  auto tie() const {
    return std::tie(direction, srcIdentity, dstIdentity, dstPort, protocol, verdict, ruleId, reason, peerVia);
  }
  bool operator<(const FlowKey& o) const { return tie() < o.tie(); }
  bool operator==(const FlowKey& o) const { return tie() == o.tie(); }
};

struct FlowRecord {
  uint64_t id = 0;          // stable while the record lives
  FlowKey key;
  int64_t firstSeenNs = 0;  // wall clock
  int64_t lastSeenNs = 0;
  uint64_t count = 0;       // events folded into this record
  uint64_t flushedCount = 0;  // part of `count` already written to the flow log
  uint64_t updateSeq = 0;   // global sequence of the last update (for --follow)
  // Details of the latest event (not part of the key).
  uint64_t srcCgroupId = 0;
  uint64_t dstCgroupId = 0;
  uint32_t pid = 0;
  std::string comm;
  ms_addr srcAddr{};
  uint16_t srcPort = 0;  // host order
  ms_addr dstAddr{};
  uint64_t generation = 0;
  uint8_t hook = 0;
  uint64_t fqdnName = 0;  // ms_event.fqdn_name: the name that bound the destination (0: none)
  // Its verdict under "in force + staged" (diff/staged.h), judged once per
  // staged set (stagedStamp: that set's compiled stamp; 0: never judged).
  uint64_t stagedStamp = 0;
  uint8_t stagedVerdict = 0;
  uint8_t stagedReason = 0;
  uint32_t stagedRuleId = 0;
  // A revocation record's (verdict revoked or would-revoke), of the latest
  // connection folded in: what ended it ("grant 3 expired", "generation 12
  // (apply (uid 0))") and how long it had been open (-1: not known: it was
  // opened before microseg's programs watched).
  std::string revokedBy;
  int64_t connectionAgeNs = -1;
};

// The record key of an observed edge: oriented like the flow (src opened it).
FlowKey edgeFlowKey(const ms_edge_key& k);

class FlowStore {
 public:
  explicit FlowStore(size_t capacity = 10000) : capacity_(capacity ? capacity : 1) {}

  // Folds one event in; `wallNs` is its wall-clock time. Returns the record.
  // If a record has to be evicted to make room, `onEvict` gets it first.
  // `counts`: the event adds one to the record's count; false for a flow
  // the kernel counted in its edge (ms_event.in_edge): the event brings its
  // details (process, addresses, cgroups, precise time), addEdge() the count.
  const FlowRecord& add(const ms_event& e, int64_t wallNs,
                        const std::function<void(const FlowRecord&)>& onEvict = {}, bool counts = true);
  // Adds `delta` flows of an observed edge (the kernel's ms_edges) seen
  // between `firstWallNs` and `lastWallNs`; a record that does not exist yet
  // is made (with no details until an event of it arrives).
  const FlowRecord& addEdge(const FlowKey& key, uint64_t delta, int64_t firstWallNs, int64_t lastWallNs,
                            const std::function<void(const FlowRecord&)>& onEvict = {});
  // Removes the records last seen before `cutoffWallNs` (retention); how many.
  size_t expire(int64_t cutoffWallNs);
  // Puts back records of an earlier run (persisted history), keeping their
  // counts, oldest last seen first; they count as flushed to the flow log.
  void restore(std::vector<FlowRecord> records);

  // Records with unflushed counts (for the flow log), oldest update first;
  // marks them flushed. `onlyNew`: only records never flushed before. The
  // returned copies still carry the previous flushedCount (delta = count -
  // flushedCount).
  std::vector<FlowRecord> takeUnflushed(bool onlyNew = false);

  // Every record, most recently seen first.
  std::vector<FlowRecord> all() const;
  // Records updated after `seq` (for --follow), oldest update first.
  std::vector<FlowRecord> updatedAfter(uint64_t seq) const;
  std::optional<FlowRecord> find(uint64_t id) const;
  // Records record `id`'s staged verdict (a live record's; else nothing).
  void setStaged(uint64_t id, uint64_t stamp, uint8_t verdict, uint8_t reason, uint32_t ruleId);
  // Records what ended the connection of revocation record `id` and its age.
  void setRevocation(uint64_t id, std::string by, int64_t connectionAgeNs);

  size_t size() const { return byKey_.size(); }
  size_t capacity() const { return capacity_; }
  uint64_t evicted() const { return evicted_; }
  uint64_t events() const { return events_; }
  uint64_t seq() const { return seq_; }

 private:
  using Lru = std::list<FlowRecord>;  // front = most recently seen
  size_t capacity_;
  Lru lru_;
  std::map<FlowKey, Lru::iterator> byKey_;
  std::unordered_map<uint64_t, Lru::iterator> byId_;
  uint64_t nextId_ = 1, seq_ = 0, evicted_ = 0, events_ = 0;
  // The record of `k`, made (evicting the least recently seen at capacity)
  // if new, moved to the front.
  FlowRecord& touch(const FlowKey& k, int64_t wallNs, const std::function<void(const FlowRecord&)>& onEvict);
};

}  // namespace microseg::flows
