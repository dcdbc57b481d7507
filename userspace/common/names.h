// The one table of the names the daemon, the CLI, the flow log and the
// metrics print and parse: modes, verdicts, reasons, directions, hooks,
// protocols (bpf/abi.h's numbers) and the control commands. A name changes
// here or nowhere.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace microseg {

// MS_MODE_*: "monitor", "enforce"; MS_MODE_INHERIT (and anything else) "inherit".
const char* modeName(uint32_t mode);
std::optional<uint32_t> parseMode(std::string_view name);  // the three names above

// MS_VERDICT_*: "allow", "deny", "audit"; others "unknown".
const char* verdictName(uint8_t verdict);
std::optional<uint8_t> parseVerdict(std::string_view name);

// MS_REASON_*: "rule", "default-deny", "udp-answer", "not-isolated",
// "no-policy", "pending-identity"; others "unknown".
const char* reasonName(uint8_t reason);
// How the other end of a flow was identified (enum ms_peer_via): socket, wire, address.
const char* peerViaName(uint8_t via);

// MS_DIR_*: "egress", "ingress" (anything but MS_DIR_INGRESS is egress).
const char* directionName(uint8_t direction);
std::optional<uint8_t> parseDirection(std::string_view name);

// MS_HOOK_*: "connect4", "connect6", "sendmsg4", "sendmsg6", "ingress"; others "unknown".
const char* hookName(uint8_t hook);

// MS_PROTO_*: "tcp", "udp"; others "other". Parsing takes either case.
const char* protocolName(uint8_t protocol);
std::optional<uint8_t> parseProtocol(std::string_view name);

// Control-socket commands (control/protocol.h).
namespace command {
inline constexpr const char* kStatus = "status";
inline constexpr const char* kModeGet = "mode.get";
inline constexpr const char* kModeSet = "mode.set";
inline constexpr const char* kPolicyReload = "policy.reload";
inline constexpr const char* kPolicyApply = "policy.apply";
inline constexpr const char* kPolicyShow = "policy.show";
inline constexpr const char* kPolicyDiff = "policy.diff";
inline constexpr const char* kFlows = "flows";
inline constexpr const char* kExplain = "explain";
inline constexpr const char* kWorkloads = "workloads";
inline constexpr const char* kGraph = "graph";
inline constexpr const char* kReach = "reach";
inline constexpr const char* kFqdn = "fqdn";
inline constexpr const char* kSuggest = "suggest";
inline constexpr const char* kUninstall = "uninstall";
inline constexpr const char* kClusterStatus = "cluster.status";
}  // namespace command

}  // namespace microseg
