// Observed edges in userspace: the ledger's deltas, the flow store folding
// edges and events, retention, and the history saved across restarts.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "edges/edge_history.h"
#include "edges/edge_ledger.h"
#include "edges/numbering.h"
#include "policy/parser.h"
#include "flows/flow_store.h"

namespace microseg::edges {
namespace {

ms_edge_key key(uint32_t subject, uint32_t peer, uint16_t port, uint8_t dir = MS_DIR_EGRESS,
                uint8_t verdict = MS_VERDICT_AUDIT) {
  ms_edge_key k{};
  k.subject = subject;
  k.peer = peer;
  k.port = htons(port);
  k.direction = dir;
  k.protocol = MS_PROTO_TCP;
  k.verdict = verdict;
  k.reason = MS_REASON_DEFAULT_DENY;
  return k;
}

ms_edge_value val(uint64_t count, uint64_t first = 10, uint64_t last = 20) {
  ms_edge_value v{};
  v.count = count;
  v.first_ns = first;
  v.last_ns = last;
  return v;
}

TEST(EdgeLedger, HandsOutWhatEachEdgeCountedSinceTheLastLook) {
  EdgeLedger l;
  auto d = l.take({{key(256, 257, 80), val(5)}, {key(256, 258, 80), val(1)}});
  ASSERT_EQ(d.size(), 2u);
  EXPECT_EQ(d[0].delta + d[1].delta, 6u);
  d = l.take({{key(256, 257, 80), val(5)}, {key(256, 258, 80), val(4, 10, 30)}});
  ASSERT_EQ(d.size(), 1u) << "an edge that did not move is no delta";
  EXPECT_EQ(d[0].delta, 3u);
  EXPECT_EQ(d[0].lastNs, 30u);
  EXPECT_EQ(l.size(), 2u);
}

TEST(EdgeLedger, ACountBelowTheFoldedOneIsAFreshMap) {
  EdgeLedger l;
  l.take({{key(256, 257, 80), val(100)}});
  auto d = l.take({{key(256, 257, 80), val(3)}});
  ASSERT_EQ(d.size(), 1u);
  EXPECT_EQ(d[0].delta, 3u);
}

// An edge removed from the kernel's map hands out what it counted since the
// last look (its final value), and is forgotten: back, it counts from zero.
TEST(EdgeLedger, ARemovedEdgeHandsOutItsLastCountsAndIsForgotten) {
  EdgeLedger l;
  l.take({{key(256, 257, 80), val(5)}, {key(256, 258, 80), val(2)}});
  auto d = l.takeRemoved({{key(256, 257, 80), val(7, 10, 40)}});
  ASSERT_EQ(d.size(), 1u);
  EXPECT_EQ(d[0].delta, 2u) << "counted between the last look and the removal";
  EXPECT_EQ(d[0].lastNs, 40u);
  EXPECT_EQ(l.size(), 1u);
  d = l.take({{key(256, 257, 80), val(1, 50, 50)}, {key(256, 258, 80), val(2)}});
  ASSERT_EQ(d.size(), 1u);
  EXPECT_EQ(d[0].delta, 1u) << "the edge made anew";
}

TEST(EdgeLedger, RoundTripsThroughJsonAndRejectsBadEntries) {
  EdgeLedger l;
  l.take({{key(256, 257, 80), val(7)}, {key(300, 2, 443, MS_DIR_EGRESS, MS_VERDICT_ALLOW), val(9)}});
  auto back = EdgeLedger::fromJson(l.toJson());
  ASSERT_TRUE(back) << back.error().str();
  EXPECT_TRUE(back->take({{key(256, 257, 80), val(7)}}).empty()) << "7 already folded";
  auto d = back->take({{key(300, 2, 443, MS_DIR_EGRESS, MS_VERDICT_ALLOW), val(10)}});
  ASSERT_EQ(d.size(), 1u);
  EXPECT_EQ(d[0].delta, 1u);
  for (const char* bad : {R"({})", R"([{"key": "zz", "count": 1}])", R"([{"key": 5, "count": 1}])",
                          R"([{"key": "0000000000000000000000000000000000000000", "count": -1}])"}) {
    auto r = EdgeLedger::fromJson(nlohmann::json::parse(bad));
    EXPECT_FALSE(r) << bad;
  }
}

TEST(EdgeFold, EdgesCountAndEventsOnlyDetailAnEdgeRecord) {
  flows::FlowStore s(100);
  ms_event e{};
  e.src_identity = 256;
  e.dst_identity = 257;
  e.dst_port = htons(80);
  e.protocol = MS_PROTO_TCP;
  e.verdict = MS_VERDICT_AUDIT;
  e.reason = MS_REASON_DEFAULT_DENY;
  e.pid = 4242;
  e.in_edge = 1;
  s.add(e, 1500, {}, /*counts=*/false);
  const auto k = flows::edgeFlowKey(key(256, 257, 80));
  s.addEdge(k, 5000, 1000, 9000);
  ASSERT_EQ(s.size(), 1u) << "the event's record and the edge's are one";
  auto r = s.all()[0];
  EXPECT_EQ(r.count, 5000u);
  EXPECT_EQ(r.pid, 4242u);
  EXPECT_EQ(r.firstSeenNs, 1000);
  EXPECT_EQ(r.lastSeenNs, 9000);
  // An ingress edge is oriented like the flow: the peer opened it.
  const auto in = flows::edgeFlowKey(key(257, 256, 80, MS_DIR_INGRESS));
  EXPECT_EQ(in.srcIdentity, 256u);
  EXPECT_EQ(in.dstIdentity, 257u);
  EXPECT_EQ(in.dstPort, 80);
}

TEST(EdgeFold, RetentionDropsRecordsLastSeenBeforeTheCutoff) {
  flows::FlowStore s(100);
  s.addEdge(flows::edgeFlowKey(key(256, 257, 80)), 1, 100, 200);
  s.addEdge(flows::edgeFlowKey(key(256, 257, 81)), 1, 100, 900);
  EXPECT_EQ(s.expire(500), 1u);
  ASSERT_EQ(s.size(), 1u);
  EXPECT_EQ(s.all()[0].key.dstPort, 81);
  EXPECT_FALSE(s.find(1)) << "the expired record's id is gone";
}

class EdgeHistoryFile : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/edge-history-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string dir_;
};

TEST_F(EdgeHistoryFile, RecordsAndLedgerSurviveARestartWithinTheRetention) {
  flows::FlowStore s(100);
  EdgeLedger l;
  for (const auto& d : l.take({{key(256, 257, 80), val(5000, 10, 20)}, {key(256, 257, 81), val(3)}})) {
    s.addEdge(flows::edgeFlowKey(d.key), d.delta, d.key.port == htons(80) ? 1000 : 100, 2000 + ntohs(d.key.port));
  }
  ms_event e{};
  e.src_identity = 256;
  e.dst_identity = 257;
  e.dst_port = htons(80);
  e.protocol = MS_PROTO_TCP;
  e.verdict = MS_VERDICT_AUDIT;
  e.reason = MS_REASON_DEFAULT_DENY;
  e.pid = 77;
  std::strcpy(e.comm, "curl\xff");
  e.dst_addr.a[15] = 1;
  s.add(e, 1500, {}, false);
  const std::string path = dir_ + "/edges.json";
  ASSERT_TRUE(saveHistory(path, s.all(), l));
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));

  auto h = loadHistory(path, /*cutoff=*/0);
  ASSERT_TRUE(h) << h.error().str();
  ASSERT_EQ(h->records.size(), 2u);
  for (const auto& r : h->records) {
    if (r.key.dstPort != 80) {
      EXPECT_EQ(r.count, 3u);
      continue;
    }
    EXPECT_EQ(r.count, 5000u);
    EXPECT_EQ(r.pid, 77u);
    EXPECT_EQ(r.comm, "curl\xef\xbf\xbd") << "any bytes a process names itself are saved (replaced)";
    EXPECT_EQ(r.dstAddr.a[15], 1);
    EXPECT_EQ(r.firstSeenNs, 1000);
    EXPECT_EQ(r.lastSeenNs, 2080);
    EXPECT_EQ(r.key.reason, MS_REASON_DEFAULT_DENY);
  }
  EXPECT_EQ(h->ledger.size(), 2u);
}

TEST_F(EdgeHistoryFile, RestoredRecordsKeepCountsDetailsAndGoOnCounting) {
  flows::FlowStore s(100);
  EdgeLedger l;
  for (const auto& d : l.take({{key(256, 257, 80), val(5000)}})) s.addEdge(flows::edgeFlowKey(d.key), d.delta, 1000, 2000);
  const std::string path = dir_ + "/edges.json";
  ASSERT_TRUE(saveHistory(path, s.all(), l));
  auto h = loadHistory(path, 0);
  ASSERT_TRUE(h) << h.error().str();
  flows::FlowStore t(100);
  t.restore(std::move(h->records));
  // The kernel counted 12 more while the daemon was away.
  for (const auto& d : h->ledger.take({{key(256, 257, 80), val(5012, 10, 30)}})) {
    t.addEdge(flows::edgeFlowKey(d.key), d.delta, 1000, 3000);
  }
  ASSERT_EQ(t.size(), 1u);
  auto r = t.all()[0];
  EXPECT_EQ(r.count, 5012u);
  EXPECT_EQ(r.firstSeenNs, 1000);
  EXPECT_EQ(r.lastSeenNs, 3000);
  EXPECT_EQ(r.key.dstPort, 80);
  EXPECT_EQ(r.key.verdict, MS_VERDICT_AUDIT);
  EXPECT_EQ(r.flushedCount, 5000u) << "restored counts were in the flow log already";
}

TEST_F(EdgeHistoryFile, RetentionAppliesWhenReadBack) {
  flows::FlowStore s(100);
  s.addEdge(flows::edgeFlowKey(key(256, 257, 80)), 1, 100, 200);
  s.addEdge(flows::edgeFlowKey(key(256, 257, 81)), 1, 100, 900);
  const std::string path = dir_ + "/edges.json";
  ASSERT_TRUE(saveHistory(path, s.all(), EdgeLedger{}));
  auto h = loadHistory(path, 500);
  ASSERT_TRUE(h);
  ASSERT_EQ(h->records.size(), 1u);
  EXPECT_EQ(h->records[0].key.dstPort, 81);
}

TEST_F(EdgeHistoryFile, AMissingFileIsEmptyAndABadOneNamesWhatIsWrong) {
  auto h = loadHistory(dir_ + "/none.json", 0);
  ASSERT_TRUE(h);
  EXPECT_TRUE(h->records.empty());
  const std::string path = dir_ + "/edges.json";
  std::ofstream(path) << R"({"version": 1, "records": [{"direction": 0}]})";
  auto bad = loadHistory(path, 0);
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().str().find("records[0]"), std::string::npos) << bad.error().str();
  std::ofstream(path, std::ios::trunc) << R"({"version": 2, "records": []})";
  bad = loadHistory(path, 0);
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().str().find("version"), std::string::npos) << bad.error().str();
  std::ofstream(path, std::ios::trunc) << "{not json";
  EXPECT_FALSE(loadHistory(path, 0));
}

}  // namespace
}  // namespace microseg::edges

namespace microseg::edges {
namespace {

policy::Bundle bundleOf(const std::string& yaml) {
  auto r = policy::parseText(yaml, "t.yaml");
  policy::validateBundle(r.bundle, r.errors);
  for (const auto& e : r.errors) ADD_FAILURE() << e.str();
  return r.bundle;
}

std::string workload(const std::string& name) {
  return "apiVersion: microseg.dev/v1\nkind: Workload\nmetadata: {name: " + name + "}\nspec:\n  cgroups: [" + name +
         "]\n---\n";
}

std::string externalRange(const std::string& name, const std::string& cidr) {
  return "apiVersion: microseg.dev/v1\nkind: External\nmetadata: {name: " + name + "}\nspec:\n  cidrs: [" + cidr +
         "]\n---\n";
}

// Saved with the history and resumed, the numbering gives the label sets
// and ranges it knew their numbers again, although a new workload and a
// new range now sort before them (numbered afresh, they would shift).
TEST_F(EdgeHistoryFile, TheNumberingIsSavedAndGivesTheSameIdentitiesAgain) {
  const auto before = identity::assignIdentities(
      bundleOf(workload("m-web") + workload("z-db") + externalRange("corp-net", "10.0.0.0/8")));
  compiler::RuleRegistry rules;
  const uint32_t rule = rules.idFor("web-out", policy::Direction::Egress, 0);
  const Numbering saved = numberingOf(before, rules);
  const std::string path = dir_ + "/edges.json";
  ASSERT_TRUE(saveHistory(path, {}, EdgeLedger{}, &saved));
  auto back = loadHistory(path, 0);
  ASSERT_TRUE(back) << back.error().str();
  ASSERT_TRUE(back->numbering);

  const auto changed = bundleOf(workload("a-new") + workload("m-web") + workload("z-db") +
                                externalRange("aaa", "192.168.0.0/16") + externalRange("corp-net", "10.0.0.0/8"));
  const auto afresh = identity::assignIdentities(changed);
  EXPECT_NE(afresh.byWorkload.at("m-web"), before.byWorkload.at("m-web")) << "the case this is for";
  const auto resumed = identity::assignIdentities(changed, previousTable(*back->numbering));
  EXPECT_EQ(resumed.byWorkload.at("m-web"), before.byWorkload.at("m-web"));
  EXPECT_EQ(resumed.byWorkload.at("z-db"), before.byWorkload.at("z-db"));
  EXPECT_EQ(resumed.byExternal.at("corp-net"), before.byExternal.at("corp-net"));
  EXPECT_NE(resumed.byWorkload.at("a-new"), before.byWorkload.at("m-web"));
  EXPECT_NE(resumed.byWorkload.at("a-new"), before.byWorkload.at("z-db"));

  compiler::RuleRegistry again;
  ASSERT_TRUE(again.restore(back->numbering->rules, back->numbering->nextRuleId));
  again.idFor("aaa-first", policy::Direction::Egress, 0);
  EXPECT_EQ(again.idFor("web-out", policy::Direction::Egress, 0), rule);

  // A history without one (an older daemon's) reads as none.
  ASSERT_TRUE(saveHistory(path, {}, EdgeLedger{}));
  back = loadHistory(path, 0);
  ASSERT_TRUE(back) << back.error().str();
  EXPECT_FALSE(back->numbering);
}

}  // namespace
}  // namespace microseg::edges
