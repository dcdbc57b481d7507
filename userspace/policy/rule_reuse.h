// Rule-level reuse: a policy document whose text changed is parsed again
// only in part, where its text allows. Its rule lists are cut from the text
// (rule_lists.h); the items whose text is that of the first or last items of
// the old list keep their rules (their locations moved), only the items
// between them are parsed, each alone, and the rest of the document as a
// skeleton with one placeholder per list. The result is what parsing the
// whole text gives; where that is not certain, nothing is reused.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "policy/cached_document.h"
#include "policy/rule_lists.h"
#include "policy/yaml_reader.h"

namespace microseg::policy {

// Can the rules of `doc` be reused by the next read of an edited version:
// one policy (nothing else) of at least `minItems` rules, read without errors.
bool worthIndexing(const Document& doc, size_t minItems);

// `doc`'s rule lists as cut from its text, if worthIndexing() and they are
// exactly the rules of its one policy: a list per direction at most, an
// item per rule, each rule's location inside its item. Else none (nothing
// is reused from it).
void indexRuleLists(const std::vector<RuleListText>& lists, Document& doc, size_t minItems);

// Parses `text` (the new version of the document `old`, starting on line
// doc.firstLine of `file`) into `doc` reusing `old`'s rules (see above);
// `reused` grows by the rules kept. False, with `doc` untouched, when that
// cannot be done exactly: the caller then parses the whole text.
bool parseReusingRules(std::string_view text, const std::string& file, const Document& old, Document& doc,
                       size_t minItems, const yaml::Limits& limits, size_t& reused);

}  // namespace microseg::policy
