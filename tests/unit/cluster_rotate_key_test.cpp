// `microseg cluster rotate-key` (cli/rotate_key.h) without etcd: its
// durations, which id the new key gets, what retires and what goes, and its
// output (ids and times, never key bytes). The transaction itself is tested
// against a real etcd (tests/e2e/cluster_keys_test.cpp).
#include <gtest/gtest.h>

#include <sstream>

#include "cli/cluster_views.h"
#include "cli/rotate_key.h"

namespace microseg::cli {
namespace {

using cluster::WireKeyRecord;
using cluster::WireKeyRecords;

const std::array<uint8_t, 16> kKey{0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};

WireKeyRecord key(uint8_t id, int64_t activateAt, int64_t retireAt) { return {id, {}, activateAt, activateAt, retireAt}; }

std::set<uint8_t> idsOf(const WireKeyRecords& r) {
  std::set<uint8_t> s;
  for (const auto& [id, k] : r) s.insert(id);
  return s;
}

TEST(ClusterRotateKey, Durations) {
  EXPECT_EQ(rotationDuration("30s"), 30);
  EXPECT_EQ(rotationDuration("15m"), 900);
  EXPECT_EQ(rotationDuration("8h"), 28800);
  EXPECT_EQ(rotationDuration("2d"), 172800);
  EXPECT_EQ(rotationDuration("0s"), 0);
  EXPECT_FALSE(rotationDuration("10"));
  EXPECT_FALSE(rotationDuration("m"));
  EXPECT_FALSE(rotationDuration("-5m"));
  EXPECT_FALSE(rotationDuration("1.5h"));
  EXPECT_FALSE(rotationDuration("10x"));
  EXPECT_FALSE(rotationDuration("10 m"));
  EXPECT_FALSE(rotationDuration("366d"));
  EXPECT_FALSE(rotationDuration("99999999999h"));
}

TEST(ClusterRotateKey, TheNewKeyActivatesLaterAndTheKeysInUseRetireAGraceAfterThat) {
  const WireKeyRecords records{{1, key(1, 100, 0)}};
  auto p = planRotation(records, idsOf(records), 1000, 10, 600, kKey);
  ASSERT_TRUE(p) << p.error().str();
  EXPECT_EQ(p->added.id, 2);
  EXPECT_EQ(p->added.key, kKey);
  EXPECT_EQ(p->added.created, 1000);
  EXPECT_EQ(p->added.activateAt, 1010);
  EXPECT_EQ(p->added.retireAt, 0);
  ASSERT_EQ(p->retiring.size(), 1u);
  EXPECT_EQ(p->retiring[0].id, 1);
  EXPECT_EQ(p->retiring[0].retireAt, 1610);
  EXPECT_EQ(p->retiring[0].activateAt, 100);  // nothing else of it changes
  EXPECT_TRUE(p->removed.empty());
}

TEST(ClusterRotateKey, AKeyAlreadyRetiringKeepsItsTimeAndOldRetiredKeysGo) {
  // Key 1 retired over an hour ago, key 2 retires soon, key 3 signs.
  const WireKeyRecords records{{1, key(1, 100, 4000)}, {2, key(2, 3000, 9000)}, {3, key(3, 8000, 0)}};
  auto p = planRotation(records, idsOf(records), 8600, 10, 600, kKey);
  ASSERT_TRUE(p) << p.error().str();
  EXPECT_EQ(p->added.id, 4);
  ASSERT_EQ(p->retiring.size(), 1u);
  EXPECT_EQ(p->retiring[0].id, 3);
  EXPECT_EQ(p->removed, (std::vector<uint8_t>{1}));
  // Retired less than an hour ago: kept (a node with a slow clock may still accept it).
  auto q = planRotation(records, idsOf(records), 7599, 10, 600, kKey);
  ASSERT_TRUE(q);
  EXPECT_TRUE(q->removed.empty());
}

// Found by hand: two rotations 1 s apart, the second with a shorter
// --activate-after, gave key 2 an activation before key 1's; key 1 (retiring)
// then took signing back from key 2 at its own activation.
TEST(ClusterRotateKey, TheNewKeyActivatesAfterEveryStoredKeyEvenAPendingOne) {
  const WireKeyRecords records{{1, {1, {}, 1000, 1010, 0}}};
  auto p = planRotation(records, {1}, 1001, 5, 60, kKey);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->added.activateAt, 1011);
  EXPECT_EQ(p->retiring[0].retireAt, 1071);
  WireKeyRecords after{{1, p->retiring[0]}, {2, p->added}};
  for (int64_t t : {1010, 1011, 1050}) {
    const auto s = cluster::selectWireKeys(after, t);
    EXPECT_EQ(s.signKeyId, t < 1011 ? 1 : 2) << "at " << t;
  }
}

TEST(ClusterRotateKey, IdsWrapToTheLowestFreeOneAfter255) {
  const WireKeyRecords records{{255, key(255, 100, 0)}, {3, key(3, 50, 200)}};
  auto p = planRotation(records, {1, 2, 3, 255}, 150, 10, 600, kKey);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->added.id, 4);
  // Ids held by records that do not decode count as used.
  auto q = planRotation({}, {7}, 150, 10, 600, kKey);
  ASSERT_TRUE(q);
  EXPECT_EQ(q->added.id, 8);
  auto first = planRotation({}, {}, 150, 10, 600, kKey);
  ASSERT_TRUE(first);
  EXPECT_EQ(first->added.id, 1);
}

TEST(ClusterRotateKey, EveryIdInUseIsAClearErrorUnlessOneCanBeRemoved) {
  std::set<uint8_t> all;
  for (unsigned i = 1; i <= 255; i++) all.insert(static_cast<uint8_t>(i));
  auto p = planRotation({{255, key(255, 100, 0)}}, all, 1000, 10, 600, kKey);
  ASSERT_FALSE(p);
  EXPECT_NE(p.error().str().find("all 255 key ids are in use"), std::string::npos) << p.error().str();
  // Key 9 retired long ago: its id is taken again (replaced, not removed).
  auto q = planRotation({{9, key(9, 10, 20)}, {255, key(255, 100, 0)}}, all, 10000, 10, 600, kKey);
  ASSERT_TRUE(q) << q.error().str();
  EXPECT_EQ(q->added.id, 9);
  EXPECT_TRUE(q->removed.empty());
}

TEST(ClusterRotateKey, OutputNamesIdsAndTimesNeverKeyBytes) {
  RotateOutcome o;
  auto p = planRotation({{1, key(1, 100, 0)}}, {1}, 1765000000, 10, 600, kKey);
  ASSERT_TRUE(p);
  o.plan = *p;
  o.revision = 42;
  o.after = {{1, p->retiring[0]}, {2, p->added}};
  std::ostringstream table;
  printRotation(o, "/microseg", 1765000000, table);
  const std::string text = table.str();
  EXPECT_NE(text.find("new cluster key 2 under /microseg (etcd revision 42)"), std::string::npos) << text;
  EXPECT_NE(text.find("2025-12-06T05:46:50Z (in 10s)"), std::string::npos) << text;
  EXPECT_NE(text.find("key 1 retires at 2025-12-06T05:56:50Z (in 10m10s)"), std::string::npos) << text;
  const std::string json = rotateJson(o, "/microseg", 600).dump();
  EXPECT_NE(json.find(R"("new_key_id":2)"), std::string::npos) << json;
  EXPECT_NE(json.find(R"("retiring":[{"id":1,"retire_at":1765000610}])"), std::string::npos) << json;
  for (const std::string& out : {text, json}) {
    EXPECT_EQ(out.find("deadbeef"), std::string::npos) << out;
    EXPECT_EQ(out.find("\"key\""), std::string::npos) << out;
  }
}

TEST(ClusterRotateKey, ClusterStatusShowsTheKeysByIdAndTime) {
  const auto report = nlohmann::json::parse(R"({
    "this_node": {"node": "a", "wire_identity": {"enabled": true, "known": true, "written": true,
      "signing_key_id": 2, "accepted_key_ids": [1, 2], "next_change_at": 1765000610, "error": "",
      "keys": [{"id": 1, "created": 1764990000, "activate_at": 1764990000, "retire_at": 1765000610, "state": "accepted"},
               {"id": 2, "created": 1765000000, "activate_at": 1765000010, "retire_at": 0, "state": "signing"}]}}})");
  std::ostringstream out;
  printClusterStatus(report, out);
  const std::string text = out.str();
  EXPECT_NE(text.find("wire identity: signing with key 2, accepting 1,2 (next change 2025-12-06T05:56:50Z)"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("signing"), std::string::npos);
  EXPECT_NE(text.find("2025-12-06T05:46:50Z"), std::string::npos) << text;
  std::ostringstream off;
  printClusterStatus(nlohmann::json::parse(R"({"this_node": {"wire_identity": {"enabled": false, "known": true,
      "signing_key_id": 0, "accepted_key_ids": [3]}}})"), off);
  EXPECT_NE(off.str().find("wire identity: off (signs nothing), accepting 3"), std::string::npos) << off.str();
  std::ostringstream unknown;
  printClusterStatus(nlohmann::json::parse(R"({"this_node": {"wire_identity": {"known": false}}})"), unknown);
  EXPECT_NE(unknown.str().find("cluster keys not known yet"), std::string::npos) << unknown.str();
}

}  // namespace
}  // namespace microseg::cli
