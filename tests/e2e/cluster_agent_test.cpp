// The cluster agent (userspace/cluster/agent.h) of two "nodes" in one test
// process against a real etcd: membership and lease expiry, identity
// agreement and allocation races, endpoints, the pushed policy, an etcd
// outage, the collection of unused identities.
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include "cluster/agent.h"
#include "cluster/policy_store.h"
#include "etcd_harness.h"
#include "harness.h"
#include "policy/cidr.h"

namespace microseg::e2e {
namespace {

using cluster::Agent;
using cluster::AgentOptions;
using cluster::LocalState;

template <typename F>
bool eventually(F&& f, int timeoutMs = 8000) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeoutMs);
  while (std::chrono::steady_clock::now() < end) {
    if (f()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return f();
}

ms_addr addr(const char* text) { return *policy::parseAddress(text); }

class ClusterAgentTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(etcd_.ok());
    char tmpl[] = "/tmp/microseg-agent.XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    trackTempDir(dir_);
  }
  void TearDown() override {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
    untrackTempDir(dir_);
  }
  AgentOptions options(const std::string& node, int ttl = 30) {
    AgentOptions o;
    o.etcd.endpoints = etcd_.endpoints();
    o.etcd.requestTimeout = std::chrono::milliseconds(1000);
    o.prefix = "/test-" + std::to_string(getpid());
    o.nodeName = node;
    o.nodeTtlSeconds = ttl;
    o.dataDir = dir_ + "/" + node;
    o.version = "test";
    return o;
  }
  std::unique_ptr<Agent> start(AgentOptions o) {
    auto a = Agent::start(std::move(o));
    return a ? std::move(*a) : nullptr;
  }
  EtcdCluster etcd_{1};
  std::string dir_;
};

TEST_F(ClusterAgentTest, NodesSeeEachOtherAgreeOnIdentitiesAndShareEndpoints) {
  auto a = start(options("node-a"));
  auto b = start(options("node-b"));
  ASSERT_TRUE(a && b);
  const policy::Labels pay{{"app", "payments"}}, shop{{"app", "shop"}};
  LocalState la;
  la.hostAddresses = {addr("10.50.0.1")};
  la.labelSets = {pay, shop};
  la.netnsAddresses = {{addr("10.60.0.7"), "payments", pay}};
  la.listeners = {{addr("10.50.0.1"), 8443, MS_PROTO_TCP, "shop", shop}};
  a->setLocal(la);
  LocalState lb;
  lb.hostAddresses = {addr("10.50.0.2")};
  lb.labelSets = {shop, pay};  // another order: the same ids
  b->setLocal(lb);

  ASSERT_TRUE(eventually([&] { return b->snapshot()->nodes.size() == 2 && a->snapshot()->nodes.size() == 2; }));
  ASSERT_TRUE(eventually([&] {
    auto sa = a->snapshot(), sb = b->snapshot();
    return sa->identityOf(pay) && sb->identityOf(pay) && sa->identityOf(shop) && sb->identityOf(shop) &&
           sa->nodeIdentity != 0 && sb->nodeIdentity != 0;
  }));
  auto sa = a->snapshot(), sb = b->snapshot();
  EXPECT_EQ(*sa->identityOf(pay), *sb->identityOf(pay));
  EXPECT_EQ(*sa->identityOf(shop), *sb->identityOf(shop));
  EXPECT_NE(*sa->identityOf(pay), *sa->identityOf(shop));
  EXPECT_NE(sa->nodeIdentity, sb->nodeIdentity);
  EXPECT_GE(*sa->identityOf(pay), MS_IDENTITY_FIRST_WORKLOAD);

  // b learns a's endpoints (and a its own are not "remote" to itself).
  ASSERT_TRUE(eventually([&] {
    auto s = b->snapshot();
    return s->addresses.size() == 2 && s->listeners.size() == 1;
  })) << b->snapshot()->addresses.size();
  sb = b->snapshot();
  for (const auto& r : sb->addresses) {
    EXPECT_EQ(r.node, "node-a");
    if (r.kind == "netns") {
      EXPECT_EQ(policy::formatAddress(r.addr), "10.60.0.7");
      EXPECT_EQ(r.identity, *sb->identityOf(pay));
      EXPECT_EQ(r.workload, "payments");
    } else {
      EXPECT_EQ(r.kind, "host");
      EXPECT_EQ(r.identity, a->snapshot()->nodeIdentity);
    }
  }
  EXPECT_EQ(sb->listeners[0].port, 8443);
  EXPECT_EQ(sb->listeners[0].identity, *sb->identityOf(shop));
  EXPECT_TRUE(eventually([&] { return a->snapshot()->addresses.size() == 1; })) << "b's host address only";

  // A withdrawn endpoint vanishes on b.
  la.listeners.clear();
  a->setLocal(la);
  EXPECT_TRUE(eventually([&] { return b->snapshot()->listeners.empty(); }));
}

TEST_F(ClusterAgentTest, ARaceForANewLabelSetEndsWithOneIdentity) {
  std::vector<std::unique_ptr<Agent>> agents;
  for (int i = 0; i < 4; i++) agents.push_back(start(options("n" + std::to_string(i))));
  for (int round = 0; round < 5; round++) {
    const policy::Labels shared{{"race", std::to_string(round)}};
    for (size_t i = 0; i < agents.size(); i++) {
      LocalState l;
      // Every node wants `shared`, and one label set of its own.
      l.labelSets = {shared, {{"own", std::to_string(round) + "-" + std::to_string(i)}}};
      agents[i]->setLocal(l);
    }
    ASSERT_TRUE(eventually([&] {
      for (auto& a : agents) {
        if (a->snapshot()->pendingLabelSets != 0 || !a->snapshot()->identityOf(shared)) return false;
      }
      return true;
    }));
    std::set<uint32_t> sharedIds, all;
    for (size_t i = 0; i < agents.size(); i++) {
      auto s = agents[i]->snapshot();
      sharedIds.insert(*s->identityOf(shared));
      for (const auto& [id, rec] : s->identities) all.insert(id);
    }
    EXPECT_EQ(sharedIds.size(), 1u) << "round " << round;
    // Ids are never given twice: as many ids as label sets.
    auto s = agents[0]->snapshot();
    std::set<std::string> labelSets;
    for (const auto& [id, rec] : s->identities) labelSets.insert(cluster::labelsText(rec.labels));
    EXPECT_EQ(s->identities.size(), labelSets.size());
  }
}

TEST_F(ClusterAgentTest, ANodeThatDiesVanishesAfterItsTtlAndARestartWithinItKeepsItsKeys) {
  auto b = start(options("node-b"));
  auto a = start(options("node-a", 3));
  LocalState la;
  la.hostAddresses = {addr("10.50.0.1")};
  a->setLocal(la);
  ASSERT_TRUE(eventually([&] { return b->snapshot()->addresses.size() == 1; }));
  const uint64_t before = b->snapshot()->endpointsVersion;
  const int64_t lease = a->snapshot()->leaseId;

  // A restart within the TTL: the same lease, no endpoint change seen by b.
  a.reset();
  a = start(options("node-a", 3));
  // Its first pass runs before the daemon tells it anything (a daemon
  // reads its addresses and listeners after the agent started).
  ASSERT_TRUE(eventually([&] { return a->snapshot()->synced && a->snapshot()->leaseId != 0; }));
  a->setLocal(la);
  EXPECT_EQ(a->snapshot()->leaseId, lease);
  std::this_thread::sleep_for(std::chrono::milliseconds(4000));
  EXPECT_EQ(b->snapshot()->addresses.size(), 1u);
  EXPECT_EQ(b->snapshot()->endpointsVersion, before) << "nothing was withdrawn or republished";

  // Dead for good: gone from b's view after the TTL.
  a.reset();
  const auto t0 = std::chrono::steady_clock::now();
  ASSERT_TRUE(eventually([&] { return b->snapshot()->addresses.empty() && b->snapshot()->nodes.size() == 1; }, 10000));
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_GE(s, 1.5);
  EXPECT_LE(s, 7.0);
}

TEST_F(ClusterAgentTest, APushedPolicyIsFetchedAndWrittenForTheDaemon) {
  auto o = options("node-a");
  o.policyFromEtcd = true;
  auto a = start(o);
  a->setLocal({});
  cluster::EtcdOptions eo;
  eo.endpoints = etcd_.endpoints();
  auto c = cluster::EtcdClient::connect(eo);
  ASSERT_TRUE(c);
  std::string big(1300 * 1024, 'x');  // three chunks
  auto prepared = cluster::preparePolicy({{"a.yaml", "kind: A\n"}, {"sub/b.yaml", big}}, "tester@here", 1);
  auto rev = cluster::pushPolicy(**c, cluster::Keys(o.prefix), prepared);
  ASSERT_TRUE(rev) << rev.error().str();
  ASSERT_TRUE(eventually([&] { return a->snapshot()->policyRevision == *rev; }));
  auto s = a->snapshot();
  std::ifstream fa(s->policyDir + "/a.yaml"), fb(s->policyDir + "/sub/b.yaml");
  std::stringstream ta, tb;
  ta << fa.rdbuf();
  tb << fb.rdbuf();
  EXPECT_EQ(ta.str(), "kind: A\n");
  EXPECT_EQ(tb.str(), big);
  // The same set again: the same revision, nothing written.
  auto again = cluster::pushPolicy(**c, cluster::Keys(o.prefix), prepared);
  ASSERT_TRUE(again);
  EXPECT_EQ(*again, *rev);
}

// Two pushes at once: one's garbage collection must not take the chunks the
// other wrote for its manifest to come (they are newer than the manifest
// in force), and a manifest is never written without its chunks.
TEST_F(ClusterAgentTest, AGarbageCollectionLeavesAPushInProgressItsChunks) {
  cluster::EtcdOptions eo;
  eo.endpoints = etcd_.endpoints();
  auto c = cluster::EtcdClient::connect(eo);
  ASSERT_TRUE(c);
  const cluster::Keys keys("/microseg");
  auto first = cluster::preparePolicy({{"a.yaml", "kind: A\n"}}, "one@here", 1);
  ASSERT_TRUE(cluster::pushPolicy(**c, keys, first));
  // The second push has written its chunks, not yet its manifest.
  auto second = cluster::preparePolicy({{"b.yaml", "kind: B\n"}}, "two@here", 2);
  for (const auto& [hash, text] : second.chunks) ASSERT_TRUE((*c)->put(keys.blob(hash), text));
  auto removed = cluster::collectPolicyGarbage(**c, keys);
  ASSERT_TRUE(removed);
  EXPECT_EQ(*removed, 0u) << "the second push's chunk is newer than the manifest in force";
  for (const auto& [hash, text] : second.chunks) {
    auto r = (*c)->get(keys.blob(hash));
    ASSERT_TRUE(r);
    EXPECT_EQ(r->kvs.size(), 1u);
  }
  // Its chunk removed anyway (as by an older collector): the push writes it
  // again before the manifest, which then names only chunks that are there.
  for (const auto& [hash, text] : second.chunks) ASSERT_TRUE((*c)->txn({}, {cluster::TxnOp::remove(keys.blob(hash))}));
  auto rev = cluster::pushPolicy(**c, keys, second);
  ASSERT_TRUE(rev) << rev.error().str();
  auto m = (*c)->get(keys.policy());
  ASSERT_TRUE(m && m->kvs.size() == 1);
  auto manifest = cluster::decodeManifest(m->kvs[0].value);
  ASSERT_TRUE(manifest);
  auto files = cluster::fetchPolicy(**c, keys, *manifest);
  ASSERT_TRUE(files) << files.error().str();
  ASSERT_EQ(files->size(), 1u);
  EXPECT_EQ((*files)[0].text, "kind: B\n");
  // Now the first set's chunk is garbage.
  auto gc = cluster::collectPolicyGarbage(**c, keys);
  ASSERT_TRUE(gc);
  EXPECT_EQ(*gc, 1u);
}

TEST_F(ClusterAgentTest, WithEtcdDownWhatIsKnownStaysAndNewLabelSetsWait) {
  auto a = start(options("node-a"));
  const policy::Labels known{{"app", "known"}}, later{{"app", "later"}};
  LocalState l;
  l.labelSets = {known};
  a->setLocal(l);
  ASSERT_TRUE(eventually([&] { return a->snapshot()->identityOf(known).has_value(); }));
  const uint32_t id = *a->snapshot()->identityOf(known);
  etcd_.killAll();
  l.labelSets = {known, later};
  a->setLocal(l);
  ASSERT_TRUE(eventually([&] { return !a->snapshot()->connected; }));
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  auto s = a->snapshot();
  EXPECT_EQ(s->identityOf(known), id) << "still known";
  EXPECT_FALSE(s->identityOf(later)) << "no number without the store";
  EXPECT_EQ(s->pendingLabelSets, 1u);
  // A restart while etcd is down: known from the data dir's cache.
  a.reset();
  a = start(options("node-a"));
  a->setLocal(l);
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  EXPECT_EQ(a->snapshot()->identityOf(known), id);
  ASSERT_TRUE(etcd_.startAll());
  ASSERT_TRUE(eventually([&] { return a->snapshot()->identityOf(later).has_value(); }, 15000));
  EXPECT_EQ(a->snapshot()->identityOf(known), id);
  EXPECT_EQ(a->snapshot()->pendingLabelSets, 0u);
}

TEST_F(ClusterAgentTest, AnIdentityNobodyUsesIsCollected) {
  auto o = options("node-a");
  o.identityGcGraceSeconds = 1;
  auto a = start(o);
  const policy::Labels gone{{"app", "gone"}};
  LocalState l;
  l.labelSets = {gone};
  a->setLocal(l);
  ASSERT_TRUE(eventually([&] { return a->snapshot()->identityOf(gone).has_value(); }));
  l.labelSets = {};
  a->setLocal(l);
  EXPECT_TRUE(eventually([&] { return !a->snapshot()->identityOf(gone).has_value(); }, 15000));
}

}  // namespace
}  // namespace microseg::e2e
