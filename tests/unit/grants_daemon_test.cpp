// The daemon's grant commands over its real control socket, with a datapath
// in memory (tests/unit/fake_datapath.h): what reaches the kernel's map,
// what is saved, and that a refused request changes neither.
#include <gtest/gtest.h>
#include <arpa/inet.h>
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

class GrantCommands : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "the daemon's control socket and netns probes want root";
    char tmpl[] = "/tmp/microseg-grants.XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    fs::create_directories(dir_ + "/root/client");
    fs::create_directories(dir_ + "/root/server");
    fs::create_directories(dir_ + "/policies");
    std::ofstream(dir_ + "/policies/p.yaml") << kPolicy;
    start();
  }
  void start() {
    DaemonConfig c;
    c.cgroupRoot = dir_ + "/root";
    c.policyPaths = {dir_ + "/policies"};
    c.socketPath = dir_ + "/ctl.sock";
    c.dataDir = dir_ + "/data";
    c.maxGrantSeconds = 3600;
    c.mode = MS_MODE_ENFORCE;
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
  void stop() {
    daemon_->stop();
    thread_.join();
    EXPECT_EQ(rc_, 0);
    daemon_.reset();
  }
  void TearDown() override {
    if (daemon_) stop();
    std::error_code ec;
    if (!dir_.empty()) fs::remove_all(dir_, ec);
  }
  json call(const json& request) {
    auto r = control::call(dir_ + "/ctl.sock", request, 3000);
    return r ? *r : json::object();
  }
  json grant(const std::string& port, const std::string& duration) {
    return call({{"command", "grant.create"}, {"from", "client"}, {"to", "server"}, {"port", port},
                 {"for", duration}, {"reason", "r"}});
  }
  std::string saved() {
    std::ifstream in(dir_ + "/data/grants.json");
    return std::string(std::istreambuf_iterator<char>(in), {});
  }

  std::string dir_;
  std::unique_ptr<Daemon> daemon_;
  datapath::FakeDatapath* fake_ = nullptr;
  std::thread thread_;
  int rc_ = -1;
};

TEST_F(GrantCommands, BothSidesReachTheMapAndSurviveAReloadAndARestart) {
  auto r = grant("9000-9001/tcp", "10m");
  ASSERT_TRUE(r.value("ok", false)) << r.dump();
  EXPECT_EQ(r["result"]["id"], 1);
  ASSERT_EQ(fake_->grants.size(), 4u);  // 2 ports x (client's egress, server's ingress)
  for (const auto& [k, v] : fake_->grants) {
    EXPECT_EQ(v.grant_id, 1u);
    EXPECT_GT(v.expires_ns, 0u);
    EXPECT_TRUE(ntohs(k.port) == 9000 || ntohs(k.port) == 9001);
  }
  const auto before = fake_->grants;
  // A new generation keeps them.
  std::ofstream(dir_ + "/policies/p.yaml") << kPolicy + "\n# touched\n";
  ASSERT_TRUE(call({{"command", "policy.reload"}}).value("ok", false));
  ASSERT_EQ(fake_->grants.size(), before.size());
  EXPECT_EQ(std::memcmp(fake_->grants.data(), before.data(), sizeof(before[0]) * before.size()), 0);
  // A restart reads them back from the data dir (a fresh datapath: written again).
  stop();
  start();
  ASSERT_EQ(fake_->grants.size(), before.size());
  auto l = call({{"command", "grant.list"}});
  ASSERT_EQ(l["result"]["grants"].size(), 1u) << l.dump();
  EXPECT_EQ(l["result"]["grants"][0]["state"], "active");
  // Revoke: the map is empty at once.
  ASSERT_TRUE(call({{"command", "grant.revoke"}, {"id", 1}}).value("ok", false));
  EXPECT_TRUE(fake_->grants.empty());
  EXPECT_NE(saved().find("\"revoked\""), std::string::npos);
}

TEST_F(GrantCommands, AGrantWhoseWorkloadIsGoneWaitsForItUntilItExpires) {
  ASSERT_TRUE(grant("22/tcp", "10m").value("ok", false));
  ASSERT_EQ(fake_->grants.size(), 2u);
  // The server's Workload leaves the policy set: no identity, no entries;
  // the grant stays listed, marked unresolved.
  std::ofstream(dir_ + "/policies/p.yaml")
      << doc("Workload", "client", "  cgroups: [\"client\"]\n  labels: {app: client}\n");
  ASSERT_TRUE(call({{"command", "policy.reload"}}).value("ok", false));
  EXPECT_TRUE(fake_->grants.empty());
  auto l = call({{"command", "grant.list"}})["result"]["grants"];
  ASSERT_EQ(l.size(), 1u);
  EXPECT_EQ(l[0]["state"], "active");
  EXPECT_EQ(l[0]["unresolved"], true);
  // It comes back in time: so do the entries.
  std::ofstream(dir_ + "/policies/p.yaml") << kPolicy;
  ASSERT_TRUE(call({{"command", "policy.reload"}}).value("ok", false));
  EXPECT_EQ(fake_->grants.size(), 2u);
  EXPECT_FALSE(call({{"command", "grant.list"}})["result"]["grants"][0].contains("unresolved"));
}

TEST_F(GrantCommands, RefusedRequestsChangeNothing) {
  ASSERT_TRUE(grant("22/tcp", "5m").value("ok", false));
  const auto writes = fake_->grantWrites;
  const std::string file = saved();
  for (const auto& req : {json{{"from", "nobody"}, {"to", "server"}, {"port", "22/tcp"}},
                          json{{"from", "client"}, {"to", "server"}, {"port", "22/tcp"}, {"for", "2h"}},
                          json{{"from", "client"}, {"to", "server"}, {"port", "22/xdp"}},
                          json{{"from", "client"}, {"to", "server"}, {"port", "22/tcp"}, {"for", "1d"}},
                          json{{"from", "client"}, {"to", "server"}, {"port", "22/tcp"}, {"reason", "a\nb"}},
                          json{{"from", "client"}, {"to", "server"}}}) {
    json q = req;
    q["command"] = "grant.create";
    auto r = call(q);
    EXPECT_FALSE(r.value("ok", true)) << req.dump();
    EXPECT_EQ(r["error"]["code"], "bad_request") << r.dump();
  }
  auto cap = call({{"command", "grant.create"}, {"from", "client"}, {"to", "server"}, {"port", "22/tcp"}, {"for", "2h"}});
  EXPECT_NE(cap["error"]["message"].get<std::string>().find("cap of 1h"), std::string::npos) << cap.dump();
  // A name is echoed quoted: no control character reaches a log or a terminal.
  auto esc = call({{"command", "grant.create"}, {"from", "a\x1b[2Jb"}, {"to", "server"}, {"port", "22/tcp"}});
  EXPECT_NE(esc["error"]["message"].get<std::string>().find("no workload named 'a\\x1b[2Jb'"), std::string::npos)
      << esc.dump();
  EXPECT_EQ(fake_->grantWrites, writes);
  EXPECT_EQ(saved(), file);
  EXPECT_EQ(call({{"command", "grant.list"}})["result"]["grants"].size(), 1u);
}

}  // namespace
}  // namespace microseg::daemon
