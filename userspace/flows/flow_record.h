// Verdict events (ms_event from the kernel) rendered as flow-log records.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include <nlohmann/json.hpp>

#include "bpf/abi.h"
#include "common/names.h"
#include "compiler/compiler.h"
#include "diff/staged.h"
#include "identity/identities.h"

namespace microseg::flows {

// What the daemon knows when it renders an event. All pointers must be set.
struct FlowContext {
  const identity::IdentityTable* ids = nullptr;
  const std::map<uint64_t, std::string>* cgroupPaths = nullptr;      // id -> "/client-a"
  const std::map<uint64_t, std::string>* cgroupWorkloads = nullptr;  // id -> "client-a"
  const compiler::RuleRegistry* rules = nullptr;                       // every rule ever compiled
  int64_t monotonicToRealtimeNs = 0;  // add to an event timestamp to get wall time
  // The generation's staged set (null: it has no staged policy, and records
  // carry no staged_verdict/staged_rule).
  const diff::StagedSet* staged = nullptr;
  // The names DNS answers bound destinations with (ms_event.fqdn_name ->
  // the name as resolved), as far as the daemon has read them.
  const std::map<uint64_t, std::string>* fqdnNames = nullptr;
};

// IPv4-mapped addresses print as IPv4.
std::string formatAddr(const ms_addr& addr);
// "2026-11-22T10:00:00.123456Z"
std::string isoTime(int64_t realtimeNs);
// The names are common/names.h's; these keep flows::verdictName() etc.
// working where they are still spelled so (daemon.cpp).
using microseg::directionName;
using microseg::hookName;
using microseg::protocolName;
using microseg::reasonName;
using microseg::peerViaName;
using microseg::verdictName;
// "<policy>/<index>", "default-deny", "udp-answer", "not-isolated", ...
std::string ruleName(uint32_t ruleId, uint8_t reason, const compiler::RuleRegistry& rules);

// One flow-log JSON object (schema documented in README "Flow log"). The
// kernel's and the filesystem's strings (comm, cgroup paths) are encoded
// with text::toUtf8(): the object always dumps.
nlohmann::json eventToJson(const ms_event& event, const FlowContext& ctx);

// One aggregated flow record (flow log line and `microseg flows` item):
// the event fields above plus "record_id", "count" (events since the
// previous line of this record: `delta`), "total", "first_seen", "last_seen".
nlohmann::json recordToJson(const struct FlowRecord& record, uint64_t delta, const FlowContext& ctx);
// "staged_verdict" and "staged_rule" as well where ctx.staged is set.
// A record as the staged judge reads it.
diff::JudgedFlow judgedFlow(const struct FlowRecord& record);
// The verdict "in force + staged" gives `record`: the one it was judged
// with if that was this set, else judged now.
diff::StagedVerdict stagedVerdictOf(const struct FlowRecord& record, const diff::StagedSet& staged,
                                    const identity::IdentityTable& inForce);
// recordToJson() as one flow-log line, "\n" included.
std::string recordLine(const struct FlowRecord& record, uint64_t delta, const FlowContext& ctx);

// Offset between CLOCK_REALTIME and CLOCK_MONOTONIC, now.
int64_t monotonicToRealtimeOffsetNs();

}  // namespace microseg::flows
