// Control-socket client (used by the CLI and the e2e tests).
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "common/result.h"

namespace microseg::control {

// Sends `request` (version is added if missing) and returns the whole reply
// object. Errors: Error::err == ENOENT/ECONNREFUSED when no daemon listens,
// EACCES when the socket's permissions refuse the caller, ETIMEDOUT.
Result<nlohmann::json> call(const std::string& socketPath, nlohmann::json request,
                            int timeoutMs = 10000);

}  // namespace microseg::control
