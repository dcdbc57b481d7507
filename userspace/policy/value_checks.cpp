#include "policy/value_checks.h"

namespace microseg::policy {

bool validLabelName(std::string_view s) {
  if (s.empty() || s.size() > 63 || !alnum(s.front()) || !alnum(s.back())) return false;
  for (char c : s) {
    if (!alnum(c) && c != '-' && c != '_' && c != '.') return false;
  }
  return true;
}

bool validLabelKey(std::string_view key) {
  auto slash = key.find('/');
  if (slash == std::string_view::npos) return validLabelName(key);
  // DNS subdomain: dot-separated labels.
  const std::string_view prefix = key.substr(0, slash);
  if (prefix.empty() || prefix.size() > 253) return false;
  for (size_t from = 0;;) {
    const size_t dot = prefix.find('.', from);
    if (!dnsLabel(prefix.substr(from, dot == std::string_view::npos ? std::string_view::npos : dot - from))) {
      return false;
    }
    if (dot == std::string_view::npos) break;
    from = dot + 1;
  }
  return validLabelName(key.substr(slash + 1));
}

bool integerText(std::string_view s) {
  if (!s.empty() && (s[0] == '-' || s[0] == '+')) s.remove_prefix(1);
  if (s.empty()) return false;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

size_t controlCharAt(std::string_view s, bool lineBreaks) {
  for (size_t i = 0; i < s.size(); i++) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c != 0x7f) continue;
    if (lineBreaks && (c == '\t' || c == '\n' || c == '\r')) continue;
    return i;
  }
  return std::string_view::npos;
}

namespace {

std::string hexByte(unsigned char c) {
  static const char* digits = "0123456789abcdef";
  return std::string("\\x") + digits[c >> 4] + digits[c & 15];
}

}  // namespace

std::string shown(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (c < 0x20 || c == 0x7f) {
      out += hexByte(c);
    } else {
      out += ch;
    }
  }
  return out;
}

std::string controlCharText(std::string_view s, size_t at) {
  return " (" + hexByte(static_cast<unsigned char>(s[at])) + " at byte " + std::to_string(at) + ")";
}

std::optional<std::string> globProblem(const std::string& pattern) {
  for (size_t i = 0; i < pattern.size(); i++) {
    if (pattern[i] == '\\') {
      if (++i == pattern.size()) return "ends with a lone '\\'";
      continue;
    }
    if (pattern[i] != '[') continue;
    size_t j = i + 1;
    if (j < pattern.size() && (pattern[j] == '!' || pattern[j] == '^')) j++;
    if (j < pattern.size() && pattern[j] == ']') j++;  // a leading ']' is a member
    while (j < pattern.size() && pattern[j] != ']') {
      if (pattern[j] == '/') return "'[' at offset " + std::to_string(i) + " has no closing ']' before '/'";
      j++;
    }
    if (j == pattern.size()) return "'[' at offset " + std::to_string(i) + " has no closing ']'";
    i = j;
  }
  return std::nullopt;
}

std::string familyHint(const Cidr& inner, const std::vector<Cidr>& outers) {
  for (const auto& o : outers) {
    if (inner.isV4() && !o.isV4() && o.covers(inner.addr)) {
      return " (" + o.str() + " is IPv6 and never contains IPv4 addresses)";
    }
  }
  return "";
}

}  // namespace microseg::policy
