#include "fqdn/dns_names.h"

#include <cstdio>
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
      if (!labelChar(c)) {
        // A byte of a non-ASCII name is shown as \xNN (the message must stay UTF-8).
        char shown[8];
        if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) >= 0x7f) {
          std::snprintf(shown, sizeof(shown), "\\x%02x", static_cast<unsigned char>(c));
        } else {
          shown[0] = c;
          shown[1] = '\0';
        }
        return std::string("has a character that is not a letter, digit, '-' or '_' ('") + shown +
               "'; a name in another script is written in its xn-- form)";
      }
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
  if (s == "*" || s == "*.") {
    err = "not a DNS name: it is a '*' without a suffix (write *.example.com)";
    return std::nullopt;
  }
  if (s.rfind("*.", 0) == 0) {
    p.wildcard = true;
    s.erase(0, 2);
  }
  if (std::string why = checkLabels(s); !why.empty()) {
    err = "not a DNS name: it " + why;
    return std::nullopt;
  }
  if (s.find('.') == std::string::npos) {
    err = std::string("not a DNS name: it ") +
          (p.wildcard ? "leaves a single label under '*' (a wildcard of a whole top-level domain)"
                      : "has a single label (write the full name, e.g. api.example.com)");
    return std::nullopt;
  }
  // No top-level domain is a number: this is an address, which no DNS
  // question carries.
  if (s.find_first_not_of("0123456789", s.rfind('.') + 1) == std::string::npos) {
    err = "not a DNS name: it is an IPv4 address or ends in a number (an address is a cidr peer: cidr: A.B.C.D/32)";
    return std::nullopt;
  }
  // A name it matches has at least one more label: "x." + suffix.
  if (p.wildcard && s.size() + 2 > kMaxNameChars) {
    err = "not a DNS name: its suffix is " + std::to_string(s.size()) + " characters long (at most " +
          std::to_string(kMaxNameChars - 2) + " under '*.': a name it matches would be longer than " +
          std::to_string(kMaxNameChars) + ")";
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
