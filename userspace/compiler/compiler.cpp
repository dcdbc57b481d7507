#include "compiler/compiler.h"
#include "common/bytes.h"
#include "compiler/intervals.h"
#include "compiler/peers.h"
#include "compiler/tiers.h"

#include <arpa/inet.h>
#include <xxhash.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <optional>
#include <stdexcept>
#include <type_traits>
#include <string_view>
#include <unordered_map>

namespace microseg::compiler {
namespace {

using policy::Action;
using policy::Direction;

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

}  // namespace

// Every (subject, dir, proto, peer, interval) a rule contributes, as a Part
// keeps it: the interval's order is the rule's position in its policy.
// 24 bytes (an Interval inline made it 48: 100k rules contribute 100k+).
struct Contribution {
  uint32_t subject;
  uint32_t peer;
  uint32_t ruleId;
  uint32_t order;  // the rule's position in its policy
  uint16_t first, last;
  uint8_t dir, proto, verdict;  // verdict: MS_VERDICT_ALLOW | MS_VERDICT_DENY | kVerdictPass
  policy::Tier tier;            // its policy's
};
static_assert(sizeof(Contribution) == 24, "a contribution per rule, subject, peer and port range");

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
  num(ids.remoteOnly.size());
  for (uint32_t id : ids.remoteOnly) num(id);
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

// Phase 1: can the parts of the last compile be reused (the identities and
// Externals they expanded against are the same), and is this compile
// incremental (on top of this compiler's last result)?
void Compiler::prepare(const policy::Bundle& bundle, const identity::IdentityTable& ids, RuleRegistry& registry,
                       const CompiledPolicy* previous) {
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
    for (const auto& [id, labels] : ids.labels) {
      if (!ids.remoteOnly.count(id)) fresh->workloads.push_back(id);
    }
    state_ = std::move(fresh);
  }
  // Incremental only on top of this compiler's last result.
  stats_.full = !same || previous == nullptr || previous->stamp == 0 || previous->stamp != state_->stamp;
  stats_.policies = bundle.policies.size();
}

// One policy expanded against the identities: its subjects, what each of
// its rules contributes per subject, protocol and peer, and its rules.
std::shared_ptr<const Compiler::Part> Compiler::makePart(const std::shared_ptr<const policy::Policy>& pp,
                                                         const PeerExpander& expander,
                                                         const identity::IdentityTable& ids, RuleRegistry& registry) {
  std::vector<uint32_t> peers;                                 // of one rule
  std::vector<std::tuple<uint8_t, uint32_t, uint32_t>> ports;  // of one rule: proto, first, last
  const policy::Policy& p = *pp;
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
        for (const auto& peer : *r.peers) expander.expandInto(peer, peers);
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
      uint8_t verdict = r.action == Action::Deny ? uint8_t(MS_VERDICT_DENY) : uint8_t(MS_VERDICT_ALLOW);
      if (r.action == Action::Pass) verdict = kVerdictPass;
      for (uint32_t s : part->subjects) {
        for (const auto& [proto, first, last] : ports) {
          for (uint32_t peer : peers) {
            part->contributions.push_back({s, peer, info.id, ruleOrder, static_cast<uint16_t>(first),
                                           static_cast<uint16_t>(last), static_cast<uint8_t>(dir), proto, verdict, p.tier});
          }
        }
      }
      rules->push_back(std::move(info));
    }
  }
  registry.setTier(p.name, p.tier);
  std::stable_sort(part->contributions.begin(), part->contributions.end(),
                   [](const Contribution& a, const Contribution& b) { return a.subject < b.subject; });
  part->contributions.shrink_to_fit();  // kept for the policy's lifetime
  part->rules = std::shared_ptr<const std::vector<RuleInfo>>(owned, rules);
  return std::shared_ptr<const Part>(std::move(part));
}

// Phase 2: this bundle's parts (kept or made; the cache is updated in place,
// gone ones swept out), and the subjects whose entries must be recomputed:
// every subject of a part that is new or gone.
Compiler::PartSet Compiler::collectParts(const policy::Bundle& bundle, const identity::IdentityTable& ids,
                                         RuleRegistry& registry) {
  auto skipped = [&](const policy::Policy& p) { return p.staged && !includeStaged_; };
  size_t missing = 0;  // policies not compiled before
  for (const auto& p : bundle.policies) missing += !skipped(p) && !state_->parts.count(&p);
  std::optional<PeerExpander> expander;  // built when a policy needs compiling
  PartSet set;
  const uint64_t pass = ++state_->pass;
  set.all.reserve(bundle.policies.size());
  for (size_t idx = 0; idx < bundle.policies.size(); idx++) {
    const auto& pp = bundle.policies.shared(idx);
    if (skipped(*pp)) continue;
    auto [it, fresh] = state_->parts.try_emplace(pp.get());
    if (fresh) {
      if (!expander) expander.emplace(bundle, ids, stats_.full || missing > 16);
      it->second.part = makePart(pp, *expander, ids, registry);
      stats_.expanded++;
      set.added.push_back(it->second.part.get());
      set.changed.insert(set.changed.end(), it->second.part->subjects.begin(), it->second.part->subjects.end());
    }
    it->second.pass = pass;
    set.all.push_back(it->second.part.get());
  }
  for (auto it = state_->parts.begin(); it != state_->parts.end();) {
    if (it->second.pass == pass) {
      ++it;
      continue;
    }
    set.changed.insert(set.changed.end(), it->second.part->subjects.begin(), it->second.part->subjects.end());
    set.removed.push_back(std::move(it->second.part));
    it = state_->parts.erase(it);
  }
  std::sort(set.changed.begin(), set.changed.end());
  set.changed.erase(std::unique(set.changed.begin(), set.changed.end()), set.changed.end());
  // Most of many subjects to recompute (a new policy set over the same
  // identities): compiled whole, with its contributions reserved exactly
  // and the fresh entries moved in, where a patch copied every entry beside
  // them (+5 MB at the daemon's peak for 100k rules over 10k identities).
  // Below a thousand subjects either way costs little.
  constexpr size_t kWholeFrom = 1024;
  if (!stats_.full && set.changed.size() >= kWholeFrom && set.changed.size() * 2 > state_->workloads.size()) {
    stats_.full = true;
  }
  return set;
}

// Phase 3: the contributions of the subjects to recompute, in rule order,
// grouped by (subject, direction, protocol), peers ascending.
std::vector<Ranked> Compiler::gather(const PartSet& set) const {
  const bool full = stats_.full;
  const std::vector<uint32_t>& changed = set.changed;
  const std::vector<const Part*>& all = set.all;
  // Identities are small numbers: a bitmap answers "changed?" per entry.
  std::vector<bool> changedMap(changed.empty() ? 0 : size_t(changed.back()) + 1, false);
  for (uint32_t s : changed) changedMap[s] = true;
  auto isChanged = [&](uint32_t s) { return full || (s < changedMap.size() && changedMap[s]); };

  // The policies that have rules for those subjects, in name order, rules
  // in index order: that is rule precedence among equal verdicts, and it
  // makes the output independent of file order. (Only the relative order
  // of the policies of one subject matters: a small change sorts a few.)
  // Tiers come first: admin (by priority, then name), application,
  // baseline; a set of application policies only is in name order.
  std::vector<const Part*> ranked;
  for (const Part* part : all) {
    if (full || std::any_of(part->subjects.begin(), part->subjects.end(), isChanged)) ranked.push_back(part);
  }
  std::sort(ranked.begin(), ranked.end(), [](const Part* a, const Part* b) {
    const policy::Policy &pa = *a->policy, &pb = *b->policy;
    return std::make_tuple(pa.tier, pa.tier == policy::Tier::Admin ? pa.priority : 0, std::string_view(pa.name)) <
           std::make_tuple(pb.tier, pb.tier == policy::Tier::Admin ? pb.priority : 0, std::string_view(pb.name));
  });

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
  return contributions;
}

// Phase 4: precedence resolved into disjoint port intervals per peer, each
// the minimal set of port prefixes: the fresh entries, sorted.
std::vector<PolicyEntry> Compiler::resolveEntries(const std::vector<Ranked>& contributions,
                                                  const std::vector<Selection>& selection) {
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
  std::vector<TierItem> tiered;
  for (size_t g = 0; g < contributions.size();) {
    const Ranked& head = contributions[g];
    size_t end = g;
    while (end < contributions.size() && contributions[end].subject == head.subject &&
           contributions[end].dir == head.dir && contributions[end].proto == head.proto) {
      end++;
    }
    // Admin or baseline rules: the tier chain (tiers.h). Application rules
    // alone resolve as they did before tiers.
    if (std::any_of(contributions.begin() + g, contributions.begin() + end,
                    [](const Ranked& c) { return c.tier != policy::Tier::Application; })) {
      TierContext ctx;
      auto at = std::lower_bound(selection.begin(), selection.end(), head.subject,
                                 [](const Selection& e, uint32_t id) { return e.id < id; });
      if (at != selection.end() && at->id == head.subject) {
        const bool egress = head.dir == static_cast<uint8_t>(Direction::Egress);
        ctx.applicationSelects = egress ? at->applicationEgress : at->applicationIngress;
        ctx.defaultVerdict = (egress ? at->isolateEgress : at->isolateIngress) ? MS_VERDICT_DENY : MS_VERDICT_ALLOW;
      }
      tiered.clear();
      for (size_t i = g; i < end; i++) {
        const Ranked& c = contributions[i];
        tiered.push_back({c.peer, c.iv().order, c.first, c.last, c.ruleId, c.verdict, c.tier});
      }
      resolveTiers(tiered, ctx, [&](uint32_t peer, const Intervals& iv) { emit(head.subject, head.dir, head.proto, peer, iv); });
      g = end;
      continue;
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
  return fresh;
}

// Phase 5: every workload identity's settings (isolation, mode).
std::vector<std::pair<uint32_t, ms_identity_value>> Compiler::identitySettings(const PartSet& set, const Options& options,
                                                                               std::vector<Selection>& selection) const {
  std::vector<std::pair<uint32_t, ms_identity_value>> out;
  const std::vector<const Part*>& all = set.all;
  struct IdentState {
    bool egressSelected = false, ingressSelected = false, monitor = false, enforce = false, fqdn = false;
  };
  // Does an egress rule of `p` name an fqdn peer? (Only a policy with cidr
  // or fqdn peers can.)
  auto namesFqdn = [](const policy::Policy& p) {
    if (!p.hasCidrPeers) return false;
    for (const auto& r : p.egress) {
      if (!r.peers) continue;
      for (const auto& peer : *r.peers) {
        if (peer.kind == policy::Peer::Kind::Fqdn) return true;
      }
    }
    return false;
  };
  // Every workload identity (sorted), each found by bisection.
  std::vector<std::pair<uint32_t, IdentState>> state;
  state.reserve(state_->workloads.size());
  for (uint32_t id : state_->workloads) state.emplace_back(id, IdentState{});
  for (const Part* part : all) {
    const policy::Policy& p = *part->policy;
    const bool fqdn = namesFqdn(p);
    for (uint32_t s : part->subjects) {
      auto at = std::lower_bound(state.begin(), state.end(), s,
                                 [](const auto& e, uint32_t id) { return e.first < id; });
      if (at == state.end() || at->first != s) continue;  // subjects are identities of ids.labels
      auto& st = at->second;
      // Only the application tier isolates: admin and baseline rules
      // decide what they match, the default the rest (tiers.h).
      if (p.tier == policy::Tier::Application) {
        st.egressSelected |= p.hasEgress;
        st.ingressSelected |= p.hasIngress;
      }
      if (p.enforcement == policy::Enforcement::Monitor) st.monitor = true;
      if (p.enforcement == policy::Enforcement::Enforce) st.enforce = true;
      st.fqdn |= fqdn;
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
    if (st.fqdn) v.flags |= MS_IDENT_F_FQDN;  // its DNS answers bind names (abi.h: ms_fqdn_names)
    v.mode = st.monitor ? MS_MODE_MONITOR : st.enforce ? MS_MODE_ENFORCE : MS_MODE_INHERIT;
    out.emplace_back(id, v);
    selection.push_back({id, st.egressSelected, st.ingressSelected, (v.flags & MS_IDENT_F_ISOLATE_EGRESS) != 0,
                         (v.flags & MS_IDENT_F_ISOLATE_INGRESS) != 0});
  }

  return out;
}

// Phase 6: the entries, last: the fresh ones whole, or the recomputed
// subjects' groups replaced in the last result's entries (lent: in place;
// else in a copy). Once the previous result's entries are taken nothing may
// fail, or the caller would be left without.
void Compiler::assemble(CompiledPolicy& out, std::vector<PolicyEntry> fresh, const std::vector<uint32_t>& changed,
                        const CompiledPolicy* previous, CompiledPolicy* lender) const {
  const bool full = stats_.full;
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
}

CompiledPolicy Compiler::compile(const policy::Bundle& bundle, const identity::IdentityTable& ids,
                                 RuleRegistry& registry, const Options& options, const CompiledPolicy* previous,
                                 CompiledPolicy* lender) {
  CompiledPolicy out;
  stats_ = {};
  prepare(bundle, ids, registry, previous);
  // A flip of includeStaged adds or removes the staged policies' parts like
  // any other added or removed policy.
  includeStaged_ = options.includeStaged;
  PartSet set = collectParts(bundle, ids, registry);
  std::vector<Selection> selection;
  out.identities = identitySettings(set, options, selection);
  std::vector<PolicyEntry> fresh = resolveEntries(gather(set), selection);
  // The rule table: the last one with the removed policies' rules taken out
  // and the new ones' put in.
  if (stats_.full) {
    for (const Part* part : set.all) out.rules.add(part->rules);
  } else {
    out.rules = previous->rules;
    for (const auto& part : set.removed) out.rules.remove(part->rules);
    for (const Part* part : set.added) out.rules.add(part->rules);
  }
  static std::atomic<uint64_t> stamps{0};
  out.stamp = state_->stamp = ++stamps;
  set.removed.clear();  // after the rule table

  // Already sorted by (address, prefixlen) by the identity table.
  for (const auto& p : ids.ipcache) {
    IpcacheEntry e;
    e.addr = p.prefix.addr;
    e.prefixlen = p.prefix.prefixlen;
    e.identity = p.identity;
    out.ipcache.push_back(e);
  }
  assemble(out, std::move(fresh), set.changed, previous, lender);
  markRangeSubjects(out.entries, out.identities);  // allocates nothing: cannot fail
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

}  // namespace microseg::compiler

namespace microseg::compiler {

}  // namespace microseg::compiler
