// Control-socket client (used by the CLI and the e2e tests).
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "common/result.h"

namespace microseg::control {

// Sends `request` (a JSON object; "version" is added if missing) and returns
// the whole reply object, success or failure alike: look at reply["ok"].
// A "busy" reply (the server's connection limits) is retried with a short
// pause while timeoutMs lasts; the last one is returned if it never frees.
// An Error means no reply was had; Error::err tells why:
//   ENOENT, ECONNREFUSED  no daemon listens at socketPath
//   EACCES, EPERM         the socket's permissions refuse the caller
//   ETIMEDOUT             no complete reply within timeoutMs
//   EMSGSIZE, EINVAL      the request is too big / not an object (not sent)
//   0                     the daemon closed without replying or sent garbage
// Error::str() is a complete sentence for people, naming the path.
Result<nlohmann::json> call(const std::string& socketPath, const nlohmann::json& request,
                            int timeoutMs = 5000);

}  // namespace microseg::control
