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
  if (n.policy == kNoPolicy) return "rule-" + std::to_string(id);
  return *policies_[n.policy] + "/" + std::to_string(n.index);
}

std::vector<RuleRegistry::PolicyIds> RuleRegistry::handedOut() const {
  std::vector<PolicyIds> out;
  out.reserve(policies_.size());
  for (const std::string* name : policies_) {
    const PolicyRules& r = byPolicy_.at(*name);
    out.push_back(PolicyIds{*name, {r.ids[0], r.ids[1]}});
  }
  return out;
}

bool RuleRegistry::restore(const std::vector<PolicyIds>& saved, uint32_t next) {
  if (next_ != 1 || !byPolicy_.empty()) return false;
  // Checked whole first: nothing is taken from an inconsistent set.
  uint32_t top = 0;
  std::vector<bool> seen;
  std::unordered_map<std::string, bool> names;
  for (const auto& p : saved) {
    if (!names.emplace(p.policy, true).second) return false;
    for (const auto& ids : p.ids) {
      for (uint32_t id : ids) {
        if (id == MS_RULE_NONE) continue;
        if (id > kMaxRestoredId) return false;
        if (seen.size() <= id) seen.resize(size_t(id) + 1, false);
        if (seen[id]) return false;
        seen[id] = true;
        top = std::max(top, id);
      }
    }
  }
  if (next > kMaxRestoredId + 1) return false;
  next_ = std::max(next, top + 1);
  for (uint32_t at = 0; at + 1 < next_; at += kChunk) {
    auto chunk = std::make_unique<Name[]>(kChunk);
    for (uint32_t i = 0; i < kChunk; i++) chunk[i] = {kNoPolicy, 0};
    byId_.push_back(std::move(chunk));
  }
  for (const auto& p : saved) {
    auto it = byPolicy_.emplace(p.policy, PolicyRules{}).first;
    it->second.slot = static_cast<uint32_t>(policies_.size());
    policies_.push_back(&it->first);
    tiers_.push_back(policy::Tier::Application);
    for (int d = 0; d < 2; d++) {
      it->second.ids[d] = p.ids[d];
      for (uint32_t index = 0; index < p.ids[d].size(); index++) {
        const uint32_t id = p.ids[d][index];
        if (id != MS_RULE_NONE) byId_[(id - 1) / kChunk][(id - 1) % kChunk] = {it->second.slot, index};
      }
    }
  }
  return true;
}

void RuleRegistry::setTier(const std::string& policy, policy::Tier tier) {
  auto it = byPolicy_.find(policy);
  if (it != byPolicy_.end()) tiers_[it->second.slot] = tier;
}

policy::Tier RuleRegistry::tierOf(uint32_t id) const {
  if (id == 0 || id >= next_) return policy::Tier::Application;
  const uint32_t slot = byId_[(id - 1) / kChunk][(id - 1) % kChunk].policy;
  return slot == kNoPolicy ? policy::Tier::Application : tiers_[slot];
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
