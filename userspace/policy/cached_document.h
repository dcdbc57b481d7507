// What PolicyLoader (loader.h) keeps of a document between reads: not its
// text, but what tells the same text again and what was read from it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include <xxhash.h>

#include "policy/model.h"

namespace microseg::policy {

// Where a rule list of a document was (rule_lists.h) and a hash of each of
// its items, whose rule is the policy's rule at the same position.
struct RuleListIndex {
  Direction dir = Direction::Egress;
  int startLine = 0, endLine = 0;  // in the document
  std::vector<uint64_t> hashes;    // XXH3-64 of each item's text
};

// A document as read last time. Not its text: its length and a 128-bit
// hash of it (XXH3), which is what the next read compares with. (Whoever can
// write a policy file can write any policy, so a crafted collision gains
// nothing; by chance, one is as likely as 2^-128.)
struct Document {
  size_t length = 0;
  XXH128_hash_t hash{};
  int firstLine = 0;
  int lines = 0;  // '\n' in the text
  Bundle objects;
  std::vector<Diagnostic> errors;
  bool syntaxError = false;  // errors is then that one error
  // Kept for a document that is one policy read without errors, with at
  // least the loader's minReuseItems rules (8 bytes a rule): what the next
  // read of an edited version reuses rules by.
  std::vector<RuleListIndex> ruleLists;
  bool sameText(size_t len, const XXH128_hash_t& h) const { return length == len && XXH128_isEqual(hash, h); }
};

}  // namespace microseg::policy
