#include "compiler/rule_registry.h"

#include <algorithm>
#include <stdexcept>

namespace microseg::compiler {

using policy::Direction;

const std::string& RuleInfo::policy() const {
  static const std::string none;
  return owner != nullptr ? owner->name : none;
}

const policy::SourceLocation& RuleInfo::loc() const {
  static const policy::SourceLocation none;
  if (owner == nullptr) return none;
  const auto& list = direction == Direction::Egress ? owner->egress : owner->ingress;
  return index < list.size() ? list[index].loc : none;
}

std::string RuleInfo::name() const { return policy() + "/" + std::to_string(index); }

uint32_t RuleRegistry::idFor(const std::string& policy, policy::Direction dir, uint32_t index) {
  auto it = byPolicy_.find(policy);
  if (it == byPolicy_.end()) {
    it = byPolicy_.emplace(policy, PolicyRules{}).first;
    it->second.slot = static_cast<uint32_t>(policies_.size());
    policies_.push_back(&it->first);
    tiers_.push_back(policy::Tier::Application);
  }
  auto& ids = it->second.ids[dir == policy::Direction::Ingress ? 1 : 0];
  if (ids.size() <= index) ids.resize(size_t(index) + 1, MS_RULE_NONE);
  if (ids[index] == MS_RULE_NONE) {
    const uint32_t at = next_ - 1;
    if (at % kChunk == 0) byId_.push_back(std::make_unique<Name[]>(kChunk));
    byId_.back()[at % kChunk] = {it->second.slot, index};
    ids[index] = next_++;
  }
  return ids[index];
}

std::string RuleRegistry::nameOf(uint32_t id) const {
  if (id == 0 || id >= next_) return "rule-" + std::to_string(id);
  const Name& n = byId_[(id - 1) / kChunk][(id - 1) % kChunk];
  return *policies_[n.policy] + "/" + std::to_string(n.index);
}

void RuleRegistry::setTier(const std::string& policy, policy::Tier tier) {
  auto it = byPolicy_.find(policy);
  if (it != byPolicy_.end()) tiers_[it->second.slot] = tier;
}

policy::Tier RuleRegistry::tierOf(uint32_t id) const {
  if (id == 0 || id >= next_) return policy::Tier::Application;
  return tiers_[byId_[(id - 1) / kChunk][(id - 1) % kChunk].policy];
}

const RuleInfo& RuleTable::at(uint32_t id) const {
  const RuleInfo* r = find(id);
  if (r == nullptr) throw std::out_of_range("no rule " + std::to_string(id));
  return *r;
}

void RuleTable::const_iterator::skip() {
  while (id_ < t_->end_ && t_->find(id_) == nullptr) {
    // A chunk without rules is skipped whole.
    if (!t_->chunks_[id_ / kChunk]) {
      id_ = (id_ / kChunk + 1) * kChunk;
    } else {
      id_++;
    }
  }
}

RuleTable::Chunk& RuleTable::own(uint32_t id) {
  const size_t c = id / kChunk;
  if (chunks_.size() <= c) {
    chunks_.resize(c + 1);
    end_ = static_cast<uint32_t>(chunks_.size() * kChunk);
  }
  auto& chunk = chunks_[c];
  if (!chunk) {
    chunk = std::make_shared<Chunk>();
    chunk->fill(nullptr);
  } else if (chunk.use_count() > 1) {
    chunk = std::make_shared<Chunk>(*chunk);  // shared with another table: copy on write
  }
  return *chunk;
}

void RuleTable::add(std::shared_ptr<const std::vector<RuleInfo>> rules) {
  for (const RuleInfo& r : *rules) {
    const RuleInfo*& slot = own(r.id)[r.id % kChunk];
    if (slot == nullptr) count_++;
    slot = &r;
    maxId_ = std::max(maxId_, r.id);
  }
  parts_.push_back(std::move(rules));
}

void RuleTable::remove(const std::shared_ptr<const std::vector<RuleInfo>>& rules) {
  auto it = std::find(parts_.begin(), parts_.end(), rules);
  if (it == parts_.end()) return;
  for (const RuleInfo& r : *rules) {
    if (find(r.id) != &r) continue;
    own(r.id)[r.id % kChunk] = nullptr;
    count_--;
  }
  parts_.erase(it);
}

}  // namespace microseg::compiler
