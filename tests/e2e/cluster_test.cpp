// Cluster mode end to end (README "Cluster"): a real etcd, and two "hosts",
// each a network namespace on a bridge with a cgroup subtree and a microsegd
// of its own (--node-name a / b), sharing one policy pushed to etcd.
//
//   hub netns: br0 ── hostA (10.66.0.1)   daemon a: client-b, client-c
//                 ├── ctrA  (10.66.0.11)  client-a's own netns (host a's)
//                 └── hostB (10.66.0.2)   daemon b: server (host netns)
//
// The policy: client-a and client-b may call server on TCP/P; server admits
// only client-a. client-c may call nothing. So, across hosts:
//  - client-a -> server: allowed by a's egress (b published the listener
//    10.66.0.2:P as server's) and by b's ingress (a published 10.66.0.11 as
//    client-a's);
//  - client-c -> server: refused at connect() on a (EPERM);
//  - client-b -> server: allowed by a, its SYN dropped by b (it shares host
//    a's address, and its SYN says it is client-b, which server does not
//    admit; wire_identity_test.cpp has more of the wire identity).
#include <map>

#include "cluster_fixture.h"

namespace microseg::e2e {
namespace {

using nlohmann::json;

TEST_F(Cluster, AcrossHostsByWorkloadNameBothSidesJudge) {
  startBoth();
  Child srv = tcpServer(server_, AF_INET, "0.0.0.0", port_, hostB_.path());
  ASSERT_TRUE(srv.ready());
  // client-a lives in a netns of its own (its address is its identity).
  Child ctr = tcpServer(clientA_, AF_INET, kCtrA, port_ + 1, ctrA_.path());
  ASSERT_TRUE(ctr.ready());
  ASSERT_TRUE(converged()) << "a: " << a_->status()->dump() << "\nb: " << b_->status()->dump();

  EXPECT_EQ(connectFrom(clientA_, ctrA_), 0) << "client-a may call server on b";
  EXPECT_EQ(connectFrom(clientC_, hostA_), EPERM) << "client-c: refused at connect() on a";
  EXPECT_EQ(connectFrom(clientB_, hostA_), ETIMEDOUT) << "client-b: a lets it out, b drops its SYN";

  // b's ingress named the caller by its fleet identity, stated on its SYN.
  auto dropped = b_->waitFlow([&](const json& f) {
    return f["direction"] == "ingress" && f["verdict"] == "deny" && f["dst"]["port"] == port_;
  });
  ASSERT_TRUE(dropped) << "b's flow log has no ingress deny";
  EXPECT_EQ((*dropped)["src"]["workload"], "client-b") << (*dropped).dump();
  EXPECT_EQ((*dropped)["peer_via"], "wire") << (*dropped).dump();
  EXPECT_EQ((*dropped)["dst"]["workload"], "server");
  auto refused = a_->waitFlow([&](const json& f) {
    return f["direction"] == "egress" && f["verdict"] == "deny" && f["src"]["workload"] == "client-c";
  });
  ASSERT_TRUE(refused) << "a's flow log has no egress deny of client-c";
  EXPECT_EQ((*refused)["dst"]["workload"], "server") << "a names b's listener by its workload";

  // explain on a names the remote peer by workload and node.
  auto ex = a_->request("explain", {{"from", "client-c"}, {"to", "server"}, {"port", port_}});
  ASSERT_TRUE(ex) << a_->log();
  EXPECT_EQ((*ex)["to"]["workload"], "server");
  EXPECT_EQ((*ex)["to"]["remote_nodes"], json::array({"b"})) << ex->dump();
  EXPECT_EQ((*ex)["verdict"], "deny");

  // One identity per label set across the fleet.
  auto ids = [](const Daemon& d) {
    std::map<std::string, uint32_t> out;
    auto s = d.status();
    if (!s) return out;
    for (const auto& w : (*s)["workloads"]) out[w["name"]] = w["identity"];
    return out;
  };
  const auto ia = ids(*a_), ib = ids(*b_);
  for (const char* w : {"client-a", "client-b", "client-c", "server"}) {
    ASSERT_TRUE(ia.count(w) && ib.count(w)) << w;
    EXPECT_EQ(ia.at(w), ib.at(w)) << w << " has one identity on every node";
    EXPECT_GE(ia.at(w), 256u) << w;
  }
  const json cs = clusterStatus(*a_);
  ASSERT_TRUE(cs.is_object());
  EXPECT_EQ(cs["nodes"].size(), 2u) << cs.dump();
}

TEST_F(Cluster, APushReachesEveryNodeAndARejectedOneKeepsTheGeneration) {
  startBoth();
  Child srv = tcpServer(server_, AF_INET, "0.0.0.0", port_, hostB_.path());
  Child ctr = tcpServer(clientA_, AF_INET, kCtrA, port_ + 1, ctrA_.path());
  ASSERT_TRUE(srv.ready() && ctr.ready());
  ASSERT_TRUE(converged());
  const std::string late = treeA_.create("late");

  // A new workload, pushed: both nodes apply the revision (the same label
  // set allocated by both at once: one identity), and it works across.
  const int64_t rev = push(fleetPolicy(port_, "late"));
  ASSERT_GT(rev, 0);
  auto applied = [&](const Daemon& d, int64_t r) {
    return clusterStatus(d)["this_node"]["policy_revision"] == r;
  };
  ASSERT_TRUE(eventually([&] { return applied(*a_, rev) && applied(*b_, rev); }, 10000))
      << clusterStatus(*a_).dump() << "\n" << clusterStatus(*b_).dump();
  EXPECT_EQ(connectFrom(late, hostA_), 0) << "late is in host a's netns: b knows it by its SYN's identity";
  auto idOf = [](const Daemon& d, const std::string& w) -> json {
    auto s = d.status();
    if (!s) return nullptr;
    for (const auto& x : (*s)["workloads"]) {
      if (x["name"] == w) return x["identity"];
    }
    return nullptr;
  };
  EXPECT_TRUE(idOf(*a_, "late").is_number()) << a_->status()->dump();
  EXPECT_EQ(idOf(*a_, "late"), idOf(*b_, "late")) << "both nodes allocated late's label set at once: one identity";
  const json nodes = clusterStatus(*b_)["nodes"];
  for (const auto& n : nodes) EXPECT_EQ(n["policy_revision"], rev) << n.dump();

  // A set that does not compile (pushed past the CLI's validation): every
  // node reports it rejected and keeps enforcing the previous one.
  const int64_t bad = push("apiVersion: microseg.dev/v1\nkind: Policy\nmetadata: {name: x}\nspec: {selector: {identity: nobody}}\n");
  ASSERT_GT(bad, rev);
  ASSERT_TRUE(eventually(
      [&] {
        return clusterStatus(*a_)["this_node"]["policy_rejected_revision"] == bad &&
               clusterStatus(*b_)["this_node"]["policy_rejected_revision"] == bad;
      },
      10000))
      << clusterStatus(*a_).dump();
  EXPECT_NE(clusterStatus(*a_)["this_node"]["policy_error"], "");
  EXPECT_EQ(clusterStatus(*a_)["this_node"]["policy_revision"], rev);
  EXPECT_EQ(connectFrom(clientA_, ctrA_), 0) << "the previous generation still allows client-a";
  EXPECT_EQ(connectFrom(clientC_, hostA_), EPERM) << "and still refuses client-c";
}

TEST_F(Cluster, ANodeRestartedWithinItsTtlChangesNothingAndADeadOneExpires) {
  startBoth();
  Child srv = tcpServer(server_, AF_INET, "0.0.0.0", port_, hostB_.path());
  Child ctr = tcpServer(clientA_, AF_INET, kCtrA, port_ + 1, ctrA_.path());
  ASSERT_TRUE(srv.ready() && ctr.ready());
  ASSERT_TRUE(converged());

  // b crashes and comes back within its lease: a keeps b's endpoints, b's
  // kernel keeps judging from its pins meanwhile.
  b_->crash();
  EXPECT_EQ(connectFrom(clientA_, ctrA_), 0) << "while b is down";
  EXPECT_EQ(connectFrom(clientB_, hostA_), ETIMEDOUT) << "while b is down, b's pins still drop client-b";
  ASSERT_TRUE(b_->start()) << b_->log();
  EXPECT_EQ(connectFrom(clientA_, ctrA_), 0) << "after b's restart";
  EXPECT_EQ(connectFrom(clientC_, hostA_), EPERM);
  EXPECT_EQ(clusterStatus(*a_)["nodes"].size(), 2u);

  // b dies for good: after its TTL, a forgets b's listener (10.66.0.2 is
  // no workload's any more: client-a's egress refuses it), and b's kernel
  // still drops client-b's SYN from its pins.
  b_->crash();
  ASSERT_TRUE(eventually([&] { return remote(*a_, "b", "server").is_null(); }, (kTtl + 10) * 1000))
      << a_->status()->dump();
  EXPECT_EQ(clusterStatus(*a_)["nodes"].size(), 1u);
  EXPECT_EQ(connectFrom(clientA_, ctrA_), EPERM) << "b's listener expired with b";
  EXPECT_EQ(connectFrom(clientB_, hostA_), EPERM);
}

TEST_F(Cluster, WithEtcdStoppedEnforcementStaysAndANewLabelSetWaits) {
  // a reads its policy from files here (so that it can change while etcd is
  // away); b from etcd.
  a_ = node("a", treeA_, hostA_, false, fleetPolicy(port_));
  b_ = node("b", treeB_, hostB_);
  ASSERT_TRUE(a_->started() && b_->started()) << a_->log() << b_->log();
  Child srv = tcpServer(server_, AF_INET, "0.0.0.0", port_, hostB_.path());
  Child ctr = tcpServer(clientA_, AF_INET, kCtrA, port_ + 1, ctrA_.path());
  ASSERT_TRUE(srv.ready() && ctr.ready());
  ASSERT_TRUE(converged());

  etcd_.killAll();
  EXPECT_EQ(connectFrom(clientA_, ctrA_), 0) << "etcd down: what was known stays in force";
  EXPECT_EQ(connectFrom(clientC_, hostA_), EPERM);

  // A workload with a label set the fleet has no number for: pending, and
  // its sockets refused (fail closed), until etcd is back.
  const std::string late = treeA_.create("late");
  a_->writePolicy("policy.yaml", fleetPolicy(port_, "late"));
  ASSERT_TRUE(eventually(
      [&] {
        auto s = a_->status();
        return s && has((*s)["cluster"]["pending_workloads"], "late");
      },
      10000))
      << a_->status()->dump();
  EXPECT_EQ(connectFrom(late, hostA_), EPERM) << "a pending workload is refused";

  ASSERT_TRUE(etcd_.startAll());
  ASSERT_TRUE(eventually(
      [&] {
        auto s = a_->status();
        return s && (*s)["cluster"]["pending_workloads"].empty();
      },
      20000))
      << a_->status()->dump();
  // b learns late's identity too (its policy from etcd does not name late:
  // it is a peer only there) and a's egress lets late out; b's server does
  // not admit it (b's policy is the pushed one): dropped at b.
  EXPECT_EQ(connectFrom(late, hostA_), ETIMEDOUT);
  EXPECT_EQ(connectFrom(clientA_, ctrA_), 0) << "after etcd's return";
}

// Three etcd members, one killed: the fleet goes on (a push reaches both).
TEST_F(Cluster, OneEtcdMemberOfThreeKilledTheFleetGoesOn) {
  EtcdCluster three(3);
  ASSERT_TRUE(three.ok());
  auto pushTo = [&](const std::string& yaml) -> int64_t {
    cluster::EtcdOptions eo;
    eo.endpoints = three.endpoints();
    auto c = cluster::EtcdClient::connect(eo);
    if (!c) return 0;
    auto rev = cluster::pushPolicy(**c, cluster::Keys("/microseg"),
                                   cluster::preparePolicy({{"fleet.yaml", yaml}}, "e2e@test", time(nullptr)));
    return rev ? *rev : 0;
  };
  ASSERT_GT(pushTo(fleetPolicy(port_)), 0);
  auto start = [&](const std::string& name, const CgroupTree& tree, const Netns& ns) {
    DaemonOptions d;
    d.netnsPath = ns.path();
    d.policyFromEtcd = true;
    d.extraArgs = {"--etcd-endpoints", three.unixEndpointList(), "--node-name", name, "--node-ttl", "8"};
    return std::make_unique<Daemon>(tree, "", "enforce", d);
  };
  a_ = start("a", treeA_, hostA_);
  b_ = start("b", treeB_, hostB_);
  ASSERT_TRUE(a_->started() && b_->started());
  Child srv = tcpServer(server_, AF_INET, "0.0.0.0", port_, hostB_.path());
  Child ctr = tcpServer(clientA_, AF_INET, kCtrA, port_ + 1, ctrA_.path());
  ASSERT_TRUE(srv.ready() && ctr.ready());
  ASSERT_TRUE(converged());

  three.kill(0);
  const std::string late = treeA_.create("late");
  const int64_t rev = pushTo(fleetPolicy(port_, "late"));
  ASSERT_GT(rev, 0) << "two of three members take a push";
  ASSERT_TRUE(eventually(
      [&] {
        return clusterStatus(*a_)["this_node"]["policy_revision"] == rev &&
               clusterStatus(*b_)["this_node"]["policy_revision"] == rev;
      },
      15000))
      << clusterStatus(*a_).dump() << "\n" << clusterStatus(*b_).dump();
  EXPECT_EQ(connectFrom(clientA_, ctrA_), 0);
  EXPECT_EQ(connectFrom(clientC_, hostA_), EPERM);
}

}  // namespace
}  // namespace microseg::e2e
