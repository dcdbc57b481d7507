// Reads a YAML stream with libyaml (the reference C implementation of YAML
// 1.1, as used by PyYAML and Ruby), one document at a time into a
// yaml::Tree, so the whole file's tree never exists at once. yaml-cpp reads
// some 2 MB/s, libyaml some 25 MB/s on policy files: a 100,000-rule policy
// set parsed in 4.4 s with yaml-cpp's Load and in ~0.3 s this way.
//
// Tags and nulls are given as yaml-cpp gives them, which the parser was
// written against: a plain scalar without a tag has tag "?", a quoted one
// "!", an explicit tag its full form ("!!int" -> "tag:yaml.org,2002:int");
// an untagged plain `~`, `null`, `Null`, `NULL` or empty value is a Null
// node.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "policy/yaml_tree.h"

namespace microseg::policy::yaml {

// What a document may cost, checked as it is read (a hostile text is
// refused at the event that crosses a bound, before it costs more):
// - nesting: libyaml's scanner spends time per token in proportion to the
//   collections open (200k nested '[' kept a daemon busy for over 100 s),
//   and every reader of a tree walks it recursively;
// - aliases: the tree shares an aliased node, but whoever walks it (the
//   schema) visits it once per alias, so nested aliases ("billion laughs")
//   cost exponentially in the text's size. What each alias stands for is
//   counted whole (its node and everything under it, aliases inside
//   counted as what they stand for); the total of a document may not pass
//   max(aliasFloor, aliasFactor x the nodes read so far in it).
struct Limits {
  int maxDepth = 64;  // collections open at once
  uint64_t aliasFloor = 10000;
  uint64_t aliasFactor = 4;
};

struct SyntaxError {
  Mark at;  // 0-based; null if libyaml gave no position
  std::string message;
  // Where the construct being parsed began (0-based), if on another line
  // than `at`: said as "... (line N)" by text().
  int contextLine = -1;
  // A bound of Limits was crossed (the text may well be valid YAML).
  bool limit = false;
  // The message, lines counted from `firstLine` (0-based) of the file.
  std::string text(int firstLine = 0) const {
    return contextLine < 0 ? message : message + " (line " + std::to_string(contextLine + 1 + firstLine) + ")";
  }
};

// Calls onDocument with each document of `text` in order (`tree` is cleared
// and refilled for each). Stops at the first syntax error, or where a bound
// of `limits` is crossed, and returns it; the documents before it were
// already handed out.
std::optional<SyntaxError> readDocuments(std::string_view text, Tree& tree,
                                         const std::function<void(const Tree&)>& onDocument,
                                         const Limits& limits = {});

}  // namespace microseg::policy::yaml
