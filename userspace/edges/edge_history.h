// The flow records and the edge ledger across restarts: <dataDir>/edges.json,
// written whole (temporary file, fsync, rename) so a crash leaves the last
// complete one. Records and ledger are saved together, at one moment: a
// restarted daemon that adopts the kernel's edge map folds exactly what the
// kernel counted after that moment.
//
// Records older than the retention (by last seen) are not saved, and not
// read back. Identities and rule ids are saved as numbers, with the
// numbering they are written in (numbering.h): a restarted daemon numbers
// the same label sets, ranges and rules the same way, so the records (and
// the kernel's adopted edges, which carry the numbers too) keep naming what
// they named.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/result.h"
#include "edges/edge_ledger.h"
#include "edges/numbering.h"
#include "flows/flow_store.h"

namespace microseg::edges {

struct EdgeHistory {
  std::vector<flows::FlowRecord> records;
  EdgeLedger ledger;
  std::optional<Numbering> numbering;  // absent from a file of an older daemon
};

inline constexpr int kHistoryVersion = 1;

nlohmann::json historyToJson(const std::vector<flows::FlowRecord>& records, const EdgeLedger& ledger,
                             const Numbering* numbering = nullptr);
// Records last seen before `cutoffWallNs` are left out.
Result<EdgeHistory> historyFromJson(const nlohmann::json& j, int64_t cutoffWallNs);

// Atomic: a temporary file in the same directory, fsync, rename.
Result<void> saveHistory(const std::string& path, const std::vector<flows::FlowRecord>& records,
                         const EdgeLedger& ledger, const Numbering* numbering = nullptr);
// A missing file is an empty history.
Result<EdgeHistory> loadHistory(const std::string& path, int64_t cutoffWallNs);

}  // namespace microseg::edges
