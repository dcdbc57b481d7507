// The names of FQDN peers (#27, policies/README.md "FQDN peers" once the
// peer form lands): what a policy may write (`api.example.com`,
// `*.example.com`), their one normal form, and which names a pattern
// matches. Pure logic; the kernel will look names up by the hashes of this
// normal form and of its suffixes.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace microseg::fqdn {

// RFC 1035 bounds: a name of at most 253 characters written without the
// trailing dot, labels of 1-63.
inline constexpr size_t kMaxNameChars = 253;
inline constexpr size_t kMaxLabelChars = 63;

// A pattern as a policy writes it, in its normal form: lowercased, without
// the trailing dot; `wildcard` for `*.suffix` (one or more leading labels),
// `name` then holding the suffix.
struct NamePattern {
  std::string name;
  bool wildcard = false;
  std::string text() const { return wildcard ? "*." + name : name; }
};

// Parses a pattern: labels of letters, digits, '-' and '_' (not starting or
// ending with '-'), at least two labels, the last not a number, a single
// leading `*.` allowed and a '*' nowhere else. nullopt with `err` saying
// what is wrong ("not a DNS name: it has an empty label"; the caller names
// the text).
std::optional<NamePattern> parsePattern(std::string_view text, std::string& err);

// A name as a DNS message carries it, in the same normal form (lowercased,
// no trailing dot); nullopt for one that is not a host name this parser
// binds (over the bounds, an empty label, a byte outside the set above).
std::optional<std::string> normalName(std::string_view text);

// Does `pattern` match the normal-form `name`? An exact pattern matches that
// name only; `*.example.com` matches `a.example.com` and `a.b.example.com`,
// never `example.com` itself.
bool matches(const NamePattern& pattern, std::string_view name);

}  // namespace microseg::fqdn
