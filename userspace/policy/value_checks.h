// The checks on a policy's text values that need no YAML: names, label keys
// and values, integers, cgroup globs. Used by the schema (schema.h), which
// turns a failed check into a located diagnostic.
//
// Hand-written rather than std::regex (which costs microseconds a call, and
// these run for every name, label and port of a 100k-rule file); the small
// ones are inline for the same reason.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "policy/cidr.h"

namespace microseg::policy {

inline bool lowerAlnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }
inline bool alnum(char c) { return lowerAlnum(c) || (c >= 'A' && c <= 'Z'); }

// [a-z0-9]([-a-z0-9]*[a-z0-9])?
inline bool dnsLabel(std::string_view s) {
  if (s.empty() || !lowerAlnum(s.front()) || !lowerAlnum(s.back())) return false;
  for (char c : s) {
    if (!lowerAlnum(c) && c != '-') return false;
  }
  return true;
}

// metadata.name and metadata.namespace: a DNS label of at most 63.
inline bool validName(std::string_view s) { return s.size() <= 63 && dnsLabel(s); }

// [A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?, at most 63
bool validLabelName(std::string_view s);
// name or prefix/name, the prefix a DNS subdomain.
bool validLabelKey(std::string_view key);
inline bool validLabelValue(std::string_view v) { return v.empty() || validLabelName(v); }

// [-+]?[0-9]+
bool integerText(std::string_view s);

// Where the first control character of `s` is (C0, DEL; tab and line
// breaks too unless `lineBreaks`, which allows '\t', '\n', '\r'), or npos.
// No value of a policy has a use for one, and a NUL in a cgroup glob or a
// name would be cut short by the C calls it meets.
size_t controlCharAt(std::string_view s, bool lineBreaks = false);

// `s` as it can be quoted in a message: control characters as \xNN.
std::string shown(std::string_view s);

// " (\xNN at byte N)" for the control character at `at` of `s`.
std::string controlCharText(std::string_view s, size_t at);

// The resolver matches cgroup patterns with fnmatch(FNM_PATHNAME). fnmatch
// quietly treats a malformed bracket as literal text, so a typo would make a
// pattern that never matches; this says what is wrong, or nullopt.
std::optional<std::string> globProblem(const std::string& pattern);

// An IPv4 hole in an IPv6 range that covers the mapped space bit-wise: the
// likely misunderstanding, named (" (...)"), or "".
std::string familyHint(const Cidr& inner, const std::vector<Cidr>& outers);

}  // namespace microseg::policy
