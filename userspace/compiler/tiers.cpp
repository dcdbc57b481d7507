#include "compiler/tiers.h"

#include <algorithm>
#include <set>
#include <utility>

namespace microseg::compiler {
namespace {

// What a peer class gets on a port piece. A default outcome carries the
// pass rule that led to it, if one did (written as that rule's entry where
// an entry is needed: the kernel has no "default" entry).
struct Outcome {
  bool isDefault = true;
  uint8_t verdict = MS_VERDICT_DENY;
  uint32_t ruleId = MS_RULE_NONE;
};

bool sameForKernel(const Outcome& a, const Outcome& b) {
  if (a.isDefault && b.isDefault) return a.verdict == b.verdict;
  return a.isDefault == b.isDefault && a.verdict == b.verdict && a.ruleId == b.ruleId;
}

struct Piece {
  uint32_t first, last;
  Outcome o;
};
using Pieces = std::vector<Piece>;  // covering 0..65535, in port order

void append(Pieces& out, uint32_t first, uint32_t last, const Outcome& o) {
  if (!out.empty() && out.back().last + 1 == first && out.back().o.isDefault == o.isDefault &&
      out.back().o.verdict == o.verdict && out.back().o.ruleId == o.ruleId) {
    out.back().last = last;
  } else {
    out.push_back({first, last, o});
  }
}

// The tier chain of one peer class on every port piece.
Pieces evaluateClass(const std::vector<const TierItem*>& rules, const TierContext& ctx) {
  struct Ev {
    uint32_t at;
    bool start;
    const TierItem* item;
  };
  std::vector<Ev> evs;
  evs.reserve(rules.size() * 2);
  for (const TierItem* r : rules) {
    evs.push_back({r->first, true, r});
    evs.push_back({r->last + 1, false, r});
  }
  std::sort(evs.begin(), evs.end(), [](const Ev& a, const Ev& b) { return a.at < b.at; });
  using Key = std::pair<uint64_t, const TierItem*>;  // chain order first
  std::set<Key> admin, appDeny, appAllow, baseline;
  auto setOf = [&](const TierItem* r) -> std::set<Key>& {
    switch (r->tier) {
      case policy::Tier::Admin: return admin;
      case policy::Tier::Baseline: return baseline;
      case policy::Tier::Application: break;
    }
    return r->verdict == MS_VERDICT_DENY ? appDeny : appAllow;
  };
  auto decide = [&]() -> Outcome {
    uint32_t passId = MS_RULE_NONE;
    if (!admin.empty()) {
      const TierItem* r = admin.begin()->second;
      if (r->verdict != kVerdictPass) return {false, r->verdict, r->ruleId};
      passId = r->ruleId;  // the rest of the admin tier is skipped
    }
    if (ctx.applicationSelects) {
      if (!appDeny.empty()) return {false, MS_VERDICT_DENY, appDeny.begin()->second->ruleId};
      if (!appAllow.empty()) return {false, MS_VERDICT_ALLOW, appAllow.begin()->second->ruleId};
      return {true, MS_VERDICT_DENY, passId};  // selected, nothing allows it
    }
    if (!baseline.empty()) {
      const TierItem* r = baseline.begin()->second;
      return {false, r->verdict, r->ruleId};
    }
    return {true, ctx.defaultVerdict, passId};
  };
  Pieces out;
  size_t e = 0;
  for (uint32_t pos = 0; pos <= 65535;) {
    for (; e < evs.size() && evs[e].at == pos; e++) {
      const Key k{evs[e].item->order, evs[e].item};
      if (evs[e].start) {
        setOf(evs[e].item).insert(k);
      } else {
        setOf(evs[e].item).erase(k);
      }
    }
    const uint32_t next = e < evs.size() ? std::min<uint32_t>(evs[e].at, 65536) : 65536;
    append(out, pos, next - 1, decide());
    pos = next;
  }
  return out;
}

// The entries class `want` needs over what the kernel falls back to
// (`fallback`), and what the kernel then finds for it.
Pieces entriesOver(const Pieces& want, const Pieces& fallback, Intervals& entries) {
  Pieces kernel;
  entries.clear();
  size_t i = 0, j = 0;
  for (uint32_t pos = 0; pos <= 65535;) {
    while (want[i].last < pos) i++;
    while (fallback[j].last < pos) j++;
    const uint32_t end = std::min(want[i].last, fallback[j].last);
    const Outcome& w = want[i].o;
    if (sameForKernel(w, fallback[j].o)) {
      append(kernel, pos, end, fallback[j].o);
    } else {
      const Outcome entry{false, w.verdict, w.ruleId};
      append(kernel, pos, end, entry);
      if (!entries.empty() && entries.back().last + 1 == pos && entries.back().verdict == entry.verdict &&
          entries.back().ruleId == entry.ruleId) {
        entries.back().last = end;
      } else {
        entries.push_back({pos, end, entry.verdict, 0, entry.ruleId});
      }
    }
    pos = end + 1;
  }
  return kernel;
}

}  // namespace

void resolveTiers(const std::vector<TierItem>& items, const TierContext& ctx,
                  const std::function<void(uint32_t peer, const Intervals&)>& emit) {
  std::vector<const TierItem*> any, world;
  std::set<uint32_t> peers;
  for (const TierItem& it : items) {
    if (it.peer == MS_IDENTITY_ANY) {
      any.push_back(&it);
    } else if (it.peer == MS_IDENTITY_WORLD) {
      world.push_back(&it);
    } else {
      peers.insert(it.peer);
    }
  }
  Intervals entries;
  const Pieces none{{0, 65535, Outcome{true, ctx.defaultVerdict, MS_RULE_NONE}}};
  const Pieces kernelAny = entriesOver(evaluateClass(any, ctx), none, entries);
  if (!entries.empty()) emit(MS_IDENTITY_ANY, entries);
  std::vector<const TierItem*> rules = world;
  rules.insert(rules.end(), any.begin(), any.end());
  const Pieces kernelWorld = entriesOver(evaluateClass(rules, ctx), kernelAny, entries);
  if (!entries.empty()) emit(MS_IDENTITY_WORLD, entries);
  for (uint32_t peer : peers) {
    const bool range = peer >= MS_IDENTITY_FIRST_EXTERNAL;
    rules.clear();
    for (const TierItem& it : items) {
      if (it.peer == peer || it.peer == MS_IDENTITY_ANY || (range && it.peer == MS_IDENTITY_WORLD)) {
        rules.push_back(&it);
      }
    }
    entriesOver(evaluateClass(rules, ctx), range ? kernelWorld : kernelAny, entries);
    if (!entries.empty()) emit(peer, entries);
  }
}

}  // namespace microseg::compiler
