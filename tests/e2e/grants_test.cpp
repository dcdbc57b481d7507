// End-to-end tests of temporary access (README "Temporary access"): a grant
// lets a flow the policy does not allow pass on both sides until it
// expires, and the kernel ends it on time by itself; an explicit deny
// wins; revoke ends it at once; grants survive restarts and reloads; bad
// requests change nothing.
#include <gtest/gtest.h>
#include <sys/socket.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include "harness.h"
#include "policies.h"

namespace microseg::e2e {
namespace {

using nlohmann::json;
using std::chrono::milliseconds;

class Grants : public WorkloadTest {
 protected:
  void SetUp() override {
    WorkloadTest::SetUp();
    server_ = std::make_unique<Child>(tcpServer(srv_, AF_INET, "127.0.0.1", port_));
    ASSERT_TRUE(server_->ready()) << "server failed to bind port " << port_;
  }
  void startDaemon(const std::string& mode, const std::string& policy,
                   std::vector<std::string> extra = {"--log-allowed"}) {
    daemon_ = std::make_unique<Daemon>(tree_, policy, mode, extra);
    ASSERT_TRUE(daemon_->started()) << daemon_->log();
  }
  // client-b has no rule to the server (neither side): default deny.
  void startDefault(const std::string& mode = "enforce", std::vector<std::string> extra = {"--log-allowed"}) {
    startDaemon(mode, allowPolicy("client-a", port_), std::move(extra));
  }
  int connectB() {
    const int p = port_;
    return runIn(b_, [p] { return tcpConnect(AF_INET, "127.0.0.1", p); });
  }
  std::string portArg() const { return std::to_string(port_) + "/tcp"; }
  // `microseg grant ... -o json`: the grant, or null (the failure on stderr in `err`).
  json grant(const std::string& duration, CliResult* res = nullptr) {
    auto r = daemon_->cli({"grant", "--from", "client-b", "--to", "server", "--port", portArg(), "--for", duration,
                           "--reason", "ticket 42", "-o", "json"});
    if (res) *res = r;
    if (r.rc != 0) return nullptr;
    return json::parse(r.out, nullptr, false);
  }
  json listed() {
    auto r = daemon_->cli({"grants", "-o", "json"});
    if (r.rc != 0) return json::array();
    auto j = json::parse(r.out, nullptr, false);
    return j.is_discarded() ? json::array() : j["grants"];
  }
  template <typename Pred>
  bool waitFor(Pred pred, int timeoutMs = 5000) {
    const auto end = std::chrono::steady_clock::now() + milliseconds(timeoutMs);
    while (std::chrono::steady_clock::now() < end) {
      if (pred()) return true;
      std::this_thread::sleep_for(milliseconds(50));
    }
    return pred();
  }
  std::unique_ptr<Child> server_;
};

TEST_F(Grants, FiveSecondGrantPassesThenTheKernelRefuses) {
  startDefault();
  ASSERT_EQ(connectB(), EPERM) << "no rule: default deny";
  const auto t0 = std::chrono::steady_clock::now();
  json g = grant("5s");
  ASSERT_TRUE(g.is_object()) << daemon_->log();
  EXPECT_EQ(g["from"], "client-b");
  EXPECT_EQ(g["to"], "server");
  EXPECT_EQ(g["reason"], "ticket 42");
  EXPECT_EQ(g["uid"], 0);
  EXPECT_GT(g["pid"].get<int>(), 0);
  const uint32_t id = g["id"].get<uint32_t>();
  EXPECT_EQ(connectB(), 0) << "granted: both sides (client-b's egress and the server's ingress) pass";
  // The verdict names the grant, on both sides, and is an allow.
  for (const char* dir : {"egress", "ingress"}) {
    auto f = daemon_->waitFlow([&](const json& r) {
      return r.value("record", "") != "grant" && r["direction"] == dir && r["src"]["workload"] == "client-b" &&
             r["verdict"] != "deny";  // the refused connect before the grant is a record too
    });
    ASSERT_TRUE(f) << dir << "\n" << daemon_->log();
    EXPECT_EQ((*f)["verdict"], "allow");
    EXPECT_EQ((*f)["reason"], "grant");
    EXPECT_EQ((*f)["rule"], "grant:" + std::to_string(id));
  }
  // explain agrees with the kernel.
  auto ex = daemon_->cli({"explain", "--from", "client-b", "--to", "server", "--port", portArg(), "-o", "json"});
  ASSERT_EQ(ex.rc, 0) << ex.err;
  auto exj = json::parse(ex.out);
  for (const auto& side : exj["sides"]) {
    EXPECT_EQ(side["verdict"], "allow") << side.dump();
    EXPECT_EQ(side["rule"], "grant:" + std::to_string(id)) << side.dump();
  }
  // The grant is logged as a record of its own.
  EXPECT_TRUE(daemon_->waitFlow([&](const json& r) { return r.value("record", "") == "grant" && r["event"] == "created"; }));
  auto l = listed();
  ASSERT_EQ(l.size(), 1u);
  EXPECT_EQ(l[0]["state"], "active");
  EXPECT_LE(l[0]["remaining_seconds"].get<int>(), 5);

  // After the expiry: a new connect is refused.
  std::this_thread::sleep_until(t0 + milliseconds(5300));
  EXPECT_EQ(connectB(), EPERM);
  EXPECT_EQ(runIn(a_, [p = port_] { return tcpConnect(AF_INET, "127.0.0.1", p); }), 0) << "policy untouched";
  EXPECT_TRUE(waitFor([&] {
    auto l2 = listed();
    return l2.size() == 1 && l2[0]["state"] == "expired";
  })) << listed().dump();
  EXPECT_TRUE(daemon_->waitFlow([&](const json& r) { return r.value("record", "") == "grant" && r["event"] == "expired"; }));
  auto st = daemon_->status();
  ASSERT_TRUE(st);
}

TEST_F(Grants, ExpiresOnTimeWithTheDaemonKilled) {
  startDefault();
  const auto t0 = std::chrono::steady_clock::now();
  ASSERT_TRUE(grant("5s").is_object()) << daemon_->log();
  ASSERT_EQ(connectB(), 0);
  daemon_->crash();  // SIGKILL: nobody is left to remove the entries
  EXPECT_EQ(connectB(), 0) << "the pinned links enforce the grant while it lasts";
  std::this_thread::sleep_until(t0 + milliseconds(5300));
  EXPECT_EQ(connectB(), EPERM) << "the kernel checks the expiry itself";
  // A restart finds it expired.
  ASSERT_TRUE(daemon_->start()) << daemon_->log();
  auto l = listed();
  ASSERT_EQ(l.size(), 1u);
  EXPECT_EQ(l[0]["state"], "expired");
  EXPECT_EQ(connectB(), EPERM);
}

TEST_F(Grants, AnExplicitDenyWins) {
  const std::string p = std::to_string(port_);
  startDaemon("enforce", workloads() +
                             "apiVersion: microseg.dev/v1\nkind: Policy\nmetadata: {name: guard}\nspec:\n"
                             "  selector: {identity: client-b}\n  egress:\n"
                             "    - action: deny\n      to: [{identity: server}]\n      ports: [{port: " + p + "}]\n");
  ASSERT_TRUE(grant("1m").is_object()) << daemon_->log();
  EXPECT_EQ(connectB(), EPERM) << "a grant applies only where no rule decides";
  auto f = daemon_->waitFlow([&](const json& r) {
    return r.value("record", "") != "grant" && r["direction"] == "egress" && r["src"]["workload"] == "client-b";
  });
  ASSERT_TRUE(f) << daemon_->log();
  EXPECT_EQ((*f)["verdict"], "deny");
  EXPECT_EQ((*f)["rule"], "guard/0");
}

TEST_F(Grants, MonitorModeRecordsAGrantedFlowAsAnAllow) {
  startDefault("monitor");
  ASSERT_TRUE(grant("1m").is_object()) << daemon_->log();
  ASSERT_EQ(connectB(), 0);
  auto f = daemon_->waitFlow([&](const json& r) {
    return r.value("record", "") != "grant" && r["direction"] == "egress" && r["src"]["workload"] == "client-b";
  });
  ASSERT_TRUE(f) << daemon_->log();
  EXPECT_EQ((*f)["verdict"], "allow") << "not an audit";
  EXPECT_EQ((*f)["reason"], "grant");
}

TEST_F(Grants, RevokeEndsItAtOnce) {
  startDefault();
  json g = grant("1h");
  ASSERT_TRUE(g.is_object()) << daemon_->log();
  ASSERT_EQ(connectB(), 0);
  auto r = daemon_->cli({"revoke", "grant:" + std::to_string(g["id"].get<uint32_t>())});
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(connectB(), EPERM) << "no wait: the entries are gone when revoke returns";
  auto l = listed();
  ASSERT_EQ(l.size(), 1u);
  EXPECT_EQ(l[0]["state"], "revoked");
  EXPECT_TRUE(daemon_->waitFlow([&](const json& x) { return x.value("record", "") == "grant" && x["event"] == "revoked"; }));
  // Twice: an error that says so.
  auto again = daemon_->cli({"revoke", std::to_string(g["id"].get<uint32_t>())});
  EXPECT_EQ(again.rc, 1);
  EXPECT_NE(again.err.find("already revoked"), std::string::npos) << again.err;
}

TEST_F(Grants, SurviveRestartsAndReloads) {
  startDefault();
  json g = grant("10m");
  ASSERT_TRUE(g.is_object()) << daemon_->log();
  ASSERT_EQ(daemon_->stop(), 0);
  EXPECT_EQ(connectB(), 0) << "daemon down: the pinned map keeps the grant";
  ASSERT_TRUE(daemon_->start()) << daemon_->log();
  auto l = listed();
  ASSERT_EQ(l.size(), 1u);
  EXPECT_EQ(l[0]["state"], "active");
  EXPECT_EQ(l[0]["id"], g["id"]);
  EXPECT_EQ(l[0]["reason"], "ticket 42");
  EXPECT_EQ(connectB(), 0);
  // A new generation (another policy) keeps it.
  const uint64_t gen = daemon_->status()->at("policy_generation").get<uint64_t>();
  daemon_->writePolicy("policy.yaml", allowPolicy("client-a", port_ + 7));
  ASSERT_TRUE(waitFor([&] { return daemon_->status()->at("policy_generation").get<uint64_t>() > gen; }));
  EXPECT_EQ(connectB(), 0) << "a reload keeps grants";
  // And revoke still works on a re-adopted grant.
  ASSERT_EQ(daemon_->cli({"revoke", std::to_string(g["id"].get<uint32_t>())}).rc, 0);
  EXPECT_EQ(connectB(), EPERM);
}

TEST_F(Grants, BadRequestsAreRefusedAndChangeNothing) {
  startDefault("enforce", {"--log-allowed", "--max-grant", "10m"});
  const std::string port = portArg();
  struct Case {
    std::vector<std::string> args;
    int rc;
    std::string says;
  } cases[] = {
      {{"--from", "nobody", "--to", "server", "--port", port}, 1, "'from': no workload named 'nobody'"},
      {{"--from", "client-b", "--to", "nowhere", "--port", port}, 1, "'to': no workload named 'nowhere'"},
      {{"--from", "client-b", "--to", "server", "--port", "0/tcp"}, 2, "ports are whole numbers 1-65535"},
      {{"--from", "client-b", "--to", "server", "--port", "70000/tcp"}, 2, "1-65535"},
      {{"--from", "client-b", "--to", "server", "--port", "22/icmp"}, 2, "protocol 'icmp' is not tcp or udp"},
      {{"--from", "client-b", "--to", "server", "--port", "22"}, 2, "needs a protocol"},
      {{"--from", "client-b", "--to", "server", "--port", "1000-2000/tcp"}, 2, "at most 256 ports"},
      {{"--from", "client-b", "--to", "server", "--port", port, "--for", "11m"}, 1,
       "longer than this daemon's cap of 10m"},
      {{"--from", "client-b", "--to", "server", "--port", port, "--for", "5x"}, 2, "duration '5x'"},
      {{"--from", "client-b", "--to", "server", "--port", port, "--for", "0s"}, 2, "is zero"},
  };
  for (const auto& c : cases) {
    std::vector<std::string> args = {"grant"};
    args.insert(args.end(), c.args.begin(), c.args.end());
    auto r = daemon_->cli(args);
    EXPECT_EQ(r.rc, c.rc) << testing::PrintToString(c.args) << "\n" << r.err;
    EXPECT_NE(r.err.find(c.says), std::string::npos) << testing::PrintToString(c.args) << "\n" << r.err;
  }
  // The daemon refuses what the CLI would have caught too.
  for (const auto& [field, value, says] : {std::tuple{"port", "0/tcp", "1-65535"},
                                           std::tuple{"for", "9h", "cap of 10m"},
                                           std::tuple{"for", "-5s", "duration '-5s'"}}) {
    json req = {{"from", "client-b"}, {"to", "server"}, {"port", port}};
    req[field] = value;
    EXPECT_FALSE(daemon_->request("grant.create", req)) << field << "=" << value << " (" << says << ")";
  }
  auto bad = daemon_->cli({"revoke", "abc"});
  EXPECT_EQ(bad.rc, 2);
  auto none = daemon_->cli({"revoke", "99"});
  EXPECT_EQ(none.rc, 1);
  EXPECT_NE(none.err.find("grant 99 does not exist"), std::string::npos) << none.err;
  EXPECT_TRUE(listed().empty()) << listed().dump();
  EXPECT_EQ(connectB(), EPERM);
  // Exactly the cap is fine.
  EXPECT_TRUE(grant("10m").is_object());
}

}  // namespace
}  // namespace microseg::e2e
