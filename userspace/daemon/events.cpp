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
  return ctx;
}

void Daemon::writeFlowLine(const flows::FlowRecord& r, uint64_t delta) {
  if (!flowLog_.enabled() || delta == 0) return;
  flowLog_.write(flows::recordLine(r, delta, flowContextLocked()));
}

// Events are folded into aggregated records; the flow log gets a line when a
// record is new (at once) and then at most once a second per record with the
// count since its previous line, so a flood cannot flood the log and the
// counts of all lines add up to the events received.
void Daemon::drainEventsLocked() {
  if (!events_) return;
  if (auto r = events_->take(eventBatch_); !r) spdlog::warn("datapath: {}", r.error().str());
  auto onEvict = [this](const flows::FlowRecord& r) { writeFlowLine(r, r.count - r.flushedCount); };
  for (const ms_event& e : eventBatch_) {
    flowStore_.add(e, static_cast<int64_t>(e.timestamp_ns) + clockOffsetNs_, onEvict);
    // By the workload whose policy judged: the source for egress, the
    // destination for ingress.
    const bool egress = e.direction == MS_DIR_EGRESS;
    auto w = cgroupWorkloads_.find(egress ? e.src_cgroup_id : e.dst_cgroup_id);
    flowEventCounts_[{directionName(e.direction), verdictName(e.verdict),
                      w != cgroupWorkloads_.end() ? w->second
                                                  : gen().ids.nameOf(egress ? e.src_identity : e.dst_identity)}]++;
  }
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

uint64_t Daemon::eventsLostLocked(const datapath::Counters& c) const {
  return c.eventsLost() + (events_ ? events_->dropped() : 0);
}

}  // namespace microseg::daemon
