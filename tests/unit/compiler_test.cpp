// Compiler output and the reference evaluator (same lookup order as the
// datapath). Bundles are parsed from YAML so tests read like policies.
#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <cstring>
#include <random>

#include "compiler/compiler.h"
#include "identity/identities.h"
#include "policy/parser.h"

namespace microseg::compiler {
namespace {

using policy::Direction;

const char* kWorkloads = R"(
apiVersion: microseg.dev/v1
kind: Workload
metadata: {name: web}
spec: {cgroups: [web], labels: {app: web, tier: front}}
---
apiVersion: microseg.dev/v1
kind: Workload
metadata: {name: api}
spec: {cgroups: [api], labels: {app: api, tier: back}}
---
apiVersion: microseg.dev/v1
kind: Workload
metadata: {name: db}
spec: {cgroups: [db], labels: {app: db, tier: back}}
---
)";

struct Fixture {
  policy::Bundle bundle;
  identity::IdentityTable ids;
  RuleRegistry registry;
  CompiledPolicy out;
  uint32_t web = 0, api = 0, db = 0;

  explicit Fixture(const std::string& policies, Options opts = {}) {
    auto r = policy::parseText(std::string(kWorkloads) + policies, "test.yaml");
    policy::validateBundle(r.bundle, r.errors);
    for (const auto& e : r.errors) ADD_FAILURE() << e.str();
    bundle = r.bundle;
    ids = identity::assignIdentities(bundle);
    web = ids.byWorkload.at("web");
    api = ids.byWorkload.at("api");
    db = ids.byWorkload.at("db");
    out = compile(bundle, ids, registry, opts);
  }
  Decision egress(uint32_t s, uint32_t p, uint8_t proto, uint16_t port) const {
    return evaluate(out, s, p, Direction::Egress, proto, port);
  }
  std::string ruleOf(const Decision& d) const {
    auto it = out.rules.find(d.ruleId);
    return it == out.rules.end() ? "default" : it->second.name();
  }
};

std::string policyDoc(const std::string& name, const std::string& body) {
  return "apiVersion: microseg.dev/v1\nkind: Policy\nmetadata: {name: " + name + "}\nspec:\n" + body + "---\n";
}

TEST(Compiler, DefaultDenyWithoutRules) {
  Fixture f(policyDoc("p", "  selector: {identity: web}\n  egress: []\n"));
  auto d = f.egress(f.web, f.api, MS_PROTO_TCP, 80);
  EXPECT_EQ(d.verdict, MS_VERDICT_DENY);
  EXPECT_EQ(d.reason, MS_REASON_DEFAULT_DENY);
  EXPECT_EQ(d.ruleId, MS_RULE_NONE);
  EXPECT_TRUE(f.out.entries.empty());
  // Zero trust: every workload is isolated, even one no policy selects.
  EXPECT_EQ(f.egress(f.db, f.api, MS_PROTO_TCP, 80).verdict, MS_VERDICT_DENY);
}

TEST(Compiler, AllowByIdentityAndPort) {
  Fixture f(policyDoc("p", "  selector: {identity: web}\n  egress:\n"
                           "    - to: [{identity: api}]\n      ports: [{port: 8080, protocol: TCP}]\n"));
  EXPECT_EQ(f.egress(f.web, f.api, MS_PROTO_TCP, 8080).verdict, MS_VERDICT_ALLOW);
  EXPECT_EQ(f.ruleOf(f.egress(f.web, f.api, MS_PROTO_TCP, 8080)), "p/0");
  EXPECT_EQ(f.egress(f.web, f.api, MS_PROTO_TCP, 8081).verdict, MS_VERDICT_DENY);
  EXPECT_EQ(f.egress(f.web, f.api, MS_PROTO_UDP, 8080).verdict, MS_VERDICT_DENY);
  EXPECT_EQ(f.egress(f.web, f.db, MS_PROTO_TCP, 8080).verdict, MS_VERDICT_DENY);
  EXPECT_EQ(f.egress(f.api, f.web, MS_PROTO_TCP, 8080).verdict, MS_VERDICT_DENY);
  ASSERT_EQ(f.out.entries.size(), 1u);
  const auto& e = f.out.entries[0];
  EXPECT_EQ(e.key.prefixlen, MS_POLICY_PREFIX_FULL);
  EXPECT_EQ(ntohs(e.key.port), 8080);
  EXPECT_EQ(e.key.protocol, MS_PROTO_TCP);
  EXPECT_EQ(e.key.direction, MS_DIR_EGRESS);
}

TEST(Compiler, DenyWinsOverAllowWhateverTheOrder) {
  const std::string allow = "    - to: [{matchLabels: {tier: back}}]\n";
  const std::string deny = "    - action: deny\n      to: [{identity: db}]\n      ports: [{port: 5432}]\n";
  for (const auto& body : {allow + deny, deny + allow}) {
    Fixture f(policyDoc("p", "  selector: {identity: web}\n  egress:\n" + body));
    EXPECT_EQ(f.egress(f.web, f.db, MS_PROTO_TCP, 5432).verdict, MS_VERDICT_DENY);
    EXPECT_EQ(f.egress(f.web, f.db, MS_PROTO_UDP, 5432).verdict, MS_VERDICT_DENY);
    EXPECT_EQ(f.egress(f.web, f.db, MS_PROTO_TCP, 5433).verdict, MS_VERDICT_ALLOW);
    EXPECT_EQ(f.egress(f.web, f.api, MS_PROTO_TCP, 5432).verdict, MS_VERDICT_ALLOW);
  }
}

TEST(Compiler, DenyInAnotherPolicyWins) {
  Fixture f(policyDoc("a-allow", "  selector: {identity: web}\n  egress:\n    - to: [{identity: db}]\n") +
            policyDoc("z-deny", "  selector: {matchLabels: {tier: front}}\n  egress:\n"
                                "    - action: deny\n      to: [{matchLabels: {app: db}}]\n"));
  auto d = f.egress(f.web, f.db, MS_PROTO_TCP, 1);
  EXPECT_EQ(d.verdict, MS_VERDICT_DENY);
  EXPECT_EQ(f.ruleOf(d), "z-deny/0");
}

TEST(Compiler, PortRangesAreExactAtTheEdges) {
  Fixture f(policyDoc("p", "  selector: {identity: web}\n  egress:\n"
                           "    - to: [{identity: api}]\n      ports: [{port: 8000, endPort: 8100, protocol: UDP}]\n"));
  EXPECT_EQ(f.egress(f.web, f.api, MS_PROTO_UDP, 7999).verdict, MS_VERDICT_DENY);
  EXPECT_EQ(f.egress(f.web, f.api, MS_PROTO_UDP, 8000).verdict, MS_VERDICT_ALLOW);
  EXPECT_EQ(f.egress(f.web, f.api, MS_PROTO_UDP, 8050).verdict, MS_VERDICT_ALLOW);
  EXPECT_EQ(f.egress(f.web, f.api, MS_PROTO_UDP, 8100).verdict, MS_VERDICT_ALLOW);
  EXPECT_EQ(f.egress(f.web, f.api, MS_PROTO_UDP, 8101).verdict, MS_VERDICT_DENY);
  EXPECT_EQ(f.egress(f.web, f.api, MS_PROTO_TCP, 8050).verdict, MS_VERDICT_DENY);
  EXPECT_LE(f.out.entries.size(), 8u) << "a range is a few prefixes, not one entry per port";
}

TEST(Compiler, OverlappingRangesResolvePerPort) {
  Fixture f(policyDoc("p", "  selector: {identity: web}\n  egress:\n"
                           "    - to: [{identity: api}]\n      ports: [{port: 1000, endPort: 2000}]\n"
                           "    - action: deny\n      to: [{identity: api}]\n      ports: [{port: 1500, endPort: 2500}]\n"
                           "    - to: [{identity: api}]\n      ports: [{port: 2400, endPort: 3000}]\n"));
  for (uint16_t port : {1000, 1499}) EXPECT_EQ(f.egress(f.web, f.api, MS_PROTO_TCP, port).verdict, MS_VERDICT_ALLOW) << port;
  for (uint16_t port : {1500, 2000, 2400, 2500}) EXPECT_EQ(f.egress(f.web, f.api, MS_PROTO_TCP, port).verdict, MS_VERDICT_DENY) << port;
  for (uint16_t port : {2501, 3000}) EXPECT_EQ(f.egress(f.web, f.api, MS_PROTO_TCP, port).verdict, MS_VERDICT_ALLOW) << port;
  EXPECT_EQ(f.ruleOf(f.egress(f.web, f.api, MS_PROTO_TCP, 2600)), "p/2");
  EXPECT_EQ(f.ruleOf(f.egress(f.web, f.api, MS_PROTO_TCP, 1200)), "p/0");
}

TEST(Compiler, WildcardPeerDenyIsFoldedIntoSpecificAllows) {
  Fixture f(policyDoc("p", "  selector: {identity: web}\n  egress:\n"
                           "    - to: [{identity: api}]\n      ports: [{port: 443}]\n"
                           "    - action: deny\n      ports: [{port: 400, endPort: 500, protocol: TCP}]\n"));
  EXPECT_EQ(f.egress(f.web, f.api, MS_PROTO_TCP, 443).verdict, MS_VERDICT_DENY);
  EXPECT_EQ(f.egress(f.web, f.api, MS_PROTO_UDP, 443).verdict, MS_VERDICT_ALLOW);
  EXPECT_EQ(f.egress(f.web, f.db, MS_PROTO_TCP, 450).verdict, MS_VERDICT_DENY);
  EXPECT_EQ(f.ruleOf(f.egress(f.web, f.db, MS_PROTO_TCP, 450)), "p/1");
}

TEST(Compiler, SpecificDenyBeatsWildcardAllow) {
  Fixture f(policyDoc("p", "  selector: {identity: web}\n  egress:\n"
                           "    - ports: [{port: 53, protocol: UDP}]\n"
                           "    - action: deny\n      to: [{identity: db}]\n"));
  EXPECT_EQ(f.egress(f.web, f.api, MS_PROTO_UDP, 53).verdict, MS_VERDICT_ALLOW);
  EXPECT_EQ(f.egress(f.web, MS_IDENTITY_WORLD, MS_PROTO_UDP, 53).verdict, MS_VERDICT_ALLOW);
  EXPECT_EQ(f.egress(f.web, f.db, MS_PROTO_UDP, 53).verdict, MS_VERDICT_DENY);
}

TEST(Compiler, ProtocolAnyAndReservedPeers) {
  Fixture f(policyDoc("p", "  selector: {identity: web}\n  egress:\n"
                           "    - to: [world, {reserved: host}]\n      ports: [{port: 443}]\n"));
  for (uint8_t proto : {MS_PROTO_TCP, MS_PROTO_UDP}) {
    EXPECT_EQ(f.egress(f.web, MS_IDENTITY_WORLD, proto, 443).verdict, MS_VERDICT_ALLOW);
    EXPECT_EQ(f.egress(f.web, MS_IDENTITY_HOST, proto, 443).verdict, MS_VERDICT_ALLOW);
    EXPECT_EQ(f.egress(f.web, MS_IDENTITY_UNMANAGED, proto, 443).verdict, MS_VERDICT_DENY);
  }
}

TEST(Compiler, SelectorMatchingNoWorkloadAddsNothing) {
  Fixture f(policyDoc("p", "  selector: {identity: web}\n  egress:\n"
                           "    - to: [{matchLabels: {app: nothing}}]\n"));
  EXPECT_TRUE(f.out.entries.empty());
  EXPECT_EQ(f.out.rules.size(), 1u);
}

TEST(Compiler, MatchExpressionsSelectSubjects) {
  Fixture f(policyDoc("p", "  selector:\n    matchExpressions: [{key: tier, operator: In, values: [back]}]\n"
                           "  egress:\n    - to: [{identity: web}]\n"));
  EXPECT_EQ(f.egress(f.api, f.web, MS_PROTO_TCP, 1).verdict, MS_VERDICT_ALLOW);
  EXPECT_EQ(f.egress(f.db, f.web, MS_PROTO_TCP, 1).verdict, MS_VERDICT_ALLOW);
  EXPECT_EQ(f.egress(f.web, f.web, MS_PROTO_TCP, 1).verdict, MS_VERDICT_DENY);
}

TEST(Compiler, SelectedModeIsolatesOnlySelectedDirections) {
  Options o;
  o.defaultEnforcement = DefaultEnforcement::Selected;
  Fixture f(policyDoc("p", "  selector: {identity: web}\n  egress:\n    - to: [{identity: api}]\n"), o);
  EXPECT_EQ(f.out.identities.at(f.web).flags, MS_IDENT_F_ISOLATE_EGRESS);
  EXPECT_EQ(f.out.identities.at(f.db).flags, 0u);
  EXPECT_EQ(f.egress(f.db, f.web, MS_PROTO_TCP, 1).verdict, MS_VERDICT_ALLOW);
  EXPECT_EQ(f.egress(f.db, f.web, MS_PROTO_TCP, 1).reason, MS_REASON_NOT_ISOLATED);
  EXPECT_EQ(f.egress(f.web, f.db, MS_PROTO_TCP, 1).verdict, MS_VERDICT_DENY);
  Fixture always(policyDoc("p", "  selector: {identity: web}\n  egress:\n    - to: [{identity: api}]\n"));
  EXPECT_EQ(always.out.identities.at(always.db).flags,
            MS_IDENT_F_ISOLATE_EGRESS | MS_IDENT_F_ISOLATE_INGRESS);
}

TEST(Compiler, PolicyEnforcementBecomesIdentityMode) {
  Fixture f(policyDoc("a", "  selector: {identity: web}\n  enforcement: monitor\n  egress: []\n") +
            policyDoc("b", "  selector: {identity: api}\n  enforcement: enforce\n  egress: []\n"));
  EXPECT_EQ(f.out.identities.at(f.web).mode, MS_MODE_MONITOR);
  EXPECT_EQ(f.out.identities.at(f.api).mode, MS_MODE_ENFORCE);
  EXPECT_EQ(f.out.identities.at(f.db).mode, MS_MODE_INHERIT);
}

TEST(Compiler, UnmanagedSubjectsAreNotGoverned) {
  Fixture f(policyDoc("p", "  selector: {identity: web}\n  egress: []\n"));
  EXPECT_EQ(f.egress(MS_IDENTITY_UNMANAGED, f.web, MS_PROTO_TCP, 1).verdict, MS_VERDICT_ALLOW);
}

TEST(Compiler, DeterministicAndStableRuleIds) {
  const std::string p = policyDoc("p", "  selector: {matchLabels: {tier: back}}\n  egress:\n"
                                       "    - to: [{identity: web}]\n      ports: [{port: 1, endPort: 1000}]\n"
                                       "    - action: deny\n      ports: [{port: 500}]\n");
  Fixture a(p), b(p);
  ASSERT_EQ(a.out.entries.size(), b.out.entries.size());
  EXPECT_EQ(0, std::memcmp(a.out.entries.data(), b.out.entries.data(),
                           a.out.entries.size() * sizeof(PolicyEntry)));
  // Recompiling with the same registry keeps ids.
  auto again = compile(a.bundle, a.ids, a.registry);
  ASSERT_EQ(again.rules.size(), a.out.rules.size());
  for (const auto& [id, info] : a.out.rules) EXPECT_EQ(again.rules.at(id).name(), info.name());
  // Policies in a different order: the same verdicts.
  Fixture c(policyDoc("z", "  selector: {identity: web}\n  egress: [{to: [{identity: db}]}]\n") +
            policyDoc("a", "  selector: {identity: web}\n  egress: [{action: deny, to: [{identity: db}], ports: [{port: 5}]}]\n"));
  Fixture d(policyDoc("a", "  selector: {identity: web}\n  egress: [{action: deny, to: [{identity: db}], ports: [{port: 5}]}]\n") +
            policyDoc("z", "  selector: {identity: web}\n  egress: [{to: [{identity: db}]}]\n"));
  for (uint16_t port : {4, 5, 6}) {
    EXPECT_EQ(c.egress(c.web, c.db, MS_PROTO_TCP, port).verdict, d.egress(d.web, d.db, MS_PROTO_TCP, port).verdict);
  }
}

TEST(Compiler, RuleTextAndNames) {
  Fixture f(policyDoc("p", "  selector: {identity: web}\n  egress:\n"
                           "    - to: [{identity: api}]\n      ports: [{port: 8000, endPort: 8100}, {port: 53, protocol: UDP}]\n"));
  ASSERT_EQ(f.out.rules.size(), 1u);
  const auto& r = f.out.rules.begin()->second;
  EXPECT_EQ(r.name(), "p/0");
  EXPECT_EQ(r.text, "allow to [identity: api] ports [8000-8100/any, 53/UDP]");
}

TEST(PortPrefixes, SimpleCases) {
  using V = std::vector<std::pair<uint16_t, uint8_t>>;
  EXPECT_EQ(portPrefixes(0, 65535), (V{{0, 0}}));
  EXPECT_EQ(portPrefixes(80, 80), (V{{80, 16}}));
  EXPECT_EQ(portPrefixes(8000, 8003), (V{{8000, 14}}));
  EXPECT_EQ(portPrefixes(65535, 65535), (V{{65535, 16}}));
}

TEST(PortPrefixes, RandomRangesAreCoveredExactly) {
  std::mt19937 rng(42);
  for (int i = 0; i < 300; i++) {
    uint16_t a = static_cast<uint16_t>(rng()), b = static_cast<uint16_t>(rng());
    if (i % 3 == 0) b = static_cast<uint16_t>(std::min<uint32_t>(65535, a + rng() % 300));
    const uint16_t lo = std::min(a, b), hi = std::max(a, b);
    std::vector<uint8_t> hits(65536, 0);
    auto prefixes = portPrefixes(lo, hi);
    EXPECT_LE(prefixes.size(), 30u);
    for (const auto& [value, bits] : prefixes) {
      const uint32_t size = 1u << (16 - bits);
      ASSERT_EQ(value % size, 0u) << "unaligned prefix";
      for (uint32_t p = value; p < value + size; p++) hits[p]++;
    }
    for (uint32_t p = 0; p < 65536; p++) {
      ASSERT_EQ(hits[p], (p >= lo && p <= hi) ? 1 : 0) << "port " << p << " range " << lo << "-" << hi;
    }
  }
}

TEST(Identities, SameLabelsShareAndIdsAreStable) {
  auto r = policy::parseText(std::string(kWorkloads) +
                                 "apiVersion: microseg.dev/v1\nkind: Workload\nmetadata: {name: api2}\n"
                                 "spec: {cgroups: [api2], labels: {app: api, tier: back}}\n---\n"
                                 "apiVersion: microseg.dev/v1\nkind: Workload\nmetadata: {name: bare}\n"
                                 "spec: {cgroups: [bare]}\n---\n"
                                 "apiVersion: microseg.dev/v1\nkind: Workload\nmetadata: {name: bare2}\n"
                                 "spec: {cgroups: [bare2]}\n",
                             "t.yaml");
  ASSERT_TRUE(r.ok());
  auto ids = identity::assignIdentities(r.bundle);
  EXPECT_EQ(ids.byWorkload.at("api"), ids.byWorkload.at("api2"));
  EXPECT_NE(ids.byWorkload.at("bare"), ids.byWorkload.at("bare2")) << "unlabelled workloads stay distinct";
  EXPECT_EQ(ids.nameOf(ids.byWorkload.at("api")), "api,api2");
  for (const auto& [w, id] : ids.byWorkload) EXPECT_GE(id, MS_IDENTITY_FIRST_WORKLOAD);
  EXPECT_EQ(ids.nameOf(MS_IDENTITY_WORLD), "world");

  // Remove "web", add "cache": api/db keep their ids, cache takes a new one.
  policy::Bundle next = r.bundle;
  next.workloads.erase(next.workloads.begin());
  policy::Workload cache;
  cache.name = "cache";
  cache.labels = {{"app", "cache"}};
  next.workloads.push_back(cache);
  auto ids2 = identity::assignIdentities(next, ids);
  EXPECT_EQ(ids2.byWorkload.at("api"), ids.byWorkload.at("api"));
  EXPECT_EQ(ids2.byWorkload.at("db"), ids.byWorkload.at("db"));
  EXPECT_EQ(ids2.byWorkload.count("web"), 0u);
  for (const auto& [w, id] : ids.byWorkload) {
    if (w != "web") {
      EXPECT_NE(ids2.byWorkload.at("cache"), id);
    }
  }
  // Deterministic.
  auto ids3 = identity::assignIdentities(r.bundle);
  EXPECT_EQ(ids3.byWorkload, ids.byWorkload);
}

}  // namespace
}  // namespace microseg::compiler
