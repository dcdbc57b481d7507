// Durations as operators write them in flags and config keys: "30s",
// "15m", "8h" (grants' --for, --max-grant / maxGrant).
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace microseg {

// A positive whole number and one unit (s, m, h) -> seconds; nullopt with
// `err` saying what is wrong.
std::optional<int64_t> parseDuration(const std::string& text, std::string& err);
// The same, days (d) allowed too: retention settings ("7d").
std::optional<int64_t> parseLongDuration(const std::string& text, std::string& err);
// 5400 -> "1h30m", 45 -> "45s".
std::string formatDuration(int64_t seconds);

}  // namespace microseg
