#include "fqdn/dns_names.h"

#include <vector>

namespace microseg::fqdn {
namespace {

char lower(char c) { return c >= 'A' && c <= 'Z' ? char(c - 'A' + 'a') : c; }

bool labelChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
}

// Checks the labels of a lowercased name without its trailing dot; "" if
// they are fine, else what is wrong.
std::string checkLabels(std::string_view name) {
  if (name.empty()) return "is empty";
  if (name.size() > kMaxNameChars) {
    return "is " + std::to_string(name.size()) + " characters long (at most " + std::to_string(kMaxNameChars) + ")";
  }
  size_t start = 0;
  for (;;) {
    const size_t dot = name.find('.', start);
    const std::string_view label = name.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start);
    if (label.empty()) return "has an empty label";
    if (label.size() > kMaxLabelChars) {
      return "has a label of " + std::to_string(label.size()) + " characters (at most " +
             std::to_string(kMaxLabelChars) + ")";
    }
    for (char c : label) {
      if (c == '*') return "has a '*' that is not the whole first label";
      if (!labelChar(c)) return std::string("has a character that is not a letter, digit, '-' or '_' ('") + c + "')";
    }
    if (label.front() == '-' || label.back() == '-') return "has a label that starts or ends with '-'";
    if (dot == std::string_view::npos) return "";
    start = dot + 1;
  }
}

std::string lowered(std::string_view text) {
  std::string s(text);
  for (char& c : s) c = lower(c);
  return s;
}

}  // namespace

std::optional<NamePattern> parsePattern(std::string_view text, std::string& err) {
  NamePattern p;
  std::string s = lowered(text);
  if (!s.empty() && s.back() == '.') s.pop_back();
  if (s.rfind("*.", 0) == 0) {
    p.wildcard = true;
    s.erase(0, 2);
  }
  if (std::string why = checkLabels(s); !why.empty()) {
    err = "'" + std::string(text) + "' is not a DNS name: it " + why;
    return std::nullopt;
  }
  if (s.find('.') == std::string::npos) {
    err = "'" + std::string(text) + "' is not a DNS name: it " +
          (p.wildcard ? "leaves a single label under '*' (a wildcard of a whole top-level domain)"
                      : "has a single label (write the full name, e.g. api.example.com)");
    return std::nullopt;
  }
  p.name = std::move(s);
  return p;
}

std::optional<std::string> normalName(std::string_view text) {
  std::string s = lowered(text);
  if (!s.empty() && s.back() == '.') s.pop_back();
  if (!checkLabels(s).empty()) return std::nullopt;
  return s;
}

bool matches(const NamePattern& pattern, std::string_view name) {
  if (!pattern.wildcard) return name == pattern.name;
  // One or more labels, then ".suffix".
  return name.size() > pattern.name.size() + 1 && name.substr(name.size() - pattern.name.size()) == pattern.name &&
         name[name.size() - pattern.name.size() - 1] == '.';
}

}  // namespace microseg::fqdn
