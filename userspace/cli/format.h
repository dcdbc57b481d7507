// Human-readable rendering of control-socket results (the `-o table` form).
// Tolerant of missing fields: an older or newer daemon still gets a readable
// status, with "-" where a value is unknown.
#pragma once

#include <cstddef>
#include <cstdint>
#include <ostream>
#include <string>

#include <nlohmann/json.hpp>

namespace microseg::cli {

// {"app": "a", "env": "prod"} -> "app=a,env=prod"; "-" when empty.
std::string formatLabels(const nlohmann::json& labels);
// ["a", "b", "c"] -> "a,b,c"; with max 2 -> "a,b (+1 more)"; "-" when empty.
std::string formatList(const nlohmann::json& items, size_t max = 0);
// 3725 -> "1h02m05s".
std::string formatDuration(int64_t seconds);
// A scalar for display: strings bare, numbers as written, absent -> "-".
std::string field(const nlohmann::json& object, const char* key);

// The table form of a "status" result.
void printStatus(const nlohmann::json& status, std::ostream& out);

}  // namespace microseg::cli
