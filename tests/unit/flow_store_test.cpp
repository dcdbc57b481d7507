#include <arpa/inet.h>
#include <gtest/gtest.h>

#include "flows/flow_store.h"

namespace microseg::flows {
namespace {

ms_event ev(uint32_t src, uint32_t dst, uint16_t port, uint8_t verdict = MS_VERDICT_DENY) {
  ms_event e{};
  e.src_identity = src;
  e.dst_identity = dst;
  e.dst_port = htons(port);
  e.protocol = MS_PROTO_TCP;
  e.verdict = verdict;
  e.reason = MS_REASON_DEFAULT_DENY;
  e.pid = 42;
  return e;
}

TEST(FlowStore, FoldsAFloodIntoOneRecord) {
  FlowStore s(100);
  for (int i = 0; i < 10000; i++) s.add(ev(256, 257, 80), 1000 + i);
  ASSERT_EQ(s.size(), 1u);
  auto all = s.all();
  EXPECT_EQ(all[0].count, 10000u);
  EXPECT_EQ(all[0].firstSeenNs, 1000);
  EXPECT_EQ(all[0].lastSeenNs, 1000 + 9999);
  EXPECT_EQ(s.events(), 10000u);
}

TEST(FlowStore, KeyIncludesVerdictPortAndPeer) {
  FlowStore s(100);
  s.add(ev(256, 257, 80), 1);
  s.add(ev(256, 257, 81), 2);
  s.add(ev(256, 258, 80), 3);
  s.add(ev(256, 257, 80, MS_VERDICT_AUDIT), 4);
  EXPECT_EQ(s.size(), 4u);
}

TEST(FlowStore, UnflushedDeltasAddUpToTheEvents) {
  FlowStore s(100);
  uint64_t logged = 0;
  for (int round = 0; round < 5; round++) {
    for (int i = 0; i < 7; i++) s.add(ev(256, 257, 80), round * 10 + i);
    for (const auto& r : s.takeUnflushed()) logged += r.count - r.flushedCount;
  }
  EXPECT_EQ(logged, 35u);
  EXPECT_TRUE(s.takeUnflushed().empty());
}

TEST(FlowStore, OnlyNewRecordsCanBeFlushedFirst) {
  FlowStore s(100);
  s.add(ev(256, 257, 80), 1);
  ASSERT_EQ(s.takeUnflushed(true).size(), 1u);
  s.add(ev(256, 257, 80), 2);
  EXPECT_TRUE(s.takeUnflushed(true).empty()) << "already logged once: waits for the periodic flush";
  EXPECT_EQ(s.takeUnflushed().size(), 1u);
}

TEST(FlowStore, BoundedWithLeastRecentlySeenEvictedAndCounted) {
  FlowStore s(3);
  std::vector<uint64_t> evictedCounts;
  auto onEvict = [&](const FlowRecord& r) { evictedCounts.push_back(r.count - r.flushedCount); };
  s.add(ev(256, 257, 1), 1, onEvict);
  s.add(ev(256, 257, 1), 2, onEvict);
  s.add(ev(256, 257, 2), 3, onEvict);
  s.add(ev(256, 257, 3), 4, onEvict);
  s.add(ev(256, 257, 1), 5, onEvict);  // refreshes port 1
  s.add(ev(256, 257, 4), 6, onEvict);  // evicts port 2 (least recently seen)
  EXPECT_EQ(s.size(), 3u);
  EXPECT_EQ(s.evicted(), 1u);
  ASSERT_EQ(evictedCounts.size(), 1u);
  EXPECT_EQ(evictedCounts[0], 1u) << "the evicted record's counts are handed over, not lost";
  for (const auto& r : s.all()) EXPECT_NE(r.key.dstPort, 2);
}

TEST(FlowStore, UpdatedAfterSupportsFollowing) {
  FlowStore s(10);
  s.add(ev(256, 257, 1), 1);
  const uint64_t cursor = s.seq();
  EXPECT_TRUE(s.updatedAfter(cursor).empty());
  s.add(ev(256, 257, 2), 2);
  s.add(ev(256, 257, 1), 3);
  auto upd = s.updatedAfter(cursor);
  ASSERT_EQ(upd.size(), 2u);
  EXPECT_EQ(upd[0].key.dstPort, 2);
  EXPECT_EQ(upd[1].key.dstPort, 1);
  EXPECT_TRUE(s.find(upd[0].id).has_value());
  EXPECT_FALSE(s.find(999).has_value());
}

}  // namespace
}  // namespace microseg::flows
