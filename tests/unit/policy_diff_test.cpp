// Policy diff (diff/diff.h): observed edges judged by the set in force and
// by a candidate (both compiled from hand-written bundles), classified as
// would break / widening / unchanged, ends mapped to the candidate's
// identities by workload name or by address, and the reach difference.
#include <gtest/gtest.h>

#include <sstream>

#include "cli/rollout_commands.h"
#include "compiler/compiler.h"
#include "diff/diff.h"
#include "identity/identities.h"
#include "policy/cidr.h"
#include "policy/parser.h"

namespace microseg::diff {
namespace {

std::string workloads(const std::vector<std::string>& names) {
  std::string y;
  for (const auto& w : names) {
    y += "apiVersion: microseg.dev/v1\nkind: Workload\nmetadata: {name: " + w + "}\nspec: {cgroups: [" + w +
         "], labels: {app: " + w + "}}\n---\n";
  }
  return y;
}

// `from` may call `to` on TCP `port`: its egress and the callee's ingress.
std::string link(const std::string& from, const std::string& to, int port) {
  const std::string p = std::to_string(port);
  return "apiVersion: microseg.dev/v1\nkind: Policy\nmetadata: {name: " + from + "-" + to + "-out}\nspec:\n"
         "  selector: {identity: " + from + "}\n  egress:\n    - to: [{identity: " + to + "}]\n"
         "      ports: [{port: " + p + "}]\n---\n"
         "apiVersion: microseg.dev/v1\nkind: Policy\nmetadata: {name: " + from + "-" + to + "-in}\nspec:\n"
         "  selector: {identity: " + to + "}\n  ingress:\n    - from: [{identity: " + from + "}]\n"
         "      ports: [{port: " + p + "}]\n---\n";
}

std::string external(const std::string& name, const std::string& cidr) {
  return "apiVersion: microseg.dev/v1\nkind: External\nmetadata: {name: " + name + "}\nspec: {cidrs: [\"" + cidr +
         "\"]}\n---\n";
}

std::string egressTo(const std::string& from, const std::string& ext, int port) {
  return "apiVersion: microseg.dev/v1\nkind: Policy\nmetadata: {name: " + from + "-" + ext + "}\nspec:\n"
         "  selector: {identity: " + from + "}\n  egress:\n    - to: [{identity: " + ext + "}]\n"
         "      ports: [{port: " + std::to_string(port) + "}]\n---\n";
}

struct Set {
  policy::Bundle bundle;
  identity::IdentityTable ids;
  compiler::RuleRegistry reg;
  compiler::CompiledPolicy c;
  explicit Set(const std::string& yaml) {
    auto r = policy::parseText(yaml, "t.yaml");
    EXPECT_TRUE(r.ok()) << (r.errors.empty() ? "" : r.errors.front().str());
    bundle = r.bundle;
    ids = identity::assignIdentities(bundle);
    c = compiler::compile(bundle, ids, reg);
  }
  uint32_t id(const std::string& w) const { return ids.byWorkload.at(w); }
  Side side() const { return Side{&ids, &c, &reg}; }
};

ms_addr addr(const char* text) { return *policy::parseAddress(text); }

// Both records of one connection (the caller's egress, the callee's ingress).
std::vector<Record> connection(uint32_t from, uint32_t to, uint16_t port, uint8_t verdict, uint64_t count,
                               int64_t lastNs = 2000) {
  Record e;
  e.direction = MS_DIR_EGRESS;
  e.src = from;
  e.dst = to;
  e.protocol = MS_PROTO_TCP;
  e.port = port;
  e.verdict = verdict;
  e.count = count;
  e.firstSeenNs = 1000;
  e.lastSeenNs = lastNs;
  Record i = e;
  i.direction = MS_DIR_INGRESS;
  return {e, i};
}

TEST(PolicyDiff, WhatPassedAndTheCandidateDeniesWouldBreak) {
  const std::string ws = workloads({"a", "b", "c"});
  Set now(ws + link("a", "b", 80));
  Set cand(ws);  // allows nothing
  auto recs = connection(now.id("a"), now.id("b"), 80, MS_VERDICT_ALLOW, 3);
  const Result r = diff(recs, now.side(), cand.side());
  ASSERT_EQ(r.wouldBreak.size(), 2u);
  EXPECT_TRUE(r.breaks());
  for (const auto& e : r.wouldBreak) {
    EXPECT_EQ(e.passed, 3u);
    EXPECT_EQ(e.now, MS_VERDICT_ALLOW);
    EXPECT_EQ(e.candidate, MS_VERDICT_DENY);
    EXPECT_EQ(e.candidateRule, "default-deny");
    EXPECT_EQ(e.srcName, "a");
    EXPECT_EQ(e.dstName, "b");
    EXPECT_EQ(e.lastSeenNs, 2000);
  }
  EXPECT_TRUE(r.widening.empty());
  EXPECT_TRUE(r.unchanged.empty());
  // Statically: a loses its path to b, nobody gains one.
  ASSERT_EQ(r.lost.size(), 1u);
  EXPECT_EQ(r.lost[0].from, "a");
  EXPECT_EQ(r.lost[0].to, "b");
  EXPECT_EQ(reach::formatPorts(r.lost[0].ports.at(0)), "80/tcp");
  EXPECT_TRUE(r.gained.empty());

  // The same set as candidate: nothing breaks, nothing changes.
  Set same(ws + link("a", "b", 80));
  const Result s = diff(recs, now.side(), same.side());
  EXPECT_FALSE(s.breaks());
  EXPECT_EQ(s.unchanged.size(), 2u);
  EXPECT_TRUE(s.gained.empty() && s.lost.empty());
}

TEST(PolicyDiff, AuditedTrafficPassedSoDenyingItBreaks) {
  // Monitor mode: the policy in force (none) denies, the flows were audited
  // and let through. A candidate that allows nothing breaks them.
  const std::string ws = workloads({"a", "b"});
  Set now(ws);
  auto recs = connection(now.id("a"), now.id("b"), 80, MS_VERDICT_AUDIT, 5);
  Set none(ws);
  const Result r = diff(recs, now.side(), none.side());
  ASSERT_EQ(r.wouldBreak.size(), 2u);
  EXPECT_EQ(r.wouldBreak[0].now, MS_VERDICT_DENY);
  EXPECT_EQ(r.wouldBreak[0].passed, 5u);

  // A candidate that allows them: nothing breaks; it widens the policy.
  Set allows(ws + link("a", "b", 80));
  const Result w = diff(recs, now.side(), allows.side());
  EXPECT_FALSE(w.breaks());
  EXPECT_EQ(w.widening.size(), 2u);
  ASSERT_EQ(w.gained.size(), 1u);
  EXPECT_EQ(w.gained[0].from, "a");
  EXPECT_EQ(w.gained[0].to, "b");
}

TEST(PolicyDiff, RefusedTrafficTheCandidateAllowsIsWidening) {
  const std::string ws = workloads({"a", "b"});
  Set now(ws + link("a", "b", 80));
  Set cand(ws + link("a", "b", 80) + link("b", "a", 9000));
  auto recs = connection(now.id("b"), now.id("a"), 9000, MS_VERDICT_DENY, 2);
  auto kept = connection(now.id("a"), now.id("b"), 80, MS_VERDICT_ALLOW, 1);
  auto refused = connection(now.id("a"), now.id("b"), 81, MS_VERDICT_DENY, 4);
  recs.insert(recs.end(), kept.begin(), kept.end());
  recs.insert(recs.end(), refused.begin(), refused.end());
  const Result r = diff(recs, now.side(), cand.side());
  EXPECT_FALSE(r.breaks());
  ASSERT_EQ(r.widening.size(), 2u);
  EXPECT_EQ(r.widening[0].port, 9000);
  EXPECT_EQ(r.widening[0].denied, 2u);
  EXPECT_EQ(r.widening[0].passed, 0u);
  EXPECT_EQ(r.widening[0].candidateRule.find("b-a-"), 0u) << r.widening[0].candidateRule;
  EXPECT_EQ(r.unchanged.size(), 4u) << "80 still allowed, 81 still refused";
}

TEST(PolicyDiff, LocalWorkloadsAreMappedByNameNotByNumber) {
  // The candidate numbers its workloads afresh: a new workload sorts first
  // and takes a's number. Mapping by number would judge a's edge as
  // new->b's, which the candidate denies.
  Set now(workloads({"a", "b"}) + link("a", "b", 80));
  Set cand(workloads({"0new", "a", "b"}) + link("a", "b", 80));
  ASSERT_NE(now.id("a"), cand.id("a")) << "the test needs renumbered identities";
  const Result r = diff(connection(now.id("a"), now.id("b"), 80, MS_VERDICT_ALLOW, 1), now.side(), cand.side());
  EXPECT_FALSE(r.breaks());
  ASSERT_EQ(r.unchanged.size(), 2u);
  EXPECT_EQ(r.unchanged[0].candSrc, cand.id("a"));
  EXPECT_EQ(r.unchanged[0].candDst, cand.id("b"));

  // A workload the candidate no longer defines: its cgroups would be unmanaged.
  EXPECT_EQ(mapIdentity(now.id("a"), {}, now.ids, Set(workloads({"b"})).ids), MS_IDENTITY_UNMANAGED);
  EXPECT_EQ(mapIdentity(MS_IDENTITY_HOST, {}, now.ids, cand.ids), MS_IDENTITY_HOST);
}

TEST(PolicyDiff, AddressPeersAreMappedThroughTheCandidatesIpcache) {
  const std::string ws = workloads({"a"});
  Set now(ws + external("partner", "203.0.113.0/24") + egressTo("a", "partner", 443));
  const uint32_t partner = now.ids.byExternal.at("partner").front();
  Record e;
  e.direction = MS_DIR_EGRESS;
  e.src = now.id("a");
  e.dst = partner;
  e.protocol = MS_PROTO_TCP;
  e.port = 443;
  e.verdict = MS_VERDICT_ALLOW;
  e.count = 7;
  e.firstSeenNs = e.lastSeenNs = 5;
  e.dstAddr = addr("203.0.113.7");
  // The same range under another name: the same traffic allowed.
  Set renamed(ws + external("vendor", "203.0.113.0/24") + egressTo("a", "vendor", 443));
  const Result r = diff({e}, now.side(), renamed.side());
  EXPECT_FALSE(r.breaks());
  ASSERT_EQ(r.unchanged.size(), 1u);
  EXPECT_EQ(r.unchanged[0].dstName, "partner (203.0.113.7)");
  // A range that no longer holds the address: it is world there, denied.
  Set moved(ws + external("partner", "198.51.100.0/24") + egressTo("a", "partner", 443));
  const Result m = diff({e}, now.side(), moved.side());
  ASSERT_EQ(m.wouldBreak.size(), 1u);
  EXPECT_EQ(m.wouldBreak[0].candDst, MS_IDENTITY_WORLD);
  EXPECT_EQ(m.wouldBreak[0].passed, 7u);
}

TEST(PolicyDiff, RecordsOfOneEdgeFoldUdpAnswersAndTheWindowIsKept) {
  const std::string ws = workloads({"a", "b"});
  Set now(ws);
  Set cand(ws);
  auto recs = connection(now.id("a"), now.id("b"), 80, MS_VERDICT_AUDIT, 2, 3000);
  auto later = connection(now.id("a"), now.id("b"), 80, MS_VERDICT_ALLOW, 3, 4000);  // another generation's
  recs.insert(recs.end(), later.begin(), later.end());
  Record answer = recs[0];
  answer.protocol = MS_PROTO_UDP;
  answer.reason = MS_REASON_UDP_ANSWER;
  answer.count = 9;
  recs.push_back(answer);
  auto old = connection(now.id("b"), now.id("a"), 22, MS_VERDICT_ALLOW, 1, 100);
  recs.insert(recs.end(), old.begin(), old.end());

  Options o;
  o.sinceNs = 1000;
  const Result r = diff(recs, now.side(), cand.side(), o);
  ASSERT_EQ(r.wouldBreak.size(), 2u) << "one edge per direction; b->a:22 is older than the window";
  EXPECT_EQ(r.wouldBreak[0].passed, 5u);
  EXPECT_EQ(r.wouldBreak[0].lastSeenNs, 4000);
  EXPECT_EQ(r.wouldBreak[0].firstSeenNs, 1000);
  EXPECT_EQ(r.answers, 9u);
  EXPECT_EQ(r.records, 5u);
  EXPECT_EQ(diff(recs, now.side(), cand.side()).wouldBreak.size(), 4u) << "without a window: every record";
}

// The CLI's table: three sections with their counts, last seen and both
// verdicts, the reach difference, and the one-line conclusion.
TEST(PolicyDiffTable, SectionsCountsAndLastSeen) {
  const nlohmann::json r = nlohmann::json::parse(R"({
    "generation": 4, "records": 3, "since_seconds": 0, "udp_answers": 0, "breaks": true,
    "candidate": {"paths": ["/p/none.yaml"], "workloads": 2, "policies": 0},
    "would_break": [{"direction": "egress", "src": "a", "dst": "b", "protocol": "tcp", "port": 80,
                     "passed": 3, "denied": 0, "last_seen": "2026-12-07T10:00:00.000000Z",
                     "verdict_now": "allow", "verdict_candidate": "deny", "candidate_rule": "default-deny"}],
    "widening": [], "unchanged": [],
    "reach": {"gained": [], "lost": [{"from": "a", "to": "b", "ports": ["80/tcp"]}]}})");
  std::ostringstream out;
  cli::printDiff(r, out);
  const std::string t = out.str();
  EXPECT_NE(t.find("Would break: passed, the candidate denies (1 edge, 3 events passed):"), std::string::npos) << t;
  EXPECT_NE(t.find("2026-12-07T10:00:00.000000Z"), std::string::npos) << t;
  EXPECT_NE(t.find("deny (default-deny)"), std::string::npos) << t;
  EXPECT_NE(t.find("Widening: denied in force, the candidate allows (0 edges, 0 events passed):\n  none"),
            std::string::npos)
      << t;
  EXPECT_NE(t.find("lose a direct path (1):"), std::string::npos) << t;
  EXPECT_NE(t.find("1 observed edge would break."), std::string::npos) << t;
}

}  // namespace
}  // namespace microseg::diff
