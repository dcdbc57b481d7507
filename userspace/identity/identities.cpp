#include "identity/identities.h"

#include "fqdn/dns_names.h"

#include <algorithm>
#include <atomic>
#include <set>
#include <utility>

namespace microseg::identity {

const char* reservedName(uint32_t identity) {
  switch (identity) {
    case MS_IDENTITY_ANY: return "any";
    case MS_IDENTITY_HOST: return "host";
    case MS_IDENTITY_WORLD: return "world";
    case MS_IDENTITY_UNMANAGED: return "unmanaged";
    case MS_IDENTITY_PENDING: return "pending";
    case MS_IDENTITY_MULTICAST: return "multicast";
    case MS_IDENTITY_UNATTRIBUTED: return "unattributed";
    default: return "";
  }
}

std::string ExternalIdentity::name() const {
  std::string s;
  for (const auto& e : externals) s += (s.empty() ? "" : ",") + e;
  for (const auto& c : cidrPeers) s += (s.empty() ? "cidr:" : ",cidr:") + c;
  return s;
}

std::string IdentityTable::nameOf(uint32_t identity) const {
  if (identity < MS_IDENTITY_FIRST_WORKLOAD) {
    const char* r = reservedName(identity);
    return *r != '\0' ? r : "reserved-" + std::to_string(identity);
  }
  if (auto e = externals.find(identity); e != externals.end()) return e->second.name();
  if (auto f = fqdns.find(identity); f != fqdns.end()) return "fqdn:" + f->second.pattern;
  auto it = workloads.find(identity);
  if (it == workloads.end() || it->second.empty()) return "identity-" + std::to_string(identity);
  std::string s;
  for (const auto& w : it->second) s += (s.empty() ? "" : ",") + w;
  return s;
}

uint32_t lookupAddress(const IdentityTable& ids, const ms_addr& addr) {
  const IpcachePrefix* best = nullptr;
  for (const auto& p : ids.ipcache) {
    if (p.prefix.covers(addr) && (best == nullptr || p.prefix.prefixlen > best->prefix.prefixlen)) best = &p;
  }
  return best == nullptr ? MS_IDENTITY_WORLD : best->identity;
}

namespace {

// A member of an address range identity: an External (by name) or an inline
// cidr peer (by its text). Externals sort first.
enum class MemberKind : uint8_t { External = 0, CidrPeer = 1 };
using Member = std::pair<MemberKind, std::string>;
using Members = std::set<Member>;

// One prefix as a member wrote it: part of its range, or a hole in it.
struct Tag {
  Member member;
  bool hole = false;
};

Members membersOf(const ExternalIdentity& e) {
  Members m;
  for (const auto& n : e.externals) m.insert({MemberKind::External, n});
  for (const auto& c : e.cidrPeers) m.insert({MemberKind::CidrPeer, c});
  return m;
}

// Each label set is built once (effectiveLabels) and moved into the
// result: with 10k workloads, copies of every set for the lookups were
// several MiB while the generation in force is still whole.
void assignWorkloads(const policy::Bundle& bundle, const IdentityTable& previous, IdentityTable& out) {
  struct ByValue {
    bool operator()(const policy::Labels* a, const policy::Labels* b) const { return *a < *b; }
  };
  std::map<const policy::Labels*, uint32_t, ByValue> prevByLabels;
  for (const auto& [id, labels] : previous.labels) prevByLabels.emplace(&labels, id);

  // Every label set once, with its id (kUnassigned until it has one), and
  // each workload's set. Sorted: new sets are numbered in that order.
  constexpr uint32_t kUnassigned = 0;
  static_assert(MS_IDENTITY_FIRST_WORKLOAD > kUnassigned);
  std::map<policy::Labels, uint32_t> byLabels;
  std::vector<std::map<policy::Labels, uint32_t>::iterator> setOf;
  setOf.reserve(bundle.workloads.size());
  std::set<uint32_t> used;
  for (const auto& w : bundle.workloads) {
    auto [it, fresh] = byLabels.try_emplace(w.effectiveLabels(), kUnassigned);
    if (fresh) {
      if (auto prev = prevByLabels.find(&it->first); prev != prevByLabels.end()) {
        it->second = prev->second;
        used.insert(prev->second);
      }
    }
    setOf.push_back(it);
  }
  uint32_t next = MS_IDENTITY_FIRST_WORKLOAD;
  for (auto& [labels, id] : byLabels) {
    if (id != kUnassigned) continue;
    while (used.count(next)) next++;
    id = next;
    used.insert(next);
  }
  for (size_t i = 0; i < bundle.workloads.size(); i++) {
    const auto& w = bundle.workloads[i];
    const uint32_t id = setOf[i]->second;
    out.byWorkload[w.name] = id;
    out.workloads[id].push_back(w.name);
  }
  setOf.clear();
  while (!byLabels.empty()) {
    auto node = byLabels.extract(byLabels.begin());
    out.labels.emplace(node.mapped(), std::move(node.key()));
  }
  for (auto& [id, names] : out.workloads) std::sort(names.begin(), names.end());
}

// Every prefix any member wrote, with who wrote it and how.
std::map<policy::Cidr, std::vector<Tag>> collectPrefixes(const policy::Bundle& bundle) {
  std::map<policy::Cidr, std::vector<Tag>> out;
  for (const auto& e : bundle.externals) {
    const Member m{MemberKind::External, e.name};
    for (const auto& c : e.cidrs) out[c].push_back({m, false});
    for (const auto& c : e.except) out[c].push_back({m, true});
  }
  std::set<std::string> seen;
  for (const auto& p : bundle.policies) {
    if (!p.hasCidrPeers) continue;  // most have none: skip their 100k rules
    policy::forEachRulePeer(p, [&](const policy::Peer& peer) {
      if (peer.kind != policy::Peer::Kind::Cidr) return;
      const std::string text = peer.cidrText();
      if (!seen.insert(text).second) return;
      const Member m{MemberKind::CidrPeer, text};
      out[peer.cidr()].push_back({m, false});
      for (const auto& c : peer.except()) out[c].push_back({m, true});
    });
  }
  // IPv4 lives under ::ffff:0:0/96. An IPv6 prefix that covers that bit-wise
  // must not catch IPv4 addresses: this boundary is more specific than any
  // such IPv6 prefix and carries only what IPv4 prefixes say.
  ms_addr mapped{};
  mapped.a[10] = mapped.a[11] = 0xff;
  const policy::Cidr boundary = policy::networkOf(mapped, policy::kIpv4PrefixOffset);
  for (const auto& [c, tags] : out) {
    if (!c.isV4() && c.prefixlen <= policy::kIpv4PrefixOffset && c.covers(boundary.addr)) {
      out[boundary];
      break;
    }
  }
  return out;
}

// The members of every address whose most specific prefix is `p`. Prefixes
// nest or are disjoint, so an address in `p` (and in no more specific
// prefix) is inside exactly the prefixes that contain `p`: membership depends
// on `p` alone. Family-aware: only IPv4 prefixes contain an IPv4 one.
Members membershipOf(const policy::Cidr& p, const std::map<policy::Cidr, std::vector<Tag>>& prefixes,
                     const std::set<uint32_t>& lengths) {
  Members in, holes;
  const uint32_t from = p.isV4() ? policy::kIpv4PrefixOffset : 0;
  for (auto it = lengths.lower_bound(from); it != lengths.end() && *it <= p.prefixlen; ++it) {
    auto found = prefixes.find(policy::networkOf(p.addr, *it));
    if (found == prefixes.end()) continue;
    for (const auto& t : found->second) (t.hole ? holes : in).insert(t.member);
  }
  Members out;
  std::set_difference(in.begin(), in.end(), holes.begin(), holes.end(), std::inserter(out, out.end()));
  return out;
}

void assignRanges(const policy::Bundle& bundle, const IdentityTable& previous, IdentityTable& out) {
  const auto prefixes = collectPrefixes(bundle);
  std::set<uint32_t> lengths;
  for (const auto& [c, tags] : prefixes) lengths.insert(c.prefixlen);

  std::map<policy::Cidr, Members> membership;
  std::set<Members> sets;
  for (const auto& [c, tags] : prefixes) {
    Members m = membershipOf(c, prefixes, lengths);
    if (!m.empty()) sets.insert(m);
    membership.emplace(c, std::move(m));
  }

  std::map<Members, uint32_t> prevBySet;
  for (const auto& [id, e] : previous.externals) prevBySet[membersOf(e)] = id;
  std::map<Members, uint32_t> bySet;
  std::set<uint32_t> used;
  for (const auto& m : sets) {
    if (auto it = prevBySet.find(m); it != prevBySet.end()) {
      bySet[m] = it->second;
      used.insert(it->second);
    }
  }
  uint32_t next = MS_IDENTITY_FIRST_EXTERNAL;
  for (const auto& m : sets) {  // sorted: deterministic assignment order
    if (bySet.count(m)) continue;
    while (used.count(next)) next++;
    bySet[m] = next;
    used.insert(next);
  }
  for (const auto& [m, id] : bySet) {
    ExternalIdentity& e = out.externals[id];
    for (const auto& [kind, name] : m) {
      (kind == MemberKind::External ? e.externals : e.cidrPeers).push_back(name);
      (kind == MemberKind::External ? out.byExternal : out.byCidrPeer)[name].push_back(id);
    }
  }

  // Shorter prefixes first, so each prefix's nearest kept ancestor (what the
  // kernel falls back to without it) is settled when it is looked at. A
  // prefix that would map to WORLD under an ancestor that does too changes no
  // lookup and is left out; a hole under a range is kept.
  std::vector<policy::Cidr> byLength;
  for (const auto& [c, m] : membership) byLength.push_back(c);
  std::stable_sort(byLength.begin(), byLength.end(),
                   [](const policy::Cidr& a, const policy::Cidr& b) { return a.prefixlen < b.prefixlen; });
  std::map<policy::Cidr, uint32_t> kept;
  std::set<uint32_t> keptLengths;
  for (const auto& c : byLength) {
    const Members& m = membership.at(c);
    const uint32_t id = m.empty() ? MS_IDENTITY_WORLD : bySet.at(m);
    uint32_t fallback = MS_IDENTITY_WORLD;
    for (auto it = keptLengths.rbegin(); it != keptLengths.rend(); ++it) {
      if (*it >= c.prefixlen) continue;
      if (auto k = kept.find(policy::networkOf(c.addr, *it)); k != kept.end()) {
        fallback = k->second;
        break;
      }
    }
    if (id == MS_IDENTITY_WORLD && fallback == MS_IDENTITY_WORLD) continue;
    kept[c] = id;
    keptLengths.insert(c.prefixlen);
  }
  for (const auto& [c, id] : kept) {
    out.ipcache.push_back({c, id});
    if (id != MS_IDENTITY_WORLD) out.externals.at(id).prefixes.push_back(c);
  }
}

// Cluster mode: the fleet's number for each label set, none if it has not
// given one yet; the fleet's other label sets as peers only.
void assignFleetWorkloads(const policy::Bundle& bundle, const FleetIdentities& fleet, IdentityTable& out) {
  for (const auto& w : bundle.workloads) {
    policy::Labels labels = w.effectiveLabels();
    auto it = fleet.byLabels.find(labels);
    if (it == fleet.byLabels.end()) {
      out.pending.insert(w.name);
      continue;
    }
    out.byWorkload[w.name] = it->second;
    out.workloads[it->second].push_back(w.name);
    out.labels.emplace(it->second, std::move(labels));
  }
  for (auto& [id, names] : out.workloads) std::sort(names.begin(), names.end());
  for (const auto& [labels, id] : fleet.byLabels) {
    if (out.labels.count(id)) continue;
    out.labels.emplace(id, labels);
    out.remoteOnly.insert(id);
    if (auto n = fleet.names.find(id); n != fleet.names.end()) out.workloads[id] = n->second;
  }
}

// Does the pattern text `outer` match every name `inner` matches?
bool patternCovers(const fqdn::NamePattern& outer, const fqdn::NamePattern& inner) {
  if (!inner.wildcard) return fqdn::matches(outer, inner.name);
  if (!outer.wildcard) return false;
  return inner.name == outer.name ||
         (inner.name.size() > outer.name.size() && inner.name.ends_with(outer.name) &&
          inner.name[inner.name.size() - outer.name.size() - 1] == '.');
}

// One identity per pattern the policies name: kept from `previous`, else
// the smallest free id from MS_IDENTITY_FIRST_FQDN, in sorted order.
void assignFqdns(const policy::Bundle& bundle, const IdentityTable& previous, IdentityTable& out) {
  std::set<std::string> texts;
  for (const auto& p : bundle.policies) {
    if (!p.hasCidrPeers) continue;
    policy::forEachRulePeer(p, [&](const policy::Peer& peer) {
      if (peer.kind == policy::Peer::Kind::Fqdn) texts.insert(peer.identity);
    });
  }
  if (texts.empty()) return;
  std::map<std::string, uint32_t> prevByText;
  for (const auto& [id, f] : previous.fqdns) prevByText[f.pattern] = id;
  std::map<std::string, uint32_t> byText;
  std::set<uint32_t> used;
  for (const auto& t : texts) {
    if (auto it = prevByText.find(t); it != prevByText.end()) {
      byText[t] = it->second;
      used.insert(it->second);
    }
  }
  uint32_t next = MS_IDENTITY_FIRST_FQDN;
  for (const auto& t : texts) {
    if (byText.count(t)) continue;
    while (used.count(next)) next++;
    byText[t] = next;
    used.insert(next);
  }
  std::map<std::string, fqdn::NamePattern> parsed;
  for (const auto& t : texts) {
    std::string err;
    auto p = fqdn::parsePattern(t, err);
    if (p) parsed.emplace(t, *p);  // the parser stored only patterns it parsed
  }
  for (const auto& [t, id] : byText) {
    FqdnIdentity& f = out.fqdns[id];
    f.pattern = t;
    auto inner = parsed.find(t);
    if (inner == parsed.end()) continue;
    for (const auto& [o, outer] : parsed) {
      if (!patternCovers(outer, inner->second)) continue;
      f.coveredBy.push_back(o);
      out.byFqdnPeer[o].push_back(id);
    }
  }
  for (auto& [t, ids] : out.byFqdnPeer) std::sort(ids.begin(), ids.end());
}

}  // namespace

IdentityTable assignIdentities(const policy::Bundle& bundle, const IdentityTable& previous,
                               const FleetIdentities* fleet) {
  static std::atomic<uint64_t> versions{0};
  IdentityTable out;
  out.version = ++versions;
  if (fleet != nullptr) {
    assignFleetWorkloads(bundle, *fleet, out);
  } else {
    assignWorkloads(bundle, previous, out);
  }
  assignRanges(bundle, previous, out);
  assignFqdns(bundle, previous, out);
  return out;
}

bool sameIdentityInputs(const policy::Bundle& a, const policy::Bundle& b) {
  if (!a.workloads.sameObjects(b.workloads) || !a.externals.sameObjects(b.externals)) return false;
  size_t j = 0;
  for (size_t i = 0; i < a.policies.size(); i++) {
    if (!a.policies[i].hasCidrPeers) continue;
    while (j < b.policies.size() && !b.policies[j].hasCidrPeers) j++;
    if (j == b.policies.size() || a.policies.shared(i) != b.policies.shared(j)) return false;
    j++;
  }
  while (j < b.policies.size() && !b.policies[j].hasCidrPeers) j++;
  return j == b.policies.size();
}

}  // namespace microseg::identity
