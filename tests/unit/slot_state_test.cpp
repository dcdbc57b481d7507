// The userspace mirror of a generation slot and the difference that the
// kernel backend writes between two generations.
#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <cstring>
#include <algorithm>
#include <random>

#include "datapath/slot_state.h"

namespace microseg::datapath {
namespace {

using E = Entries<uint64_t, ms_cgroup_value>;
using Exact = Entries<ms_policy_exact_key, ms_policy_value>;

// What the exact-port map must hold for `p`, worked out here: its entries
// of full prefix length, keyed without the prefix length.
Exact exactState(const compiler::CompiledPolicy& p) {
  Exact out;
  for (const auto& e : p.entries) {
    if (e.key.prefixlen != MS_POLICY_PREFIX_FULL) continue;
    ms_policy_exact_key k{};
    k.subject = e.key.subject;
    k.peer = e.key.peer;
    k.direction = e.key.direction;
    k.protocol = e.key.protocol;
    k.port = e.key.port;
    out.emplace_back(k, e.value);
  }
  normalize(out);
  return out;
}

size_t exactCount(const compiler::CompiledPolicy& p) {
  const auto [begin, end] = exactBlock(&p);
  return static_cast<size_t>(end - begin);
}

ms_cgroup_value cg(uint32_t identity, uint32_t flags = 0) {
  ms_cgroup_value v{};
  v.identity = identity;
  v.flags = flags;
  return v;
}

// Applies a diff to a map model the way the kernel backend does.
std::map<uint64_t, uint32_t> applied(const E& from, const Diff<uint64_t, ms_cgroup_value>& d) {
  std::map<uint64_t, uint32_t> m;
  for (const auto& [k, v] : from) m[k] = v.identity;
  for (const auto& k : d.removes) m.erase(k);
  for (const auto& [k, v] : d.upserts) m[k] = v.identity;
  return m;
}

TEST(SlotState, DiffHoldsOnlyWhatChanged) {
  E from = {{1, cg(256)}, {2, cg(257)}, {3, cg(258)}};
  E to = {{1, cg(256)}, {3, cg(259)}, {4, cg(260)}};
  normalize(from);
  normalize(to);
  auto d = diff(from, to);
  ASSERT_EQ(d.removes.size(), 1u);
  EXPECT_EQ(d.removes[0], 2u);
  ASSERT_EQ(d.upserts.size(), 2u);
  EXPECT_EQ(d.upserts[0].first, 3u);
  EXPECT_EQ(d.upserts[1].first, 4u);
  EXPECT_EQ(diff(to, to).size(), 0u) << "nothing to write for the same state";
  EXPECT_EQ(diff(E{}, to).upserts.size(), to.size());
  EXPECT_EQ(diff(to, E{}).removes.size(), to.size());
}

TEST(SlotState, DiffOfRandomStatesTurnsOneIntoTheOther) {
  std::mt19937 rng(7);
  for (int round = 0; round < 200; round++) {
    E a, b;
    for (int i = 0; i < 60; i++) {
      if (rng() % 2) a.emplace_back(rng() % 100, cg(256 + rng() % 3));
      if (rng() % 2) b.emplace_back(rng() % 100, cg(256 + rng() % 3));
    }
    normalize(a);
    normalize(b);
    std::map<uint64_t, uint32_t> want;
    for (const auto& [k, v] : b) want[k] = v.identity;
    EXPECT_EQ(applied(a, diff(a, b)), want) << "round " << round;
    E patched = a;
    auto d = diff(a, b);
    patch(patched, d.upserts, d.removes);
    ASSERT_EQ(patched.size(), b.size());
    EXPECT_EQ(diff(patched, b).size(), 0u) << "round " << round;
  }
}

TEST(SlotState, NormalizeKeepsTheLastValueOfAKey) {
  E e = {{5, cg(1)}, {2, cg(2)}, {5, cg(3)}};
  normalize(e);
  ASSERT_EQ(e.size(), 2u);
  EXPECT_EQ(e[0].first, 2u);
  EXPECT_EQ(e[1].second.identity, 3u);
}

TEST(SlotState, AnAddressOverridesACompiledRangeOfTheSamePrefix) {
  compiler::CompiledPolicy policy;
  compiler::IpcacheEntry range;
  range.addr.a[10] = 0xff;
  range.addr.a[11] = 0xff;
  range.addr.a[12] = 10;
  range.prefixlen = 128;
  range.identity = MS_IDENTITY_FIRST_EXTERNAL;
  policy.ipcache.push_back(range);
  compiler::IpcacheEntry other = range;
  other.addr.a[12] = 11;
  policy.ipcache.push_back(other);
  ms_policy_key k{};
  k.prefixlen = MS_POLICY_PREFIX_FULL;
  k.subject = 256;
  policy.entries.push_back({k, {}});
  policy.identities.emplace_back(256, ms_identity_value{});
  Generation gen;
  gen.policy = &policy;
  AddressEntry host;
  host.key.prefixlen = 128;
  host.key.addr = range.addr;
  host.value.identity = MS_IDENTITY_HOST;
  host.value.flags = MS_IPCACHE_F_HOST;
  gen.addresses.push_back(host);
  gen.cgroups.push_back({42, 256, 0});
  gen.modeOverrides[256] = MS_MODE_ENFORCE;
  const SlotState s = slotStateOf(gen);
  ASSERT_EQ(s.ipcache.size(), 2u);
  for (const auto& [key, v] : s.ipcache) {
    if (key.addr.a[12] == 10) {
      EXPECT_EQ(v.identity, MS_IDENTITY_HOST) << "this host's address, not the range";
    } else {
      EXPECT_EQ(v.identity, MS_IDENTITY_FIRST_EXTERNAL);
    }
  }
  ASSERT_EQ(s.identities.size(), 1u);
  EXPECT_EQ(s.identities[0].second.mode, MS_MODE_ENFORCE) << "runtime mode override applied";
  ASSERT_EQ(s.cgroups.size(), 1u);
  EXPECT_EQ(s.cgroups[0].second.identity, 256u);
  EXPECT_EQ(s.cgroups[0].second.mode, MS_MODE_ENFORCE) << "the cgroup entry carries its identity's settings";
  EXPECT_EQ(exactCount(policy), 1u) << "a full-length prefix is an exact-port entry";
  EXPECT_TRUE(s.ranges.empty());
}

TEST(SlotState, PortRangesGoToTheTrieAndFlagTheirSubject) {
  compiler::CompiledPolicy policy;
  auto entry = [](uint32_t subject, uint8_t dir, uint32_t bits, uint16_t port) {
    compiler::PolicyEntry e;
    e.key.prefixlen = MS_POLICY_PREFIX_FIXED + bits;
    e.key.subject = subject;
    e.key.peer = 300;
    e.key.direction = dir;
    e.key.protocol = MS_PROTO_TCP;
    e.key.port = htons(port);
    return e;
  };
  policy.entries = {entry(256, MS_DIR_EGRESS, 16, 80), entry(256, MS_DIR_INGRESS, 8, 8192),
                    entry(257, MS_DIR_EGRESS, 16, 443)};
  // In the compiler's order (CompiledPolicy::entries): by key bytes, the
  // exact-port block last.
  std::sort(policy.entries.begin(), policy.entries.end(),
            [](const compiler::PolicyEntry& a, const compiler::PolicyEntry& b) { return bytesLess(a.key, b.key); });
  policy.identities.emplace_back(256, ms_identity_value{MS_MODE_INHERIT, MS_IDENT_F_ISOLATE_EGRESS | MS_IDENT_F_ISOLATE_INGRESS});
  policy.identities.emplace_back(257, ms_identity_value{MS_MODE_INHERIT, MS_IDENT_F_ISOLATE_EGRESS | MS_IDENT_F_ISOLATE_INGRESS});
  // The compiler flags the subjects with range entries (compiler/kernel_layout.h).
  compiler::markRangeSubjects(policy.entries, policy.identities);
  Generation gen;
  gen.policy = &policy;
  gen.cgroups = {{1, 256, 0}, {2, 257, MS_CGROUP_F_PENDING_CHILDREN}};
  const SlotState s = slotStateOf(gen);
  EXPECT_EQ(exactCount(policy), 2u);
  ASSERT_EQ(s.ranges.size(), 1u);
  EXPECT_EQ(s.ranges[0].first.direction, MS_DIR_INGRESS);
  ASSERT_EQ(s.cgroups.size(), 2u);
  for (const auto& [id, v] : s.cgroups) {
    if (id == 1) {
      EXPECT_EQ(v.isolation, MS_IDENT_F_ISOLATE_EGRESS | MS_IDENT_F_ISOLATE_INGRESS | MS_IDENT_F_RANGES_INGRESS);
    } else {
      EXPECT_EQ(v.isolation, MS_IDENT_F_ISOLATE_EGRESS | MS_IDENT_F_ISOLATE_INGRESS) << "no ranges: trie not asked";
      EXPECT_EQ(v.flags, MS_CGROUP_F_PENDING_CHILDREN);
    }
  }
}

// The datapath keeps no copy of the exact-port entries: it walks the
// compiled policies' last block. That walk must be the difference of the
// exact-port states, and only that block may be walked.
TEST(SlotState, TheExactBlockWalkIsTheDifferenceOfTheExactPortStates) {
  std::mt19937 rng(11);
  auto random = [&] {
    compiler::CompiledPolicy p;
    for (int i = 0; i < 80; i++) {
      compiler::PolicyEntry e;
      e.key.prefixlen = rng() % 3 ? MS_POLICY_PREFIX_FULL : MS_POLICY_PREFIX_FIXED + rng() % 16;
      e.key.subject = 256 + rng() % 5;
      e.key.peer = 300 + rng() % 3;
      e.key.direction = static_cast<uint8_t>(rng() % 2);
      e.key.protocol = MS_PROTO_TCP;
      e.key.port = htons(static_cast<uint16_t>(80 + rng() % 4));
      e.value.rule_id = 1 + rng() % 2;
      p.entries.push_back(e);
    }
    std::sort(p.entries.begin(), p.entries.end(),
              [](const compiler::PolicyEntry& a, const compiler::PolicyEntry& b) { return bytesLess(a.key, b.key); });
    p.entries.erase(std::unique(p.entries.begin(), p.entries.end(),
                                [](const compiler::PolicyEntry& a, const compiler::PolicyEntry& b) {
                                  return std::memcmp(&a.key, &b.key, sizeof(a.key)) == 0;
                                }),
                    p.entries.end());
    return p;
  };
  for (int round = 0; round < 100; round++) {
    const compiler::CompiledPolicy a = random(), b = random();
    const auto want = diff(exactState(a), exactState(b));
    const auto [bBegin, bEnd] = exactBlock(&b);
    ASSERT_EQ(static_cast<size_t>(bEnd - bBegin), exactState(b).size()) << "round " << round;
    Diff<ms_policy_exact_key, ms_policy_value> got;
    const auto [aBegin, aEnd] = exactBlock(&a);
    exactDiffInto(aBegin, aEnd, bBegin, bEnd, got);
    ASSERT_EQ(got.removes.size(), want.removes.size()) << "round " << round;
    ASSERT_EQ(got.upserts.size(), want.upserts.size()) << "round " << round;
    EXPECT_EQ(0, std::memcmp(got.removes.data(), want.removes.data(), want.removes.size() * sizeof(want.removes[0])));
    EXPECT_EQ(0, std::memcmp(got.upserts.data(), want.upserts.data(), want.upserts.size() * sizeof(want.upserts[0])));
  }
  EXPECT_EQ(exactBlock(nullptr).first, exactBlock(nullptr).second);
}

// keyLess is memcmp order (what the maps' bytes are), for every key size
// the maps use; keys differ in few bytes so that every word is reached.
template <typename K>
void expectMemcmpOrder(std::mt19937& rng) {
  for (int n = 0; n < 20000; n++) {
    K a{}, b{};
    auto* pa = reinterpret_cast<unsigned char*>(&a);
    auto* pb = reinterpret_cast<unsigned char*>(&b);
    for (size_t i = 0; i < sizeof(K); i++) pa[i] = pb[i] = static_cast<unsigned char>(rng());
    for (int k = int(rng() % 3); k >= 0; k--) pb[rng() % sizeof(K)] = static_cast<unsigned char>(rng());
    ASSERT_EQ(keyLess(a, b), std::memcmp(&a, &b, sizeof(K)) < 0) << sizeof(K);
    ASSERT_EQ(keyLess(b, a), std::memcmp(&b, &a, sizeof(K)) < 0) << sizeof(K);
  }
}

TEST(SlotState, KeysCompareInMemcmpOrder) {
  std::mt19937 rng(7);
  expectMemcmpOrder<ms_policy_exact_key>(rng);
  expectMemcmpOrder<ms_policy_key>(rng);
  expectMemcmpOrder<ms_ipcache_key>(rng);
  expectMemcmpOrder<uint64_t>(rng);
  expectMemcmpOrder<uint32_t>(rng);
  struct Odd {
    unsigned char b[7];
  };
  expectMemcmpOrder<Odd>(rng);
}

// A compiled policy without entries whose vector still has its memory (an
// in-place compile from a set with policies to one without): no range
// entries, and nothing read past the vector (it walked to nullptr and
// crashed the daemon on such a reload).
TEST(SlotState, AnEmptiedPolicyHasNoRangesAndIsNotReadPastItsEnd) {
  compiler::CompiledPolicy policy;
  policy.entries.reserve(64);
  policy.identities.emplace_back(256, ms_identity_value{});
  Generation gen;
  gen.policy = &policy;
  const SlotState s = slotStateOf(gen);
  EXPECT_TRUE(s.ranges.empty());
  EXPECT_EQ(s.identities.size(), 1u);
}

}  // namespace
}  // namespace microseg::datapath
