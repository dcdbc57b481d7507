// Rules by id: ids that stay the same for (policy, direction, index) for
// the daemon's lifetime (RuleRegistry), and the rules of one compiled
// bundle by id (RuleTable). Flow records name rules through these.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "bpf/abi.h"
#include "policy/model.h"

namespace microseg::compiler {

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
  // The tier of a policy, as last compiled (flow records name it).
  void setTier(const std::string& policy, policy::Tier tier);
  policy::Tier tierOf(uint32_t id) const;  // Application for an id it never handed out

  // Every id handed out, by policy (saved with the flow records' history,
  // edges/numbering.h, so a restart hands the same ones out again).
  struct PolicyIds {
    std::string policy;
    std::vector<uint32_t> ids[2];  // egress, ingress; by index (MS_RULE_NONE: none)
  };
  std::vector<PolicyIds> handedOut() const;
  uint32_t nextId() const { return next_; }
  // A registry that has handed nothing out takes these back: the same
  // (policy, direction, index) gets the same id, a new one an id above
  // `next` and every saved one. False, and nothing taken, if they cannot be
  // (an id twice, above kMaxRestoredId, or this registry in use).
  bool restore(const std::vector<PolicyIds>& saved, uint32_t next);
  static constexpr uint32_t kMaxRestoredId = 1u << 24;

 private:
  // Per policy name: the ids of its rules, per direction, by index.
  struct PolicyRules {
    std::vector<uint32_t> ids[2];
    uint32_t slot = 0;  // in policies_
    policy::Tier tier = policy::Tier::Application;
  };
  std::unordered_map<std::string, PolicyRules> byPolicy_;
  std::vector<const std::string*> policies_;  // slot -> a key of byPolicy_ (its nodes never move)
  std::vector<policy::Tier> tiers_;           // slot -> its tier
  struct Name {
    uint32_t policy;  // slot (kNoPolicy: an id a restore did not name)
    uint32_t index;
  };
  static constexpr uint32_t kNoPolicy = ~0u;
  // id - 1 -> its rule, in chunks of kChunk: 8 bytes a rule, without a
  // doubling vector's slack and copy (100k rules: 0.8 MB, not 2.1).
  static constexpr uint32_t kChunk = 4096;
  std::vector<std::unique_ptr<Name[]>> byId_;
  uint32_t next_ = 1;
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

}  // namespace microseg::compiler
