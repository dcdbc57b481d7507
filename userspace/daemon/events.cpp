// Verdict events -> aggregated flow records, the flow log and the counts
// by workload that metrics show.
#include "daemon/daemon.h"

#include <spdlog/spdlog.h>

#include <chrono>

#include "common/names.h"

namespace microseg::daemon {
namespace {

int64_t nowRealtimeNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

flows::FlowContext Daemon::flowContextLocked() const {
  flows::FlowContext ctx;
  ctx.ids = &gen().ids;
  ctx.cgroupPaths = &cgroupPaths_;
  ctx.cgroupWorkloads = &cgroupWorkloads_;
  ctx.rules = &reloader_->rules();
  ctx.monotonicToRealtimeNs = clockOffsetNs_;
  ctx.staged = gen().staged.get();
  ctx.fqdnNames = &fqdnNames_;
  return ctx;
}

void Daemon::writeFlowLine(const flows::FlowRecord& r, uint64_t delta) {
  if (!flowLog_.enabled() || delta == 0) return;
  // Allowed flows are in the records (the kernel counts every edge), but in
  // the flow log only with --log-allowed, as before edges.
  if (r.key.verdict == MS_VERDICT_ALLOW && !config_.logAllowed) return;
  flowLog_.write(flows::recordLine(r, delta, flowContextLocked()));
}

// The text of a name that bound a destination (ms_fqdn_texts), read once;
// the cache is bounded like the kernel's map.
void Daemon::noteFqdnNameLocked(uint64_t hash) {
  if (fqdnNames_.size() >= MS_MAX_FQDN_TEXTS) fqdnNames_.clear();
  auto text = datapath_->fqdnText(hash);
  if (text && !text->empty()) fqdnNames_[hash] = *text;
}

void Daemon::countFlowsLocked(const flows::FlowRecord& r, const std::string& workload, uint64_t n) {
  flowEventCounts_[{directionName(r.key.direction), verdictName(r.key.verdict), workload}] += n;
  const diff::StagedSet* staged = gen().staged.get();
  if (staged != nullptr && judgeStagedLocked(*staged, r) == MS_VERDICT_DENY) countStagedDenyLocked(workload, n);
}

// Events bring a record's details (process, addresses, cgroups); its count
// comes from the kernel's edge (foldEdgesLocked), but for an event that is
// its flow's only count (ms_event.in_edge 0: a UDP answer logged, a full
// edge map). The flow log gets a line when a record is new (at once) and
// then at most once a second per record with the count since its previous
// line, so a flood cannot flood the log and the counts of all lines add up
// to the flows judged.
void Daemon::drainEventsLocked() {
  if (!events_) return;
  if (auto r = events_->take(eventBatch_); !r) spdlog::warn("datapath: {}", r.error().str());
  auto onEvict = [this](const flows::FlowRecord& r) { writeFlowLine(r, r.count - r.flushedCount); };
  for (const ms_event& e : eventBatch_) {
    if (e.fqdn_name != 0 && !fqdnNames_.count(e.fqdn_name)) noteFqdnNameLocked(e.fqdn_name);
    const bool counts = e.in_edge == 0;
    const flows::FlowRecord& r =
        flowStore_.add(e, static_cast<int64_t>(e.timestamp_ns) + clockOffsetNs_, onEvict, counts);
    if (!counts) continue;
    // By the workload whose policy judged: the source for egress, the
    // destination for ingress.
    const bool egress = e.direction == MS_DIR_EGRESS;
    auto w = cgroupWorkloads_.find(egress ? e.src_cgroup_id : e.dst_cgroup_id);
    countFlowsLocked(r,
                     w != cgroupWorkloads_.end() ? w->second
                                                 : gen().ids.nameOf(egress ? e.src_identity : e.dst_identity),
                     1);
  }
  if (!eventBatch_.empty()) edgesDirty_ = true;
  foldEdgesLocked();
  const int64_t now = nowRealtimeNs() / 1000000;
  const bool periodic = now - lastFlushMs_ >= 1000;
  if (periodic) lastFlushMs_ = now;
  bool wrote = false;
  for (const auto& r : flowStore_.takeUnflushed(/*onlyNew=*/!periodic)) {
    writeFlowLine(r, r.count - r.flushedCount);
    wrote = true;
  }
  if (wrote) flowLog_.flush();
}

// A record's verdict depends on its key only, so it is judged once per
// staged set (the evaluator reads every entry); with staged cidr peers the
// peer's address maps it, and the address is the latest event's: judged
// again each time.
uint8_t Daemon::judgeStagedLocked(const diff::StagedSet& staged, const flows::FlowRecord& r) {
  if (r.stagedStamp == staged.compiled.stamp && !staged.ids) return r.stagedVerdict;
  const diff::StagedVerdict v = diff::judgeStaged(staged, gen().ids, flows::judgedFlow(r));
  flowStore_.setStaged(r.id, staged.compiled.stamp, v.verdict, v.reason, v.ruleId);
  return v.verdict;
}

// Workload names are bounded by the Workloads defined; anything else, and
// any name past kMaxStagedLabels, is counted as "other".
void Daemon::countStagedDenyLocked(const std::string& workload, uint64_t n) {
  constexpr size_t kMaxStagedLabels = 1024;
  auto it = stagedWouldDeny_.find(workload);
  if (it == stagedWouldDeny_.end()) {
    const bool known = gen().ids.byWorkload.count(workload) != 0;
    it = stagedWouldDeny_.try_emplace(known && stagedWouldDeny_.size() < kMaxStagedLabels ? workload : "other", 0)
             .first;
  }
  it->second += n;
}

uint64_t Daemon::eventsLostLocked(const datapath::Counters& c) const {
  return c.eventsLost() + (events_ ? events_->dropped() : 0);
}

}  // namespace microseg::daemon
