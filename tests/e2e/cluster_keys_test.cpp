// The cluster keys of identity on the wire, from etcd to the kernel, with a
// real etcd: the first key made once however many nodes race for it, the
// agents' list/watch and cache (a restart without etcd keeps the keys),
// records that are not keys ignored, `microseg cluster rotate-key` (one
// guarded transaction: concurrent runs never leave two signing keys), and
// two daemons that load the same keys and move to a rotated one together.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <future>
#include <thread>

#include "cluster/agent.h"
#include "cluster/etcd_client.h"
#include "cluster/records.h"
#include "cluster/wire_keys.h"
#include "etcd_harness.h"
#include "harness.h"
#include "policies.h"

namespace microseg::e2e {
namespace {

using nlohmann::json;

bool eventually(const std::function<bool()>& f, int timeoutMs = 8000) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeoutMs);
  while (std::chrono::steady_clock::now() < end) {
    if (f()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return f();
}

class ClusterKeys : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(etcd_.ok()) << etcd_.log(0);
    char tmpl[] = "/tmp/microseg-keys.XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    trackTempDir(dir_);
    cluster::EtcdOptions o;
    o.endpoints = etcd_.endpoints();
    auto c = cluster::EtcdClient::connect(o);
    ASSERT_TRUE(c) << c.error().str();
    etcd_client_ = std::move(*c);
  }
  void TearDown() override {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
    untrackTempDir(dir_);
  }
  cluster::AgentOptions options(const std::string& node) {
    cluster::AgentOptions o;
    o.etcd.endpoints = etcd_.endpoints();
    o.etcd.requestTimeout = std::chrono::milliseconds(1000);
    o.prefix = prefix_;
    o.nodeName = node;
    o.dataDir = dir_ + "/" + node;
    o.version = "test";
    return o;
  }
  std::unique_ptr<cluster::Agent> agent(const std::string& node) {
    auto a = cluster::Agent::start(options(node));
    return a ? std::move(*a) : nullptr;
  }
  // Every record under the prefix's wire-keys/, as stored.
  std::map<std::string, std::string> stored() {
    std::map<std::string, std::string> out;
    auto r = etcd_client_->get(cluster::Keys(prefix_).wireKeys(), true);
    if (!r) ADD_FAILURE() << r.error().str();
    if (r) {
      for (const auto& kv : r->kvs) out[kv.key] = kv.value;
    }
    return out;
  }

  EtcdCluster etcd_{1};
  std::unique_ptr<cluster::EtcdClient> etcd_client_;
  std::string dir_;
  std::string prefix_ = "/keys-" + std::to_string(getpid());
};

TEST_F(ClusterKeys, NodesRacingForTheFirstKeyEndWithOne) {
  std::vector<std::unique_ptr<cluster::Agent>> agents;
  for (const char* n : {"n1", "n2", "n3", "n4"}) agents.push_back(agent(n));
  for (const auto& a : agents) ASSERT_TRUE(a);
  ASSERT_TRUE(eventually([&] {
    for (const auto& a : agents) {
      if (!a->snapshot()->wireKeysKnown) return false;
    }
    return true;
  }));
  const auto s = stored();
  ASSERT_EQ(s.size(), 1u);
  const std::string name = cluster::Keys(prefix_).wireKey(1);
  ASSERT_TRUE(s.count(name));
  auto rec = cluster::decodeWireKey(s.at(name), 1);
  ASSERT_TRUE(rec) << "not a key record";
  EXPECT_EQ(rec->activateAt, rec->created);
  EXPECT_EQ(rec->retireAt, 0);
  for (const auto& a : agents) {
    const auto snap = a->snapshot();
    ASSERT_EQ(snap->wireKeys.size(), 1u);
    EXPECT_EQ(snap->wireKeys.at(1), *rec) << "every node has the one key the store kept";
  }
}

TEST_F(ClusterKeys, WatchedCachedAndRecordsThatAreNotKeysIgnored) {
  auto a = agent("n1");
  ASSERT_TRUE(a);
  ASSERT_TRUE(eventually([&] { return a->snapshot()->wireKeysKnown; }));
  const cluster::Keys keys(prefix_);
  // A second key written by hand (as rotate-key would), and garbage beside it.
  cluster::WireKeyRecord two{2, {}, 100, 200, 0};
  two.key.fill(0x42);
  ASSERT_TRUE(etcd_client_->put(keys.wireKey(2), cluster::encode(two)));
  ASSERT_TRUE(etcd_client_->put(keys.wireKey(3), R"({"id":3,"key":"00","created":1,"activate_at":1,"retire_at":0})"));
  ASSERT_TRUE(eventually([&] {
    auto s = a->snapshot();
    return s->wireKeys.size() == 2 && s->wireKeysIgnored == 1;
  })) << "watched: key 2 taken, key 3 ignored";
  EXPECT_EQ(a->snapshot()->wireKeys.at(2), two);
  EXPECT_FALSE(a->snapshot()->wireKeys.count(3));
  // A good key overwritten with garbage is no key at all (never the old one half-kept).
  ASSERT_TRUE(etcd_client_->put(keys.wireKey(2), "{}"));
  ASSERT_TRUE(eventually([&] { return a->snapshot()->wireKeys.size() == 1 && a->snapshot()->wireKeysIgnored == 2; }));
  ASSERT_TRUE(etcd_client_->put(keys.wireKey(2), cluster::encode(two)));
  ASSERT_TRUE(eventually([&] { return a->snapshot()->wireKeys.size() == 2; }));
  const auto known = a->snapshot()->wireKeys;
  a.reset();

  // The cache: the data dir's, 0600 (the keys are secret).
  struct stat st{};
  ASSERT_EQ(stat((dir_ + "/n1/cluster-wire-keys.json").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  // A restart while etcd is away: the same keys, known at once.
  etcd_.killAll();
  auto again = agent("n1");
  ASSERT_TRUE(again);
  const auto s = again->snapshot();
  EXPECT_TRUE(s->wireKeysKnown);
  EXPECT_EQ(s->wireKeys, known);
  EXPECT_FALSE(s->connected);
  // And a node that never knew the keys does not pretend to.
  auto fresh = agent("n2");
  ASSERT_TRUE(fresh);
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  EXPECT_FALSE(fresh->snapshot()->wireKeysKnown);
  EXPECT_TRUE(etcd_.startAll());
}

class ClusterKeysDaemons : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(etcd_.ok()) << etcd_.log(0); }
  void TearDown() override {
    if (!HasFailure()) return;
    for (auto* d : {a_.get(), b_.get()}) {
      if (d != nullptr) std::cerr << "---- microsegd log ----\n" << d->log().substr(0, 30000) << "\n";
    }
  }
  std::unique_ptr<Daemon> node(const std::string& name, CgroupTree& tree, const Netns& ns) {
    tree.create("client-a");
    DaemonOptions o;
    o.netnsPath = ns.path();
    o.extraArgs = {"--etcd-endpoints", etcd_.unixEndpointList(), "--node-name", name};
    return std::make_unique<Daemon>(tree, workloads(), "monitor", o);
  }
  static json wire(const Daemon& d) {
    auto r = d.request("cluster.status");
    return r ? (*r)["this_node"]["wire_identity"] : json();
  }
  static bool signsWith(const Daemon& d, int id, const std::vector<int>& accepted) {
    const json w = wire(d);
    return w.is_object() && w["signing_key_id"] == id && w["accepted_key_ids"] == json(accepted);
  }

  EtcdCluster etcd_{1};
  Netns hostA_, hostB_;
  CgroupTree treeA_, treeB_;
  std::unique_ptr<Daemon> a_, b_;
};

TEST_F(ClusterKeysDaemons, BothLoadTheSameKeyAndRotateKeyMovesBothToTheNewOne) {
  a_ = node("a", treeA_, hostA_);
  b_ = node("b", treeB_, hostB_);
  ASSERT_TRUE(a_->started()) << a_->log();
  ASSERT_TRUE(b_->started()) << b_->log();
  ASSERT_TRUE(eventually([&] { return signsWith(*a_, 1, {1}) && signsWith(*b_, 1, {1}); }))
      << wire(*a_).dump() << "\n" << wire(*b_).dump();

  auto r = a_->cli({"cluster", "rotate-key", "--activate-after", "3s", "--grace", "1m", "-o", "json"});
  ASSERT_EQ(r.rc, 0) << r.err;
  const json out = json::parse(r.out);
  EXPECT_EQ(out["new_key_id"], 2);
  ASSERT_EQ(out["retiring"].size(), 1u);
  EXPECT_EQ(out["retiring"][0]["id"], 1);
  EXPECT_EQ(out["retiring"][0]["retire_at"], out["activate_at"].get<int64_t>() + 60);
  // Both accept key 2 before either signs with it...
  ASSERT_TRUE(eventually([&] { return signsWith(*a_, 1, {1, 2}) && signsWith(*b_, 1, {1, 2}); }, 2500))
      << wire(*a_).dump() << "\n" << wire(*b_).dump();
  // ...and both sign with it once it is active (within a second of its time).
  ASSERT_TRUE(eventually([&] { return signsWith(*a_, 2, {1, 2}) && signsWith(*b_, 2, {1, 2}); }, 6000))
      << wire(*a_).dump() << "\n" << wire(*b_).dump();
  const json w = wire(*a_);
  EXPECT_EQ(w["enabled"], true);
  ASSERT_EQ(w["keys"].size(), 2u);
  EXPECT_EQ(w["keys"][1]["state"], "signing");

  // Key bytes appear nowhere: not in status, the CLI's output or the logs.
  cluster::EtcdOptions eo;
  eo.endpoints = etcd_.endpoints();
  auto c = cluster::EtcdClient::connect(eo);
  ASSERT_TRUE(c);
  auto keys = (*c)->get(cluster::Keys("/microseg").wireKeys(), true);
  ASSERT_TRUE(keys);
  ASSERT_EQ(keys->kvs.size(), 2u);
  for (const auto& kv : keys->kvs) {
    const std::string hex = json::parse(kv.value)["key"];
    for (const std::string& text : {a_->status()->dump(), a_->request("cluster.status")->dump(), r.out, r.err,
                                    a_->log(), b_->log()}) {
      EXPECT_EQ(text.find(hex), std::string::npos) << "key " << kv.key << " shown";
    }
  }

  // Concurrent rotations: each succeeds or says so; one signing key is left.
  std::vector<std::future<CliResult>> runs;
  for (int i = 0; i < 4; i++) {
    runs.push_back(std::async(std::launch::async, [&] { return b_->cli({"cluster", "rotate-key"}); }));
  }
  int ok = 0;
  for (auto& f : runs) {
    const CliResult x = f.get();
    if (x.rc == 0) {
      ok++;
    } else {
      EXPECT_EQ(x.rc, 1) << x.err;
      EXPECT_NE(x.err.find("rotated concurrently, run again"), std::string::npos) << x.err;
    }
  }
  EXPECT_GE(ok, 1);
  RecordProperty("concurrent_rotations_succeeded", ok);
  auto after = (*c)->get(cluster::Keys("/microseg").wireKeys(), true);
  ASSERT_TRUE(after);
  EXPECT_EQ(after->kvs.size(), 2u + static_cast<size_t>(ok));
  int unretired = 0;
  for (const auto& kv : after->kvs) unretired += json::parse(kv.value)["retire_at"] == 0;
  EXPECT_EQ(unretired, 1) << "exactly one key without a retirement time";

  auto bad = a_->cli({"cluster", "rotate-key", "--grace", "10x"});
  EXPECT_EQ(bad.rc, 2);
  EXPECT_NE(bad.err.find("--grace: '10x' is not a duration"), std::string::npos) << bad.err;
}

TEST_F(ClusterKeysDaemons, WireIdentityOffSignsNothingButAcceptsTheKeys) {
  a_ = node("a", treeA_, hostA_);
  DaemonOptions o;
  o.netnsPath = hostB_.path();
  o.extraArgs = {"--etcd-endpoints", etcd_.unixEndpointList(), "--node-name", "b", "--wire-identity", "off"};
  treeB_.create("client-a");
  b_ = std::make_unique<Daemon>(treeB_, workloads(), "monitor", o);
  ASSERT_TRUE(a_->started()) << a_->log();
  ASSERT_TRUE(b_->started()) << b_->log();
  ASSERT_TRUE(eventually([&] { return signsWith(*a_, 1, {1}) && signsWith(*b_, 0, {1}); }))
      << wire(*a_).dump() << "\n" << wire(*b_).dump();
  EXPECT_EQ(wire(*b_)["enabled"], false);
}

}  // namespace
}  // namespace microseg::e2e
