// The two-host cluster of the cluster e2e suites (cluster_test.cpp,
// wire_identity_test.cpp): a real etcd, and two "hosts", each a network
// namespace on a bridge with a cgroup subtree and a microsegd of its own
// (--node-name a / b), sharing one policy pushed to etcd.
//
//   hub netns: br0 ── hostA (10.66.0.1)   daemon a: client-b, client-c
//                 ├── ctrA  (10.66.0.11)  client-a's own netns (host a's)
//                 └── hostB (10.66.0.2)   daemon b: server (host netns)
#pragma once

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>

#include "cluster/policy_store.h"
#include "etcd_harness.h"
#include "harness.h"

namespace microseg::e2e {

using nlohmann::json;

constexpr const char* kHostA = "10.66.0.1";
constexpr const char* kHostB = "10.66.0.2";
constexpr const char* kCtrA = "10.66.0.11";

inline bool eventually(const std::function<bool()>& f, int timeoutMs) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeoutMs);
  do {
    if (f()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  } while (std::chrono::steady_clock::now() < end);
  return f();
}

inline std::string workload(const std::string& name) {
  return "apiVersion: microseg.dev/v1\nkind: Workload\nmetadata: {name: " + name + "}\nspec:\n  cgroups: [\"" + name +
         "\"]\n  labels: {app: " + name + "}\n---\n";
}

inline std::string fleetPolicy(int port, const std::string& extraWorkload = "") {
  const std::string p = std::to_string(port);
  std::string y;
  for (const char* w : {"client-a", "client-b", "client-c", "server"}) y += workload(w);
  if (!extraWorkload.empty()) y += workload(extraWorkload);
  y += "apiVersion: microseg.dev/v1\nkind: Policy\nmetadata: {name: clients-out}\nspec:\n"
       "  selector: {matchExpressions: [{key: app, operator: In, values: [client-a, client-b]}]}\n"
       "  egress:\n    - to: [{identity: server}]\n      ports: [{port: " + p + ", protocol: TCP}]\n---\n";
  if (!extraWorkload.empty()) {
    y += "apiVersion: microseg.dev/v1\nkind: Policy\nmetadata: {name: " + extraWorkload + "-out}\nspec:\n"
         "  selector: {identity: " + extraWorkload + "}\n"
         "  egress:\n    - to: [{identity: server}]\n      ports: [{port: " + p + ", protocol: TCP}]\n---\n";
  }
  y += "apiVersion: microseg.dev/v1\nkind: Policy\nmetadata: {name: server-in}\nspec:\n"
       "  selector: {identity: server}\n"
       "  ingress:\n    - from: [{identity: client-a}" + (extraWorkload.empty() ? "" : ", {identity: " + extraWorkload + "}") +
       "]\n      ports: [{port: " + p + ", protocol: TCP}]\n";
  return y;
}

class Cluster : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(etcd_.ok()) << etcd_.log(0);
    ASSERT_TRUE(hub_.ok() && hostA_.ok() && hostB_.ok() && ctrA_.ok());
    ASSERT_TRUE(hub_.ip({"link", "add", "br0", "type", "bridge"}) && hub_.ip({"link", "set", "br0", "up"}));
    const std::string prefix = "mc" + std::to_string(getpid() % 100000);
    ASSERT_TRUE(vethPair(hostA_, {std::string(kHostA) + "/24"}, hub_, {}, prefix + "a"));
    ASSERT_TRUE(vethPair(hostB_, {std::string(kHostB) + "/24"}, hub_, {}, prefix + "b"));
    ASSERT_TRUE(vethPair(ctrA_, {std::string(kCtrA) + "/24"}, hub_, {}, prefix + "c"));
    for (const char* end : {"a", "b", "c"}) {
      ASSERT_TRUE(hub_.ip({"link", "set", prefix + end + "b", "master", "br0"}));
    }
    clientA_ = treeA_.create("client-a");
    clientB_ = treeA_.create("client-b");
    clientC_ = treeA_.create("client-c");
    server_ = treeB_.create("server");
    port_ = freePortBase();
    push(fleetPolicy(port_));
  }
  void TearDown() override {
    if (!HasFailure()) return;
    for (auto* d : {a_.get(), b_.get()}) {
      if (d != nullptr) std::cerr << "---- microsegd log ----\n" << d->log().substr(0, 30000) << "\n";
    }
  }

  // The policy set as `microseg policy push` stores it; its etcd revision.
  int64_t push(const std::string& yaml) {
    cluster::EtcdOptions o;
    o.endpoints = etcd_.endpoints();
    auto c = cluster::EtcdClient::connect(o);
    if (!c) {
      ADD_FAILURE() << c.error().str();
      return 0;
    }
    auto rev = cluster::pushPolicy(**c, cluster::Keys("/microseg"),
                                   cluster::preparePolicy({{"fleet.yaml", yaml}}, "e2e@test", time(nullptr)));
    if (!rev) {
      ADD_FAILURE() << rev.error().str();
      return 0;
    }
    return *rev;
  }

  std::unique_ptr<Daemon> node(const std::string& name, const CgroupTree& tree, const Netns& ns,
                               bool policyFromEtcd = true, const std::string& policyYaml = "",
                               const std::vector<std::string>& extra = {}) {
    DaemonOptions o;
    o.netnsPath = ns.path();
    o.policyFromEtcd = policyFromEtcd;
    o.extraArgs = {"--etcd-endpoints", etcd_.unixEndpointList(), "--node-name", name, "--node-ttl",
                   std::to_string(kTtl)};
    o.extraArgs.insert(o.extraArgs.end(), extra.begin(), extra.end());
    return std::make_unique<Daemon>(tree, policyYaml, "enforce", o);
  }

  void startBoth() {
    a_ = node("a", treeA_, hostA_);
    b_ = node("b", treeB_, hostB_);
    ASSERT_TRUE(a_->started()) << a_->log();
    ASSERT_TRUE(b_->started()) << b_->log();
  }

  // The workload `workload` of node `nodeName` as `d` sees it in status.
  static json remote(const Daemon& d, const std::string& nodeName, const std::string& workload) {
    auto s = d.status();
    if (!s) return nullptr;
    for (const auto& w : (*s)["remote_workloads"]) {
      if (w["node"] == nodeName && w["workload"] == workload) return w;
    }
    return nullptr;
  }
  static bool has(const json& list, const std::string& v) {
    if (!list.is_array()) return false;
    for (const auto& x : list) {
      if (x == v) return true;
    }
    return false;
  }
  // Until a knows server's listener on b and b knows client-a's address on a.
  bool converged(int timeoutMs = 15000) {
    const std::string listener = std::string(kHostB) + ":" + std::to_string(port_) + "/tcp";
    return eventually(
        [&] {
          return has(remote(*a_, "b", "server")["listeners"], listener) &&
                 has(remote(*b_, "a", "client-a")["addresses"], kCtrA);
        },
        timeoutMs);
  }
  json clusterStatus(const Daemon& d) const {
    auto r = d.request("cluster.status");
    return r ? *r : json();
  }

  // Connects from `cgroup` (in netns `ns`) to server on host b.
  int connectFrom(const std::string& cgroup, const Netns& ns, int timeoutMs = 1500) {
    return runIn(cgroup, [&] { return tcpConnect(AF_INET, kHostB, port_, timeoutMs); }, timeoutMs + 3000, ns.path());
  }

  static constexpr int kTtl = 8;
  EtcdCluster etcd_{1};
  Netns hub_, hostA_, hostB_, ctrA_;
  CgroupTree treeA_, treeB_;
  std::string clientA_, clientB_, clientC_, server_;
  int port_ = 0;
  std::unique_ptr<Daemon> a_, b_;
};

}  // namespace microseg::e2e
