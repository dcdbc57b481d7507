// Where a policy document's rule lists are, found from its text alone, for
// rule-level reuse (rule_reuse.h, for PolicyLoader): a one-rule edit in a
// 10,000-rule policy parses the edited item and a skeleton of the document,
// not 10,000 items (libyaml reads ~25 MB/s: such a document is ~30 ms).
//
// Only block lists under an `egress:` or `ingress:` key line are found, and
// only in texts made of printable ASCII and '\n' without the characters that
// can tie one part of a YAML text to another (anchors and aliases `&` `*`,
// tags `!`, directives `%`, block scalars `|` `>`, quotes, `?` keys, tabs).
// An item is its '-' line and every following line that is blank, a comment
// or indented deeper than that '-': the lines YAML gives to it. Whether the
// cut was right is not taken on trust: the loader parses the skeleton (the
// text with each list replaced by a placeholder) and every item it parses
// again on its own, and falls back to parsing the whole document when the
// placeholders do not land exactly where the rules are read, or an item
// does not read alone as one list item.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "policy/model.h"

namespace microseg::policy {

struct RuleItemText {
  size_t begin = 0, end = 0;  // its lines, as bytes of the document's text
  int line = 0;               // of its '-', 0-based in the document
  uint64_t hash = 0;          // XXH3-64 of its text
};

struct RuleListText {
  Direction dir = Direction::Egress;
  size_t begin = 0, end = 0;       // bytes: from the first item's line to the list's end
  int startLine = 0, endLine = 0;  // lines [first item's, the one after the list)
  std::vector<RuleItemText> items;
};

// The block rule lists of a document's text, in order, or nullopt if the
// text is not plain enough to be cut (see above).
std::optional<std::vector<RuleListText>> findRuleLists(std::string_view text);

// The placeholder item that stands for the k-th list in a skeleton.
std::string rulePlaceholder(size_t k);

// `text` with the k-th list of `lists` replaced by one item, the scalar
// rulePlaceholder(k), followed by as many line breaks as the list had: the
// lines after a list keep their numbers.
std::string ruleListSkeleton(std::string_view text, const std::vector<RuleListText>& lists);

}  // namespace microseg::policy
