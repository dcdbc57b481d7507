#include "common/durations.h"

#include <charconv>
#include <string_view>

namespace microseg {

namespace {

std::optional<int64_t> parse(const std::string& text, std::string& err, bool days) {
  const auto bad = [&] {
    err = days ? "duration '" + text + "' is not a whole number of seconds, minutes, hours or days (30s, 15m, 8h, 7d)"
               : "duration '" + text + "' is not a whole number of seconds, minutes or hours (30s, 15m, 8h)";
    return std::nullopt;
  };
  if (text.size() < 2) return bad();
  const char unit = text.back();
  const int64_t scale =
      unit == 's' ? 1 : unit == 'm' ? 60 : unit == 'h' ? 3600 : unit == 'd' && days ? 86400 : 0;
  const std::string_view n = std::string_view(text).substr(0, text.size() - 1);
  // At most 9 digits, no sign, no leading zero.
  if (scale == 0 || n.empty() || n.size() > 9 || n.find_first_not_of("0123456789") != std::string_view::npos ||
      (n.size() > 1 && n[0] == '0')) {
    return bad();
  }
  int64_t v = 0;
  std::from_chars(n.data(), n.data() + n.size(), v);
  if (v == 0) {
    err = "duration '" + text + "' is zero";
    return std::nullopt;
  }
  return v * scale;
}

}  // namespace

std::optional<int64_t> parseDuration(const std::string& text, std::string& err) { return parse(text, err, false); }

std::optional<int64_t> parseLongDuration(const std::string& text, std::string& err) {
  return parse(text, err, true);
}

std::string formatDuration(int64_t s) {
  if (s <= 0) return "0s";
  std::string out;
  if (s >= 3600) out += std::to_string(s / 3600) + "h";
  if (s % 3600 >= 60) out += std::to_string(s % 3600 / 60) + "m";
  if (s % 60 != 0 || out.empty()) out += std::to_string(s % 60) + "s";
  return out;
}

}  // namespace microseg
