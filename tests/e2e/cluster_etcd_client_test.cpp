// The etcd client (userspace/cluster/etcd_client.h) against a real etcd:
// transactions, leases, watches across reconnects and member failures.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <thread>

#include "cluster/etcd_client.h"
#include "etcd_harness.h"

namespace microseg::e2e {
namespace {

using cluster::Compare;
using cluster::EtcdClient;
using cluster::TxnOp;

std::unique_ptr<EtcdClient> connectTo(const EtcdCluster& etcd, int timeoutMs = 1000) {
  cluster::EtcdOptions o;
  o.endpoints = etcd.endpoints();
  o.requestTimeout = std::chrono::milliseconds(timeoutMs);
  auto c = EtcdClient::connect(o);
  return c ? std::move(*c) : nullptr;
}

template <typename F>
bool eventually(F&& f, int timeoutMs = 5000) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeoutMs);
  while (std::chrono::steady_clock::now() < end) {
    if (f()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return f();
}

TEST(EtcdClientTest, KeysPrefixesAndCreateIfAbsentTransactions) {
  EtcdCluster etcd(1);
  ASSERT_TRUE(etcd.ok());
  auto c = connectTo(etcd);
  ASSERT_TRUE(c);
  ASSERT_TRUE(c->put("/t/a", "1"));
  ASSERT_TRUE(c->put("/t/b", "2"));
  ASSERT_TRUE(c->put("/u/c", "3"));
  auto r = c->get("/t/", true);
  ASSERT_TRUE(r) << r.error().str();
  ASSERT_EQ(r->kvs.size(), 2u);
  EXPECT_EQ(r->kvs[0].key, "/t/a");
  EXPECT_EQ(r->kvs[1].value, "2");

  // Create-if-absent: the first wins, the second reads the winner.
  auto first = c->txn({Compare::absent("/t/id")}, {TxnOp::put("/t/id", "mine")}, {TxnOp::get("/t/id")});
  ASSERT_TRUE(first);
  EXPECT_TRUE(first->succeeded);
  auto second = c->txn({Compare::absent("/t/id")}, {TxnOp::put("/t/id", "theirs")}, {TxnOp::get("/t/id")});
  ASSERT_TRUE(second);
  EXPECT_FALSE(second->succeeded);
  ASSERT_EQ(second->ranges.size(), 1u);
  ASSERT_EQ(second->ranges[0].kvs.size(), 1u);
  EXPECT_EQ(second->ranges[0].kvs[0].value, "mine");

  ASSERT_TRUE(c->remove("/t/", true));
  EXPECT_TRUE(c->get("/t/", true)->kvs.empty());
  EXPECT_EQ(c->get("/u/c")->kvs.size(), 1u);
}

TEST(EtcdClientTest, AKeptLeaseKeepsItsKeysAndAnAbandonedOneExpires) {
  EtcdCluster etcd(1);
  ASSERT_TRUE(etcd.ok());
  auto c = connectTo(etcd);
  auto lease = c->grantLease(2);
  ASSERT_TRUE(lease) << lease.error().str();
  ASSERT_TRUE(c->put("/n/kept", "x", *lease));
  std::atomic<bool> expired{false};
  {
    auto keeper = c->keepAlive(*lease, 2, [&] { expired = true; });
    std::this_thread::sleep_for(std::chrono::milliseconds(3500));
    EXPECT_EQ(c->get("/n/kept")->kvs.size(), 1u) << "renewed past its TTL";
  }
  EXPECT_FALSE(expired);
  EXPECT_TRUE(eventually([&] { return c->get("/n/kept")->kvs.empty(); }, 4000)) << "gone after the TTL";
  auto left = c->leaseRemaining(*lease);
  ASSERT_TRUE(left);
  EXPECT_EQ(*left, -1);
}

TEST(EtcdClientTest, AWatchDeliversEveryRevisionOnceAcrossAMemberKill) {
  EtcdCluster etcd(3);
  ASSERT_TRUE(etcd.ok());
  auto c = connectTo(etcd);
  ASSERT_TRUE(c);
  auto start = c->get("/w/", true);
  ASSERT_TRUE(start);
  std::mutex mu;
  std::map<std::string, std::string> seen;
  int64_t last = 0;
  bool ordered = true;
  auto w = c->watch("/w/", start->revision + 1, [&](const cluster::WatchBatch& b) {
    std::lock_guard<std::mutex> lock(mu);
    for (const auto& e : b.events) {
      if (e.kv.modRevision <= last) ordered = false;
      last = e.kv.modRevision;
      if (e.deleted) {
        seen.erase(e.kv.key);
      } else {
        seen[e.kv.key] = e.kv.value;
      }
    }
  }, nullptr);
  for (int i = 0; i < 50; i++) ASSERT_TRUE(c->put("/w/k" + std::to_string(i), std::to_string(i)));
  // The member the watch (and the client) talks to goes away.
  etcd.kill(0);
  for (int i = 50; i < 100; i++) {
    auto r = c->put("/w/k" + std::to_string(i), std::to_string(i));
    ASSERT_TRUE(r) << r.error().str();
  }
  ASSERT_TRUE(c->remove("/w/k0"));
  EXPECT_TRUE(eventually([&] {
    std::lock_guard<std::mutex> lock(mu);
    return seen.size() == 99 && !seen.count("/w/k0");
  }, 10000));
  std::lock_guard<std::mutex> lock(mu);
  EXPECT_TRUE(ordered) << "each revision once, in order";
  EXPECT_EQ(seen["/w/k99"], "99");
}

TEST(EtcdClientTest, AWatchFromACompactedRevisionSaysSo) {
  EtcdCluster etcd(1);
  ASSERT_TRUE(etcd.ok());
  auto c = connectTo(etcd);
  int64_t rev = 0;
  for (int i = 0; i < 5; i++) rev = c->put("/c/k", std::to_string(i)).value();
  // Compact through etcdctl (the client has no need for it).
  const std::string cmd = "/usr/bin/etcdctl --endpoints=" + etcd.endpointList() + " compact " +
                          std::to_string(rev) + " >/dev/null 2>&1";
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  std::atomic<int64_t> compacted{0};
  auto w = c->watch("/c/", 2, nullptr, [&](int64_t r) { compacted = r; });
  EXPECT_TRUE(eventually([&] { return compacted.load() != 0; }));
  EXPECT_EQ(compacted.load(), rev);
}

}  // namespace
}  // namespace microseg::e2e

namespace microseg::e2e {
namespace {

// A client made while etcd is down (a daemon started before its store)
// gets through within a few seconds of etcd coming up: gRPC alone took 15 s
// or more to reconnect a channel that had met a refused connection.
TEST(EtcdClientTest, AClientMadeWhileEtcdIsDownGetsThroughOnceItIsUp) {
  EtcdCluster etcd(1);
  ASSERT_TRUE(etcd.ok());
  etcd.killAll();
  auto c = connectTo(etcd, 500);
  ASSERT_TRUE(c);
  EXPECT_FALSE(c->put("/d/k", "v")) << "nobody to answer";
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  ASSERT_TRUE(etcd.startAll());
  const auto up = std::chrono::steady_clock::now();
  EXPECT_TRUE(eventually([&] { return c->put("/d/k", "v").ok(); }, 5000));
  const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - up).count();
  EXPECT_LT(ms, 4000.0);
  std::cerr << "first put " << ms << " ms after etcd started\n";
}

}  // namespace
}  // namespace microseg::e2e
