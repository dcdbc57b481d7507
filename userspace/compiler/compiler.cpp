#include "compiler/compiler.h"
#include "common/bytes.h"

#include <arpa/inet.h>
#include <xxhash.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <optional>
#include <stdexcept>
#include <type_traits>
#include <set>
#include <string_view>
#include <unordered_map>

namespace microseg::compiler {
namespace {

using policy::Action;
using policy::Direction;

// A port interval contributed by one rule, before precedence is resolved.
struct Interval {
  uint32_t first, last;  // inclusive, 0..65535
  uint8_t verdict;       // MS_VERDICT_ALLOW | MS_VERDICT_DENY
  uint64_t order;        // rule order: lower wins among equal verdicts
  uint32_t ruleId;
};

using Intervals = std::vector<Interval>;

std::string selectorText(const policy::LabelSelector& s) {
  std::string out;
  if (!s.matchLabels.empty()) {
    out += "matchLabels: ";
    bool first = true;
    for (const auto& [k, v] : s.matchLabels) {
      out += (first ? "" : ",") + k + "=" + v;
      first = false;
    }
  }
  for (const auto& e : s.matchExpressions) {
    static const char* ops[] = {"In", "NotIn", "Exists", "DoesNotExist"};
    if (!out.empty()) out += "; ";
    out += e.key + " " + ops[static_cast<int>(e.op)];
    if (!e.values.empty()) {
      out += " (";
      for (size_t i = 0; i < e.values.size(); i++) out += (i ? "," : "") + e.values[i];
      out += ")";
    }
  }
  return out;
}

std::string peerText(const policy::Peer& p) {
  switch (p.kind) {
    case policy::Peer::Kind::Identity: return "identity: " + p.identity;
    case policy::Peer::Kind::Reserved:
      return std::string("reserved: ") +
             (p.reserved == policy::ReservedPeer::Host    ? "host"
              : p.reserved == policy::ReservedPeer::World ? "world"
                                                          : "unmanaged");
    case policy::Peer::Kind::Selector: return selectorText(p.selector());
    case policy::Peer::Kind::Cidr: {
      std::string s = "cidr: " + p.cidr().str();
      if (p.except().empty()) return s;
      std::vector<policy::Cidr> holes = p.except();
      std::sort(holes.begin(), holes.end());
      s += " except [";
      for (size_t i = 0; i < holes.size(); i++) s += (i ? ", " : "") + holes[i].str();
      return s + "]";
    }
  }
  return "?";
}

std::string ruleText(const policy::Rule& r, Direction dir) {
  std::string s = r.action == Action::Allow ? "allow" : "deny";
  s += dir == Direction::Egress ? " to " : " from ";
  if (!r.peers) {
    s += "any";
  } else {
    s += "[";
    for (size_t i = 0; i < r.peers->size(); i++) s += (i ? "; " : "") + peerText((*r.peers)[i]);
    s += "]";
  }
  s += " ports ";
  if (r.ports.empty()) return s + "any";
  s += "[";
  for (size_t i = 0; i < r.ports.size(); i++) {
    const auto& p = r.ports[i];
    if (i) s += ", ";
    if (p.anyPort()) {
      s += "*";
    } else {
      s += std::to_string(p.first);
      if (p.last != p.first) s += "-" + std::to_string(p.last);
    }
    s += p.protocol == policy::Protocol::TCP   ? "/TCP"
         : p.protocol == policy::Protocol::UDP ? "/UDP"
                                               : "/any";
  }
  return s + "]";
}

// A policy's namespace is part of its selector: only workloads carrying the
// namespace label are its subjects.
bool inNamespace(const policy::Policy& p, const policy::Labels& labels) {
  if (p.namespaceName.empty()) return true;
  auto it = labels.find(policy::kNamespaceLabel);
  return it != labels.end() && it->second == p.namespaceName;
}

bool subjectMatches(const policy::Policy& p, uint32_t identity, const identity::IdentityTable& ids) {
  auto labels = ids.labels.find(identity);
  if (labels == ids.labels.end() || !inNamespace(p, labels->second)) return false;
  const policy::Peer& sel = p.selector;
  if (sel.kind == policy::Peer::Kind::Identity) {
    auto it = ids.byWorkload.find(sel.identity);
    return it != ids.byWorkload.end() && it->second == identity;
  }
  return sel.kind == policy::Peer::Kind::Selector && sel.selector().matches(labels->second);
}

// Subject identities of `p`, sorted. An identity selector is one lookup,
// not a scan of every identity.
std::vector<uint32_t> subjectsOf(const policy::Policy& p, const identity::IdentityTable& ids) {
  std::vector<uint32_t> out;
  if (p.selector.kind == policy::Peer::Kind::Identity) {
    auto it = ids.byWorkload.find(p.selector.identity);
    if (it != ids.byWorkload.end() && subjectMatches(p, it->second, ids)) out.push_back(it->second);
    return out;
  }
  for (const auto& [id, labels] : ids.labels) {
    if (subjectMatches(p, id, ids)) out.push_back(id);
  }
  return out;
}

// What peers expand against: the identities, plus the Externals' labels
// (label selectors match Externals too, and reach their range identities).
class PeerExpander {
 public:
  // `many`: many peers will be expanded (a full compile), worth hashing
  // the workload names first (10k names: ~1.5 ms, more than a few lookups
  // in the sorted map cost).
  PeerExpander(const policy::Bundle& bundle, const identity::IdentityTable& ids, bool many = true) : ids_(ids) {
    for (const auto& e : bundle.externals) externalLabels_.emplace_back(e.name, e.effectiveLabels());
    if (many) {
      workloads_.reserve(ids.byWorkload.size());
      for (const auto& [name, id] : ids.byWorkload) workloads_.emplace(name, id);
    }
    hashed_ = many;
  }

  // Appends the identities `p` names (unsorted, maybe repeated).
  void expandInto(const policy::Peer& p, std::vector<uint32_t>& out) const {
    switch (p.kind) {
      case policy::Peer::Kind::Reserved:
        switch (p.reserved) {
          case policy::ReservedPeer::Host: out.push_back(MS_IDENTITY_HOST); break;
          case policy::ReservedPeer::World:
            // Anything that is not local, whether or not some External names
            // it: the kernel looks a range identity up as itself, then as
            // world (see covers() and the world folding in compile()).
            out.push_back(MS_IDENTITY_WORLD);
            break;
          case policy::ReservedPeer::Unmanaged: out.push_back(MS_IDENTITY_UNMANAGED); break;
        }
        break;
      case policy::Peer::Kind::Identity:
        if (auto w = workload(p.identity)) {
          out.push_back(*w);
        } else {
          addRanges(ids_.byExternal, p.identity, out);
        }
        break;
      case policy::Peer::Kind::Selector:
        for (const auto& [id, labels] : ids_.labels) {
          if (p.selector().matches(labels)) out.push_back(id);
        }
        for (const auto& [name, labels] : externalLabels_) {
          if (p.selector().matches(labels)) addRanges(ids_.byExternal, name, out);
        }
        break;
      case policy::Peer::Kind::Cidr: addRanges(ids_.byCidrPeer, p.cidrText(), out); break;
    }
  }

  // Does peer `p` name identity `id`? `world` also names every range.
  bool covers(const policy::Peer& p, uint32_t id) const {
    std::vector<uint32_t> expanded;
    expandInto(p, expanded);
    if (std::find(expanded.begin(), expanded.end(), id) != expanded.end()) return true;
    return p.kind == policy::Peer::Kind::Reserved && p.reserved == policy::ReservedPeer::World &&
           id >= MS_IDENTITY_FIRST_EXTERNAL;
  }

 private:
  std::optional<uint32_t> workload(const std::string& name) const {
    if (hashed_) {
      auto it = workloads_.find(name);
      return it == workloads_.end() ? std::nullopt : std::optional<uint32_t>(it->second);
    }
    auto it = ids_.byWorkload.find(name);
    return it == ids_.byWorkload.end() ? std::nullopt : std::optional<uint32_t>(it->second);
  }

  static void addRanges(const std::map<std::string, std::vector<uint32_t>>& index, const std::string& key,
                        std::vector<uint32_t>& out) {
    if (auto it = index.find(key); it != index.end()) out.insert(out.end(), it->second.begin(), it->second.end());
  }

  const identity::IdentityTable& ids_;
  std::vector<std::pair<std::string, policy::Labels>> externalLabels_;  // External name -> effective labels
  std::unordered_map<std::string_view, uint32_t> workloads_;            // ids_.byWorkload, hashed (if many)
  bool hashed_ = true;
};

// The groups of `subjects` in the blocks of every prefix length that `a`
// or `b` (CompiledPolicy::entries order) has entries of, in that order.
std::vector<GroupBounds<ms_policy_key>> changedGroups(const std::vector<PolicyEntry>& a,
                                                      const std::vector<PolicyEntry>& b,
                                                      std::vector<uint32_t> subjects) {
  std::vector<uint32_t> lengths;
  for (const auto* v : {&a, &b}) {
    for (auto it = v->begin(); it != v->end();) {
      const uint32_t len = it->key.prefixlen;
      lengths.push_back(len);
      it = gallopLower(it, v->end(), subjectBounds(len, UINT32_MAX).hi,
                       [](const PolicyEntry& e, const ms_policy_key& k) { return !bytesLess(k, e.key); });
    }
  }
  std::sort(lengths.begin(), lengths.end(), bytesLess<uint32_t>);
  lengths.erase(std::unique(lengths.begin(), lengths.end()), lengths.end());
  std::sort(subjects.begin(), subjects.end(), bytesLess<uint32_t>);
  std::vector<GroupBounds<ms_policy_key>> out;
  out.reserve(lengths.size() * subjects.size());
  for (uint32_t len : lengths) {
    for (uint32_t s : subjects) out.push_back(subjectBounds(len, s));
  }
  return out;
}

// Deny beats allow; then the earlier rule: the disjoint, merged pieces of
// one peer's intervals. Keeps its buffers between calls (a compile resolves
// one set per subject, direction, protocol and peer).
class Resolver {
 public:
  const Intervals& operator()(const Intervals& in) {
    out_.clear();
    if (in.size() <= 1) return in;
    // Mostly one rule per port: nothing overlaps, and the pieces are the
    // intervals in port order (what the sweep below gives them too).
    sorted_ = in;
    std::sort(sorted_.begin(), sorted_.end(), [](const Interval& a, const Interval& b) { return a.first < b.first; });
    bool overlap = false;
    for (size_t i = 1; i < sorted_.size() && !overlap; i++) overlap = sorted_[i].first <= sorted_[i - 1].last;
    if (!overlap) {
      for (const Interval& iv : sorted_) add(iv.first, iv.last, iv);
      return out_;
    }
    evs_.clear();
    for (size_t i = 0; i < in.size(); i++) {
      evs_.push_back({in[i].first, true, i});
      evs_.push_back({in[i].last + 1, false, i});
    }
    std::sort(evs_.begin(), evs_.end(), [](const Ev& a, const Ev& b) { return a.at < b.at; });
    auto prio = [&](size_t i) {
      return std::make_tuple(in[i].verdict == MS_VERDICT_DENY ? 0 : 1, in[i].order, i);
    };
    std::set<std::tuple<int, uint64_t, size_t>> active;
    size_t e = 0;
    while (e < evs_.size()) {
      const uint32_t at = evs_[e].at;
      while (e < evs_.size() && evs_[e].at == at) {
        if (evs_[e].start) {
          active.insert(prio(evs_[e].idx));
        } else {
          active.erase(prio(evs_[e].idx));
        }
        e++;
      }
      if (active.empty() || e >= evs_.size()) continue;
      add(at, evs_[e].at - 1, in[std::get<2>(*active.begin())]);
    }
    return out_;
  }

 private:
  struct Ev {
    uint32_t at;
    bool start;
    size_t idx;
  };
  // [first, last] is decided by `win`: joined to the piece before it if
  // that one ends right before it with the same verdict and rule.
  void add(uint32_t first, uint32_t last, const Interval& win) {
    if (!out_.empty() && out_.back().last + 1 == first && out_.back().verdict == win.verdict &&
        out_.back().ruleId == win.ruleId) {
      out_.back().last = last;
    } else {
      out_.push_back({first, last, win.verdict, win.order, win.ruleId});
    }
  }
  Intervals sorted_, out_;
  std::vector<Ev> evs_;
};

// Calls f(value, prefixBits) for the minimal list of port prefixes that
// covers [first, last] exactly (16-bit).
template <typename F>
void forEachPortPrefix(uint16_t first, uint16_t last, F&& f) {
  uint32_t lo = first;
  const uint32_t hi = last;
  while (lo <= hi) {
    // Largest aligned block starting at lo that stays within hi.
    uint32_t size = 1;
    uint8_t bits = 16;
    while (bits > 0) {
      const uint32_t bigger = size << 1;
      if ((lo & (bigger - 1)) != 0 || lo + bigger - 1 > hi) break;
      size = bigger;
      bits--;
    }
    f(static_cast<uint16_t>(lo), bits);
    lo += size;
  }
}

}  // namespace

GroupBounds<ms_policy_key> subjectBounds(uint32_t prefixlen, uint32_t subject) {
  GroupBounds<ms_policy_key> g;
  std::memset(&g.lo, 0, sizeof(g.lo));
  std::memset(&g.hi, 0xff, sizeof(g.hi));
  g.lo.prefixlen = g.hi.prefixlen = prefixlen;
  g.lo.subject = g.hi.subject = subject;
  return g;
}

std::string ruleText(const policy::Policy& policy, const RuleInfo& rule) {
  const auto& list = rule.direction == Direction::Egress ? policy.egress : policy.ingress;
  if (policy.name != rule.policy() || rule.index >= list.size()) return "";
  return ruleText(list[rule.index], rule.direction);
}

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

std::vector<std::pair<uint16_t, uint8_t>> portPrefixes(uint16_t first, uint16_t last) {
  std::vector<std::pair<uint16_t, uint8_t>> out;
  forEachPortPrefix(first, last, [&](uint16_t value, uint8_t bits) { out.emplace_back(value, bits); });
  return out;
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

// Every (subject, dir, proto, peer, interval) a rule contributes, as a Part
// keeps it: the interval's order is the rule's position in its policy.
// 24 bytes (an Interval inline made it 48: 100k rules contribute 100k+).
struct Contribution {
  uint32_t subject;
  uint32_t peer;
  uint32_t ruleId;
  uint32_t order;  // the rule's position in its policy
  uint16_t first, last;
  uint8_t dir, proto, verdict;
};

// A contribution gathered for resolution, where its order is (policy rank
// << 32) | its position: rule order.
struct Ranked : Contribution {
  uint32_t rank;  // the policy's rank in rule precedence
  Interval iv() const { return {first, last, verdict, (uint64_t(rank) << 32) | order, ruleId}; }
};

// One policy compiled against the identities: its subjects, what its rules
// contribute (sorted by subject, each subject's in the order made), its rules.
struct Compiler::Part {
  std::shared_ptr<const policy::Policy> policy;  // held: the cache is keyed by its address
  std::vector<uint32_t> subjects;                // sorted
  std::vector<Contribution> contributions;
  std::shared_ptr<const std::vector<RuleInfo>> rules;
};

// What the parts were compiled against, the parts, and the last entries.
struct Compiler::State {
  const RuleRegistry* registry = nullptr;
  uint64_t version = 0;  // IdentityTable::version of the identities below
  // identityDigest() of them: a copy of 10k label sets was MiBs (the daemon
  // holds the table itself).
  XXH128_hash_t identities{};
  std::vector<std::pair<std::string, policy::Labels>> externalLabels;
  // The workload identities (the keys of IdentityTable::labels), sorted:
  // walked on every compile, where the table's map nodes lie all over an
  // aged heap (10k of them were 1.5 ms).
  std::vector<uint32_t> workloads;
  struct Cached {
    std::shared_ptr<const Part> part;
    uint64_t pass = 0;  // the last compile whose bundle had it
  };
  std::unordered_map<const policy::Policy*, Cached> parts;
  uint64_t pass = 0;
  uint64_t stamp = 0;  // of the last result
};

Compiler::Compiler() = default;
Compiler::~Compiler() = default;

namespace {

// A 128-bit digest of what parts are compiled against in `ids`: the label
// sets, the workload names, the identities of Externals and cidr peers
// (every map and string length-prefixed, so different tables encode
// differently). Two tables with the same digest are taken as the same, as
// documents with the same hash are by the loader.
XXH128_hash_t identityDigest(const identity::IdentityTable& ids) {
  std::unique_ptr<XXH3_state_t, XXH_errorcode (*)(XXH3_state_t*)> st(XXH3_createState(), &XXH3_freeState);
  if (!st) throw std::bad_alloc();
  XXH3_128bits_reset(st.get());
  auto num = [&](uint64_t v) { XXH3_128bits_update(st.get(), &v, sizeof(v)); };
  auto str = [&](const std::string& v) {
    num(v.size());
    XXH3_128bits_update(st.get(), v.data(), v.size());
  };
  num(ids.labels.size());
  for (const auto& [id, labels] : ids.labels) {
    num(id);
    num(labels.size());
    for (const auto& [k, v] : labels) {
      str(k);
      str(v);
    }
  }
  num(ids.byWorkload.size());
  for (const auto& [name, id] : ids.byWorkload) {
    str(name);
    num(id);
  }
  for (const auto* m : {&ids.byExternal, &ids.byCidrPeer}) {
    num(m->size());
    for (const auto& [name, idents] : *m) {
      str(name);
      num(idents.size());
      for (uint32_t id : idents) num(id);
    }
  }
  return XXH3_128bits_digest(st.get());
}

std::vector<std::pair<std::string, policy::Labels>> externalLabelsOf(const policy::Bundle& bundle) {
  std::vector<std::pair<std::string, policy::Labels>> out;
  out.reserve(bundle.externals.size());
  for (const auto& e : bundle.externals) out.emplace_back(e.name, e.effectiveLabels());
  return out;
}

}  // namespace

CompiledPolicy Compiler::compile(const policy::Bundle& bundle, const identity::IdentityTable& ids,
                                 RuleRegistry& registry, const Options& options, const CompiledPolicy* previous) {
  return compile(bundle, ids, registry, options, previous, nullptr);
}

CompiledPolicy Compiler::compileInPlace(const policy::Bundle& bundle, const identity::IdentityTable& ids,
                                        RuleRegistry& registry, const Options& options, CompiledPolicy& previous) {
  return compile(bundle, ids, registry, options, &previous, &previous);
}

void Compiler::giveBack(CompiledPolicy& result, CompiledPolicy& previous) {
  if (!result.lent) return;
  replaceGroupsInPlace(
      result.entries, result.replaced, result.replacedGroups,
      [](const PolicyEntry& e) -> const ms_policy_key& { return e.key; }, bytesLess<ms_policy_key>);
  previous.entries = std::move(result.entries);
  result.entries.clear();
  result.lent = false;
}

CompiledPolicy Compiler::compile(const policy::Bundle& bundle, const identity::IdentityTable& ids,
                                 RuleRegistry& registry, const Options& options, const CompiledPolicy* previous,
                                 CompiledPolicy* lender) {
  CompiledPolicy out;
  stats_ = {};

  // Parts stay valid while everything a peer or subject expands against is
  // the same (rule ids are the registry's, stable per policy name).
  auto externalLabels = externalLabelsOf(bundle);
  const bool sameVersion = state_ && ids.version != 0 && state_->version == ids.version;
  const XXH128_hash_t digest = sameVersion ? state_->identities : identityDigest(ids);
  const bool same = state_ && state_->registry == &registry && state_->externalLabels == externalLabels &&
                    (sameVersion || XXH128_isEqual(state_->identities, digest));
  if (same) {
    state_->version = ids.version;
  } else {
    auto fresh = std::make_unique<State>();
    fresh->version = ids.version;
    fresh->registry = &registry;
    fresh->identities = digest;
    fresh->externalLabels = std::move(externalLabels);
    fresh->workloads.reserve(ids.labels.size());
    for (const auto& [id, labels] : ids.labels) fresh->workloads.push_back(id);
    state_ = std::move(fresh);
  }
  // Incremental only on top of this compiler's last result.
  stats_.full = !same || previous == nullptr || previous->stamp == 0 || previous->stamp != state_->stamp;

  stats_.policies = bundle.policies.size();
  size_t missing = 0;  // policies not compiled before
  for (const auto& p : bundle.policies) missing += !state_->parts.count(&p);

  std::optional<PeerExpander> expander;  // built when a policy needs compiling
  std::vector<uint32_t> peers;                                 // of one rule
  std::vector<std::tuple<uint8_t, uint32_t, uint32_t>> ports;  // of one rule: proto, first, last
  auto makePart = [&](const std::shared_ptr<const policy::Policy>& pp) {
    const policy::Policy& p = *pp;
    if (!expander) expander.emplace(bundle, ids, stats_.full || missing > 16);
    auto part = std::make_shared<Part>();
    part->policy = pp;
    part->subjects = subjectsOf(p, ids);
    // The rules hold their policy (their name and location are there).
    struct Owned {
      std::shared_ptr<const policy::Policy> policy;
      std::vector<RuleInfo> rules;
    };
    auto owned = std::make_shared<Owned>();
    owned->policy = pp;
    std::vector<RuleInfo>* rules = &owned->rules;
    rules->reserve(p.egress.size() + p.ingress.size());
    uint32_t position = 0;
    for (Direction dir : {Direction::Egress, Direction::Ingress}) {
      const auto& list = dir == Direction::Egress ? p.egress : p.ingress;
      for (uint32_t i = 0; i < list.size(); i++) {
        const policy::Rule& r = list[i];
        RuleInfo info;
        info.id = registry.idFor(p.name, dir, i);
        info.owner = &p;
        info.direction = dir;
        info.index = i;
        info.action = r.action;
        const uint32_t ruleOrder = position++;

        peers.clear();
        if (!r.peers) {
          peers.push_back(MS_IDENTITY_ANY);
        } else {
          for (const auto& peer : *r.peers) expander->expandInto(peer, peers);
          std::sort(peers.begin(), peers.end());
          peers.erase(std::unique(peers.begin(), peers.end()), peers.end());
        }
        ports.clear();
        auto addProto = [&](policy::Protocol proto, uint32_t first, uint32_t last) {
          if (proto == policy::Protocol::Any || proto == policy::Protocol::TCP) {
            ports.emplace_back(MS_PROTO_TCP, first, last);
          }
          if (proto == policy::Protocol::Any || proto == policy::Protocol::UDP) {
            ports.emplace_back(MS_PROTO_UDP, first, last);
          }
        };
        if (r.ports.empty()) {
          addProto(policy::Protocol::Any, 0, 65535);
        } else {
          for (const auto& pr : r.ports) {
            if (pr.anyPort()) {
              addProto(pr.protocol, 0, 65535);
            } else {
              addProto(pr.protocol, pr.first, pr.last);
            }
          }
        }
        const uint8_t verdict = r.action == Action::Deny ? MS_VERDICT_DENY : MS_VERDICT_ALLOW;
        for (uint32_t s : part->subjects) {
          for (const auto& [proto, first, last] : ports) {
            for (uint32_t peer : peers) {
              part->contributions.push_back({s, peer, info.id, ruleOrder, static_cast<uint16_t>(first),
                                             static_cast<uint16_t>(last), static_cast<uint8_t>(dir), proto, verdict});
            }
          }
        }
        rules->push_back(std::move(info));
      }
    }
    std::stable_sort(part->contributions.begin(), part->contributions.end(),
                     [](const Contribution& a, const Contribution& b) { return a.subject < b.subject; });
    part->contributions.shrink_to_fit();  // kept for the policy's lifetime
    part->rules = std::shared_ptr<const std::vector<RuleInfo>>(owned, rules);
    return std::shared_ptr<const Part>(std::move(part));
  };

  // This bundle's parts (kept or made; the cache is updated in place, gone
  // ones swept out), and the subjects whose entries must be recomputed:
  // every subject of a part that is new or gone.
  const uint64_t pass = ++state_->pass;
  std::vector<const Part*> all;  // in file order
  all.reserve(bundle.policies.size());
  std::vector<uint32_t> changed;
  std::vector<const Part*> added;
  for (size_t idx = 0; idx < bundle.policies.size(); idx++) {
    const auto& pp = bundle.policies.shared(idx);
    auto [it, fresh] = state_->parts.try_emplace(pp.get());
    if (fresh) {
      it->second.part = makePart(pp);
      stats_.expanded++;
      added.push_back(it->second.part.get());
      changed.insert(changed.end(), it->second.part->subjects.begin(), it->second.part->subjects.end());
    }
    it->second.pass = pass;
    all.push_back(it->second.part.get());
  }
  std::vector<std::shared_ptr<const Part>> removed;  // alive until the rule table is updated
  for (auto it = state_->parts.begin(); it != state_->parts.end();) {
    if (it->second.pass == pass) {
      ++it;
      continue;
    }
    changed.insert(changed.end(), it->second.part->subjects.begin(), it->second.part->subjects.end());
    removed.push_back(std::move(it->second.part));
    it = state_->parts.erase(it);
  }
  std::sort(changed.begin(), changed.end());
  changed.erase(std::unique(changed.begin(), changed.end()), changed.end());
  // Most of many subjects to recompute (a new policy set over the same
  // identities): compiled whole, with its contributions reserved exactly
  // and the fresh entries moved in, where a patch copied every entry beside
  // them (+5 MB at the daemon's peak for 100k rules over 10k identities).
  // Below a thousand subjects either way costs little.
  constexpr size_t kWholeFrom = 1024;
  if (!stats_.full && changed.size() >= kWholeFrom && changed.size() * 2 > state_->workloads.size()) {
    stats_.full = true;
  }
  const bool full = stats_.full;
  // Identities are small numbers: a bitmap answers "changed?" per entry.
  std::vector<bool> changedMap(changed.empty() ? 0 : size_t(changed.back()) + 1, false);
  for (uint32_t s : changed) changedMap[s] = true;
  auto isChanged = [&](uint32_t s) { return full || (s < changedMap.size() && changedMap[s]); };

  // The policies that have rules for those subjects, in name order, rules
  // in index order: that is rule precedence among equal verdicts, and it
  // makes the output independent of file order. (Only the relative order
  // of the policies of one subject matters: a small change sorts a few.)
  std::vector<const Part*> ranked;
  for (const Part* part : all) {
    if (full || std::any_of(part->subjects.begin(), part->subjects.end(), isChanged)) ranked.push_back(part);
  }
  std::sort(ranked.begin(), ranked.end(),
            [](const Part* a, const Part* b) { return a->policy->name < b->policy->name; });

  // The contributions of the subjects to recompute, in rule order.
  std::vector<Ranked> contributions;
  if (full) {
    size_t n = 0;
    for (const Part* part : ranked) n += part->contributions.size();
    contributions.reserve(n);
  }
  for (size_t rank = 0; rank < ranked.size(); rank++) {
    const Part& part = *ranked[rank];
    auto take = [&](auto from, auto to) {
      for (auto c = from; c != to; ++c) {
        contributions.push_back({*c, static_cast<uint32_t>(rank)});
      }
    };
    if (full) {
      take(part.contributions.begin(), part.contributions.end());
      continue;
    }
    for (uint32_t s : part.subjects) {
      if (!isChanged(s)) continue;
      auto [lo, hi] = std::equal_range(part.contributions.begin(), part.contributions.end(), s,
                                       [](const auto& x, const auto& y) {
                                         if constexpr (std::is_same_v<std::decay_t<decltype(x)>, Contribution>) {
                                           return x.subject < y;
                                         } else {
                                           return x < y.subject;
                                         }
                                       });
      take(lo, hi);
    }
  }

  // Groups (subject, dir, proto), peers ascending within a group, each
  // peer's intervals in rule order. A total order, so an in-place sort: a
  // stable sort's buffer was another copy of every contribution (2.8 MB at
  // 100k rules, at the daemon's peak). Intervals of the same rule order
  // are one rule's (same verdict and id): their order does not matter.
  std::sort(contributions.begin(), contributions.end(), [](const Ranked& a, const Ranked& b) {
    return std::tie(a.subject, a.dir, a.proto, a.peer, a.rank, a.order, a.first, a.last) <
           std::tie(b.subject, b.dir, b.proto, b.peer, b.rank, b.order, b.first, b.last);
  });
  // At least an entry per contribution (one per port prefix): reserved, so
  // that a doubling vector's growth (both buffers alive, 5 MB at 100k
  // entries) is not the daemon's peak.
  std::vector<PolicyEntry> fresh;
  fresh.reserve(contributions.size());
  auto emit = [&](uint32_t subject, uint8_t dir, uint8_t proto, uint32_t peer, const Intervals& resolved) {
    for (const auto& iv : resolved) {
      forEachPortPrefix(static_cast<uint16_t>(iv.first), static_cast<uint16_t>(iv.last), [&](uint16_t value, uint8_t bits) {
        PolicyEntry e;
        e.key.prefixlen = MS_POLICY_PREFIX_FIXED + bits;
        e.key.subject = subject;
        e.key.peer = peer;
        e.key.direction = dir;
        e.key.protocol = proto;
        e.key.port = htons(value);
        e.value.rule_id = iv.ruleId;
        e.value.verdict = iv.verdict;
        fresh.push_back(e);
      });
    }
  };
  Intervals world, anyDenies, intervals;
  Resolver resolve;
  for (size_t g = 0; g < contributions.size();) {
    const Ranked& head = contributions[g];
    size_t end = g;
    while (end < contributions.size() && contributions[end].subject == head.subject &&
           contributions[end].dir == head.dir && contributions[end].proto == head.proto) {
      end++;
    }
    // A range identity with rules of its own must also carry the world
    // rules (it is part of world), so that precedence between them holds;
    // one without falls back to the world entries in the kernel. Deny rules
    // for any peer are folded into every specific peer.
    world.clear();
    anyDenies.clear();
    for (size_t i = g; i < end; i++) {
      const Ranked& c = contributions[i];
      if (c.peer == MS_IDENTITY_WORLD) world.push_back(c.iv());
      if (c.peer == MS_IDENTITY_ANY && c.verdict == MS_VERDICT_DENY) anyDenies.push_back(c.iv());
    }
    for (size_t i = g; i < end;) {
      const uint32_t peer = contributions[i].peer;
      intervals.clear();
      for (; i < end && contributions[i].peer == peer; i++) intervals.push_back(contributions[i].iv());
      if (peer >= MS_IDENTITY_FIRST_EXTERNAL) intervals.insert(intervals.end(), world.begin(), world.end());
      if (peer != MS_IDENTITY_ANY) intervals.insert(intervals.end(), anyDenies.begin(), anyDenies.end());
      emit(head.subject, head.dir, head.proto, peer, resolve(intervals));
    }
    g = end;
  }
  auto less = [](const PolicyEntry& a, const PolicyEntry& b) { return bytesLess(a.key, b.key); };  // CompiledPolicy::entries order
  std::sort(fresh.begin(), fresh.end(), less);
  // The rule table: the last one with the removed policies' rules taken out
  // and the new ones' put in.
  if (full) {
    for (const Part* part : all) out.rules.add(part->rules);
  } else {
    out.rules = previous->rules;
    for (const auto& part : removed) out.rules.remove(part->rules);
    for (const Part* part : added) out.rules.add(part->rules);
  }
  static std::atomic<uint64_t> stamps{0};
  out.stamp = state_->stamp = ++stamps;
  removed.clear();  // after the rule table

  struct IdentState {
    bool egressSelected = false, ingressSelected = false, monitor = false, enforce = false;
  };
  // Every workload identity (sorted), each found by bisection.
  std::vector<std::pair<uint32_t, IdentState>> state;
  state.reserve(state_->workloads.size());
  for (uint32_t id : state_->workloads) state.emplace_back(id, IdentState{});
  for (const Part* part : all) {
    const policy::Policy& p = *part->policy;
    for (uint32_t s : part->subjects) {
      auto at = std::lower_bound(state.begin(), state.end(), s,
                                 [](const auto& e, uint32_t id) { return e.first < id; });
      if (at == state.end() || at->first != s) continue;  // subjects are identities of ids.labels
      auto& st = at->second;
      st.egressSelected |= p.hasEgress;
      st.ingressSelected |= p.hasIngress;
      if (p.enforcement == policy::Enforcement::Monitor) st.monitor = true;
      if (p.enforcement == policy::Enforcement::Enforce) st.enforce = true;
    }
  }
  for (const auto& [id, st] : state) {
    ms_identity_value v{};
    if (options.defaultEnforcement == DefaultEnforcement::Always) {
      v.flags = MS_IDENT_F_ISOLATE_EGRESS | MS_IDENT_F_ISOLATE_INGRESS;
    } else {
      v.flags = (st.egressSelected ? MS_IDENT_F_ISOLATE_EGRESS : 0u) |
                (st.ingressSelected ? MS_IDENT_F_ISOLATE_INGRESS : 0u);
    }
    v.mode = st.monitor ? MS_MODE_MONITOR : st.enforce ? MS_MODE_ENFORCE : MS_MODE_INHERIT;
    out.identities.emplace_back(id, v);
  }

  // Already sorted by (address, prefixlen) by the identity table.
  for (const auto& p : ids.ipcache) {
    IpcacheEntry e;
    e.addr = p.prefix.addr;
    e.prefixlen = p.prefix.prefixlen;
    e.identity = p.identity;
    out.ipcache.push_back(e);
  }
  // The entries last: once the previous result's are taken, nothing may
  // fail (see replaceGroupsInPlace()), or the caller would be left without.
  if (full) {
    out.entries = std::move(fresh);
  } else {
    // The entries of every other subject are the last result's: the
    // recomputed subjects' groups are replaced in them (lent) or in a copy.
    out.base = previous->stamp;
    out.recomputed = changed;
    auto keyOf = [](const PolicyEntry& e) -> const ms_policy_key& { return e.key; };
    auto groups = changedGroups(previous->entries, fresh, changed);
    if (lender != nullptr && groups.size() <= kInPlaceGroups) {
      out.replaced = groupElements(lender->entries, groups, keyOf, bytesLess<ms_policy_key>);
      out.entries = std::move(lender->entries);
      lender->entries.clear();
      try {
        replaceGroupsInPlace(out.entries, fresh, groups, keyOf, bytesLess<ms_policy_key>);
      } catch (...) {
        lender->entries = std::move(out.entries);  // refused before anything changed
        throw;
      }
      out.replacedGroups = std::move(groups);
      out.lent = true;
    } else {
      out.entries = replaceGroups(previous->entries, fresh, groups, keyOf, bytesLess<ms_policy_key>);
    }
  }
  return out;
}

CompiledPolicy compile(const policy::Bundle& bundle, const identity::IdentityTable& ids,
                       RuleRegistry& registry, const Options& options) {
  return Compiler().compile(bundle, ids, registry, options);
}

const ms_identity_value* CompiledPolicy::identity(uint32_t id) const {
  auto it = std::lower_bound(identities.begin(), identities.end(), id,
                             [](const auto& e, uint32_t v) { return e.first < v; });
  return it != identities.end() && it->first == id ? &it->second : nullptr;
}

Decision evaluate(const CompiledPolicy& compiled, uint32_t subject, uint32_t peer,
                  policy::Direction dir, uint8_t protocol, uint16_t port) {
  Decision d;
  const ms_identity_value* ident = compiled.identity(subject);
  if (ident == nullptr) {
    d.verdict = MS_VERDICT_ALLOW;
    d.reason = MS_REASON_NOT_ISOLATED;
    return d;
  }
  auto lookup = [&](uint32_t p) -> const PolicyEntry* {
    const PolicyEntry* best = nullptr;
    for (const auto& e : compiled.entries) {
      if (e.key.subject != subject || e.key.peer != p || e.key.direction != static_cast<uint8_t>(dir) ||
          e.key.protocol != protocol) {
        continue;
      }
      const uint32_t bits = e.key.prefixlen - MS_POLICY_PREFIX_FIXED;
      const uint32_t mask = bits == 0 ? 0 : (0xffffu << (16 - bits)) & 0xffffu;
      if ((port & mask) != (ntohs(e.key.port) & mask)) continue;
      if (best == nullptr || e.key.prefixlen > best->key.prefixlen) best = &e;
    }
    return best;
  };
  const PolicyEntry* hit = lookup(peer);
  if (hit == nullptr && peer >= MS_IDENTITY_FIRST_EXTERNAL) hit = lookup(MS_IDENTITY_WORLD);
  if (hit == nullptr) hit = lookup(MS_IDENTITY_ANY);
  if (hit != nullptr) {
    d.verdict = hit->value.verdict;
    d.ruleId = hit->value.rule_id;
    d.reason = MS_REASON_RULE;
    return d;
  }
  const uint32_t isolate =
      dir == policy::Direction::Egress ? MS_IDENT_F_ISOLATE_EGRESS : MS_IDENT_F_ISOLATE_INGRESS;
  if (ident->flags & isolate) {
    d.verdict = MS_VERDICT_DENY;
    d.reason = MS_REASON_DEFAULT_DENY;
  } else {
    d.verdict = MS_VERDICT_ALLOW;
    d.reason = MS_REASON_NOT_ISOLATED;
  }
  return d;
}

}  // namespace microseg::compiler

namespace microseg::compiler {

Explanation explain(const policy::Bundle& bundle, const identity::IdentityTable& ids,
                    const CompiledPolicy& compiled, uint32_t subject, uint32_t peer,
                    policy::Direction dir, uint8_t protocol, uint16_t port) {
  Explanation out;
  out.decision = evaluate(compiled, subject, peer, dir, protocol, port);
  std::vector<const policy::Policy*> policies;
  for (const auto& p : bundle.policies) policies.push_back(&p);
  std::sort(policies.begin(), policies.end(),
            [](const auto* a, const auto* b) { return a->name < b->name; });
  const char* protoName = protocol == MS_PROTO_TCP ? "TCP" : protocol == MS_PROTO_UDP ? "UDP" : "other";
  std::map<std::tuple<std::string, Direction, uint32_t>, uint32_t> ruleIds;
  for (const auto& [id, info] : compiled.rules) ruleIds[{info.policy(), info.direction, info.index}] = id;
  const PeerExpander expander(bundle, ids);
  for (const auto* p : policies) {
    if (!subjectMatches(*p, subject, ids)) continue;
    out.selectingPolicies.push_back(p->name);
    const auto& rules = dir == Direction::Egress ? p->egress : p->ingress;
    for (uint32_t i = 0; i < rules.size(); i++) {
      const policy::Rule& r = rules[i];
      Explanation::RuleCheck c;
      c.rule = p->name + "/" + std::to_string(i);
      c.text = ruleText(r, dir);
      if (auto id = ruleIds.find({p->name, dir, i}); id != ruleIds.end()) c.ruleId = id->second;
      bool peerOk = !r.peers.has_value();
      if (!peerOk) {
        for (const auto& pe : *r.peers) peerOk |= expander.covers(pe, peer);
      }
      bool protoOk = r.ports.empty(), portOk = r.ports.empty();
      for (const auto& pr : r.ports) {
        const bool pMatch = pr.protocol == policy::Protocol::Any ||
                            static_cast<uint8_t>(pr.protocol) == protocol;
        protoOk |= pMatch;
        if (pMatch && (pr.anyPort() || (port >= pr.first && port <= pr.last))) portOk = true;
      }
      c.matches = peerOk && protoOk && portOk;
      if (!peerOk) {
        c.why = "wrong peer: " + ids.nameOf(peer) + " is not among the rule's peers";
      } else if (!protoOk) {
        c.why = std::string("wrong protocol: ") + protoName + " is not among the rule's ports";
      } else if (!portOk) {
        c.why = "wrong port: " + std::to_string(port) + "/" + protoName + " is not among the rule's ports";
      } else if (c.ruleId != out.decision.ruleId) {
        c.why = (r.action == Action::Allow && out.decision.verdict == MS_VERDICT_DENY)
                    ? "matches, but a deny rule wins"
                    : "matches, but an earlier rule names the verdict";
      }
      out.rules.push_back(std::move(c));
    }
  }
  return out;
}

}  // namespace microseg::compiler
