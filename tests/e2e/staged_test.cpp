// Staged policies against the real daemon and kernel (README "Rolling
// out"): client-a in enforce mode may reach the server on port P; a staged
// policy would deny exactly that. The traffic still passes, its flow record
// says `staged_verdict: deny` (allowed flows are recorded with
// --log-allowed: without it the kernel sends no event for an allow), the
// metric counts the would-deny, and client-a's other rules stay enforced
// (P+2, which nothing allows, is refused). `policy promote` then removes
// `staged: true` from the file (its comments kept) and the same connection
// is refused.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>
#include <thread>

#include "harness.h"
#include "policies.h"

namespace microseg::e2e {
namespace {

using nlohmann::json;

std::string stagedDeny(int port) {
  return "---\napiVersion: microseg.dev/v1\nkind: Policy\nmetadata: {name: a-lockdown}\nspec:\n"
         "  selector: {identity: client-a}\n"
         "  # staged until the dashboards agree\n"
         "  staged: true   # remove to enforce\n"
         "  egress:\n"
         "    - to: [{identity: server}]\n"
         "      ports: [{port: " + std::to_string(port) + ", protocol: TCP}]\n"
         "      action: deny\n";
}

std::string readFile(const std::string& path) {
  std::ifstream in(path);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

class Staged : public WorkloadTest {
 protected:
  json flowsJson(const std::vector<std::string>& extra = {}) {
    std::vector<std::string> args{"flows", "-o", "json"};
    args.insert(args.end(), extra.begin(), extra.end());
    auto f = daemon_->cli(args);
    EXPECT_EQ(f.rc, 0) << f.err;
    try {
      return json::parse(f.out);
    } catch (...) {
      ADD_FAILURE() << "not JSON: " << f.out << f.err;
      return json::object();
    }
  }
  // The client-a egress record to the server's `port` with verdict
  // `verdict` (events reach the daemon within ~100 ms: waited for, bounded).
  std::optional<json> record(int port, const std::string& verdict) {
    for (int i = 0; i < 30; i++) {
      const json all = flowsJson();
      for (const auto& r : all["records"]) {
        if (r["direction"] == "egress" && r["src"]["workload"] == "client-a" && r["dst"]["port"] == port &&
            r["verdict"] == verdict) {
          return r;
        }
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return std::nullopt;
  }
};

TEST_F(Staged, AStagedDenyIsReportedNotEnforcedUntilPromoted) {
  const int metricsPort = port_ + 15;
  daemon_ = std::make_unique<Daemon>(tree_, allowPolicy("client-a", port_) + stagedDeny(port_), "enforce",
                                     std::vector<std::string>{"--log-allowed", "--metrics-listen",
                                                              "127.0.0.1:" + std::to_string(metricsPort)});
  ASSERT_TRUE(daemon_->started());
  Child srv = tcpServer(srv_, AF_INET, "127.0.0.1", port_);
  Child other = tcpServer(srv_, AF_INET, "127.0.0.1", port_ + 2);
  ASSERT_TRUE(srv.ready() && other.ready());

  // Staged: shown as staged, not a rule in force.
  auto show = daemon_->cli({"policy", "show", "-o", "json"});
  ASSERT_EQ(show.rc, 0) << show.err;
  const json shown = json::parse(show.out);
  ASSERT_EQ(shown["staged"].size(), 1u) << shown.dump(2);
  EXPECT_EQ(shown["staged"][0]["policy"], "a-lockdown");
  for (const auto& r : shown["rules"]) EXPECT_NE(r["policy"], "a-lockdown") << r.dump();
  const std::string file = daemon_->policyDir() + "/policy.yaml";
  auto v = daemon_->cli({"policy", "validate", file});
  EXPECT_EQ(v.rc, 0) << v.err;
  EXPECT_NE(v.out.find("(1 staged, not enforced: a-lockdown)"), std::string::npos) << v.out;

  // The traffic the staged policy would deny still passes; the rest of
  // client-a's policy is enforced.
  for (int i = 0; i < 3; i++) ASSERT_EQ(runIn(a_, [&] { return tcpConnect(AF_INET, "127.0.0.1", port_); }), 0);
  EXPECT_EQ(runIn(a_, [&] { return tcpConnect(AF_INET, "127.0.0.1", port_ + 2); }), EPERM);
  ASSERT_TRUE(daemon_->waitFlow([&](const json& f) {
    return f["verdict"] == "deny" && f["src"]["workload"] == "client-a" && f["dst"]["port"] == port_ + 2;
  }));
  auto allowed = record(port_, "allow");
  ASSERT_TRUE(allowed) << flowsJson().dump(2);
  EXPECT_EQ((*allowed)["rule"], "allow-client/0");
  EXPECT_EQ((*allowed)["staged_verdict"], "deny") << allowed->dump(2);
  EXPECT_EQ((*allowed)["staged_rule"], "a-lockdown/0");
  EXPECT_EQ((*allowed)["total"], 3);
  auto refused = record(port_ + 2, "deny");
  ASSERT_TRUE(refused);
  EXPECT_EQ((*refused)["staged_verdict"], "deny");
  EXPECT_EQ((*refused)["staged_rule"], "default-deny");
  // The server's side: no staged policy selects it, allowed both ways.
  bool ingressSeen = false;
  const json all = flowsJson();
  for (const auto& r : all["records"]) {
    if (r["direction"] != "ingress" || r["dst"]["port"] != port_) continue;
    ingressSeen = true;
    EXPECT_EQ(r["staged_verdict"], "allow") << r.dump(2);
  }
  EXPECT_TRUE(ingressSeen);

  // The table, beside the real verdict.
  auto t = daemon_->cli({"flows", "--staged"});
  ASSERT_EQ(t.rc, 0) << t.err;
  EXPECT_NE(t.out.find("STAGED RULE"), std::string::npos) << t.out;
  EXPECT_NE(t.out.find("a-lockdown/0"), std::string::npos) << t.out;

  // Counted by workload: three would-denies of port P, one of P+2.
  const std::string out = loopbackExchange(metricsPort, "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
  EXPECT_NE(out.find("microseg_staged_would_deny_total{workload=\"client-a\"} 4"), std::string::npos) << out;

  // Promote refuses what is not staged, and changes nothing.
  const std::string before = readFile(file);
  auto notStaged = daemon_->cli({"policy", "promote", "allow-client"});
  EXPECT_EQ(notStaged.rc, 1);
  EXPECT_NE(notStaged.err.find("policy 'allow-client' is not staged (it is in force); nothing changed"),
            std::string::npos)
      << notStaged.err;
  auto unknown = daemon_->cli({"policy", "promote", "nope"});
  EXPECT_EQ(unknown.rc, 1);
  EXPECT_NE(unknown.err.find("no staged policy 'nope'"), std::string::npos) << unknown.err;
  EXPECT_EQ(readFile(file), before);

  // Promoted: the line is gone, the comment above it stays, and the same
  // connection is refused.
  auto p = daemon_->cli({"policy", "promote", "a-lockdown"});
  ASSERT_EQ(p.rc, 0) << p.out << p.err;
  const std::string after = readFile(file);
  EXPECT_EQ(after.find("staged: true"), std::string::npos) << after;
  EXPECT_NE(after.find("  # staged until the dashboards agree\n  egress:\n"), std::string::npos) << after;
  EXPECT_EQ(after.size(), before.size() - std::string("  staged: true   # remove to enforce\n").size());
  EXPECT_EQ(runIn(a_, [&] { return tcpConnect(AF_INET, "127.0.0.1", port_); }), EPERM);
  EXPECT_EQ(runIn(a_, [&] { return tcpConnect(AF_INET, "127.0.0.1", port_ + 2); }), EPERM);
  ASSERT_TRUE(daemon_->waitFlow([&](const json& f) {
    return f["verdict"] == "deny" && f["src"]["workload"] == "client-a" && f["dst"]["port"] == port_ &&
           f["rule"] == "a-lockdown/0";
  }));
  EXPECT_EQ(flowsJson()["staged"], false) << "nothing staged any more";
  auto again = daemon_->cli({"policy", "promote", "a-lockdown"});
  EXPECT_EQ(again.rc, 1) << "promoted once";
}

}  // namespace
}  // namespace microseg::e2e
