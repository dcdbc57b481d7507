// Staged policies (spec.staged: true): parsed and validated, never in what
// the kernel gets (the in-force compile, identities, ipcache and cgroup
// settings are byte for byte those of the set without them), and judged in
// userspace against "in force + staged" (diff/staged.h).
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "common/names.h"
#include "compiler/compiler.h"
#include "compiler/explain.h"
#include "daemon/reload.h"
#include "diff/staged.h"
#include "fake_datapath.h"
#include "identity/identities.h"
#include "policy/parser.h"
#include "suggest/suggest.h"

namespace microseg {
namespace {

namespace fs = std::filesystem;

const std::string kSet = R"(apiVersion: microseg.dev/v1
kind: Workload
metadata: {name: client}
spec: {cgroups: [client], labels: {app: client}}
---
apiVersion: microseg.dev/v1
kind: Workload
metadata: {name: server}
spec: {cgroups: [server], labels: {app: server}}
---
apiVersion: microseg.dev/v1
kind: Workload
metadata: {name: idle}
spec: {cgroups: [idle], labels: {app: idle}}
---
apiVersion: microseg.dev/v1
kind: Policy
metadata: {name: client-out}
spec:
  selector: {identity: client}
  egress:
    - to: [{identity: server}]
      ports: [{port: 8000, protocol: TCP}, {port: 8001, protocol: TCP}]
    - to: [{cidr: 198.51.100.0/24}]
---
apiVersion: microseg.dev/v1
kind: Policy
metadata: {name: server-in}
spec:
  selector: {identity: server}
  ingress:
    - from: [{identity: client}]
)";

// Each would change the kernel's maps if it were enforced: a deny of
// traffic allowed now, a new cidr peer (ipcache ranges), a selection of a
// workload no policy selects (isolation), and a mode.
const std::string kStaged = R"(---
apiVersion: microseg.dev/v1
kind: Policy
metadata: {name: client-lockdown}
spec:
  selector: {identity: client}
  # staged until the dashboards say so
  staged: true   # promote me
  enforcement: monitor
  egress:
    - to: [{identity: server}]
      ports: [{port: 8000, protocol: TCP}]
      action: deny
    - to: [{cidr: 203.0.113.0/24}]
---
apiVersion: microseg.dev/v1
kind: Policy
metadata: {name: idle-in}
spec:
  selector: {identity: idle}
  staged: true
  ingress: []
)";

policy::ParseResult parse(const std::string& text, const std::string& file = "p.yaml") {
  auto r = policy::parseText(text, file);
  EXPECT_TRUE(r.ok()) << (r.errors.empty() ? "" : r.errors.front().str());
  return r;
}

ms_addr v4(const char* text) {
  ms_addr a{};
  a.a[10] = a.a[11] = 0xff;
  inet_pton(AF_INET, text, &a.a[12]);
  return a;
}

template <typename K, typename V>
bool sameBytes(const std::vector<std::pair<K, V>>& a, const std::vector<std::pair<K, V>>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); i++) {
    if (std::memcmp(&a[i].first, &b[i].first, sizeof(K)) != 0) return false;
    if (std::memcmp(&a[i].second, &b[i].second, sizeof(V)) != 0) return false;
  }
  return true;
}

TEST(StagedParser, StagedIsReadWithTheLineItIsOn) {
  auto r = parse(kSet + kStaged);
  ASSERT_TRUE(r.ok());
  const auto* p = r.bundle.findPolicy("client-lockdown");
  ASSERT_NE(p, nullptr);
  EXPECT_TRUE(p->staged);
  EXPECT_EQ(p->stagedLoc.line, 40);  // `staged: true   # promote me`
  EXPECT_FALSE(r.bundle.findPolicy("client-out")->staged);
  EXPECT_EQ(r.bundle.stagedPolicies(), 2u);
  EXPECT_EQ(policy::withoutStaged(r.bundle).policies.size(), 2u);

  auto f = policy::parseText(kSet + "---\napiVersion: microseg.dev/v1\nkind: Policy\nmetadata: {name: x}\nspec:\n"
                                    "  selector: {identity: client}\n  staged: false\n  egress: []\n",
                             "p.yaml");
  ASSERT_TRUE(f.ok());
  EXPECT_FALSE(f.bundle.findPolicy("x")->staged);

  auto bad = policy::parseText(kSet + "---\napiVersion: microseg.dev/v1\nkind: Policy\nmetadata: {name: x}\nspec:\n"
                                      "  selector: {identity: client}\n  staged: maybe\n  egress: []\n",
                               "p.yaml");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.errors.front().str().find("p.yaml:39:11: error: spec.staged: 'maybe' is not true or false"),
            std::string::npos)
      << bad.errors.front().str();
}

// spec.revokeEstablished (README "Revocation"): never (default) or on-change.
TEST(RevokeEstablished, NeverOrOnChangeAndNothingElse) {
  auto doc = [](const std::string& v) {
    return kSet + "---\napiVersion: microseg.dev/v1\nkind: Policy\nmetadata: {name: x}\nspec:\n"
                  "  selector: {identity: client}\n" + (v.empty() ? "" : "  revokeEstablished: " + v + "\n") +
           "  egress: []\n";
  };
  auto none = policy::parseText(doc(""), "p.yaml");
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none.bundle.findPolicy("x")->revokeOnChange);
  auto never = policy::parseText(doc("never"), "p.yaml");
  ASSERT_TRUE(never.ok());
  EXPECT_FALSE(never.bundle.findPolicy("x")->revokeOnChange);
  auto on = policy::parseText(doc("on-change"), "p.yaml");
  ASSERT_TRUE(on.ok());
  EXPECT_TRUE(on.bundle.findPolicy("x")->revokeOnChange);
  auto bad = policy::parseText(doc("always"), "p.yaml");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.errors.front().str().find("p.yaml:39:22: error: spec.revokeEstablished: 'always' is not never or "
                                          "on-change"),
            std::string::npos)
      << bad.errors.front().str();
}

// The compiler leaves staged policies out unless asked (the userspace set).
TEST(StagedCompiler, InForceCompileIsThatOfTheSetWithoutThem) {
  auto with = parse(kSet + kStaged), without = parse(kSet);
  const compiler::Options selected{compiler::DefaultEnforcement::Selected};
  for (const auto& opts : {compiler::Options{}, selected}) {
    auto ids = identity::assignIdentities(without.bundle);
    compiler::RuleRegistry r1, r2;
    const auto a = compiler::compile(with.bundle, ids, r1, opts);
    const auto b = compiler::compile(without.bundle, ids, r2, opts);
    ASSERT_EQ(a.entries.size(), b.entries.size());
    for (size_t i = 0; i < a.entries.size(); i++) {
      EXPECT_EQ(std::memcmp(&a.entries[i].key, &b.entries[i].key, sizeof(ms_policy_key)), 0) << i;
      EXPECT_EQ(std::memcmp(&a.entries[i].value, &b.entries[i].value, sizeof(ms_policy_value)), 0) << i;
    }
    EXPECT_TRUE(sameBytes(a.identities, b.identities));
    EXPECT_EQ(a.rules.size(), b.rules.size());

    // Asked for, they are compiled: the deny and the idle workload's isolation.
    compiler::Options all = opts;
    all.includeStaged = true;
    compiler::RuleRegistry r3;
    const auto c = compiler::compile(with.bundle, ids, r3, all);
    const uint32_t client = ids.byWorkload.at("client"), server = ids.byWorkload.at("server");
    EXPECT_EQ(compiler::evaluate(a, client, server, policy::Direction::Egress, MS_PROTO_TCP, 8000).verdict,
              MS_VERDICT_ALLOW);
    EXPECT_EQ(compiler::evaluate(c, client, server, policy::Direction::Egress, MS_PROTO_TCP, 8000).verdict,
              MS_VERDICT_DENY);
    EXPECT_GT(c.rules.size(), a.rules.size());
  }
}

// One Compiler, incremental: staged parts come and go with includeStaged.
TEST(StagedCompiler, AnIncrementalCompilerFlipsIncludeStagedExactly) {
  auto with = parse(kSet + kStaged), without = parse(kSet);
  auto ids = identity::assignIdentities(without.bundle);
  compiler::Compiler comp;
  compiler::RuleRegistry reg, fresh;
  compiler::Options o;
  auto a = comp.compile(with.bundle, ids, reg, o);
  o.includeStaged = true;
  auto b = comp.compile(with.bundle, ids, reg, o, &a);
  o.includeStaged = false;
  auto c = comp.compile(with.bundle, ids, reg, o, &b);
  const auto ref = compiler::compile(without.bundle, ids, fresh);
  ASSERT_EQ(c.entries.size(), ref.entries.size());
  for (size_t i = 0; i < c.entries.size(); i++) {
    EXPECT_EQ(std::memcmp(&c.entries[i].key, &ref.entries[i].key, sizeof(ms_policy_key)), 0) << i;
    EXPECT_EQ(c.entries[i].value.verdict, ref.entries[i].value.verdict) << i;
  }
  EXPECT_NE(b.entries.size(), ref.entries.size());
}

class StagedReload : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/microseg-staged.XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    for (const char* w : {"client", "server", "idle"}) fs::create_directories(dir_ + "/root/" + w);
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  daemon::ReloadOutcome load(daemon::Reloader& r, const std::string& text, const std::string& name) {
    const std::string file = dir_ + "/" + name;
    std::ofstream(file) << text;
    daemon::ReloadRequest req;
    req.paths = {file};
    req.trigger = "test";
    return r.reload(req);
  }
  std::string dir_;
};

// What the datapath is given, staged policies or not: the same maps.
TEST_F(StagedReload, TheKernelGetsTheSameMapsWithAndWithoutStagedPolicies) {
  for (auto mode : {compiler::DefaultEnforcement::Always, compiler::DefaultEnforcement::Selected}) {
    datapath::FakeDatapath dpWith, dpWithout;
    daemon::Reloader with(dpWith, {dir_ + "/root", mode}), without(dpWithout, {dir_ + "/root", mode});
    auto a = load(with, kSet + kStaged, "with.yaml");
    ASSERT_TRUE(a.ok) << (a.errors.empty() ? "" : a.errors[0]);
    auto b = load(without, kSet, "without.yaml");
    ASSERT_TRUE(b.ok) << (b.errors.empty() ? "" : b.errors[0]);
    EXPECT_TRUE(sameBytes(dpWith.state.ranges, dpWithout.state.ranges));
    EXPECT_TRUE(sameBytes(dpWith.state.ipcache, dpWithout.state.ipcache));
    EXPECT_TRUE(sameBytes(dpWith.state.cgroups, dpWithout.state.cgroups));
    EXPECT_TRUE(sameBytes(dpWith.state.identities, dpWithout.state.identities));
    EXPECT_TRUE(sameBytes(dpWith.exact, dpWithout.exact));
    EXPECT_EQ(with.inForce().ids.byWorkload, without.inForce().ids.byWorkload);
    // The generation holds the policies in force; the staged ones apart.
    EXPECT_EQ(with.inForce().bundle.policies.size(), 2u);
    ASSERT_NE(with.inForce().staged, nullptr);
    EXPECT_EQ(with.inForce().staged->policies.size(), 2u);
    EXPECT_EQ(without.inForce().staged, nullptr);

    // Promoted (the line removed), they are in force: the maps change.
    std::string promoted = kSet + kStaged;
    promoted.erase(promoted.find("  staged: true   # promote me\n"), std::string("  staged: true   # promote me\n").size());
    auto c = load(with, promoted, "with.yaml");
    ASSERT_TRUE(c.ok) << (c.errors.empty() ? "" : c.errors[0]);
    EXPECT_FALSE(sameBytes(dpWith.exact, dpWithout.exact) && sameBytes(dpWith.state.ranges, dpWithout.state.ranges) &&
                 sameBytes(dpWith.state.ipcache, dpWithout.state.ipcache));
    ASSERT_NE(with.inForce().staged, nullptr);
    EXPECT_EQ(with.inForce().staged->policies.size(), 1u);  // idle-in
  }
}

// `policy diff`: a candidate's staged policies are staged there too.
TEST_F(StagedReload, ACandidatesStagedPoliciesAreNotInForceInIt) {
  datapath::FakeDatapath dp;
  daemon::Reloader r(dp, {dir_ + "/root", compiler::DefaultEnforcement::Always});
  ASSERT_TRUE(load(r, kSet, "set.yaml").ok);
  std::ofstream(dir_ + "/cand.yaml") << kSet + kStaged;
  daemon::ReloadRequest req;
  req.paths = {dir_ + "/cand.yaml"};
  const auto cand = r.candidate(req);
  ASSERT_TRUE(cand.ok) << (cand.errors.empty() ? "" : cand.errors[0]);
  const auto& gen = r.inForce();
  ASSERT_EQ(cand.gen.compiled.entries.size(), gen.compiled.entries.size());
  for (size_t i = 0; i < gen.compiled.entries.size(); i++) {
    EXPECT_EQ(std::memcmp(&cand.gen.compiled.entries[i], &gen.compiled.entries[i], sizeof(compiler::PolicyEntry)),
              0);
  }
  EXPECT_EQ(cand.gen.bundle.policies.size(), 2u);
  ASSERT_NE(cand.gen.staged, nullptr);
}

// Observed flows judged against "in force + staged".
TEST_F(StagedReload, FlowsAreJudgedAgainstInForcePlusStaged) {
  datapath::FakeDatapath dp;
  daemon::Reloader r(dp, {dir_ + "/root", compiler::DefaultEnforcement::Always});
  ASSERT_TRUE(load(r, kSet + kStaged, "set.yaml").ok);
  const auto& gen = r.inForce();
  ASSERT_NE(gen.staged, nullptr);
  const auto& staged = *gen.staged;
  const uint32_t client = gen.ids.byWorkload.at("client"), server = gen.ids.byWorkload.at("server");
  auto judge = [&](diff::JudgedFlow f) {
    const auto v = diff::judgeStaged(staged, gen.ids, f);
    return std::make_pair(std::string(verdictName(v.verdict)), diff::stagedRuleName(staged, v));
  };
  diff::JudgedFlow f;
  f.direction = MS_DIR_EGRESS;
  f.src = client;
  f.dst = server;
  f.protocol = MS_PROTO_TCP;
  f.port = 8000;
  f.verdict = MS_VERDICT_ALLOW;
  f.reason = MS_REASON_RULE;
  // Allowed now, the staged deny would refuse it.
  EXPECT_EQ(judge(f), std::make_pair(std::string("deny"), std::string("client-lockdown/0")));
  // Another port of the same rule: still allowed, by the rule in force.
  f.port = 8001;
  EXPECT_EQ(judge(f), std::make_pair(std::string("allow"), std::string("client-out/0")));
  // Refused now, refused staged.
  f.port = 9000;
  f.verdict = MS_VERDICT_DENY;
  f.reason = MS_REASON_DEFAULT_DENY;
  EXPECT_EQ(judge(f), std::make_pair(std::string("deny"), std::string("default-deny")));
  // The server's side: no staged policy selects it.
  f.direction = MS_DIR_INGRESS;
  f.port = 8000;
  f.verdict = MS_VERDICT_ALLOW;
  f.reason = MS_REASON_RULE;
  EXPECT_EQ(judge(f).first, "allow");
  // A staged cidr peer: the address decides (world in force, the staged
  // set's range identity for 203.0.113.0/24).
  f.direction = MS_DIR_EGRESS;
  f.dst = MS_IDENTITY_WORLD;
  f.dstAddr = v4("203.0.113.9");
  f.port = 443;
  f.verdict = MS_VERDICT_DENY;
  f.reason = MS_REASON_DEFAULT_DENY;
  EXPECT_EQ(judge(f), std::make_pair(std::string("allow"), std::string("client-lockdown/1")));
  f.dstAddr = v4("192.0.2.9");
  EXPECT_EQ(judge(f), std::make_pair(std::string("deny"), std::string("default-deny")));
  // Judged against its subject's share of the entries: the verdict of the
  // whole staged compile, everywhere.
  const uint32_t idle = gen.ids.byWorkload.at("idle");
  for (uint32_t s : {client, server, idle, uint32_t(MS_IDENTITY_HOST)}) {
    for (uint32_t p : {client, server, idle, uint32_t(MS_IDENTITY_WORLD), uint32_t(MS_IDENTITY_HOST)}) {
      for (uint8_t dir : {uint8_t(MS_DIR_EGRESS), uint8_t(MS_DIR_INGRESS)}) {
        for (uint16_t port : {1, 8000, 8001, 9000, 65535}) {
          const bool egress = dir == MS_DIR_EGRESS;
          diff::JudgedFlow g;
          g.direction = dir;
          g.src = egress ? s : p;
          g.dst = egress ? p : s;
          g.protocol = MS_PROTO_TCP;
          g.port = port;
          g.reason = MS_REASON_RULE;
          const auto v = diff::judgeStaged(staged, gen.ids, g);
          const auto whole = compiler::evaluate(staged.compiled, s, p,
                                                egress ? policy::Direction::Egress : policy::Direction::Ingress,
                                                MS_PROTO_TCP, port);
          EXPECT_EQ(v.verdict, whole.verdict) << s << " " << p << " " << int(dir) << " " << port;
          EXPECT_EQ(v.ruleId, whole.ruleId);
          EXPECT_EQ(v.reason, whole.reason);
        }
      }
    }
  }
  // Not a policy decision: kept.
  f.reason = MS_REASON_UDP_ANSWER;
  f.verdict = MS_VERDICT_ALLOW;
  EXPECT_EQ(judge(f), std::make_pair(std::string("allow"), std::string("udp-answer")));
}

TEST(StagedSuggest, StagedDocumentsCarryStagedTrue) {
  auto set = parse(kSet);
  auto ids = identity::assignIdentities(set.bundle);
  suggest::Naming naming;
  naming.workload = [&](uint32_t id) -> std::string {
    auto it = ids.workloads.find(id);
    return it == ids.workloads.end() ? "" : it->second.front();
  };
  naming.external = [](uint32_t) { return std::string(); };
  suggest::Flow f;
  f.direction = MS_DIR_EGRESS;
  f.src = ids.byWorkload.at("client");
  f.dst = ids.byWorkload.at("server");
  f.protocol = MS_PROTO_TCP;
  f.port = 8000;
  f.verdict = MS_VERDICT_ALLOW;
  f.count = 1;
  suggest::Options o;
  o.staged = true;
  const std::string y = suggest::suggest({f}, naming, o);
  EXPECT_NE(y.find("\n  staged: true\n"), std::string::npos) << y;
  auto r = parse(kSet + "---\n" + y);
  ASSERT_TRUE(r.ok());
  ASSERT_NE(r.bundle.findPolicy("client-observed"), nullptr);
  EXPECT_TRUE(r.bundle.findPolicy("client-observed")->staged);
  EXPECT_EQ(suggest::suggest({f}, naming, {}).find("staged"), std::string::npos);
}

}  // namespace
}  // namespace microseg
