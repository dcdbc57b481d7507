// The kernel's observed edges (bpf/abi.h: ms_edges) -> flow records, and the
// records' history across restarts (edges/edge_history.h).
#include "common/kernel_clock.h"
#include "daemon/daemon.h"


#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <filesystem>

#include "edges/edge_history.h"

namespace microseg::daemon {
namespace {

int64_t nowWallNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string historyPath(const DaemonConfig& c) { return c.dataDir + "/edges.json"; }

constexpr int64_t kSaveEveryMs = 10000;

// An edge idle this long leaves the kernel's map (its record stays), so the
// map has room for the edges in use however many come and go: a quarter of
// the retention, at most 10 minutes.
uint64_t edgeIdleNs(const DaemonConfig& c) {
  return static_cast<uint64_t>(std::min<int64_t>(c.edgeRetentionSeconds * 1000000000 / 4, 600ll * 1000000000));
}

}  // namespace

// Every drain (each tick, and before every query of the records): what each
// edge counted since the last look goes into its record. The edge's times
// are the kernel's coarse clock (a tick: 1-4 ms), its events' the precise
// one; a record keeps the earliest first and the latest last of both.
void Daemon::foldEdgesLocked() {
  if (!datapath_) return;
  auto entries = datapath_->edges();
  if (!entries) {
    // The counts stay in the kernel: the next read folds them.
    if (edgeReadFailures_++ == 0) spdlog::warn("datapath: {}", entries.error().str());
    return;
  }
  auto onEvict = [this](const flows::FlowRecord& r) { writeFlowLine(r, r.count - r.flushedCount); };
  auto fold = [&](const std::vector<edges::EdgeDelta>& deltas) {
    for (const edges::EdgeDelta& d : deltas) {
      const flows::FlowRecord& r =
          flowStore_.addEdge(flows::edgeFlowKey(d.key), d.delta, static_cast<int64_t>(d.firstNs) + clockOffsetNs_,
                             static_cast<int64_t>(d.lastNs) + clockOffsetNs_, onEvict);
      // The kernel names no cgroup in an edge: the identity's name.
      countFlowsLocked(r, gen().ids.nameOf(d.key.subject), d.delta);
      edgesDirty_ = true;
    }
  };
  fold(edgeLedger_.take(*entries));

  // Idle edges leave the map with their last counts (nothing counted up to
  // the removal is lost; a flow after it makes the edge new again).
  const uint64_t now = kernelCoarseNs(), idle = edgeIdleNs(config_);
  std::vector<ms_edge_key> stale;
  for (const auto& [k, v] : *entries) {
    if (v.last_ns != 0 && now > v.last_ns && now - v.last_ns > idle) stale.push_back(k);
  }
  if (stale.empty()) return;
  auto removed = datapath_->removeEdges(stale);
  if (!removed) {
    // They stay, counted as before; the next fold tries again.
    if (edgeReadFailures_++ == 0) spdlog::warn("datapath: {}", removed.error().str());
    return;
  }
  edgesPruned_ += removed->size();
  fold(edgeLedger_.takeRemoved(*removed));
}

void Daemon::loadEdgeHistoryLocked() {
  const int64_t cutoff = nowWallNs() - config_.edgeRetentionSeconds * 1000000000;
  auto h = edges::loadHistory(historyPath(config_), cutoff);
  if (!h) {
    // Not fatal: the records start empty (the kernel's counts are folded
    // from zero), and the file is replaced at the next save.
    spdlog::error("edges: {} (starting without the saved flow records)", h.error().str());
    return;  // with an empty ledger: every count of the kernel's edges is folded anew
  }
  const size_t n = h->records.size();
  flowStore_.restore(std::move(h->records));
  // The numbers the records (and the adopted edges) are written in: the
  // first reload gives the same label sets, ranges and rules the same ones.
  if (h->numbering) {
    if (reloader_->resumeNumbering(edges::previousTable(*h->numbering), h->numbering->rules,
                                   h->numbering->nextRuleId)) {
      spdlog::info("edges: numbering of the last run resumed ({} workload and {} range identities, rule ids below {})",
                   h->numbering->workloads.size(), h->numbering->ranges.size(), h->numbering->nextRuleId);
    } else {
      spdlog::warn("edges: the saved rule ids in {} are inconsistent; numbering afresh (older records may name "
                   "other rules)", historyPath(config_));
    }
  }
  // The ledger says what of the kernel's counts the records hold: only
  // true of the map it was taken from. A fresh map starts from zero.
  if (datapath_->adopted()) edgeLedger_ = std::move(h->ledger);
  spdlog::info("edges: {} flow records restored from {} ({} kernel edges {})", n, historyPath(config_),
               edgeLedger_.size(), datapath_->adopted() ? "adopted" : "(a fresh edge map)");
}

void Daemon::edgesTickLocked(bool force) {
  const int64_t nowMs = nowWallNs() / 1000000;
  if (!force && nowMs - lastEdgeSaveMs_ < kSaveEveryMs) return;
  lastEdgeSaveMs_ = nowMs;
  const size_t expired = flowStore_.expire(nowWallNs() - config_.edgeRetentionSeconds * 1000000000);
  edgeRecordsExpired_ += expired;
  if (!edgesDirty_ && expired == 0 && !force) return;
  std::error_code ec;
  std::filesystem::create_directories(config_.dataDir, ec);
  const edges::Numbering numbering = edges::numberingOf(gen().ids, reloader_->rules());
  if (auto r = edges::saveHistory(historyPath(config_), flowStore_.all(), edgeLedger_, &numbering); !r) {
    if (edgeSaveFailures_++ == 0) spdlog::error("edges: {}", r.error().str());
    return;
  }
  edgesDirty_ = false;
}

}  // namespace microseg::daemon
