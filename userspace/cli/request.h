// One request to microsegd over its control socket, as every command of
// the CLI sends it: errors printed (the daemon's details first, then one
// "microseg: ..." line), the exit code returned (exit_codes.h).
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "common/result.h"

namespace microseg::cli {

// The exit code for a failure to talk to the daemon at all.
int exitFor(const Error& e);

// Sends `req`; on success stores the reply's result and returns kOk.
int request(const std::string& socket, const nlohmann::json& req, nlohmann::json& result, int timeoutMs);

// A JSON document on stdout (text made safe: common/text.h).
void printJson(const nlohmann::json& j);

}  // namespace microseg::cli
