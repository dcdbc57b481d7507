// The kernel's observed edges (bpf/abi.h: ms_edges) -> flow records, and the
// records' history across restarts (edges/edge_history.h).
#include "daemon/daemon.h"

#include <spdlog/spdlog.h>

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
  for (const edges::EdgeDelta& d : edgeLedger_.take(*entries)) {
    const flows::FlowRecord& r =
        flowStore_.addEdge(flows::edgeFlowKey(d.key), d.delta, static_cast<int64_t>(d.firstNs) + clockOffsetNs_,
                           static_cast<int64_t>(d.lastNs) + clockOffsetNs_, onEvict);
    // The kernel names no cgroup in an edge: the identity's name.
    countFlowsLocked(r, gen().ids.nameOf(d.key.subject), d.delta);
    edgesDirty_ = true;
  }
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
  if (auto r = edges::saveHistory(historyPath(config_), flowStore_.all(), edgeLedger_); !r) {
    if (edgeSaveFailures_++ == 0) spdlog::error("edges: {}", r.error().str());
    return;
  }
  edgesDirty_ = false;
}

}  // namespace microseg::daemon
