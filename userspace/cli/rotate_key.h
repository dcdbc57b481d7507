// `microseg cluster rotate-key`: a new cluster key for identity on the wire
// (cluster/wire_keys.h), written to etcd where every node's agent sees it.
//
// One transaction, guarded by what was read (no key under the prefix
// changed or appeared since): the new key (id = the highest in use + 1, or
// after 255 the lowest free one) activating `activateAfter` from now, so
// every node accepts it before any node signs with it; a retire_at of that
// activation + `grace` on every key that had none, so SYNs signed with them
// still verify meanwhile; and the removal of keys retired more than an hour
// ago. Prints ids and times, never key bytes.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli/push.h"
#include "cluster/etcd_client.h"
#include "cluster/wire_keys.h"
#include "common/result.h"

namespace microseg::cli {

// --grace, --activate-after: "30s", "15m", "8h", "2d" (views.h's
// parseDuration) up to 365 days -> seconds.
std::optional<int64_t> rotationDuration(const std::string& text);

inline constexpr int64_t kRetiredKeysKeptSeconds = 3600;

struct RotatePlan {
  cluster::WireKeyRecord added;
  std::vector<cluster::WireKeyRecord> retiring;  // with their new retire_at
  std::vector<uint8_t> removed;                  // retired more than an hour ago
};

// What a rotation at `now` writes, given the records read (`records`) and
// every id that has a key in etcd (`usedIds`: records that do not decode
// hold their id too). An error if no id is free.
Result<RotatePlan> planRotation(const cluster::WireKeyRecords& records, const std::set<uint8_t>& usedIds, int64_t now,
                                int64_t activateAfter, int64_t grace, const std::array<uint8_t, 16>& key);

struct RotateOutcome {
  RotatePlan plan;
  int64_t revision = 0;           // of the transaction
  cluster::WireKeyRecords after;  // every key as stored now
  size_t ignored = 0;             // records under the prefix that are not keys (left alone)
};

// Reads the keys, plans, writes in one guarded transaction. A concurrent
// change makes it fail with "rotated concurrently, run again".
Result<RotateOutcome> rotateKey(cluster::EtcdClient& etcd, const std::string& prefix, int64_t now,
                                int64_t activateAfter, int64_t grace);

struct RotateArgs {
  PushFlags flags;
  std::string grace = "10m";
  std::string activateAfter = "10s";
};

// The command; returns an exit code (exit_codes.h).
int cmdRotateKey(const std::string& socket, bool jsonOutput, const RotateArgs& a);

nlohmann::json rotateJson(const RotateOutcome& o, const std::string& prefix, int64_t grace);
void printRotation(const RotateOutcome& o, const std::string& prefix, int64_t now, std::ostream& out);

}  // namespace microseg::cli
