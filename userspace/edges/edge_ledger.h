// The kernel's observed edges (bpf/abi.h: ms_edges) as deltas: the daemon
// folds into its flow records what each edge counted since the last look.
//
// The kernel's counts only grow while its map lives, so the ledger keeps,
// per edge, the count already folded; it is saved with the flow records
// (edge_history.h) so a restarted daemon that adopts the pinned map folds
// exactly what was counted while it was away, no more. Pure logic.
#pragma once

#include <cstdint>
#include <cstring>
#include <map>
#include <vector>

#include <nlohmann/json.hpp>

#include "bpf/abi.h"
#include "common/result.h"
#include "datapath/datapath.h"

namespace microseg::edges {

struct EdgeKeyLess {
  bool operator()(const ms_edge_key& a, const ms_edge_key& b) const { return std::memcmp(&a, &b, sizeof(a)) < 0; }
};

// What one edge counted since the ledger last saw it.
struct EdgeDelta {
  ms_edge_key key{};
  uint64_t delta = 0;
  uint64_t firstNs = 0;  // the edge's first and latest flow (coarse CLOCK_MONOTONIC)
  uint64_t lastNs = 0;
};

class EdgeLedger {
 public:
  // The edges whose count moved since the last take(), and remembers the
  // counts. A count below the one folded means the map was made anew (its
  // counts restarted from zero): all of it is new.
  std::vector<EdgeDelta> take(const datapath::EdgeEntries& now);
  // Edges removed from the kernel's map with their last values
  // (Datapath::removeEdges): what each counted since the last look, and
  // they are forgotten (one that comes back counts from zero).
  std::vector<EdgeDelta> takeRemoved(const datapath::EdgeEntries& removed);
  // The kernel's map is not the one the counts were folded from (a fresh
  // one, not adopted): forget them.
  void clear() { folded_.clear(); }
  size_t size() const { return folded_.size(); }

  // [{"key": "<40 hex digits>", "count": N}, ...]
  nlohmann::json toJson() const;
  static Result<EdgeLedger> fromJson(const nlohmann::json& j);

 private:
  std::map<ms_edge_key, uint64_t, EdgeKeyLess> folded_;
};

}  // namespace microseg::edges
