// End-to-end tests of observed edges (bpf/abi.h: ms_edges): every judged
// flow counted by the kernel, allowed ones included without --log-allowed;
// a flood is one record with an exact count; counts survive a reload and
// a restart of the daemon.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <chrono>
#include <cstdio>
#include <thread>

#include "bpf/abi.h"
#include "harness.h"
#include "policies.h"

namespace microseg::e2e {
namespace {

using nlohmann::json;

class Edges : public WorkloadTest {
 protected:
  json status() {
    auto s = daemon_->status();
    return s ? *s : json::object();
  }
  uint64_t counter(const char* name) { return status()["counters"][name].get<uint64_t>(); }
  template <typename Pred>
  bool waitFor(Pred pred, int timeoutMs = 5000) {
    for (int waited = 0; waited < timeoutMs; waited += 50) {
      if (pred()) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return pred();
  }
  // `n` TCP connects from `cgroup` to the server port; how many passed.
  int connects(const std::string& cgroup, int n) {
    const int p = port_;
    return runIn(cgroup, [p, n] {
      int ok = 0;
      for (int i = 0; i < n; i++) ok += tcpConnect(AF_INET, "127.0.0.1", p) == 0;
      return ok;
    }, 120000);
  }
  // The records `microseg flows` lists for this verdict and direction from
  // `src` to the server port.
  std::vector<json> records(const std::string& verdict, const std::string& direction, const std::string& src) {
    auto r = daemon_->cli({"flows", "--verdict", verdict, "--port", std::to_string(port_), "-o", "json"});
    EXPECT_EQ(r.rc, 0) << r.err;
    std::vector<json> out;
    last_ = r.out;
    if (r.rc != 0) return out;
    const json reply = json::parse(r.out);
    for (const auto& rec : reply["records"]) {
      if (rec["direction"] == direction && rec["src"]["workload"] == src) out.push_back(rec);
    }
    return out;
  }
  std::string last_;  // the last `flows` output, for failure messages
  uint64_t total(const std::vector<json>& recs) {
    uint64_t n = 0;
    for (const auto& r : recs) n += r["total"].get<uint64_t>();
    return n;
  }
};

// Before edges, an allowed flow made a record only with --log-allowed (an
// event per flow).
TEST_F(Edges, AllowedFlowsAreRecordedWithoutLogAllowed) {
  Child server = tcpServer(srv_, AF_INET, "127.0.0.1", port_);
  ASSERT_TRUE(server.ready());
  daemon_ = std::make_unique<Daemon>(tree_, allowPolicy("client-a", port_), "enforce");
  ASSERT_TRUE(daemon_->started()) << daemon_->log();
  const uint64_t allowed0 = counter("allowed");
  ASSERT_EQ(connects(a_, 25), 25);
  auto egress = records("allow", "egress", "client-a");
  auto ingress = records("allow", "ingress", "client-a");
  ASSERT_EQ(egress.size(), 1u) << last_;
  ASSERT_EQ(ingress.size(), 1u) << last_;
  EXPECT_EQ(egress[0]["total"], 25);
  EXPECT_EQ(egress[0]["rule"], "allow-client/0");
  EXPECT_EQ(egress[0]["dst"]["workload"], "server");
  EXPECT_EQ(ingress[0]["total"], 25);
  EXPECT_EQ(ingress[0]["rule"], "server-in/0");
  EXPECT_EQ(counter("allowed") - allowed0, 50u) << "both sides judged every connect";
  // Its first flow's event gave the record its details.
  EXPECT_FALSE(egress[0]["src"]["pid"].is_null()) << egress[0].dump();
  // Not in the flow log without --log-allowed.
  for (const auto& f : daemon_->flows()) EXPECT_NE(f["verdict"], "allow") << f.dump();
}

// Monitor mode audits every connect of client-b; a flood of 5000 is one
// record per side whose count is exactly the kernel's audited counter,
// from a handful of events.
TEST_F(Edges, AnAuditedFloodCountsExactlyFromFewEvents) {
  Child server = tcpServer(srv_, AF_INET, "127.0.0.1", port_);
  ASSERT_TRUE(server.ready());
  daemon_ = std::make_unique<Daemon>(tree_, allowPolicy("client-a", port_), "monitor");
  ASSERT_TRUE(daemon_->started()) << daemon_->log();
  const uint64_t audited0 = counter("audited");
  const uint64_t events0 = json::parse(daemon_->cli({"flows", "-o", "json"}).out)["store"]["events"].get<uint64_t>();
  constexpr int kFlood = 5000;
  ASSERT_EQ(connects(b_, kFlood), kFlood);
  auto egress = records("audit", "egress", "client-b");
  auto ingress = records("audit", "ingress", "client-b");
  ASSERT_EQ(egress.size(), 1u) << last_;
  ASSERT_EQ(ingress.size(), 1u) << last_;
  EXPECT_EQ(egress[0]["total"], kFlood);
  // A SYN the listener's full backlog dropped comes again and is judged
  // again: at least one each.
  EXPECT_GE(ingress[0]["total"].get<uint64_t>(), uint64_t(kFlood));
  EXPECT_EQ(egress[0]["reason"], "default-deny");
  const uint64_t audited = counter("audited") - audited0;
  EXPECT_EQ(total(egress) + total(ingress), audited) << "edge counts are the kernel's counter";
  EXPECT_EQ(counter("events_lost"), 0u);
  // One event per edge when new, then at most one a second per edge: the
  // flood took seconds, not 10,000 events.
  auto after = json::parse(daemon_->cli({"flows", "-o", "json"}).out);
  const uint64_t events = after["store"]["events"].get<uint64_t>() - events0;
  EXPECT_LT(events, 200u) << "events for " << audited << " audited flows";
  EXPECT_GE(events, 2u);
  // The flow log's lines add up to the count as well.
  ASSERT_TRUE(waitFor([&] {
    uint64_t logged = 0;
    for (const auto& f : daemon_->flows()) {
      if (f["verdict"] == "audit" && f["direction"] == "egress") logged += f["count"].get<uint64_t>();
    }
    return logged == uint64_t(kFlood);
  }, 3000));
}

// The edge map is not per generation: a reload keeps its counts, and the
// rule keeps its id, so the record goes on counting.
TEST_F(Edges, AReloadKeepsTheCounts) {
  Child server = tcpServer(srv_, AF_INET, "127.0.0.1", port_);
  ASSERT_TRUE(server.ready());
  daemon_ = std::make_unique<Daemon>(tree_, allowPolicy("client-a", port_), "enforce");
  ASSERT_TRUE(daemon_->started()) << daemon_->log();
  ASSERT_EQ(connects(a_, 10), 10);
  const uint64_t g0 = status()["policy_generation"].get<uint64_t>();
  // Another policy besides: a new generation, the same rules for client-a.
  daemon_->writePolicy("zz-more.yaml",
                       "apiVersion: microseg.dev/v1\nkind: Policy\nmetadata: {name: more}\nspec:\n"
                       "  selector: {identity: client-b}\n  egress:\n    - to: [{identity: server}]\n"
                       "      ports: [{port: " + std::to_string(port_ + 7) + ", protocol: TCP}]\n");
  ASSERT_TRUE(waitFor([&] { return status()["policy_generation"].get<uint64_t>() > g0; }));
  ASSERT_EQ(connects(a_, 5), 5);
  auto egress = records("allow", "egress", "client-a");
  ASSERT_EQ(egress.size(), 1u) << last_;
  EXPECT_EQ(egress[0]["total"], 15);
}

// An edge idle for a quarter of the retention (2 s of 8 here) leaves the
// kernel's map with its last counts, so the map keeps room for the edges in
// use; its record keeps them, and a flow after it counts on from there,
// nothing twice.
TEST_F(Edges, AnIdleEdgeLeavesTheKernelsMapAndItsRecordCountsOn) {
  Child server = tcpServer(srv_, AF_INET, "127.0.0.1", port_);
  ASSERT_TRUE(server.ready());
  daemon_ = std::make_unique<Daemon>(tree_, allowPolicy("client-a", port_), "enforce",
                                     std::vector<std::string>{"--edge-retention", "8s"});
  ASSERT_TRUE(daemon_->started()) << daemon_->log();
  const std::string pin = daemon_->stateDir() + "/abi-" + std::to_string(MS_ABI_VERSION) + "/ms_edges";
  auto kernelEdges = [&]() -> long {
    const std::string cmd = "bpftool -j map dump pinned " + pin + " 2>/dev/null";
    FILE* f = ::popen(cmd.c_str(), "r");
    if (f == nullptr) return -1;
    std::string out;
    char buf[4096];
    for (size_t n; (n = fread(buf, 1, sizeof(buf), f)) > 0;) out.append(buf, n);
    if (::pclose(f) != 0) return -1;
    const json j = json::parse(out, nullptr, false);
    return j.is_array() ? long(j.size()) : -1;
  };
  ASSERT_EQ(connects(a_, 10), 10);
  EXPECT_EQ(kernelEdges(), 2) << "one edge per side";
  ASSERT_TRUE(waitFor([&] { return kernelEdges() == 0; }, 6000)) << "idle edges were not removed";
  auto egress = records("allow", "egress", "client-a");
  ASSERT_EQ(egress.size(), 1u) << last_;
  EXPECT_EQ(egress[0]["total"], 10);
  ASSERT_EQ(connects(a_, 5), 5);
  EXPECT_EQ(kernelEdges(), 2) << "made anew by the next flows";
  egress = records("allow", "egress", "client-a");
  ASSERT_EQ(egress.size(), 1u) << last_;
  EXPECT_EQ(egress[0]["total"], 15);
  auto ingress = records("allow", "ingress", "client-a");
  ASSERT_EQ(ingress.size(), 1u) << last_;
  EXPECT_EQ(ingress[0]["total"], 15);
}

// A restart with a changed policy set: a workload whose labels sort before
// the others and a new policy would shift identity and rule numbers if they
// were given afresh. The numbering saved with the history is resumed, so
// the records saved before still name what they named, and new flows count
// on in the same records.
TEST_F(Edges, ARestartWithAChangedPolicySetKeepsTheRecordsNames) {
  Child server = tcpServer(srv_, AF_INET, "127.0.0.1", port_);
  ASSERT_TRUE(server.ready());
  daemon_ = std::make_unique<Daemon>(tree_, allowPolicy("client-a", port_), "enforce");
  ASSERT_TRUE(daemon_->started()) << daemon_->log();
  ASSERT_EQ(connects(a_, 10), 10);
  ASSERT_EQ(total(records("allow", "egress", "client-a")), 10u) << last_;
  ASSERT_EQ(daemon_->stop(), 0);
  daemon_->writePolicy("policy.yaml",
                       "apiVersion: microseg.dev/v1\nkind: Workload\nmetadata: {name: aaa}\nspec:\n"
                       "  cgroups: [aaa]\n  labels: {app: aaa}\n---\n"
                       "apiVersion: microseg.dev/v1\nkind: Policy\nmetadata: {name: aaa-first}\nspec:\n"
                       "  selector: {identity: aaa}\n  egress:\n    - to: [{identity: server}]\n"
                       "      ports: [{port: " + std::to_string(port_ + 3) + ", protocol: TCP}]\n---\n" +
                           allowPolicy("client-a", port_));
  ASSERT_TRUE(daemon_->start()) << daemon_->log();
  ASSERT_EQ(connects(a_, 5), 5);
  auto egress = records("allow", "egress", "client-a");
  ASSERT_EQ(egress.size(), 1u) << last_;
  EXPECT_EQ(egress[0]["total"], 15);
  EXPECT_EQ(egress[0]["rule"], "allow-client/0");
  EXPECT_EQ(egress[0]["dst"]["workload"], "server");
  auto ingress = records("allow", "ingress", "client-a");
  ASSERT_EQ(ingress.size(), 1u) << last_;
  EXPECT_EQ(ingress[0]["total"], 15);
  EXPECT_EQ(ingress[0]["rule"], "server-in/0");
  EXPECT_NE(daemon_->log().find("numbering of the last run resumed"), std::string::npos) << daemon_->log();
}

// The records are saved (<data-dir>/edges.json) with what of the kernel's
// counts they hold; the restarted daemon adopts the pinned edge map, so what
// was judged while it was down is counted too, once.
TEST_F(Edges, AnEdgeSurvivesARestartWithTheFlowsJudgedMeanwhile) {
  Child server = tcpServer(srv_, AF_INET, "127.0.0.1", port_);
  ASSERT_TRUE(server.ready());
  daemon_ = std::make_unique<Daemon>(tree_, allowPolicy("client-a", port_), "monitor");
  ASSERT_TRUE(daemon_->started()) << daemon_->log();
  ASSERT_EQ(connects(b_, 40), 40);
  ASSERT_EQ(total(records("audit", "egress", "client-b")), 40u) << last_;
  ASSERT_EQ(daemon_->stop(), 0);
  // Down: the pinned programs go on judging and counting.
  ASSERT_EQ(connects(b_, 7), 7);
  ASSERT_TRUE(daemon_->start()) << daemon_->log();
  auto egress = records("audit", "egress", "client-b");
  ASSERT_EQ(egress.size(), 1u) << last_;
  EXPECT_EQ(egress[0]["total"], 47);
  ASSERT_EQ(connects(b_, 3), 3);
  EXPECT_EQ(total(records("audit", "egress", "client-b")), 50u);
  // A restart that cannot adopt (the pins removed): the saved records stay,
  // the fresh map's counts are added to them.
  ASSERT_EQ(daemon_->stop(), 0);
  ASSERT_EQ(daemon_->cleanup(), 0);
  ASSERT_TRUE(daemon_->start()) << daemon_->log();
  ASSERT_EQ(connects(b_, 2), 2);
  EXPECT_EQ(total(records("audit", "egress", "client-b")), 52u);
}

}  // namespace
}  // namespace microseg::e2e
