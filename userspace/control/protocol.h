// Control-socket protocol, version 1 (notes/interfaces.md "Control socket").
//
// Unix stream socket, one request per connection: the client writes one JSON
// object and "\n" (at most kMaxMessageBytes before the newline, all of it
// within a short deadline after connecting); the server answers with one
// JSON object and "\n", then closes. A request is strict JSON in UTF-8: a
// key given twice, a number no double can hold (1e400) or bytes that are not
// UTF-8 are a bad_request, not a guess.
//   request:  {"version": 1, "command": "<name>", ...fields}
//   success:  {"version": 1, "ok": true, "result": {...}}
//   failure:  {"version": 1, "ok": false,
//              "error": {"code": "<code>", "message": "...", "details": [...]}}
#pragma once

#include <cstddef>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/text.h"

namespace microseg::control {

inline constexpr int kProtocolVersion = 1;
inline constexpr size_t kMaxMessageBytes = 64 * 1024;
inline constexpr const char* kDefaultSocket = "/run/microseg/microseg.sock";

// Error codes. Clients branch on these, never on messages.
inline constexpr const char* kErrBadRequest = "bad_request";  // malformed JSON, bad field, oversized
inline constexpr const char* kErrUnsupportedVersion = "unsupported_version";
inline constexpr const char* kErrUnknownCommand = "unknown_command";
inline constexpr const char* kErrPermissionDenied = "permission_denied";
inline constexpr const char* kErrInvalidPolicy = "invalid_policy";  // details: "FILE:LINE:COL: error: ..."
inline constexpr const char* kErrInternal = "internal";
inline constexpr const char* kErrBusy = "busy";  // too many connections (in all, or of this uid): retry

// Thrown by command handlers; the server turns it into a failure reply with
// exactly this code, message (what()) and details.
struct ControlError : std::runtime_error {
  ControlError(std::string code, const std::string& message, std::vector<std::string> details = {})
      : std::runtime_error(message), code(std::move(code)), details(std::move(details)) {}
  std::string code;
  std::vector<std::string> details;
};

inline nlohmann::json successReply(nlohmann::json result) {
  // A handler that has nothing to say still answers with an object, so
  // clients can always index into "result".
  if (result.is_null()) result = nlohmann::json::object();
  return {{"version", kProtocolVersion}, {"ok", true}, {"result", std::move(result)}};
}

inline nlohmann::json errorReply(const std::string& code, const std::string& message,
                                 const std::vector<std::string>& details = {}) {
  return {{"version", kProtocolVersion},
          {"ok", false},
          {"error", {{"code", code}, {"message", message}, {"details", details}}}};
}

// One message on the wire, without its "\n". Strings that are not valid
// UTF-8 (a cgroup name can be any bytes) are replaced as text::toUtf8()
// does, never thrown on.
inline std::string encodeMessage(const nlohmann::json& msg) { return text::jsonText(msg); }

// A JSON string literal of `s`, encoded as encodeMessage() would, appended
// to `out` (for results written as text, see ControlServer::TextHandler).
inline void appendJsonString(std::string& out, std::string_view s) { out += encodeMessage(nlohmann::json(s)); }

inline nlohmann::json errorReply(const ControlError& e) {
  return errorReply(e.code, e.what(), e.details);
}

}  // namespace microseg::control
