// Attacks through the policy input (README "Control socket", "Reloads"): an
// empty set does not unmanage every workload unless asked for.
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <memory>
#include <thread>

#include "harness.h"
#include "policies.h"

namespace microseg::e2e {
namespace {

using nlohmann::json;

class AttacksPolicyInput : public WorkloadTest {
 protected:
  void startDaemon(const std::string& policy) {
    daemon_ = std::make_unique<Daemon>(tree_, policy, "enforce");
    ASSERT_TRUE(daemon_->started()) << daemon_->log();
  }
  uint64_t generation() {
    auto s = daemon_->status();
    return s ? (*s)["policy_generation"].get<uint64_t>() : 0;
  }
};

// An empty file applied (or written over the watched one) is refused: the
// generation in force stays, and client-b is still refused. Only
// `allow_empty` applies it.
TEST_F(AttacksPolicyInput, AnEmptySetDoesNotUnmanageEveryWorkload) {
  Child s = tcpServer(srv_, AF_INET, "127.0.0.1", port_);
  ASSERT_TRUE(s.ready());
  startDaemon(allowPolicy("client-a", port_));
  auto tcpFrom = [&](const std::string& cg) {
    return runIn(cg, [&] { return tcpConnect(AF_INET, "127.0.0.1", port_, 500); });
  };
  ASSERT_EQ(tcpFrom(b_), EPERM);
  const uint64_t g0 = generation();

  const std::string empty = daemon_->policyDir() + "/../empty.yaml";
  { std::ofstream(empty).flush(); }
  auto r = daemon_->cli({"policy", "apply", empty});
  EXPECT_EQ(r.rc, 1) << r.out << r.err;
  EXPECT_NE(r.err.find("defines no Workload"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("--allow-empty"), std::string::npos) << r.err;

  // The watched file emptied: refused too.
  daemon_->writePolicy("policy.yaml", "");
  for (int i = 0; i < 100; i++) {
    auto st = daemon_->status();
    if (st && (*st)["last_reload"].value("trigger", "") == "policy files changed") break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  auto st = daemon_->status();
  ASSERT_TRUE(st);
  EXPECT_EQ((*st)["last_reload"]["ok"], false) << st->dump();
  EXPECT_EQ(generation(), g0);
  EXPECT_EQ(tcpFrom(b_), EPERM) << "the generation in force still governs client-b";
  EXPECT_EQ((*st)["workloads"].size(), 3u);

  // Asked for explicitly: applied, everything unmanaged.
  const std::string req = R"({"version":1,"command":"policy.apply","allow_empty":true,"paths":[")" + empty + "\"]}\n";
  const std::string reply = unixExchange(daemon_->socketPath(), req);
  ASSERT_NE(reply.find("\"ok\":true"), std::string::npos) << reply;
  EXPECT_GT(generation(), g0);
  EXPECT_EQ(tcpFrom(b_), 0) << "unmanaged now, as asked";
}

}  // namespace
}  // namespace microseg::e2e
