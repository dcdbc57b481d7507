// Address-range identities (the ipcache): every address's most specific
// prefix must stand for exactly the Externals and inline cidr peers that
// contain it; ids are stable across reloads and deterministic.
#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <set>

#include "identity/identities.h"
#include "policy/parser.h"

namespace microseg::identity {
namespace {

using policy::Cidr;

Cidr cidr(const char* text) {
  policy::CidrError err;
  auto c = policy::parseCidr(text, &err);
  EXPECT_TRUE(c.has_value()) << text << ": " << err.message;
  return c.value_or(Cidr{});
}

ms_addr addr(const char* text) {
  auto a = policy::parseAddress(text);
  EXPECT_TRUE(a.has_value()) << text;
  return a.value_or(ms_addr{});
}

std::string external(const std::string& name, const std::string& cidrs, const std::string& except = "") {
  return "apiVersion: microseg.dev/v1\nkind: External\nmetadata: {name: " + name + "}\nspec:\n  cidrs: " + cidrs +
         "\n" + (except.empty() ? "" : "  except: " + except + "\n") + "---\n";
}

std::string cidrPolicy(const std::string& name, const std::string& peers) {
  return "apiVersion: microseg.dev/v1\nkind: Policy\nmetadata: {name: " + name +
         "}\nspec:\n  selector: {matchLabels: {app: x}}\n  egress: [{to: " + peers + "}]\n---\n";
}

policy::Bundle bundleOf(const std::string& yaml) {
  auto r = policy::parseText(yaml, "t.yaml");
  policy::validateBundle(r.bundle, r.errors);
  for (const auto& e : r.errors) ADD_FAILURE() << e.str();
  return r.bundle;
}

// "10.0.0.0/8=corp-net 10.66.0.0/16=world": the ipcache by name.
std::string ipcacheText(const IdentityTable& ids) {
  std::string s;
  for (const auto& p : ids.ipcache) s += (s.empty() ? "" : " ") + p.prefix.str() + "=" + ids.nameOf(p.identity);
  return s;
}

std::string nameAt(const IdentityTable& ids, const char* a) { return ids.nameOf(lookupAddress(ids, addr(a))); }

TEST(ExternalIdentities, OneRangeWithAHole) {
  auto ids = assignIdentities(bundleOf(external("corp-net", "[10.0.0.0/8, \"fd00::/8\"]", "[10.66.0.0/16]")));
  EXPECT_EQ(ipcacheText(ids), "10.0.0.0/8=corp-net 10.66.0.0/16=world fd00::/8=corp-net");
  ASSERT_EQ(ids.externals.size(), 1u);
  const uint32_t id = ids.externals.begin()->first;
  EXPECT_EQ(id, MS_IDENTITY_FIRST_EXTERNAL);
  EXPECT_EQ(ids.nameOf(id), "corp-net");
  EXPECT_EQ(ids.externals.at(id).externals, (std::vector<std::string>{"corp-net"}));
  EXPECT_TRUE(ids.externals.at(id).cidrPeers.empty());
  EXPECT_EQ(ids.externals.at(id).prefixes, (std::vector<Cidr>{cidr("10.0.0.0/8"), cidr("fd00::/8")}));
  EXPECT_EQ(ids.byExternal.at("corp-net"), (std::vector<uint32_t>{id}));
  EXPECT_EQ(lookupAddress(ids, addr("10.1.2.3")), id);
  EXPECT_EQ(lookupAddress(ids, addr("10.66.1.1")), MS_IDENTITY_WORLD);
  EXPECT_EQ(lookupAddress(ids, addr("11.0.0.1")), MS_IDENTITY_WORLD);
  EXPECT_EQ(lookupAddress(ids, addr("fd12::1")), id);
  EXPECT_EQ(lookupAddress(ids, addr("fe80::1")), MS_IDENTITY_WORLD);
  EXPECT_TRUE(ids.labels.empty()) << "ranges are not workload identities";
}

TEST(ExternalIdentities, OverlapsGetTheirOwnIdentity) {
  auto ids = assignIdentities(bundleOf(external("corp-net", "[10.0.0.0/8]") + external("partner", "[10.1.0.0/16]")));
  EXPECT_EQ(ipcacheText(ids), "10.0.0.0/8=corp-net 10.1.0.0/16=corp-net,partner");
  EXPECT_EQ(nameAt(ids, "10.1.0.1"), "corp-net,partner");
  EXPECT_EQ(nameAt(ids, "10.2.0.1"), "corp-net");
  EXPECT_EQ(ids.byExternal.at("corp-net").size(), 2u);
  EXPECT_EQ(ids.byExternal.at("partner"), (std::vector<uint32_t>{lookupAddress(ids, addr("10.1.0.1"))}));
}

TEST(ExternalIdentities, AHoleCoveredBySomethingElseIsThatThing) {
  auto ids = assignIdentities(bundleOf(external("corp-net", "[10.0.0.0/8]", "[10.66.0.0/16]") +
                                       external("lab", "[10.66.0.0/16]")));
  EXPECT_EQ(ipcacheText(ids), "10.0.0.0/8=corp-net 10.66.0.0/16=lab");
}

TEST(ExternalIdentities, InlineCidrPeers) {
  auto ids = assignIdentities(bundleOf(cidrPolicy("p", "[{cidr: 10.0.0.0/8, except: [10.2.0.0/16, 10.1.0.0/16]}]") +
                                       cidrPolicy("q", "[{cidr: 10.0.0.0/8, except: [10.1.0.0/16, 10.2.0.0/16]}, "
                                                       "{cidr: 192.0.2.0/24}]")));
  // The same range written twice (holes in another order) is one peer.
  const std::string text = "10.0.0.0/8 except 10.1.0.0/16,10.2.0.0/16";
  EXPECT_EQ(ipcacheText(ids), "10.0.0.0/8=cidr:" + text + " 10.1.0.0/16=world 10.2.0.0/16=world "
                              "192.0.2.0/24=cidr:192.0.2.0/24");
  ASSERT_EQ(ids.byCidrPeer.count(text), 1u);
  const uint32_t id = ids.byCidrPeer.at(text).at(0);
  EXPECT_EQ(ids.externals.at(id).cidrPeers, (std::vector<std::string>{text}));
  EXPECT_TRUE(ids.externals.at(id).externals.empty());
  EXPECT_EQ(ids.nameOf(id), "cidr:" + text);
}

TEST(ExternalIdentities, ExternalAndInlinePeerOnTheSameRangeShareIt) {
  auto ids = assignIdentities(bundleOf(external("corp-net", "[10.0.0.0/8]") + cidrPolicy("p", "[{cidr: 10.0.0.0/8}]")));
  EXPECT_EQ(ipcacheText(ids), "10.0.0.0/8=corp-net,cidr:10.0.0.0/8");
  EXPECT_EQ(ids.byExternal.at("corp-net"), ids.byCidrPeer.at("10.0.0.0/8"));
}

TEST(ExternalIdentities, Ipv6RangesNeverCoverIpv4) {
  auto ids = assignIdentities(bundleOf(external("any6", "[\"::/0\"]")));
  EXPECT_EQ(ipcacheText(ids), "::/0=any6 0.0.0.0/0=world");  // ::ffff:0:0/96 is IPv4's 0.0.0.0/0
  EXPECT_EQ(nameAt(ids, "10.1.2.3"), "world");
  EXPECT_EQ(nameAt(ids, "::ffff:10.1.2.3"), "world");
  EXPECT_EQ(nameAt(ids, "fd00::1"), "any6");
  EXPECT_EQ(nameAt(ids, "::1"), "any6");
  EXPECT_EQ(nameAt(ids, "::fffe:1.2.3.4"), "any6");

  // With an IPv4 everything too, the boundary is that prefix.
  auto both = assignIdentities(bundleOf(external("any6", "[\"::/0\"]") + external("any4", "[0.0.0.0/0]") +
                                        external("corp", "[10.0.0.0/8]")));
  EXPECT_EQ(ipcacheText(both), "::/0=any6 0.0.0.0/0=any4 10.0.0.0/8=any4,corp");
  EXPECT_EQ(nameAt(both, "10.1.2.3"), "any4,corp");
  EXPECT_EQ(nameAt(both, "8.8.8.8"), "any4");

  // Shorter IPv6 prefixes that still cover the mapped range need it as well.
  for (const char* v6 : {"::/64", "::/80", "::fffe:0:0/95"}) {
    auto ids2 = assignIdentities(bundleOf(external("six", std::string("[\"") + v6 + "\"]")));
    EXPECT_EQ(nameAt(ids2, "10.1.2.3"), "world") << v6;
    EXPECT_EQ(ids2.ipcache.size(), 2u) << v6 << ": " << ipcacheText(ids2);
  }
}

TEST(ExternalIdentities, NoBoundaryWhereNoIpv6RangeCoversIpv4) {
  auto ids = assignIdentities(bundleOf(external("a", "[10.0.0.0/8, \"fd00::/8\", \"::/97\"]")));
  EXPECT_EQ(ipcacheText(ids), "::/97=a 10.0.0.0/8=a fd00::/8=a");
}

TEST(ExternalIdentities, WorldPrefixesUnderWorldAreLeftOut) {
  // 10.1.2.0/24 is a hole inside a hole: every lookup there is world with or
  // without it.
  auto ids = assignIdentities(bundleOf(external("corp", "[10.0.0.0/8]", "[10.1.0.0/16, 10.1.2.0/24]")));
  EXPECT_EQ(ipcacheText(ids), "10.0.0.0/8=corp 10.1.0.0/16=world");
  // An IPv6 hole that takes the mapped range with it: the boundary is not needed.
  auto six = assignIdentities(bundleOf(external("six", "[\"::/0\"]", "[\"::/1\"]")));
  EXPECT_EQ(ipcacheText(six), "::/0=six ::/1=world");
  EXPECT_EQ(nameAt(six, "10.1.2.3"), "world");
}

TEST(ExternalIdentities, NamesOfUnknownAndReserved) {
  IdentityTable ids;
  EXPECT_EQ(ids.nameOf(MS_IDENTITY_FIRST_EXTERNAL + 5), "identity-" + std::to_string(MS_IDENTITY_FIRST_EXTERNAL + 5));
  EXPECT_EQ(ids.nameOf(MS_IDENTITY_WORLD), "world");
  EXPECT_EQ(lookupAddress(ids, addr("10.1.2.3")), MS_IDENTITY_WORLD);
}

TEST(ExternalIdentities, StableAcrossReloads) {
  const std::string corp = external("corp-net", "[10.0.0.0/8]", "[10.66.0.0/16]");
  const std::string partner = external("partner", "[10.1.0.0/16, \"fd00::/8\"]");
  auto first = assignIdentities(bundleOf(corp + partner));
  const uint32_t corpId = lookupAddress(first, addr("10.2.0.1"));
  const uint32_t bothId = lookupAddress(first, addr("10.1.0.1"));
  const uint32_t partnerId = lookupAddress(first, addr("fd00::1"));
  EXPECT_EQ(std::set<uint32_t>({corpId, bothId, partnerId}).size(), 3u);

  // An unrelated External (and a cidr peer) come first in the file and sort
  // first by name: nobody else is renumbered.
  auto second = assignIdentities(
      bundleOf(external("aaa", "[192.0.2.0/24]") + cidrPolicy("p", "[{cidr: 198.51.100.0/24}]") + corp + partner), first);
  EXPECT_EQ(lookupAddress(second, addr("10.2.0.1")), corpId);
  EXPECT_EQ(lookupAddress(second, addr("10.1.0.1")), bothId);
  EXPECT_EQ(lookupAddress(second, addr("fd00::1")), partnerId);
  const uint32_t aaa = lookupAddress(second, addr("192.0.2.1"));
  EXPECT_EQ(second.nameOf(aaa), "aaa");
  EXPECT_EQ(std::set<uint32_t>({corpId, bothId, partnerId, aaa}).size(), 4u);

  // partner shrinks: the sets that still exist keep their ids.
  auto third = assignIdentities(bundleOf(corp + external("partner", "[10.1.0.0/16]")), second);
  EXPECT_EQ(lookupAddress(third, addr("10.2.0.1")), corpId);
  EXPECT_EQ(lookupAddress(third, addr("10.1.0.1")), bothId);
  EXPECT_EQ(lookupAddress(third, addr("fd00::1")), MS_IDENTITY_WORLD);
  EXPECT_EQ(third.externals.size(), 2u);

  // Workload ids are untouched by ranges and the other way round.
  auto w = assignIdentities(bundleOf("apiVersion: microseg.dev/v1\nkind: Workload\nmetadata: {name: web}\n"
                                     "spec: {cgroups: [web]}\n---\n" + corp), third);
  EXPECT_EQ(lookupAddress(w, addr("10.2.0.1")), corpId);
  EXPECT_EQ(w.byWorkload.at("web"), MS_IDENTITY_FIRST_WORKLOAD);
}

TEST(ExternalIdentities, DeterministicWhateverTheOrder) {
  const std::string a = external("a", "[10.0.0.0/8, \"fd00::/8\"]", "[10.1.0.0/16]");
  const std::string b = external("b", "[10.1.0.0/16, \"::/0\"]");
  const std::string c = cidrPolicy("p", "[{cidr: 10.0.0.0/9}, {cidr: \"fd00::/12\"}]");
  auto x = assignIdentities(bundleOf(a + b + c));
  auto y = assignIdentities(bundleOf(c + b + a));
  auto z = assignIdentities(bundleOf(a + b + c));
  EXPECT_EQ(ipcacheText(x), ipcacheText(y));
  EXPECT_EQ(ipcacheText(x), ipcacheText(z));
  ASSERT_EQ(x.ipcache.size(), y.ipcache.size());
  for (size_t i = 0; i < x.ipcache.size(); i++) EXPECT_EQ(x.ipcache[i].identity, y.ipcache[i].identity);
  EXPECT_EQ(x.byExternal, y.byExternal);
  EXPECT_EQ(x.byCidrPeer, y.byCidrPeer);
  EXPECT_TRUE(std::is_sorted(x.ipcache.begin(), x.ipcache.end(),
                             [](const IpcachePrefix& l, const IpcachePrefix& r) { return l.prefix < r.prefix; }));
}

// ---- partition property ------------------------------------------------------

ms_addr lastOf(const Cidr& c) {
  ms_addr a = c.addr;
  for (uint32_t bit = c.prefixlen; bit < 128; bit++) a.a[bit / 8] |= static_cast<uint8_t>(0x80 >> (bit % 8));
  return a;
}

ms_addr step(ms_addr a, int dir) {
  for (int i = 15; i >= 0; i--) {
    if (dir > 0 ? a.a[i]++ != 0xff : a.a[i]-- != 0x00) break;
  }
  return a;
}

class Random {
 public:
  explicit Random(uint32_t seed) : rng_(seed) {}
  uint32_t below(uint32_t n) { return static_cast<uint32_t>(rng_() % n); }

  ms_addr v4() {
    ms_addr a{};
    a.a[10] = a.a[11] = 0xff;
    a.a[12] = below(8) == 0 ? static_cast<uint8_t>(rng_()) : 10;  // mostly one /8, for overlaps
    a.a[13] = static_cast<uint8_t>(below(3));
    a.a[14] = static_cast<uint8_t>(rng_());
    a.a[15] = static_cast<uint8_t>(rng_());
    return a;
  }
  ms_addr v6() {
    ms_addr a{};
    for (auto& b : a.a) b = static_cast<uint8_t>(rng_());
    if (below(6) == 0) return a;
    a.a[0] = 0xfd;
    a.a[1] = 0x00;
    a.a[2] = static_cast<uint8_t>(below(3));
    return a;
  }
  Cidr prefix() {
    if (below(2) == 0) {
      // IPv4: lengths that overlap a lot, now and then 0.0.0.0/0.
      const uint32_t len = below(12) == 0 ? 0 : 8 + below(25);
      return policy::networkOf(v4(), policy::kIpv4PrefixOffset + len);
    }
    static const char* wide[] = {"::/0", "::/16", "::/64", "::/80", "::/95", "::fffe:0:0/95", "::/97"};
    if (below(8) == 0) return *policy::parseCidr(wide[below(7)]);
    return policy::networkOf(v6(), 8 + below(121));
  }
  // A prefix inside `c` (or, now and then, anywhere: membership is defined
  // for any input, not just valid ones).
  Cidr inside(const Cidr& c) {
    if (below(10) == 0) return prefix();
    ms_addr a = c.addr;
    for (uint32_t bit = c.prefixlen; bit < 128; bit++) {
      if (below(2) != 0) a.a[bit / 8] |= static_cast<uint8_t>(0x80 >> (bit % 8));
    }
    const uint32_t max = 128;
    const uint32_t len = c.prefixlen + 1 + below(std::max<uint32_t>(1, std::min<uint32_t>(24, max - c.prefixlen)));
    return policy::networkOf(a, std::min(len, max));
  }
  ms_addr within(const Cidr& c) {
    ms_addr a = c.addr;
    for (uint32_t bit = c.prefixlen; bit < 128; bit++) {
      if (below(2) != 0) a.a[bit / 8] |= static_cast<uint8_t>(0x80 >> (bit % 8));
    }
    return a;
  }

 private:
  std::mt19937 rng_;
};

std::set<std::string> bruteForce(const policy::Bundle& b, const ms_addr& a) {
  std::set<std::string> out;
  for (const auto& e : b.externals) {
    if (e.contains(a)) out.insert(e.name);
  }
  for (const auto& p : b.policies) {
    for (const auto& r : p.egress) {
      for (const auto& peer : *r.peers) {
        const bool in = peer.cidr().contains(a) && std::none_of(peer.except().begin(), peer.except().end(),
                                                             [&](const Cidr& x) { return x.contains(a); });
        if (in) out.insert("cidr:" + peer.cidrText());
      }
    }
  }
  return out;
}

std::set<std::string> membersAt(const IdentityTable& ids, const ms_addr& a) {
  const uint32_t id = lookupAddress(ids, a);
  if (id == MS_IDENTITY_WORLD) return {};
  auto it = ids.externals.find(id);
  if (it == ids.externals.end()) return {"<unknown identity " + std::to_string(id) + ">"};
  std::set<std::string> out(it->second.externals.begin(), it->second.externals.end());
  for (const auto& c : it->second.cidrPeers) out.insert("cidr:" + c);
  return out;
}

std::string joined(const std::set<std::string>& s) {
  std::string out = "{";
  for (const auto& x : s) out += (out.size() > 1 ? ", " : "") + x;
  return out + "}";
}

TEST(ExternalIdentities, EveryAddressGetsExactlyItsMembers) {
  Random rnd(20240601);
  size_t checked = 0, inHoles = 0, shared = 0;
  for (int round = 0; round < 150; round++) {
    policy::Bundle b;
    std::vector<Cidr> all;
    const uint32_t nExt = 1 + rnd.below(6);
    for (uint32_t i = 0; i < nExt; i++) {
      policy::External e;
      e.name = "e" + std::to_string(i);
      const uint32_t nCidr = 1 + rnd.below(3);
      for (uint32_t j = 0; j < nCidr; j++) e.cidrs.push_back(rnd.prefix());
      const uint32_t nExcept = rnd.below(4);
      for (uint32_t j = 0; j < nExcept; j++) e.except.push_back(rnd.inside(e.cidrs[rnd.below(nCidr)]));
      all.insert(all.end(), e.cidrs.begin(), e.cidrs.end());
      all.insert(all.end(), e.except.begin(), e.except.end());
      b.externals.push_back(e);
    }
    policy::Policy p;
    p.name = "p";
    p.hasEgress = true;
    p.hasCidrPeers = true;  // the parser sets it; built by hand here
    const uint32_t nPeers = rnd.below(4);
    for (uint32_t i = 0; i < nPeers; i++) {
      policy::Peer peer;
      peer.kind = policy::Peer::Kind::Cidr;
      peer.edit().cidr = rnd.below(3) == 0 && !all.empty() ? all[rnd.below(static_cast<uint32_t>(all.size()))] : rnd.prefix();
      const uint32_t nExcept = rnd.below(3);
      for (uint32_t j = 0; j < nExcept; j++) peer.edit().except.push_back(rnd.inside(peer.cidr()));
      all.push_back(peer.cidr());
      all.insert(all.end(), peer.except().begin(), peer.except().end());
      policy::Rule r;
      r.peers = std::vector<policy::Peer>{peer};
      p.egress.push_back(r);
      if (rnd.below(2) == 0) {  // the same peer again with its holes reversed
        std::reverse(peer.edit().except.begin(), peer.edit().except.end());
        r.peers = std::vector<policy::Peer>{peer};
        p.egress.push_back(r);
      }
    }
    if (!p.egress.empty()) b.policies.push_back(p);

    const IdentityTable ids = assignIdentities(b);
    std::vector<ms_addr> probes;
    for (const auto& c : all) {
      probes.push_back(c.addr);
      probes.push_back(lastOf(c));
      probes.push_back(step(c.addr, -1));
      probes.push_back(step(lastOf(c), +1));
      for (int k = 0; k < 3; k++) probes.push_back(rnd.within(c));
    }
    for (int k = 0; k < 40; k++) {
      probes.push_back(rnd.v4());
      probes.push_back(rnd.v6());
    }
    for (const auto& a : probes) {
      const auto want = bruteForce(b, a);
      const auto got = membersAt(ids, a);
      ASSERT_EQ(joined(got), joined(want))
          << "round " << round << " address " << policy::formatAddress(a) << "\nipcache: " << ipcacheText(ids);
      checked++;
      shared += want.size() > 1;
      for (const auto& e : b.externals) {
        const bool inRange = std::any_of(e.cidrs.begin(), e.cidrs.end(), [&](const Cidr& c) { return c.contains(a); });
        if (inRange && !e.contains(a)) inHoles++;
      }
    }

    // Each member set has one identity, and it names its own prefixes.
    std::set<std::string> names;
    for (const auto& [id, e] : ids.externals) {
      EXPECT_GE(id, MS_IDENTITY_FIRST_EXTERNAL);
      EXPECT_TRUE(names.insert(e.name()).second) << "two identities for " << e.name();
      EXPECT_FALSE(e.prefixes.empty()) << e.name();
      for (const auto& pre : e.prefixes) {
        EXPECT_TRUE(std::any_of(ids.ipcache.begin(), ids.ipcache.end(),
                                [&](const IpcachePrefix& x) { return x.prefix == pre && x.identity == id; }));
      }
    }
  }
  // The probes did reach the interesting places.
  EXPECT_GT(checked, 5000u);
  EXPECT_GT(inHoles, 200u);
  EXPECT_GT(shared, 200u);
}

}  // namespace
}  // namespace microseg::identity

namespace microseg::identity {
namespace {

// A bundle made of `base`'s objects, with policy `replace` (by index)
// swapped for the first policy of `with`.
policy::Bundle withPolicy(const policy::Bundle& base, size_t replace, const policy::Bundle& with) {
  policy::Bundle out;
  out.workloads = base.workloads;
  out.externals = base.externals;
  for (size_t i = 0; i < base.policies.size(); i++) {
    out.policies.push_back(i == replace ? with.policies.shared(0) : base.policies.shared(i));
  }
  return out;
}

TEST(IdentityInputs, OnlyWorkloadsExternalsAndCidrPoliciesCount) {
  const std::string w = "apiVersion: microseg.dev/v1\nkind: Workload\nmetadata: {name: x}\nspec:\n"
                        "  cgroups: [\"x\"]\n  labels: {app: x}\n---\n";
  const policy::Bundle base = bundleOf(w + external("corp", "[10.0.0.0/8]") + cidrPolicy("p", "[{identity: corp}]") +
                                       cidrPolicy("q", "[{cidr: 192.0.2.0/24}]"));
  ASSERT_FALSE(base.policies[0].hasCidrPeers);
  ASSERT_TRUE(base.policies[1].hasCidrPeers);
  EXPECT_TRUE(sameIdentityInputs(base, base));
  // A policy without cidr peers replaced by another: same inputs.
  EXPECT_TRUE(sameIdentityInputs(base, withPolicy(base, 0, bundleOf(cidrPolicy("p", "[{reserved: host}]")))));
  // ... by one with a cidr peer, or the cidr policy replaced: not the same.
  EXPECT_FALSE(sameIdentityInputs(base, withPolicy(base, 0, bundleOf(cidrPolicy("p", "[{cidr: 10.0.0.0/8}]")))));
  EXPECT_FALSE(sameIdentityInputs(base, withPolicy(base, 1, bundleOf(cidrPolicy("q", "[{cidr: 192.0.2.0/24}]")))));
  // Same text, other objects (a reparse): not the same (compared by object).
  const policy::Bundle again = bundleOf(w + external("corp", "[10.0.0.0/8]") + cidrPolicy("p", "[{identity: corp}]") +
                                        cidrPolicy("q", "[{cidr: 192.0.2.0/24}]"));
  EXPECT_FALSE(sameIdentityInputs(base, again));
  // Every table gets its own version; a copy keeps it.
  const IdentityTable a = assignIdentities(base), b = assignIdentities(base, a);
  EXPECT_NE(a.version, b.version);
  EXPECT_EQ(IdentityTable(a).version, a.version);
  EXPECT_EQ(a.byWorkload, b.byWorkload);
  EXPECT_EQ(a.byExternal, b.byExternal);
  EXPECT_EQ(a.byCidrPeer, b.byCidrPeer);
}

}  // namespace
}  // namespace microseg::identity
