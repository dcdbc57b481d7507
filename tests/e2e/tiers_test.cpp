// End-to-end tests of tiers (policies/README.md, "Tiers"): the real
// microsegd compiles admin, application and baseline policies into the
// maps the unchanged BPF programs read; real sockets between workloads
// client-a, client-b and server (policies.h) show what each tier decides.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <memory>
#include <string>
#include <thread>

#include "harness.h"
#include "policies.h"

namespace microseg::e2e {
namespace {

using nlohmann::json;

std::string policyDoc(const std::string& name, const std::string& spec) {
  return "apiVersion: microseg.dev/v1\nkind: Policy\nmetadata: {name: " + name + "}\nspec:\n" + spec + "---\n";
}

// The server admits both clients on `port` and `port + 2` (TCP): what a
// test decides is the callers' egress.
std::string serverAdmits(int port) {
  return policyDoc("server-in",
                   "  selector: {identity: server}\n  ingress:\n"
                   "    - from: [{matchExpressions: [{key: app, operator: In, values: [client-a, client-b]}]}]\n"
                   "      ports: [{port: " + std::to_string(port) + ", protocol: TCP}, {port: " +
                       std::to_string(port + 2) + ", protocol: TCP}]\n");
}

class Tiers : public WorkloadTest {
 protected:
  void start(const std::string& policy, const std::vector<std::string>& extra = {}) {
    daemon_ = std::make_unique<Daemon>(tree_, policy, "enforce", extra);
    ASSERT_TRUE(daemon_->started()) << daemon_->log();
    tcp_ = std::make_unique<Child>(tcpServer(srv_, AF_INET, "127.0.0.1", port_));
    tcp2_ = std::make_unique<Child>(tcpServer(srv_, AF_INET, "127.0.0.1", port_ + 2));
    ASSERT_TRUE(tcp_->ready() && tcp2_->ready()) << "servers failed to bind";
  }
  int connectFrom(const std::string& cg, int port) {
    return runIn(cg, [port] { return tcpConnect(AF_INET, "127.0.0.1", port); });
  }
  void reload(const std::string& policy) {
    daemon_->writePolicy("policy.yaml", policy);
    auto r = daemon_->cli({"policy", "reload"});
    ASSERT_EQ(r.rc, 0) << r.err << daemon_->log();
  }
  json explain(const std::string& from, int port) {
    auto r = daemon_->cli({"explain", "--from", from, "--to", "server", "--port", std::to_string(port) + "/tcp",
                           "--direction", "egress", "-o", "json"});
    EXPECT_EQ(r.rc, 0) << r.err;
    return r.rc == 0 ? json::parse(r.out) : json::object();
  }
  std::unique_ptr<Child> tcp_, tcp2_;
};

TEST_F(Tiers, AdminDenyBeatsAnApplicationAllow) {
  const std::string app = workloads() + serverAdmits(port_) +
                          policyDoc("a-out", "  selector: {identity: client-a}\n  egress:\n"
                                             "    - to: [{identity: server}]\n      ports: [{port: " +
                                                 std::to_string(port_) + ", protocol: TCP}]\n");
  ASSERT_NO_FATAL_FAILURE(start(app));
  ASSERT_EQ(connectFrom(a_, port_), 0) << "the application tier allows it";
  ASSERT_NO_FATAL_FAILURE(reload(app + policyDoc("guard", "  selector: {identity: client-a}\n  tier: admin\n"
                                                          "  priority: 10\n  egress:\n"
                                                          "    - action: deny\n      to: [{identity: server}]\n")));
  EXPECT_EQ(connectFrom(a_, port_), EPERM) << "the admin deny wins";
  auto f = daemon_->waitFlow([](const json& r) {
    return r["verdict"] == "deny" && r["src"]["workload"] == "client-a" && r["dst"]["workload"] == "server";
  });
  ASSERT_TRUE(f) << daemon_->log();
  EXPECT_EQ((*f)["rule"], "guard/0");
  EXPECT_EQ((*f)["tier"], "admin") << f->dump();
  const json ex = explain("client-a", port_);
  EXPECT_EQ(ex["verdict"], "deny");
  EXPECT_EQ(ex["decided_by"]["rule"], "guard/0");
  EXPECT_EQ(ex["decided_by"]["text"], "[admin 10] deny to [identity: server] ports any") << ex.dump();
  bool appRuleNotConsulted = false;
  for (const auto& c : ex["rules_checked"]) {
    appRuleNotConsulted |= c["rule"] == "a-out/0" && c["why"] == "matches, but not consulted: the admin tier decided";
  }
  EXPECT_TRUE(appRuleNotConsulted) << ex.dump(2);
}

TEST_F(Tiers, AdminPassFallsThroughToTheApplicationTier) {
  // Admin: port P passes, everything else to the server is denied. The
  // application tier allows client-a both P and P+2, client-b nothing.
  const std::string p = std::to_string(port_), p2 = std::to_string(port_ + 2);
  const std::string set =
      workloads() + serverAdmits(port_) +
      policyDoc("gate", "  selector: {matchExpressions: [{key: app, operator: In, values: [client-a, client-b]}]}\n"
                        "  tier: admin\n  priority: 5\n  egress:\n"
                        "    - action: pass\n      to: [{identity: server}]\n      ports: [{port: " + p +
                            "}]\n"
                            "    - action: deny\n      to: [{identity: server}]\n") +
      policyDoc("a-out", "  selector: {identity: client-a}\n  egress:\n"
                         "    - to: [{identity: server}]\n      ports: [{port: " + p + "}, {port: " + p2 + "}]\n");
  ASSERT_NO_FATAL_FAILURE(start(set));
  EXPECT_EQ(connectFrom(a_, port_), 0) << "passed, then allowed by the application tier";
  EXPECT_EQ(connectFrom(a_, port_ + 2), EPERM) << "not passed: the admin deny decides";
  EXPECT_EQ(connectFrom(b_, port_), EPERM) << "passed, and nothing below allows client-b (default deny)";
  const json ex = explain("client-a", port_);
  EXPECT_EQ(ex["verdict"], "allow");
  EXPECT_EQ(ex["decided_by"]["rule"], "a-out/0");
  bool passed = false;
  for (const auto& c : ex["rules_checked"]) {
    passed |= c["rule"] == "gate/0" && c["why"] == "matches: pass, on to the application tier";
  }
  EXPECT_TRUE(passed) << ex.dump(2);
  const auto show = daemon_->cli({"policy", "show"});
  ASSERT_EQ(show.rc, 0) << show.err;
  EXPECT_NE(show.out.find(" pass "), std::string::npos) << "the action column names pass:\n" << show.out;
  EXPECT_NE(show.out.find("[admin 5] pass to [identity: server] ports [" + p + "/any]"), std::string::npos) << show.out;
}

TEST_F(Tiers, BaselineAppliesOnlyWhereNoApplicationPolicySelects) {
  // Baseline allows both clients to the server; client-a has an
  // application egress policy that allows nothing, client-b none.
  const std::string set =
      workloads() + serverAdmits(port_) +
      policyDoc("clients-default",
                "  selector: {matchExpressions: [{key: app, operator: In, values: [client-a, client-b]}]}\n"
                "  tier: baseline\n  egress:\n"
                "    - to: [{identity: server}]\n      ports: [{port: " + std::to_string(port_) + "}]\n"
                "    - action: deny\n      to: [{identity: server}]\n") +
      policyDoc("a-out", "  selector: {identity: client-a}\n  egress: []\n");
  ASSERT_NO_FATAL_FAILURE(start(set));
  EXPECT_EQ(connectFrom(b_, port_), 0) << "no application policy: the baseline allows";
  EXPECT_EQ(connectFrom(a_, port_), EPERM) << "an application policy selects client-a: the baseline is not consulted";
  EXPECT_EQ(connectFrom(b_, port_ + 2), EPERM) << "the baseline's first match: its deny";
  // Flow records of denies are logged (allows are counted, not logged).
  auto f = daemon_->waitFlow([](const json& r) {
    return r["verdict"] == "deny" && r["src"]["workload"] == "client-b" && r["direction"] == "egress";
  });
  ASSERT_TRUE(f) << daemon_->log();
  EXPECT_EQ((*f)["rule"], "clients-default/1");
  EXPECT_EQ((*f)["tier"], "baseline") << f->dump();
}

TEST_F(Tiers, BaselineDenyUnderSelectedEnforcement) {
  // --default-enforcement selected: unselected workloads are open; a
  // baseline deny closes client-b's way to the server, not client-a's
  // (an application policy allows it).
  const std::string set =
      workloads() +
      policyDoc("no-server", "  selector: {matchExpressions: [{key: app, operator: In, values: [client-a, client-b]}]}\n"
                             "  tier: baseline\n  egress:\n"
                             "    - action: deny\n      to: [{identity: server}]\n") +
      policyDoc("a-out", "  selector: {identity: client-a}\n  egress:\n"
                         "    - to: [{identity: server}]\n      ports: [{port: " + std::to_string(port_) + "}]\n");
  ASSERT_NO_FATAL_FAILURE(start(set, {"--default-enforcement", "selected"}));
  EXPECT_EQ(connectFrom(b_, port_), EPERM) << "the baseline denies client-b";
  EXPECT_EQ(connectFrom(a_, port_), 0) << "the application tier decides for client-a";
  EXPECT_EQ(connectFrom(b_, port_ + 2), EPERM) << "the baseline rule covers every port";
}

TEST_F(Tiers, AdminAllowShortCircuitsAnApplicationDeny) {
  const std::string p = std::to_string(port_);
  const std::string app = workloads() + serverAdmits(port_) +
                          policyDoc("a-out", "  selector: {identity: client-a}\n  egress:\n"
                                             "    - action: deny\n      to: [{identity: server}]\n"
                                             "    - to: [{identity: server}]\n      ports: [{port: " + p + "}]\n");
  ASSERT_NO_FATAL_FAILURE(start(app));
  ASSERT_EQ(connectFrom(a_, port_), EPERM) << "the application deny wins in its tier";
  ASSERT_NO_FATAL_FAILURE(reload(app + policyDoc("monitoring", "  selector: {identity: client-a}\n  tier: admin\n"
                                                               "  priority: 0\n  egress:\n"
                                                               "    - action: allow\n      to: [{identity: server}]\n"
                                                               "      ports: [{port: " + p + "}]\n")));
  EXPECT_EQ(connectFrom(a_, port_), 0) << "the admin allow decides before the application tier";
  EXPECT_EQ(connectFrom(a_, port_ + 2), EPERM) << "elsewhere the application deny still holds";
  const json ex = explain("client-a", port_);
  EXPECT_EQ(ex["decided_by"]["rule"], "monitoring/0") << ex.dump(2);
}

}  // namespace
}  // namespace microseg::e2e
