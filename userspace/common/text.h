// The one encoding of bytes from outside as text. A process's comm (any
// unprivileged process sets it with prctl(PR_SET_NAME)), a cgroup's or a
// file's name are bytes, not necessarily UTF-8; JSON, Prometheus labels and
// terminals need UTF-8. Every such string goes through toUtf8() before it is
// printed, and every JSON document is written by jsonText(), which applies
// the same rule to anything a caller missed.
//
// The rule (the Unicode "maximal subpart" practice, as WHATWG decoders and
// nlohmann::json's error_handler_t::replace do it): valid UTF-8 passes
// unchanged; each maximal ill-formed subsequence (a lone byte, a truncated
// sequence, an overlong form, a surrogate, a code point above U+10FFFF)
// becomes one U+FFFD. "\xff\xfe" -> "\uFFFD\uFFFD"; "\xe2\x82" at the end ->
// one U+FFFD. Replacement, not "\xNN" escapes: the text stays one string
// that every JSON and Prometheus reader accepts, and the bytes are lost only
// where they were not text.
#pragma once

#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace microseg::text {

inline constexpr std::string_view kReplacement = "\xef\xbf\xbd";  // U+FFFD

bool isUtf8(std::string_view bytes);
std::string toUtf8(std::string_view bytes);
// Appends toUtf8(bytes) to `out` (no copy when the bytes are already valid).
void appendUtf8(std::string& out, std::string_view bytes);

// A JSON document as text (compact when indent < 0), strings encoded as
// toUtf8() does: never throws on a string's bytes.
std::string jsonText(const nlohmann::json& value, int indent = -1);

}  // namespace microseg::text
