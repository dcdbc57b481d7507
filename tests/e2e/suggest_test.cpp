// `suggest` against the daemon (README "Rolling out"): traffic observed in
// monitor mode becomes least-privilege policy; applied in enforce mode, the
// observed flows still pass and an unobserved connection between the same
// workloads is refused.
#include <gtest/gtest.h>

#include "harness.h"
#include "policies.h"

namespace microseg::e2e {
namespace {

using nlohmann::json;

class Suggest : public WorkloadTest {};

TEST_F(Suggest, ObservedInMonitorEnforcedAfterwards) {
  daemon_ = std::make_unique<Daemon>(tree_, workloads(), "monitor");
  ASSERT_TRUE(daemon_->started());
  Child srv = tcpServer(srv_, AF_INET, "127.0.0.1", port_);
  Child other = tcpServer(srv_, AF_INET, "127.0.0.1", port_ + 2);
  ASSERT_TRUE(srv.ready() && other.ready());
  // Observed: client-a -> server:P (audited on both sides: no policy yet).
  for (int i = 0; i < 3; i++) {
    ASSERT_EQ(runIn(a_, [&] { return tcpConnect(AF_INET, "127.0.0.1", port_); }), 0);
  }
  ASSERT_TRUE(daemon_->waitFlow([&](const json& f) {
    return f["verdict"] == "audit" && f["direction"] == "ingress" && f["dst"]["workload"] == "server";
  }));
  auto r = daemon_->request("suggest");
  ASSERT_TRUE(r) << daemon_->log();
  const std::string yaml = (*r)["yaml"];
  EXPECT_NE(yaml.find("to: [{identity: \"server\"}]"), std::string::npos) << yaml;
  EXPECT_NE(yaml.find("from: [{identity: \"client-a\"}]"), std::string::npos) << yaml;

  // Validated by the CLI, then applied in enforce mode.
  daemon_->writePolicy("policy.yaml", workloads() + yaml);
  const std::string file = daemon_->policyDir() + "/policy.yaml";
  auto v = daemon_->cli({"policy", "validate", file});
  ASSERT_EQ(v.rc, 0) << v.out << v.err << yaml;
  ASSERT_EQ(daemon_->cli({"policy", "reload"}).rc, 0);
  ASSERT_EQ(daemon_->cli({"mode", "enforce"}).rc, 0);
  EXPECT_EQ(runIn(a_, [&] { return tcpConnect(AF_INET, "127.0.0.1", port_); }), 0) << "observed: still passes";
  EXPECT_EQ(runIn(a_, [&] { return tcpConnect(AF_INET, "127.0.0.1", port_ + 2); }), EPERM)
      << "client-a -> server on an unobserved port";
  EXPECT_EQ(runIn(b_, [&] { return tcpConnect(AF_INET, "127.0.0.1", port_); }), EPERM)
      << "client-b never called server";
  EXPECT_FALSE(daemon_->request("suggest", {{"workload", "nobody"}})) << "an unknown workload is a bad request";
}

}  // namespace
}  // namespace microseg::e2e
