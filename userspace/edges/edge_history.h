// The flow records and the edge ledger across restarts: <dataDir>/edges.json,
// written whole (temporary file, fsync, rename) so a crash leaves the last
// complete one. Records and ledger are saved together, at one moment: a
// restarted daemon that adopts the kernel's edge map folds exactly what the
// kernel counted after that moment.
//
// Records older than the retention (by last seen) are not saved, and not
// read back. Identities and rule ids are saved as numbers: the daemon gives
// the same ones to the same policy set (identity/identities.h, the
// compiler's rule registry), and the kernel's adopted edges carry them too.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/result.h"
#include "edges/edge_ledger.h"
#include "flows/flow_store.h"

namespace microseg::edges {

struct EdgeHistory {
  std::vector<flows::FlowRecord> records;
  EdgeLedger ledger;
};

inline constexpr int kHistoryVersion = 1;

nlohmann::json historyToJson(const std::vector<flows::FlowRecord>& records, const EdgeLedger& ledger);
// Records last seen before `cutoffWallNs` are left out.
Result<EdgeHistory> historyFromJson(const nlohmann::json& j, int64_t cutoffWallNs);

// Atomic: a temporary file in the same directory, fsync, rename.
Result<void> saveHistory(const std::string& path, const std::vector<flows::FlowRecord>& records,
                         const EdgeLedger& ledger);
// A missing file is an empty history.
Result<EdgeHistory> loadHistory(const std::string& path, int64_t cutoffWallNs);

}  // namespace microseg::edges
