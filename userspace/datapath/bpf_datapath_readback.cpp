// What the kernel tells the daemon back: the counters, each rule's hits,
// the UDP exchanges that expired (a sweep a step at a time) and the verdict
// events of the ring buffer. The writing side is bpf_datapath.cpp.
#include "common/kernel_clock.h"
#include "datapath/bpf_datapath.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstring>
#include <ctime>

#include "datapath/map_writes.h"
#include "datapath/slot_state.h"
#include "microseg.skel.h"

namespace microseg::datapath {

Result<Counters> BpfDatapath::counters() const {
  Counters out;
  int ncpu = libbpf_num_possible_cpus();
  if (ncpu <= 0) return libbpfError("count CPUs", "possible", ncpu);
  std::vector<uint64_t> vals(static_cast<size_t>(ncpu));
  int fd = bpf_map__fd(skel_->maps.ms_counters);
  for (uint32_t i = 0; i < MS_CTR_MAX; i++) {
    if (bpf_map_lookup_elem(fd, &i, vals.data()) != 0) return sysError("lookup in map", "ms_counters");
    for (uint64_t v : vals) out.values[i] += v;
  }
  return out;
}

// Batches of entries, one syscall each. A hash map's batch is whole
// buckets: ENOSPC says a bucket has more entries than the batch has room
// for, and the batch grows.
Result<EdgeEntries> BpfDatapath::edges() const {
  EdgeEntries out;
  const int fd = bpf_map__fd(skel_->maps.ms_edges);
  uint32_t batch = 4096;
  std::vector<ms_edge_key> keys(batch);
  std::vector<ms_edge_value> vals(batch);
  uint32_t cursor = 0;
  bool first = true;
  for (;;) {
    uint32_t count = batch;
    const int rc = bpf_map_lookup_batch(fd, first ? nullptr : &cursor, &cursor, keys.data(), vals.data(), &count,
                                        nullptr);
    if (rc < 0 && errno == ENOSPC && count == 0 && batch < MS_MAX_EDGES) {
      batch *= 2;
      keys.resize(batch);
      vals.resize(batch);
      continue;
    }
    if (rc < 0 && errno != ENOENT) return sysError("read batch of map", "ms_edges");
    for (uint32_t i = 0; i < count; i++) out.emplace_back(keys[i], vals[i]);
    if (rc < 0) break;  // ENOENT: the end of the map
    first = false;
  }
  return out;
}

Result<EdgeEntries> BpfDatapath::removeEdges(const std::vector<ms_edge_key>& keys) {
  EdgeEntries out;
  const int fd = bpf_map__fd(skel_->maps.ms_edges);
  for (const auto& k : keys) {
    ms_edge_value v{};
    if (bpf_map_lookup_and_delete_elem(fd, &k, &v) == 0) {
      out.emplace_back(k, v);
    } else if (errno != ENOENT) {
      return sysError("look up and delete in map", "ms_edges");
    }
  }
  return out;
}

Result<std::map<uint32_t, uint64_t>> BpfDatapath::ruleHits(uint32_t maxRuleId) const {
  std::map<uint32_t, uint64_t> out;
  int ncpu = libbpf_num_possible_cpus();
  if (ncpu <= 0) return libbpfError("count CPUs", "possible", ncpu);
  const int fd = bpf_map__fd(skel_->maps.ms_rule_hits);
  // Batches of ids (one syscall each, not one per rule: 100k rules took
  // seconds), each value one counter per possible CPU.
  const uint32_t end = std::min(maxRuleId, MS_MAX_RULES - 1) + 1;
  constexpr uint32_t kBatch = 4096;
  std::vector<uint32_t> ids(kBatch);
  std::vector<uint64_t> vals(size_t(kBatch) * size_t(ncpu));
  uint32_t cursor = 0;
  for (uint32_t from = 0; from < end;) {
    uint32_t count = std::min(kBatch, end - from);
    const int rc = bpf_map_lookup_batch(fd, from == 0 ? nullptr : &cursor, &cursor, ids.data(), vals.data(), &count,
                                        nullptr);
    if (rc < 0 && errno != ENOENT) return sysError("read batch of map", "ms_rule_hits");
    for (uint32_t i = 0; i < count; i++) {
      uint64_t sum = 0;
      for (int c = 0; c < ncpu; c++) sum += vals[size_t(i) * size_t(ncpu) + size_t(c)];
      if (sum != 0) out[ids[i]] = sum;
    }
    if (rc < 0 || count == 0) break;  // ENOENT: the end of the map
    from += count;
  }
  return out;
}

Result<Datapath::SweepStep> BpfDatapath::expireUdpExchanges() {
  const int fd = bpf_map__fd(skel_->maps.ms_udp_flows);
  const uint64_t now = kernelCoarseNs();
  // Batches of entries from a bucket cursor (deleting what was read does not
  // disturb it); the expired ones of each batch are deleted together. A
  // datagram that renews an entry between the two loses it: one answer is
  // judged as a new flow (the window is a batch, microseconds).
  constexpr uint32_t kBatch = 512, kBatchesPerStep = 8;
  std::vector<ms_udp_flow_key> keys(kBatch), expired;
  std::vector<ms_udp_flow_value> values(kBatch);
  SweepStep step;
  for (uint32_t b = 0; b < kBatchesPerStep && !step.done; b++) {
    uint32_t count = kBatch;
    const int rc = bpf_map_lookup_batch(fd, udpSweepStarted_ ? &udpSweepCursor_ : nullptr, &udpSweepCursor_,
                                        keys.data(), values.data(), &count, nullptr);
    const int err = rc < 0 ? errno : 0;
    if (rc < 0 && err != ENOENT) {
      udpSweepStarted_ = false;
      return sysError("read batch of map", "ms_udp_flows");
    }
    udpSweepStarted_ = err != ENOENT;  // ENOENT: that was the last batch
    step.done = !udpSweepStarted_;
    expired.clear();
    for (uint32_t i = 0; i < count; i++) {
      if (udpExchangeExpired(values[i], now, config_.answer_ttl_ns)) expired.push_back(keys[i]);
    }
    if (expired.empty()) continue;
    // The kernel stops at a key that is gone (evicted meanwhile, ENOENT):
    // go on after it.
    for (size_t off = 0; off < expired.size();) {
      uint32_t n = uint32_t(expired.size() - off);
      const int drc = bpf_map_delete_batch(fd, expired.data() + off, &n, nullptr);
      step.expired += n;
      if (drc == 0) break;
      if (errno != ENOENT) {
        udpSweepStarted_ = false;
        return sysError("delete batch of map", "ms_udp_flows");
      }
      off += size_t(n) + 1;
    }
  }
  return step;
}

Result<int> BpfDatapath::drainEvents(const EventHandler& handler) {
  handler_ = &handler;
  int n = ring_buffer__consume(ring_.get());
  handler_ = nullptr;
  if (n < 0) return libbpfError("consume ring buffer", "ms_events", n);
  return n;
}

int BpfDatapath::eventFd() const { return ring_buffer__epoll_fd(ring_.get()); }

}  // namespace microseg::datapath
