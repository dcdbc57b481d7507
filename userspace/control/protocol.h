// Control-socket protocol, version 1 (README "Control socket").
//
// Unix stream socket, one request per connection: the client writes one JSON
// object and "\n" (at most kMaxMessageBytes); the server answers with one
// JSON object and "\n", then closes.
//   request:  {"version": 1, "command": "<name>", ...fields}
//   success:  {"version": 1, "ok": true, "result": {...}}
//   failure:  {"version": 1, "ok": false,
//              "error": {"code": "<code>", "message": "...", "details": [...]}}
#pragma once

#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace microseg::control {

inline constexpr int kProtocolVersion = 1;
inline constexpr size_t kMaxMessageBytes = 64 * 1024;
inline constexpr const char* kDefaultSocket = "/run/microseg/microseg.sock";

inline constexpr const char* kErrBadRequest = "bad_request";
inline constexpr const char* kErrUnsupportedVersion = "unsupported_version";
inline constexpr const char* kErrUnknownCommand = "unknown_command";
inline constexpr const char* kErrPermissionDenied = "permission_denied";
inline constexpr const char* kErrInvalidPolicy = "invalid_policy";
inline constexpr const char* kErrInternal = "internal";

// Thrown by command handlers; becomes a failure reply.
struct ControlError : std::runtime_error {
  ControlError(std::string code, const std::string& message, std::vector<std::string> details)
      : std::runtime_error(message), code(std::move(code)), details(std::move(details)) {}
  std::string code;
  std::vector<std::string> details;
};

inline nlohmann::json successReply(nlohmann::json result) {
  return {{"version", kProtocolVersion}, {"ok", true}, {"result", std::move(result)}};
}

inline nlohmann::json errorReply(const std::string& code, const std::string& message,
                                 const std::vector<std::string>& details = {}) {
  return {{"version", kProtocolVersion},
          {"ok", false},
          {"error", {{"code", code}, {"message", message}, {"details", details}}}};
}

}  // namespace microseg::control
