// The daemon's control commands over its real control socket, with a
// datapath in memory (tests/unit/fake_datapath.h): what they answer, what
// they change, and that a failure leaves the generation in force.
#include <gtest/gtest.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include "control/client.h"
#include "daemon/daemon.h"
#include "fake_datapath.h"

namespace microseg::daemon {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

std::string doc(const std::string& kind, const std::string& name, const std::string& spec) {
  return "---\napiVersion: microseg.dev/v1\nkind: " + kind + "\nmetadata: {name: " + name + "}\nspec:\n" + spec;
}

const std::string kPolicy =
    doc("Workload", "client", "  cgroups: [\"client\"]\n  labels: {app: client}\n") +
    doc("Workload", "server", "  cgroups: [\"server\"]\n  labels: {app: server}\n") +
    doc("Policy", "client-out", "  selector: {identity: client}\n  egress:\n    - to: [{identity: server}]\n"
                                "      ports: [{port: 8080, protocol: TCP}]\n");

class DaemonCommands : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "the daemon's control socket and netns probes want root";
    char tmpl[] = "/tmp/microseg-daemon.XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    fs::create_directories(dir_ + "/root/client");
    fs::create_directories(dir_ + "/root/server");
    fs::create_directories(dir_ + "/policies");
    std::ofstream(dir_ + "/policies/p.yaml") << kPolicy;
    DaemonConfig c;
    c.cgroupRoot = dir_ + "/root";
    c.policyPaths = {dir_ + "/policies"};
    c.socketPath = dir_ + "/ctl.sock";
    c.mode = MS_MODE_MONITOR;
    daemon_ = std::make_unique<Daemon>(c, [this](const DaemonConfig&, uint64_t) {
      auto dp = std::make_unique<datapath::FakeDatapath>();
      fake_ = dp.get();
      return Result<std::unique_ptr<datapath::Datapath>>(std::unique_ptr<datapath::Datapath>(std::move(dp)));
    });
    thread_ = std::thread([this] { rc_ = daemon_->run(); });
    for (int i = 0; i < 200 && !call({{"command", "status"}}).contains("ok"); i++) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
  void TearDown() override {
    if (daemon_) {
      daemon_->stop();
      thread_.join();
      EXPECT_EQ(rc_, 0);
    }
    std::error_code ec;
    if (!dir_.empty()) fs::remove_all(dir_, ec);
  }
  json call(const json& request) {
    auto r = control::call(dir_ + "/ctl.sock", request, 3000);
    return r ? *r : json::object();
  }
  uint64_t generation() { return call({{"command", "status"}})["result"]["policy_generation"].get<uint64_t>(); }

  std::string dir_;
  std::unique_ptr<Daemon> daemon_;
  datapath::FakeDatapath* fake_ = nullptr;
  std::thread thread_;
  int rc_ = -1;
};

TEST_F(DaemonCommands, StatusAndTheGlobalMode) {
  auto s = call({{"command", "status"}});
  ASSERT_EQ(s["ok"], true) << s.dump();
  EXPECT_EQ(s["result"]["policy_generation"], 1u);
  EXPECT_EQ(s["result"]["workloads"].size(), 2u);
  EXPECT_EQ(fake_->applied, 1u);
  auto m = call({{"command", "mode.set"}, {"mode", "enforce"}});
  ASSERT_EQ(m["ok"], true) << m.dump();
  EXPECT_EQ(m["result"]["previous"], "monitor");
  EXPECT_EQ(fake_->mode(), uint32_t(MS_MODE_ENFORCE));
  auto bad = call({{"command", "mode.set"}, {"mode", "inherit"}});
  EXPECT_EQ(bad["error"]["code"], "bad_request") << "inherit is per workload only";
  auto unknown = call({{"command", "mode.set"}, {"mode", "enforce"}, {"workload", "nobody"}});
  EXPECT_EQ(unknown["error"]["code"], "bad_request");
  EXPECT_NE(unknown["error"]["message"].get<std::string>().find("nobody"), std::string::npos);
}

TEST_F(DaemonCommands, ApplyRejectsABadSetAndAppliesAGoodOne) {
  std::ofstream(dir_ + "/bad.yaml") << kPolicy << doc("Policy", "x", "  selector: {identity: ghost}\n  egress: []\n");
  auto r = call({{"command", "policy.apply"}, {"paths", {dir_ + "/bad.yaml"}}});
  EXPECT_EQ(r["error"]["code"], "invalid_policy") << r.dump();
  EXPECT_EQ(generation(), 1u);
  EXPECT_EQ(fake_->applied, 1u);
  auto rel = call({{"command", "policy.apply"}, {"paths", {"relative.yaml"}}});
  EXPECT_EQ(rel["error"]["code"], "bad_request");

  std::ofstream(dir_ + "/good.yaml") << kPolicy;
  auto ok = call({{"command", "policy.apply"}, {"paths", {dir_ + "/good.yaml"}}});
  ASSERT_EQ(ok["ok"], true) << ok.dump();
  EXPECT_EQ(ok["result"]["generation"], 2u);
  EXPECT_EQ(call({{"command", "status"}})["result"]["policy_paths"][0], dir_ + "/good.yaml");
}

TEST_F(DaemonCommands, ADatapathFailureIsAnErrorAndTheGenerationStays) {
  fake_->failApplies = 1;
  auto r = call({{"command", "policy.reload"}});
  ASSERT_EQ(r["ok"], false) << r.dump();
  EXPECT_NE(r["error"]["message"].get<std::string>().find("datapath: "), std::string::npos) << r.dump();
  auto s = call({{"command", "status"}})["result"];
  EXPECT_EQ(s["policy_generation"], 1u);
  EXPECT_EQ(s["last_reload"]["ok"], false);
  auto again = call({{"command", "policy.reload"}});
  EXPECT_EQ(again["ok"], true) << again.dump();
  EXPECT_EQ(generation(), 2u);
}

// A reload holds the daemon's lock for as long as it takes (a second at
// 100k rules): status answers meanwhile, from the last status built.
TEST_F(DaemonCommands, StatusAnswersWhileAReloadRuns) {
  fake_->applyDelayMs = 1500;
  std::thread reload([&] { EXPECT_EQ(call({{"command", "policy.reload"}})["ok"], true); });
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  const auto t0 = std::chrono::steady_clock::now();
  auto s = call({{"command", "status"}});
  const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  reload.join();
  ASSERT_EQ(s["ok"], true) << s.dump();
  EXPECT_LT(ms, 500.0);
  EXPECT_EQ(s["result"]["reload_in_progress"], true);
  EXPECT_EQ(s["result"]["policy_generation"], 1u) << "the generation in force while it runs";
  EXPECT_EQ(generation(), 2u);
}

}  // namespace
}  // namespace microseg::daemon
