#include "diff/diff.h"

#include <algorithm>
#include <map>
#include <set>
#include <tuple>

#include "common/names.h"
#include "compiler/explain.h"
#include "flows/flow_record.h"

namespace microseg::diff {
namespace {

bool isAddressIdentity(uint32_t id) { return id == MS_IDENTITY_WORLD || id >= MS_IDENTITY_FIRST_EXTERNAL; }

bool isWorkloadIdentity(uint32_t id) { return id >= MS_IDENTITY_FIRST_WORKLOAD && id < MS_IDENTITY_FIRST_EXTERNAL; }

std::string endName(uint32_t id, const ms_addr& addr, const identity::IdentityTable& ids) {
  std::string n = ids.nameOf(id);
  if (isAddressIdentity(id)) n += " (" + flows::formatAddr(addr) + ")";
  return n;
}

std::string decidedBy(const compiler::Decision& d, const compiler::RuleRegistry* rules) {
  if (d.reason == MS_REASON_RULE && d.ruleId != MS_RULE_NONE) {
    return rules != nullptr ? rules->nameOf(d.ruleId) : "rule-" + std::to_string(d.ruleId);
  }
  return reasonName(d.reason);
}

// Local workload name pairs with a direct path, and its ports.
using Pairs = std::map<std::pair<std::string, std::string>, std::vector<reach::PortRange>>;

Pairs directPairs(const Side& s) {
  std::set<uint32_t> local;
  for (const auto& [name, id] : s.ids->byWorkload) local.insert(id);
  const reach::Graph g(*s.compiled, std::vector<uint32_t>(local.begin(), local.end()));
  static const std::vector<std::string> kNone;
  auto names = [&](uint32_t id) -> const std::vector<std::string>& {
    auto it = s.ids->workloads.find(id);
    return it == s.ids->workloads.end() ? kNone : it->second;
  };
  Pairs out;
  for (uint32_t w : g.workloads()) {
    for (const auto& e : g.from(w)) {
      for (const auto& a : names(e.from)) {
        for (const auto& b : names(e.to)) out[{a, b}] = e.ports;
      }
    }
  }
  return out;
}

}  // namespace

const char* changeName(Change c) {
  switch (c) {
    case Change::WouldBreak:
      return "would_break";
    case Change::Widening:
      return "widening";
    case Change::Unchanged:
      break;
  }
  return "unchanged";
}

uint32_t mapIdentity(uint32_t id, const ms_addr& addr, const identity::IdentityTable& inForce,
                     const identity::IdentityTable& candidate) {
  if (isAddressIdentity(id)) return identity::lookupAddress(candidate, addr);
  if (!isWorkloadIdentity(id)) return id;  // host, unmanaged, pending, ...: the same in every generation
  if (!inForce.remoteOnly.count(id)) {
    if (auto it = inForce.workloads.find(id); it != inForce.workloads.end() && !it->second.empty()) {
      const std::string& name = it->second.front();
      if (auto c = candidate.byWorkload.find(name); c != candidate.byWorkload.end()) return c->second;
      // Defined, but without a fleet identity yet: its cgroups are pending.
      if (candidate.pending.count(name)) return MS_IDENTITY_PENDING;
      return MS_IDENTITY_UNMANAGED;
    }
  }
  // Another node's workload (or a record of an identity no longer in force):
  // the candidate's identity of the same label set.
  if (auto l = inForce.labels.find(id); l != inForce.labels.end()) {
    for (const auto& [cid, labels] : candidate.labels) {
      if (labels == l->second) return cid;
    }
    return MS_IDENTITY_UNMANAGED;
  }
  return candidate.labels.count(id) ? id : MS_IDENTITY_UNMANAGED;
}

Result diff(const std::vector<Record>& records, const Side& inForce, const Side& candidate, const Options& options) {
  Result out;
  // Records of one edge differ by verdict, rule, reason and how the peer was
  // identified: folded into one edge, its passed and refused events apart.
  using Key = std::tuple<uint8_t, uint32_t, uint32_t, uint8_t, uint16_t>;
  struct Folded {
    EdgeDiff e;
    ms_addr srcAddr{}, dstAddr{};  // of the edge's latest event: they name its address ends
  };
  std::map<Key, Folded> edges;
  for (const auto& r : records) {
    if (r.lastSeenNs < options.sinceNs) continue;
    out.records++;
    if (r.reason == MS_REASON_UDP_ANSWER) {
      out.answers += r.count;
      continue;
    }
    const Key k{r.direction, r.src, r.dst, r.protocol, r.port};
    Folded& f = edges[k];
    EdgeDiff& e = f.e;
    e.direction = r.direction;
    e.src = r.src;
    e.dst = r.dst;
    e.protocol = r.protocol;
    e.port = r.port;
    (r.verdict == MS_VERDICT_DENY ? e.denied : e.passed) += r.count;
    e.firstSeenNs = e.firstSeenNs == 0 ? r.firstSeenNs : std::min(e.firstSeenNs, r.firstSeenNs);
    if (r.lastSeenNs >= e.lastSeenNs) {
      f.srcAddr = r.srcAddr;
      f.dstAddr = r.dstAddr;
    }
    e.lastSeenNs = std::max(e.lastSeenNs, r.lastSeenNs);
  }
  for (auto& [k, f] : edges) {
    EdgeDiff& e = f.e;
    const ms_addr& srcAddr = f.srcAddr;
    const ms_addr& dstAddr = f.dstAddr;
    e.srcName = endName(e.src, srcAddr, *inForce.ids);
    e.dstName = endName(e.dst, dstAddr, *inForce.ids);
    e.candSrc = mapIdentity(e.src, srcAddr, *inForce.ids, *candidate.ids);
    e.candDst = mapIdentity(e.dst, dstAddr, *inForce.ids, *candidate.ids);
    const bool egress = e.direction != MS_DIR_INGRESS;
    const auto dir = egress ? policy::Direction::Egress : policy::Direction::Ingress;
    e.now = compiler::evaluate(*inForce.compiled, egress ? e.src : e.dst, egress ? e.dst : e.src, dir, e.protocol,
                               e.port)
                .verdict;
    const compiler::Decision c = compiler::evaluate(*candidate.compiled, egress ? e.candSrc : e.candDst,
                                                    egress ? e.candDst : e.candSrc, dir, e.protocol, e.port);
    e.candidate = c.verdict;
    e.candidateRule = decidedBy(c, candidate.rules);
    if (e.passed > 0 && e.candidate != MS_VERDICT_ALLOW) {
      e.change = Change::WouldBreak;
      out.wouldBreak.push_back(e);
    } else if (e.now != MS_VERDICT_ALLOW && e.candidate == MS_VERDICT_ALLOW) {
      e.change = Change::Widening;
      out.widening.push_back(e);
    } else {
      e.change = Change::Unchanged;
      out.unchanged.push_back(e);
    }
  }
  for (auto* list : {&out.wouldBreak, &out.widening, &out.unchanged}) {
    std::stable_sort(list->begin(), list->end(),
                     [](const EdgeDiff& a, const EdgeDiff& b) { return a.lastSeenNs > b.lastSeenNs; });
  }

  const Pairs before = directPairs(inForce), after = directPairs(candidate);
  for (const auto& [pair, ports] : after) {
    if (!before.count(pair)) out.gained.push_back({pair.first, pair.second, ports});
  }
  for (const auto& [pair, ports] : before) {
    if (!after.count(pair)) out.lost.push_back({pair.first, pair.second, ports});
  }
  return out;
}

}  // namespace microseg::diff
