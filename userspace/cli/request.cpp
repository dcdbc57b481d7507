#include "cli/request.h"

#include <cerrno>
#include <iostream>

#include "cli/exit_codes.h"
#include "common/text.h"
#include "control/client.h"
#include "control/protocol.h"

namespace microseg::cli {

using nlohmann::json;

int exitFor(const Error& e) {
  switch (e.err) {
    case EACCES:
    case EPERM:
      return kDenied;
    case 0:          // closed without a reply, or not a protocol reply
    case EMSGSIZE:   // request or reply too big
    case EINVAL:
      return kFailed;
    default:         // ENOENT, ECONNREFUSED, ETIMEDOUT, ...
      return kUnreachable;
  }
}

int request(const std::string& socket, const json& req, json& result, int timeoutMs) {
  auto reply = control::call(socket, req, timeoutMs);
  if (!reply) return fail(reply.error().str(), exitFor(reply.error()));
  const json& r = *reply;
  if (r["ok"].get<bool>()) {
    result = r.value("result", json::object());
    return kOk;
  }
  const json err = r.value("error", json::object());
  const std::string code = err.value("code", "");
  const json details = err.value("details", json::array());
  for (const auto& d : details) std::cerr << (d.is_string() ? sanitize(d.get<std::string>()) : control::encodeMessage(d)) << "\n";
  if (code == control::kErrInvalidPolicy) {
    const size_t n = details.size();
    fail("policy rejected (" + std::to_string(n) + (n == 1 ? " error" : " errors") +
             "); the daemon keeps the previous policy",
         kFailed);
  } else {
    fail(err.value("message", "request failed") + (code.empty() ? "" : " [" + code + "]"), kFailed);
  }
  return code == control::kErrPermissionDenied ? kDenied : kFailed;
}

void printJson(const json& j) { std::cout << text::jsonText(j, 2) << "\n"; }

}  // namespace microseg::cli
