// `microseg policy diff` against the daemon (README "Rolling out"): traffic
// of two clients observed in monitor mode; the suggested set breaks none of
// it (exit 0), a set that allows nothing breaks every observed edge (exit
// 6, with the flow records' counts), an invalid set fails with its located
// error and changes nothing; the kernel in enforce mode refuses what the
// diff said the empty set would refuse; once the suggestion is in force and
// enforced, the diff of it says nothing changes.
#include <gtest/gtest.h>

#include <sys/stat.h>

#include <fstream>
#include <map>
#include <tuple>

#include "harness.h"
#include "policies.h"

namespace microseg::e2e {
namespace {

using nlohmann::json;
using EdgeKey = std::tuple<std::string, std::string, std::string, int>;  // direction, src, dst, port

class PolicyDiff : public WorkloadTest {
 protected:
  // Candidates live beside the daemon's policy directory, not in it (the
  // daemon would load them); removed with the daemon's directory.
  std::string candidate(const std::string& name, const std::string& yaml) {
    const std::string dir = daemon_->policyDir() + "/../candidates";
    mkdir(dir.c_str(), 0755);
    const std::string path = dir + "/" + name;
    std::ofstream(path) << yaml;
    return path;
  }
  json diffJson(const std::string& path, int expectRc) {
    auto r = daemon_->cli({"policy", "diff", path, "-o", "json"});
    EXPECT_EQ(r.rc, expectRc) << r.out << r.err;
    try {
      return json::parse(r.out);
    } catch (...) {
      ADD_FAILURE() << "not JSON: " << r.out << r.err;
      return json::object();
    }
  }
  // Passed events of the flow records by edge (UDP answers aside).
  std::map<EdgeKey, uint64_t> passedRecords() {
    std::map<EdgeKey, uint64_t> out;
    auto f = daemon_->cli({"flows", "-o", "json"});
    EXPECT_EQ(f.rc, 0) << f.err;
    if (f.rc != 0) return out;
    const json j = json::parse(f.out);
    for (const auto& r : j["records"]) {
      if (r["verdict"] == "deny" || r["reason"] == "udp-answer") continue;
      out[EdgeKey(r["direction"].get<std::string>(), r["src"]["workload"].get<std::string>(),
                  r["dst"]["workload"].get<std::string>(), r["dst"]["port"].get<int>())] +=
          r["total"].get<uint64_t>();
    }
    return out;
  }
  static std::map<EdgeKey, uint64_t> passedEdges(const json& items) {
    std::map<EdgeKey, uint64_t> out;
    for (const auto& e : items) {
      out[EdgeKey(e["direction"].get<std::string>(), e["src"].get<std::string>(), e["dst"].get<std::string>(),
                  e["port"].get<int>())] += e["passed"].get<uint64_t>();
    }
    return out;
  }
};

TEST_F(PolicyDiff, SuggestedSetBreaksNothingAllowNothingBreaksEveryObservedFlow) {
  // Allowed flows recorded too: the records after the suggestion is enforced.
  daemon_ = std::make_unique<Daemon>(tree_, workloads(), "monitor", std::vector<std::string>{"--log-allowed"});
  ASSERT_TRUE(daemon_->started());
  Child srv = tcpServer(srv_, AF_INET, "127.0.0.1", port_);
  Child other = tcpServer(srv_, AF_INET, "127.0.0.1", port_ + 2);
  ASSERT_TRUE(srv.ready() && other.ready());
  // Observed in monitor mode (audited: no policy yet): client-a -> server:P
  // three times, client-b -> server:P+2 twice.
  for (int i = 0; i < 3; i++) ASSERT_EQ(runIn(a_, [&] { return tcpConnect(AF_INET, "127.0.0.1", port_); }), 0);
  for (int i = 0; i < 2; i++) ASSERT_EQ(runIn(b_, [&] { return tcpConnect(AF_INET, "127.0.0.1", port_ + 2); }), 0);
  for (const char* client : {"client-a", "client-b"}) {
    ASSERT_TRUE(daemon_->waitFlow([&](const json& f) {
      return f["verdict"] == "audit" && f["direction"] == "ingress" && f["src"]["workload"] == client;
    })) << client;
  }
  const uint64_t generation = (*daemon_->status())["policy_generation"].get<uint64_t>();

  // The suggestion validates, and breaks nothing that was observed.
  auto s = daemon_->request("suggest");
  ASSERT_TRUE(s) << daemon_->log();
  const std::string suggested = candidate("suggested.yaml", workloads() + (*s)["yaml"].get<std::string>());
  auto v = daemon_->cli({"policy", "validate", suggested});
  ASSERT_EQ(v.rc, 0) << v.out << v.err;
  json d = diffJson(suggested, 0);
  EXPECT_EQ(d["breaks"], false);
  EXPECT_TRUE(d["would_break"].empty()) << d.dump(2);
  // Audited today (the set in force denies), allowed by the suggestion.
  EXPECT_EQ(passedEdges(d["widening"]), passedRecords()) << d.dump(2);
  std::set<std::pair<std::string, std::string>> gained;
  for (const auto& g : d["reach"]["gained"]) gained.insert({g["from"].get<std::string>(), g["to"].get<std::string>()});
  EXPECT_EQ(gained, (std::set<std::pair<std::string, std::string>>{{"client-a", "server"}, {"client-b", "server"}}));

  // A set that allows nothing (the workloads, no policy): every observed
  // edge would break, with the records' counts, and the exit code says so.
  const std::string none = candidate("none.yaml", workloads());
  d = diffJson(none, 6);
  EXPECT_EQ(d["breaks"], true);
  const auto records = passedRecords();
  EXPECT_EQ(records.size(), 4u) << "both sides of both connections";
  EXPECT_EQ(passedEdges(d["would_break"]), records) << d.dump(2);
  EXPECT_EQ(records.at({"egress", "client-a", "server", port_}), 3u);
  EXPECT_EQ(records.at({"ingress", "client-b", "server", port_ + 2}), 2u);
  for (const auto& e : d["would_break"]) EXPECT_EQ(e["verdict_candidate"], "deny");
  auto table = daemon_->cli({"policy", "diff", none});
  EXPECT_EQ(table.rc, 6) << table.out << table.err;
  EXPECT_NE(table.out.find("4 observed edges would break."), std::string::npos) << table.out;

  // The set in force is that empty set: enforcing it, the kernel refuses
  // exactly the edges the diff said would break.
  ASSERT_EQ(daemon_->cli({"mode", "enforce"}).rc, 0);
  EXPECT_EQ(runIn(a_, [&] { return tcpConnect(AF_INET, "127.0.0.1", port_); }), EPERM);
  EXPECT_EQ(runIn(b_, [&] { return tcpConnect(AF_INET, "127.0.0.1", port_ + 2); }), EPERM);
  ASSERT_EQ(daemon_->cli({"mode", "monitor"}).rc, 0);

  // An invalid candidate: its located error, exit 1, nothing applied.
  const std::string bad = candidate(
      "bad.yaml", workloads() +
                      "apiVersion: microseg.dev/v1\nkind: Policy\nmetadata: {name: bad}\nspec:\n"
                      "  selector: {identity: server}\n  ingress:\n    - from: [{identity: client-a}]\n"
                      "      ports: [{port: 70000}]\n");
  auto b = daemon_->cli({"policy", "diff", bad});
  EXPECT_EQ(b.rc, 1) << b.out << b.err;
  EXPECT_NE(b.err.find("/candidates/bad.yaml:29:22: error: "), std::string::npos) << b.err;
  EXPECT_EQ((*daemon_->status())["policy_generation"].get<uint64_t>(), generation) << "diff applies nothing";

  // Enforced, the suggestion keeps the observed traffic: now allowed
  // records, and the diff of the set in force says nothing changes.
  daemon_->writePolicy("policy.yaml", workloads() + (*s)["yaml"].get<std::string>());
  ASSERT_EQ(daemon_->cli({"policy", "reload"}).rc, 0);
  ASSERT_EQ(daemon_->cli({"mode", "enforce"}).rc, 0);
  ASSERT_EQ(runIn(a_, [&] { return tcpConnect(AF_INET, "127.0.0.1", port_); }), 0);
  ASSERT_TRUE(daemon_->waitFlow([&](const json& f) {
    return f["verdict"] == "allow" && f["direction"] == "ingress" && f["src"]["workload"] == "client-a";
  }));
  d = diffJson(suggested, 0);
  EXPECT_TRUE(d["would_break"].empty()) << d.dump(2);
  EXPECT_TRUE(d["widening"].empty()) << d.dump(2);
  EXPECT_EQ(passedEdges(d["unchanged"]), passedRecords());
  d = diffJson(none, 6);
  EXPECT_EQ(passedEdges(d["would_break"]), passedRecords());
  // Applied, the set without policies refuses them again (this reload, from
  // policies to none, crashed the daemon: datapath/slot_state.cpp).
  daemon_->writePolicy("policy.yaml", workloads());
  auto rl = daemon_->cli({"policy", "reload"});
  ASSERT_EQ(rl.rc, 0) << rl.out << rl.err;
  EXPECT_EQ(runIn(a_, [&] { return tcpConnect(AF_INET, "127.0.0.1", port_); }), EPERM);
  EXPECT_EQ(runIn(b_, [&] { return tcpConnect(AF_INET, "127.0.0.1", port_ + 2); }), EPERM);
}

}  // namespace
}  // namespace microseg::e2e
