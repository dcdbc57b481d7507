// Verdict events (ms_event from the kernel) rendered as flow-log records.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include <nlohmann/json.hpp>

#include "bpf/abi.h"
#include "compiler/compiler.h"
#include "identity/identities.h"

namespace microseg::flows {

// What the daemon knows when it renders an event. All pointers must be set.
struct FlowContext {
  const identity::IdentityTable* ids = nullptr;
  const std::map<uint64_t, std::string>* cgroupPaths = nullptr;      // id -> "/client-a"
  const std::map<uint64_t, std::string>* cgroupWorkloads = nullptr;  // id -> "client-a"
  const compiler::RuleRegistry* rules = nullptr;                       // every rule ever compiled
  int64_t monotonicToRealtimeNs = 0;  // add to an event timestamp to get wall time
};

// IPv4-mapped addresses print as IPv4.
std::string formatAddr(const ms_addr& addr);
// "2026-11-22T10:00:00.123456Z"
std::string isoTime(int64_t realtimeNs);
const char* verdictName(uint8_t verdict);
const char* protocolName(uint8_t protocol);
const char* hookName(uint8_t hook);
const char* reasonName(uint8_t reason);
const char* directionName(uint8_t direction);
// "<policy>/<index>", "default-deny", "udp-answer", "not-isolated", ...
std::string ruleName(uint32_t ruleId, uint8_t reason, const compiler::RuleRegistry& rules);

// One flow-log JSON object (schema documented in README "Flow log").
nlohmann::json eventToJson(const ms_event& event, const FlowContext& ctx);

// One aggregated flow record (flow log line and `microseg flows` item):
// the event fields above plus "record_id", "count" (events since the
// previous line of this record: `delta`), "total", "first_seen", "last_seen".
nlohmann::json recordToJson(const struct FlowRecord& record, uint64_t delta, const FlowContext& ctx);

// Offset between CLOCK_REALTIME and CLOCK_MONOTONIC, now.
int64_t monotonicToRealtimeOffsetNs();

}  // namespace microseg::flows
