// Compiler: policy::Bundle + identities -> the complete set of BPF map entries
// for one policy generation. Pure code (no kernel), deterministic: the same
// inputs always give byte-identical output in the same order.
//
// Semantics (see bpf/abi.h for the key layout and lookup order):
//  - a policy's subjects are the workload identities its selector matches,
//    within its namespace if it has one (address ranges are never subjects);
//  - a rule's peers expand to identities: label selectors match workload
//    label sets and Externals' labels (-> every range identity that External
//    is a member of); `identity: X` is Workload X's identity or every range
//    identity of External X; an inline cidr peer is every range identity it
//    is a member of; `world` is MS_IDENTITY_WORLD, which also stands for
//    every range identity (anything not local): a range identity that has
//    entries of its own also gets the world intervals of the same (subject,
//    direction, protocol) folded in, one that has none is looked up as world
//    by the kernel; host/unmanaged are their reserved ids; omitted
//    peers = MS_IDENTITY_ANY. Ports expand to (protocol, interval) with
//    Protocol::Any -> TCP and UDP, omitted ports -> 0-65535;
//  - per (subject, direction, peer, protocol) intervals are made disjoint;
//    where intervals overlap deny beats allow; among equal verdicts the rule
//    that comes first (policy name order, then rule index) names the entry;
//  - wildcard-peer deny intervals are folded into every specific peer's
//    intervals of the same (subject, direction, protocol);
//  - each disjoint interval becomes the minimal set of port prefixes.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <tuple>
#include <unordered_map>
#include <string>
#include <vector>

#include "bpf/abi.h"
#include "common/sorted_groups.h"
#include "identity/identities.h"
#include "policy/model.h"

namespace microseg::compiler {

enum class DefaultEnforcement : uint8_t {
  Always,    // zero trust: every workload identity default-deny both directions
  Selected,  // Kubernetes: isolated only in directions some policy selects it for
};

struct RuleInfo {
  uint32_t id = MS_RULE_NONE;
  policy::Direction direction = policy::Direction::Egress;
  policy::Action action = policy::Action::Allow;
  uint32_t index = 0;  // position in the policy's egress/ingress list
  // The policy it is a rule of (held with the rule table's entries): its
  // name and the rule's location are read there, not copied (24 bytes a
  // rule instead of 40: 100k rules).
  const policy::Policy* owner = nullptr;
  const std::string& policy() const;
  std::string name() const;  // "<policy>/<index>"
  const policy::SourceLocation& loc() const;
};

// Hands out rule ids that stay the same for (policy, direction, index) across
// compilations, so flow records from older generations keep their meaning.
class RuleRegistry {
 public:
  uint32_t idFor(const std::string& policy, policy::Direction dir, uint32_t index);
  // "<policy>/<index>" of any id it ever handed out; "rule-<id>" otherwise.
  std::string nameOf(uint32_t id) const;

 private:
  // Per policy name: the ids of its rules, per direction, by index.
  struct PolicyRules {
    std::vector<uint32_t> ids[2];
    uint32_t slot = 0;  // in policies_
  };
  std::unordered_map<std::string, PolicyRules> byPolicy_;
  std::vector<const std::string*> policies_;  // slot -> a key of byPolicy_ (its nodes never move)
  struct Name {
    uint32_t policy;  // slot
    uint32_t index;
  };
  // id - 1 -> its rule, in chunks of kChunk: 8 bytes a rule, without a
  // doubling vector's slack and copy (100k rules: 0.8 MB, not 2.1).
  static constexpr uint32_t kChunk = 4096;
  std::vector<std::unique_ptr<Name[]>> byId_;
  uint32_t next_ = 1;
};

struct PolicyEntry {
  ms_policy_key key{};       // prefixlen host order, port network order
  ms_policy_value value{};
};

// Remote address -> identity, for the kernel's LPM trie (most specific
// prefix wins; a miss is MS_IDENTITY_WORLD).
struct IpcacheEntry {
  ms_addr addr{};          // network address, IPv4 mapped
  uint32_t prefixlen = 0;  // in the 128-bit mapped space (IPv4 /n = 96+n)
  uint32_t identity = 0;   // a range identity, or MS_IDENTITY_WORLD for a hole
};

// Every rule of a compiled bundle, by id. The rules are kept per policy and
// shared between generations: a recompile of one policy rebuilds only the
// id index (a pointer per rule), not 100k RuleInfos. The index is in chunks
// of ids shared between copies, copied only where a copy changes them: a
// generation's table is its predecessor's copy with one policy's rules
// swapped, and ids are never reused, so a whole index (8 bytes per id ever
// given) was copied on every reload.
class RuleTable {
 public:
  const RuleInfo* find(uint32_t id) const {
    const size_t c = id / kChunk;
    return c < chunks_.size() && chunks_[c] ? (*chunks_[c])[id % kChunk] : nullptr;
  }
  const RuleInfo& at(uint32_t id) const;  // std::out_of_range if absent
  size_t size() const { return count_; }
  bool empty() const { return count_ == 0; }
  uint32_t maxId() const { return maxId_; }  // the highest id ever indexed (0: none)

  // Iterates (id, rule) in id order.
  class const_iterator {
   public:
    const_iterator(const RuleTable* t, uint32_t id) : t_(t), id_(id) { skip(); }
    std::pair<uint32_t, const RuleInfo&> operator*() const { return {id_, *t_->find(id_)}; }
    const_iterator& operator++() {
      id_++;
      skip();
      return *this;
    }
    bool operator==(const const_iterator& o) const { return id_ == o.id_; }

   private:
    void skip();
    const RuleTable* t_;
    uint32_t id_;
  };
  const_iterator begin() const { return {this, 0}; }
  const_iterator end() const { return {this, end_}; }

  // Adds or removes one policy's rules (the compiler's).
  void add(std::shared_ptr<const std::vector<RuleInfo>> rules);
  void remove(const std::shared_ptr<const std::vector<RuleInfo>>& rules);

 private:
  static constexpr uint32_t kChunk = 1024;
  using Chunk = std::array<const RuleInfo*, kChunk>;
  // Chunk `id` / kChunk, to be written: copied first if another table shares it.
  Chunk& own(uint32_t id);
  std::vector<std::shared_ptr<const std::vector<RuleInfo>>> parts_;
  std::vector<std::shared_ptr<Chunk>> chunks_;  // null: no rule in it
  size_t count_ = 0;
  uint32_t maxId_ = 0;
  uint32_t end_ = 0;  // one past the last slot of the last chunk
};

struct CompiledPolicy {
  std::vector<PolicyEntry> entries;                 // sorted by key bytes
  // Settings of every workload identity, sorted by identity (a vector: a
  // map of 10k nodes was built for every compile).
  std::vector<std::pair<uint32_t, ms_identity_value>> identities;
  RuleTable rules;                                  // every rule of the bundle
  std::vector<IpcacheEntry> ipcache;                // sorted by address bytes, then prefixlen
  uint64_t stamp = 0;  // unique per Compiler::compile() result (copies keep it)
  // A result built on an earlier one (Compiler::compile with `previous`):
  // that result's stamp, and the subjects whose entries were computed
  // again (sorted); every other subject's entries are that result's. A
  // reader that mirrors the earlier result looks at these subjects only.
  // base 0: compiled whole.
  uint64_t base = 0;
  std::vector<uint32_t> recomputed;
  // Compiler::compileInPlace() took the entries of `base` and replaced the
  // recomputed subjects' groups in place: their entries before are in
  // `replaced` (sorted), the groups in `replacedGroups`.
  bool lent = false;
  std::vector<PolicyEntry> replaced;
  std::vector<GroupBounds<ms_policy_key>> replacedGroups;
  // Kept in force: the previous result is gone, nothing to hand back.
  void settle() {
    lent = false;
    replaced = {};
    replacedGroups = {};
  }

  // The settings of workload identity `id`, nullptr if it is none.
  const ms_identity_value* identity(uint32_t id) const;
};

// The keys of one subject's entries of one prefix length, in
// CompiledPolicy::entries order (key bytes: prefix length, then subject,
// then the rest), a contiguous group: its first and last possible key.
GroupBounds<ms_policy_key> subjectBounds(uint32_t prefixlen, uint32_t subject);

struct Options {
  DefaultEnforcement defaultEnforcement = DefaultEnforcement::Always;
};

CompiledPolicy compile(const policy::Bundle& bundle, const identity::IdentityTable& ids,
                       RuleRegistry& registry, const Options& options = {});

// compile() that remembers its work. Given its own last result (`previous`;
// the caller keeps it, so nothing is held twice) and the identities (labels,
// names, Externals, cidr peers) of the last call, a policy object it
// compiled before is not expanded again, and only the subjects of policies
// that were added, replaced or removed get their entries recomputed: a
// one-rule change in a 100k-rule bundle recompiles one policy. Otherwise
// (no previous, another result, other identities) it compiles everything.
// The result is always the one compile() gives (tested on random edit
// sequences).
class Compiler {
 public:
  Compiler();
  ~Compiler();
  Compiler(const Compiler&) = delete;
  Compiler& operator=(const Compiler&) = delete;

  CompiledPolicy compile(const policy::Bundle& bundle, const identity::IdentityTable& ids,
                         RuleRegistry& registry, const Options& options = {},
                         const CompiledPolicy* previous = nullptr);

  // compile(..., &previous), but `previous` (this compiler's last result,
  // which the caller keeps) lends its entries: a change of a few subjects
  // edits them in place (result.lent) instead of copying 100k+ of them, at
  // the daemon's peak. Until then, `previous` has no entries: the caller
  // keeps the result or hands them back with giveBack().
  CompiledPolicy compileInPlace(const policy::Bundle& bundle, const identity::IdentityTable& ids,
                                RuleRegistry& registry, const Options& options, CompiledPolicy& previous);
  // Puts back into `previous` the entries `result` took (its groups as
  // they were); nothing if it took none.
  static void giveBack(CompiledPolicy& result, CompiledPolicy& previous);

  struct Stats {
    bool full = true;        // everything recomputed (first call, other identities, most subjects)
    size_t policies = 0;     // in the bundle
    size_t expanded = 0;     // of which compiled anew
  };
  const Stats& lastStats() const { return stats_; }

 private:
  CompiledPolicy compile(const policy::Bundle& bundle, const identity::IdentityTable& ids, RuleRegistry& registry,
                         const Options& options, const CompiledPolicy* previous, CompiledPolicy* lender);
  struct Part;
  struct State;
  std::unique_ptr<State> state_;
  Stats stats_;
};

// What the datapath decides for a new flow, computed from the compiled entries
// with exactly the kernel's lookup order. Used by tests and by `explain`.
struct Decision {
  uint8_t verdict = MS_VERDICT_DENY;  // MS_VERDICT_ALLOW | MS_VERDICT_DENY
  uint32_t ruleId = MS_RULE_NONE;
  uint8_t reason = MS_REASON_DEFAULT_DENY;  // enum ms_reason
};

Decision evaluate(const CompiledPolicy& compiled, uint32_t subject, uint32_t peer,
                  policy::Direction dir, uint8_t protocol, uint16_t port);

// Minimal list of (value, prefixBits) covering [first, last] exactly (16-bit).
std::vector<std::pair<uint16_t, uint8_t>> portPrefixes(uint16_t first, uint16_t last);

// One-line rendering of a rule, e.g. "allow to [identity: server] ports
// [8080/TCP]". Rendered when asked (not kept per rule: 100k rules' texts
// are ~10 MiB); "" if `policy` does not hold the rule.
std::string ruleText(const policy::Policy& policy, const RuleInfo& rule);

}  // namespace microseg::compiler

namespace microseg::compiler {

// Why the current policy gives a flow its verdict (for `microseg explain`).
struct Explanation {
  Decision decision;
  std::vector<std::string> selectingPolicies;  // policies whose selector matches the subject
  struct RuleCheck {
    uint32_t ruleId = MS_RULE_NONE;
    std::string rule;  // "<policy>/<index>"
    std::string text;
    bool matches = false;  // peer, protocol and port all match
    std::string why;       // for a non-match: "wrong peer: ...", "wrong port: ..."
  };
  // Every rule of the selecting policies in the asked direction, in order.
  std::vector<RuleCheck> rules;
};

Explanation explain(const policy::Bundle& bundle, const identity::IdentityTable& ids,
                    const CompiledPolicy& compiled, uint32_t subject, uint32_t peer,
                    policy::Direction dir, uint8_t protocol, uint16_t port);

}  // namespace microseg::compiler
