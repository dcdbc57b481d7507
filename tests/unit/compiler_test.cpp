// Compiler output and the reference evaluator (same lookup order as the
// datapath). Bundles are parsed from YAML so tests read like policies.
#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <set>

#include "compiler/compiler.h"
#include "compiler/explain.h"
#include "compiler/rule_text.h"
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
    const RuleInfo* r = out.rules.find(d.ruleId);
    return r == nullptr ? "default" : r->name();
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
  const uint32_t isolation = MS_IDENT_F_ISOLATE_EGRESS | MS_IDENT_F_ISOLATE_INGRESS;
  EXPECT_EQ(f.out.identity(f.web)->flags & isolation, MS_IDENT_F_ISOLATE_EGRESS);
  EXPECT_EQ(f.out.identity(f.web)->flags & ~isolation, MS_IDENT_F_RANGES_EGRESS) << "every port: a range entry";
  EXPECT_EQ(f.out.identity(f.db)->flags, 0u);
  EXPECT_EQ(f.egress(f.db, f.web, MS_PROTO_TCP, 1).verdict, MS_VERDICT_ALLOW);
  EXPECT_EQ(f.egress(f.db, f.web, MS_PROTO_TCP, 1).reason, MS_REASON_NOT_ISOLATED);
  EXPECT_EQ(f.egress(f.web, f.db, MS_PROTO_TCP, 1).verdict, MS_VERDICT_DENY);
  Fixture always(policyDoc("p", "  selector: {identity: web}\n  egress:\n    - to: [{identity: api}]\n"));
  EXPECT_EQ(always.out.identity(always.db)->flags,
            MS_IDENT_F_ISOLATE_EGRESS | MS_IDENT_F_ISOLATE_INGRESS);
}

TEST(Compiler, PolicyEnforcementBecomesIdentityMode) {
  Fixture f(policyDoc("a", "  selector: {identity: web}\n  enforcement: monitor\n  egress: []\n") +
            policyDoc("b", "  selector: {identity: api}\n  enforcement: enforce\n  egress: []\n"));
  EXPECT_EQ(f.out.identity(f.web)->mode, MS_MODE_MONITOR);
  EXPECT_EQ(f.out.identity(f.api)->mode, MS_MODE_ENFORCE);
  EXPECT_EQ(f.out.identity(f.db)->mode, MS_MODE_INHERIT);
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
  const auto& r = (*f.out.rules.begin()).second;
  EXPECT_EQ(r.name(), "p/0");
  ASSERT_EQ(f.bundle.policies.size(), 1u);
  EXPECT_EQ(ruleText(f.bundle.policies[0], r), "allow to [identity: api] ports [8000-8100/any, 53/UDP]");
  compiler::RuleInfo beyond = r;
  beyond.index = 1;
  EXPECT_EQ(ruleText(f.bundle.policies[0], beyond), "");
}

// ---- remote identities: Externals, cidr peers, world, namespaces ------------

const char* kExternals = R"(
apiVersion: microseg.dev/v1
kind: External
metadata: {name: corp-net}
spec:
  labels: {zone: corp}
  cidrs: [10.0.0.0/8, "fd00::/8"]
  except: [10.66.0.0/16]
---
apiVersion: microseg.dev/v1
kind: External
metadata: {name: partner}
spec:
  labels: {zone: partner}
  cidrs: [10.1.0.0/16, 192.0.2.0/24]
---
)";

// Identities by address, so tests read like the datapath sees peers:
//   corp = 10.2.0.1 {corp-net}, both = 10.1.0.1 {corp-net, partner},
//   partner = 192.0.2.1 {partner}, v6 = fd00::1 {corp-net}, 10.66.0.1 and
//   8.8.8.8 = world (unless an inline peer covers them).
struct Remote : Fixture {
  explicit Remote(const std::string& policies, Options opts = {})
      : Fixture(std::string(kExternals) + policies, opts) {}
  uint32_t at(const char* address) const { return identity::lookupAddress(ids, *policy::parseAddress(address)); }
  Decision flow(uint32_t s, const char* address, Direction dir = Direction::Egress, uint16_t port = 443) const {
    return evaluate(out, s, at(address), dir, MS_PROTO_TCP, port);
  }
  bool allowed(uint32_t s, const char* address, Direction dir = Direction::Egress, uint16_t port = 443) const {
    return flow(s, address, dir, port).verdict == MS_VERDICT_ALLOW;
  }
  // Peers that some entry of (subject, dir) names, by identity name.
  std::set<std::string> peerNames(uint32_t s, Direction dir) const {
    std::set<std::string> names;
    for (const auto& e : out.entries) {
      if (e.key.subject == s && e.key.direction == static_cast<uint8_t>(dir)) names.insert(ids.nameOf(e.key.peer));
    }
    return names;
  }
};

TEST(CompilerRemote, IdentitiesOfTheFixture) {
  Remote f("");
  EXPECT_EQ(f.ids.nameOf(f.at("10.2.0.1")), "corp-net");
  EXPECT_EQ(f.ids.nameOf(f.at("10.1.0.1")), "corp-net,partner");
  EXPECT_EQ(f.ids.nameOf(f.at("192.0.2.1")), "partner");
  EXPECT_EQ(f.ids.nameOf(f.at("fd00::1")), "corp-net");
  EXPECT_EQ(f.at("10.66.0.1"), MS_IDENTITY_WORLD);
  EXPECT_EQ(f.at("8.8.8.8"), MS_IDENTITY_WORLD);
}

TEST(CompilerRemote, ExternalByIdentityIsEveryRangeItIsIn) {
  for (const char* dir : {"egress", "ingress"}) {
    const Direction d = std::string(dir) == "egress" ? Direction::Egress : Direction::Ingress;
    const char* key = d == Direction::Egress ? "to" : "from";
    Remote f(policyDoc("p", std::string("  selector: {identity: web}\n  ") + dir + ":\n    - " + key +
                                ": [{identity: corp-net}]\n      ports: [{port: 443, protocol: TCP}]\n"));
    EXPECT_EQ(f.peerNames(f.web, d), (std::set<std::string>{"corp-net", "corp-net,partner"})) << dir;
    EXPECT_TRUE(f.allowed(f.web, "10.2.0.1", d)) << dir;
    EXPECT_TRUE(f.allowed(f.web, "10.1.0.1", d)) << dir;
    EXPECT_TRUE(f.allowed(f.web, "fd00::1", d)) << dir;
    EXPECT_FALSE(f.allowed(f.web, "10.66.0.1", d)) << dir << ": the hole is not corp-net";
    EXPECT_FALSE(f.allowed(f.web, "192.0.2.1", d)) << dir;
    EXPECT_FALSE(f.allowed(f.web, "10.2.0.1", d, 444)) << dir;
    EXPECT_EQ(f.out.rules.at(f.flow(f.web, "10.2.0.1", d).ruleId).name(), "p/0");
  }
}

TEST(CompilerRemote, InlineCidrPeerIsItsOwnMembership) {
  Remote f(policyDoc("p", "  selector: {identity: web}\n  egress:\n"
                          "    - to: [{cidr: 10.0.0.0/8, except: [10.1.0.0/16]}]\n") +
           policyDoc("q", "  selector: {identity: api}\n  ingress:\n"
                          "    - from: [{cidr: 8.8.8.0/24}]\n"));
  EXPECT_TRUE(f.allowed(f.web, "10.2.0.1"));
  EXPECT_TRUE(f.allowed(f.web, "10.66.0.1")) << "corp-net's hole, but inside the inline range";
  EXPECT_FALSE(f.allowed(f.web, "10.1.0.1")) << "the inline peer's own hole";
  EXPECT_FALSE(f.allowed(f.web, "11.0.0.1"));
  EXPECT_FALSE(f.allowed(f.web, "192.0.2.1"));
  EXPECT_EQ(f.peerNames(f.web, Direction::Egress),
            (std::set<std::string>{"corp-net,cidr:10.0.0.0/8 except 10.1.0.0/16", "cidr:10.0.0.0/8 except 10.1.0.0/16"}));
  EXPECT_TRUE(f.allowed(f.api, "8.8.8.8", Direction::Ingress));
  EXPECT_FALSE(f.allowed(f.api, "8.8.4.4", Direction::Ingress));
  EXPECT_FALSE(f.allowed(f.api, "8.8.8.8", Direction::Egress));
}

TEST(CompilerRemote, LabelSelectorsMatchExternalsToo) {
  Remote f(policyDoc("p", "  selector: {identity: web}\n  egress:\n"
                          "    - to: [{matchLabels: {zone: partner}}]\n"
                          "    - to: [{matchExpressions: [{key: app, operator: In, values: [db]}]}]\n") +
           policyDoc("q", "  selector: {identity: db}\n  ingress:\n"
                          "    - from: [{matchExpressions: [{key: zone, operator: Exists}]}]\n"));
  EXPECT_EQ(f.peerNames(f.web, Direction::Egress), (std::set<std::string>{"corp-net,partner", "partner", "db"}));
  EXPECT_TRUE(f.allowed(f.web, "192.0.2.1"));
  EXPECT_TRUE(f.allowed(f.web, "10.1.0.1"));
  EXPECT_FALSE(f.allowed(f.web, "10.2.0.1"));
  EXPECT_EQ(f.egress(f.web, f.db, MS_PROTO_TCP, 1).verdict, MS_VERDICT_ALLOW);
  EXPECT_EQ(f.peerNames(f.db, Direction::Ingress), (std::set<std::string>{"corp-net", "corp-net,partner", "partner"}));
  EXPECT_FALSE(f.allowed(f.db, "8.8.8.8", Direction::Ingress));
}

TEST(CompilerRemote, WorldIsEverythingNotLocal) {
  Remote f(policyDoc("p", "  selector: {identity: web}\n  egress:\n    - to: [world]\n  ingress:\n    - from: [world]\n"));
  // One set of entries for world; the ranges are looked up as world.
  const std::set<std::string> world{"world"};
  EXPECT_EQ(f.peerNames(f.web, Direction::Egress), world);
  EXPECT_EQ(f.peerNames(f.web, Direction::Ingress), world);
  for (const char* a : {"8.8.8.8", "10.2.0.1", "10.1.0.1", "10.66.0.1", "192.0.2.1", "fd00::1", "2001:db8::1"}) {
    EXPECT_TRUE(f.allowed(f.web, a)) << a;
    EXPECT_TRUE(f.allowed(f.web, a, Direction::Ingress)) << a;
  }
  EXPECT_EQ(f.egress(f.web, MS_IDENTITY_HOST, MS_PROTO_TCP, 1).verdict, MS_VERDICT_DENY);
  EXPECT_EQ(f.egress(f.web, f.api, MS_PROTO_TCP, 1).verdict, MS_VERDICT_DENY);
}

TEST(CompilerRemote, DenyOnAnExternalBeatsAllowToWorld) {
  Remote f(policyDoc("p", "  selector: {identity: web}\n  egress:\n"
                          "    - to: [world]\n      ports: [{port: 443}]\n"
                          "    - action: deny\n      to: [{identity: partner}]\n"));
  EXPECT_TRUE(f.allowed(f.web, "8.8.8.8"));
  EXPECT_TRUE(f.allowed(f.web, "10.2.0.1"));
  EXPECT_FALSE(f.allowed(f.web, "10.1.0.1")) << "corp-net and partner: partner's deny wins";
  EXPECT_FALSE(f.allowed(f.web, "192.0.2.1"));
  EXPECT_EQ(f.out.rules.at(f.flow(f.web, "192.0.2.1").ruleId).name(), "p/1");
}

TEST(CompilerRemote, SelectedVersusAlways) {
  const std::string policies =
      policyDoc("egress-only", "  selector: {identity: web}\n  egress:\n    - to: [{identity: corp-net}]\n") +
      policyDoc("isolate-api", "  selector: {identity: api}\n  ingress: []\n");
  Options sel;
  sel.defaultEnforcement = DefaultEnforcement::Selected;
  Remote s(policies, sel), a(policies);
  const uint32_t both = MS_IDENT_F_ISOLATE_EGRESS | MS_IDENT_F_ISOLATE_INGRESS;  // the isolation bits
  EXPECT_EQ(s.out.identity(s.web)->flags & both, MS_IDENT_F_ISOLATE_EGRESS);
  EXPECT_EQ(s.out.identity(s.api)->flags & both, MS_IDENT_F_ISOLATE_INGRESS);
  EXPECT_EQ(s.out.identity(s.db)->flags & both, 0u);
  for (uint32_t w : {a.web, a.api, a.db}) EXPECT_EQ(a.out.identity(w)->flags & both, both);
  // Ranges are peers, never subjects: no per-identity settings for them.
  EXPECT_EQ(s.out.identities.size(), 3u);
  EXPECT_EQ(a.out.identities.size(), 3u);
  // The same entries either way; only isolation differs.
  ASSERT_EQ(s.out.entries.size(), a.out.entries.size());
  EXPECT_EQ(0, std::memcmp(s.out.entries.data(), a.out.entries.data(), s.out.entries.size() * sizeof(PolicyEntry)));

  EXPECT_TRUE(s.allowed(s.web, "10.2.0.1"));
  EXPECT_FALSE(s.allowed(s.web, "8.8.8.8"));
  EXPECT_TRUE(s.allowed(s.web, "8.8.8.8", Direction::Ingress)) << "web's ingress is not isolated";
  EXPECT_EQ(s.flow(s.web, "8.8.8.8", Direction::Ingress).reason, MS_REASON_NOT_ISOLATED);
  EXPECT_FALSE(s.allowed(s.api, "10.2.0.1", Direction::Ingress)) << "ingress: [] isolates with nothing allowed";
  EXPECT_TRUE(s.allowed(s.api, "10.2.0.1", Direction::Egress));
  EXPECT_TRUE(s.allowed(s.db, "8.8.8.8"));
  EXPECT_FALSE(a.allowed(a.web, "8.8.8.8", Direction::Ingress));
  EXPECT_FALSE(a.allowed(a.db, "8.8.8.8"));
  EXPECT_EQ(a.flow(a.db, "8.8.8.8").reason, MS_REASON_DEFAULT_DENY);
}

TEST(CompilerRemote, IpcacheIsCopiedSorted) {
  Remote f(policyDoc("p", "  selector: {identity: web}\n  egress:\n    - to: [{cidr: \"::/0\"}]\n"));
  ASSERT_EQ(f.out.ipcache.size(), f.ids.ipcache.size());
  std::vector<std::string> got;
  for (size_t i = 0; i < f.out.ipcache.size(); i++) {
    const auto& e = f.out.ipcache[i];
    policy::Cidr c;
    c.addr = e.addr;
    c.prefixlen = e.prefixlen;
    EXPECT_EQ(c, f.ids.ipcache[i].prefix);
    EXPECT_EQ(e.identity, f.ids.ipcache[i].identity);
    got.push_back(c.str() + "=" + f.ids.nameOf(e.identity));
  }
  EXPECT_EQ(got, (std::vector<std::string>{"::/0=cidr:::/0", "0.0.0.0/0=world", "10.0.0.0/8=corp-net",
                                           "10.1.0.0/16=corp-net,partner", "10.66.0.0/16=world",
                                           "192.0.2.0/24=partner", "fd00::/8=corp-net,cidr:::/0"}));
  EXPECT_EQ(f.out.ipcache[2].prefixlen, 104u);
  EXPECT_TRUE(f.allowed(f.web, "2001:db8::1"));
  EXPECT_FALSE(f.allowed(f.web, "8.8.8.8")) << "::/0 is not IPv4";
}

TEST(CompilerRemote, PolicyNamespaceScopesItsSelectorOnly) {
  const std::string wl =
      "apiVersion: microseg.dev/v1\nkind: Workload\nmetadata: {name: shop-api, namespace: shop}\n"
      "spec: {cgroups: [s], labels: {app: api}}\n---\n"
      "apiVersion: microseg.dev/v1\nkind: Workload\nmetadata: {name: lab-api, namespace: lab}\n"
      "spec: {cgroups: [l], labels: {app: api}}\n---\n"
      "apiVersion: microseg.dev/v1\nkind: Policy\nmetadata: {name: p, namespace: shop}\nspec:\n"
      "  selector: {matchLabels: {app: api}}\n  egress:\n    - to: [{matchLabels: {app: api}}]\n---\n";
  Remote f(wl);
  const uint32_t shop = f.ids.byWorkload.at("shop-api"), lab = f.ids.byWorkload.at("lab-api");
  EXPECT_NE(shop, lab) << "the namespace label keeps them apart";
  EXPECT_EQ(f.egress(shop, lab, MS_PROTO_TCP, 1).verdict, MS_VERDICT_ALLOW) << "peers are not scoped";
  EXPECT_EQ(f.egress(shop, f.api, MS_PROTO_TCP, 1).verdict, MS_VERDICT_ALLOW);
  EXPECT_EQ(f.egress(lab, shop, MS_PROTO_TCP, 1).verdict, MS_VERDICT_DENY) << "lab-api is not a subject";
  EXPECT_EQ(f.egress(f.api, shop, MS_PROTO_TCP, 1).verdict, MS_VERDICT_DENY) << "neither is api (no namespace)";
  auto e = explain(f.bundle, f.ids, f.out, lab, shop, Direction::Egress, MS_PROTO_TCP, 1);
  EXPECT_TRUE(e.selectingPolicies.empty());
  e = explain(f.bundle, f.ids, f.out, shop, lab, Direction::Egress, MS_PROTO_TCP, 1);
  EXPECT_EQ(e.selectingPolicies, (std::vector<std::string>{"p"}));
}

TEST(CompilerRemote, ExplainTextsForRemotePeers) {
  Remote f(policyDoc("p", "  selector: {identity: web}\n  egress:\n"
                          "    - to: [{cidr: 10.0.0.0/8, except: [10.2.0.0/16, 10.1.0.0/16]}]\n"
                          "      ports: [{port: 443, protocol: TCP}]\n"
                          "    - to: [{identity: partner}, world]\n      ports: [{port: 80, protocol: TCP}]\n"
                          "    - action: deny\n      to: [{cidr: \"fd00::/16\"}]\n"));
  ASSERT_EQ(f.out.rules.size(), 3u);
  auto text = [&](uint32_t index) {
    for (const auto& [id, r] : f.out.rules) {
      if (r.index == index) return ruleText(f.bundle.policies[0], r);
    }
    return std::string();
  };
  EXPECT_EQ(text(0), "allow to [cidr: 10.0.0.0/8 except [10.1.0.0/16, 10.2.0.0/16]] ports [443/TCP]");
  EXPECT_EQ(text(1), "allow to [identity: partner; reserved: world] ports [80/TCP]");
  EXPECT_EQ(text(2), "deny to [cidr: fd00::/16] ports any");

  auto e = explain(f.bundle, f.ids, f.out, f.web, f.at("10.1.0.1"), Direction::Egress, MS_PROTO_TCP, 443);
  EXPECT_EQ(e.decision.verdict, MS_VERDICT_DENY);
  EXPECT_EQ(e.decision.reason, MS_REASON_DEFAULT_DENY);
  ASSERT_EQ(e.rules.size(), 3u);
  EXPECT_EQ(e.rules[0].why, "wrong peer: corp-net,partner is not among the rule's peers");
  EXPECT_EQ(e.rules[1].why, "wrong port: 443/TCP is not among the rule's ports");
  EXPECT_EQ(e.rules[2].why, "wrong peer: corp-net,partner is not among the rule's peers");

  e = explain(f.bundle, f.ids, f.out, f.web, f.at("10.3.0.1"), Direction::Egress, MS_PROTO_TCP, 443);
  EXPECT_EQ(e.decision.verdict, MS_VERDICT_ALLOW);
  EXPECT_TRUE(e.rules[0].matches);
  EXPECT_EQ(f.out.rules.at(e.decision.ruleId).name(), "p/0");

  e = explain(f.bundle, f.ids, f.out, f.web, f.at("8.8.8.8"), Direction::Egress, MS_PROTO_TCP, 443);
  EXPECT_EQ(e.rules[0].why, "wrong peer: world is not among the rule's peers");

  e = explain(f.bundle, f.ids, f.out, f.web, f.at("fd00::1"), Direction::Egress, MS_PROTO_TCP, 80);
  EXPECT_EQ(e.decision.verdict, MS_VERDICT_DENY);
  EXPECT_EQ(f.out.rules.at(e.decision.ruleId).name(), "p/2");
  EXPECT_TRUE(e.rules[1].matches) << "world covers corp-net's range";
  EXPECT_EQ(e.rules[1].why, "matches, but a deny rule wins");
  EXPECT_TRUE(e.rules[2].matches);
  EXPECT_EQ(f.ids.nameOf(f.at("fd00::1")), "corp-net,cidr:fd00::/16");
}

// The worked examples of policies/README.md ("Semantics"), table by table: a
// flow between workloads passes when the caller's egress and the callee's
// ingress both allow it.
struct Worked {
  policy::Bundle bundle;
  identity::IdentityTable ids;
  RuleRegistry registry;
  CompiledPolicy out;
  Worked(const std::string& policies, DefaultEnforcement mode) {
    auto r = policy::parseText(
        "apiVersion: microseg.dev/v1\nkind: Workload\nmetadata: {name: web}\nspec: {cgroups: [web], labels: {app: web}}\n---\n"
        "apiVersion: microseg.dev/v1\nkind: Workload\nmetadata: {name: api}\nspec: {cgroups: [api], labels: {app: api}}\n---\n"
        "apiVersion: microseg.dev/v1\nkind: Workload\nmetadata: {name: db}\nspec: {cgroups: [db], labels: {app: db}}\n---\n" +
            policies,
        "worked.yaml");
    policy::validateBundle(r.bundle, r.errors);
    for (const auto& e : r.errors) ADD_FAILURE() << e.str();
    bundle = r.bundle;
    ids = identity::assignIdentities(bundle);
    Options o;
    o.defaultEnforcement = mode;
    out = compile(bundle, ids, registry, o);
  }
  bool passes(const char* from, const char* to, uint16_t port, uint8_t proto = MS_PROTO_TCP) const {
    const uint32_t a = ids.byWorkload.at(from), b = ids.byWorkload.at(to);
    return evaluate(out, a, b, Direction::Egress, proto, port).verdict == MS_VERDICT_ALLOW &&
           evaluate(out, b, a, Direction::Ingress, proto, port).verdict == MS_VERDICT_ALLOW;
  }
};

TEST(CompilerReadme, WorkedExamples) {
  const std::string apiClosed = policyDoc("api-closed", "  selector: {matchLabels: {app: api}}\n  ingress: []\n");
  const std::string apiFromWeb = policyDoc("api-from-web", "  selector: {matchLabels: {app: api}}\n  ingress:\n"
                                                          "    - from: [{matchLabels: {app: web}}]\n"
                                                          "      ports: [{port: 8080, protocol: TCP}]\n");
  const std::string webOut = policyDoc("web-out", "  selector: {matchLabels: {app: web}}\n  egress:\n"
                                                  "    - to: [{matchLabels: {app: api}}]\n"
                                                  "      ports: [{port: 8080, protocol: TCP}]\n");
  const std::string webDns = policyDoc("web-dns", "  selector: {matchLabels: {app: web}}\n  egress:\n"
                                                  "    - to: [world]\n      ports: [{port: 53, protocol: UDP}]\n");
  const std::string noAdmin = policyDoc("no-api-admin", "  selector: {matchLabels: {app: web}}\n  egress:\n"
                                                        "    - action: deny\n      to: [{matchLabels: {app: api}}]\n"
                                                        "      ports: [{port: 8080, endPort: 8089, protocol: TCP}]\n");
  const auto S = DefaultEnforcement::Selected, A = DefaultEnforcement::Always;

  // Default deny ingress.
  EXPECT_FALSE(Worked(apiClosed, S).passes("web", "api", 80));
  EXPECT_TRUE(Worked(apiClosed, S).passes("web", "db", 80));
  EXPECT_TRUE(Worked(apiClosed, S).passes("api", "db", 80));
  for (auto [f, t] : {std::pair{"web", "api"}, {"web", "db"}, {"api", "db"}}) {
    EXPECT_FALSE(Worked(apiClosed, A).passes(f, t, 80)) << f << "->" << t;
  }
  // Allow from a label.
  EXPECT_TRUE(Worked(apiClosed + apiFromWeb, S).passes("web", "api", 8080));
  EXPECT_FALSE(Worked(apiClosed + apiFromWeb, S).passes("web", "api", 9090));
  EXPECT_FALSE(Worked(apiClosed + apiFromWeb, S).passes("db", "api", 8080));
  EXPECT_FALSE(Worked(apiClosed + apiFromWeb, A).passes("web", "api", 8080));
  EXPECT_FALSE(Worked(apiClosed + apiFromWeb, A).passes("db", "api", 8080));
  EXPECT_TRUE(Worked(apiClosed + apiFromWeb + webOut, A).passes("web", "api", 8080));
  EXPECT_TRUE(Worked(apiClosed + apiFromWeb + webOut, S).passes("web", "api", 8080));
  // Egress-only policy.
  EXPECT_TRUE(Worked(webOut, S).passes("web", "api", 8080));
  EXPECT_FALSE(Worked(webOut, S).passes("web", "db", 80));
  EXPECT_TRUE(Worked(webOut, S).passes("db", "web", 80));
  EXPECT_FALSE(Worked(webOut, A).passes("web", "api", 8080));
  EXPECT_FALSE(Worked(webOut, A).passes("db", "web", 80));
  // Allows add up.
  for (auto mode : {S, A}) {
    Worked w(webOut + webDns, mode);
    const uint32_t web = w.ids.byWorkload.at("web");
    EXPECT_EQ(evaluate(w.out, web, MS_IDENTITY_WORLD, Direction::Egress, MS_PROTO_UDP, 53).verdict, MS_VERDICT_ALLOW);
    EXPECT_EQ(evaluate(w.out, web, w.ids.byWorkload.at("api"), Direction::Egress, MS_PROTO_TCP, 8080).verdict,
              MS_VERDICT_ALLOW);
    EXPECT_FALSE(w.passes("web", "db", 80));
  }
  EXPECT_TRUE(Worked(webOut + webDns, S).passes("web", "api", 8080));
  EXPECT_FALSE(Worked(webOut + webDns, A).passes("web", "api", 8080)) << "api's ingress must allow web too";
  // Deny wins.
  for (auto mode : {S, A}) {
    Worked w(apiFromWeb + webOut + noAdmin, mode);
    EXPECT_FALSE(w.passes("web", "api", 8080));
    const uint32_t web = w.ids.byWorkload.at("web"), api = w.ids.byWorkload.at("api");
    EXPECT_EQ(w.out.rules.at(evaluate(w.out, web, api, Direction::Egress, MS_PROTO_TCP, 8080).ruleId).name(),
              "no-api-admin/0");
  }
}

// The "Remote ranges" example of policies/README.md.
TEST(CompilerReadme, RemoteRangesExample) {
  Worked w(R"(apiVersion: microseg.dev/v1
kind: External
metadata: {name: corp-net}
spec:
  labels: {zone: corp}
  cidrs: ["10.0.0.0/8", "fd00::/8"]
  except: ["10.66.0.0/16"]
---
apiVersion: microseg.dev/v1
kind: Policy
metadata: {name: api-remote}
spec:
  selector: {matchLabels: {app: api}}
  egress:
    - to: [{matchLabels: {zone: corp}}, {cidr: 198.51.100.0/24}]
      ports: [{port: 443, protocol: TCP}]
  ingress:
    - from: [{identity: corp-net}]
      ports: [{port: 8080, protocol: TCP}]
    - action: deny
      from: [{cidr: 10.0.0.0/8, except: [10.1.0.0/16]}]
      ports: [{port: 8080, protocol: TCP}]
)",
           DefaultEnforcement::Always);
  const uint32_t api = w.ids.byWorkload.at("api");
  auto verdict = [&](const char* a, Direction d, uint16_t port) {
    return evaluate(w.out, api, identity::lookupAddress(w.ids, *policy::parseAddress(a)), d, MS_PROTO_TCP, port).verdict;
  };
  EXPECT_EQ(verdict("10.2.0.1", Direction::Egress, 443), MS_VERDICT_ALLOW);
  EXPECT_EQ(verdict("10.66.0.1", Direction::Egress, 443), MS_VERDICT_DENY) << "the lab";
  EXPECT_EQ(verdict("198.51.100.7", Direction::Egress, 443), MS_VERDICT_ALLOW);
  EXPECT_EQ(verdict("8.8.8.8", Direction::Egress, 443), MS_VERDICT_DENY);
  EXPECT_EQ(verdict("10.1.0.1", Direction::Ingress, 8080), MS_VERDICT_ALLOW);
  EXPECT_EQ(verdict("fd00::1", Direction::Ingress, 8080), MS_VERDICT_ALLOW);
  EXPECT_EQ(verdict("10.2.0.1", Direction::Ingress, 8080), MS_VERDICT_DENY) << "deny wins";
  EXPECT_EQ(verdict("10.66.0.1", Direction::Ingress, 8080), MS_VERDICT_DENY);
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

TEST(CompilerRemote, WorldRulesDoNotMultiplyWithTheNumberOfExternals) {
  // A world rule compiles to world entries only, however many ranges exist;
  // only a range with rules of its own carries the world intervals too.
  auto entriesWith = [](int externals, bool namedOne) {
    std::string y =
        "apiVersion: microseg.dev/v1\nkind: Workload\nmetadata: {name: web}\nspec: {cgroups: [web]}\n";
    for (int i = 0; i < externals; i++) {
      y += "---\napiVersion: microseg.dev/v1\nkind: External\nmetadata: {name: e" + std::to_string(i) +
           "}\nspec: {cidrs: [\"10." + std::to_string(i) + ".0.0/16\"]}\n";
    }
    y += "---\napiVersion: microseg.dev/v1\nkind: Policy\nmetadata: {name: p}\nspec:\n  selector: {identity: web}\n"
         "  egress:\n    - to: [world]\n      ports: [{port: 443, protocol: TCP}]\n";
    if (namedOne) y += "    - action: deny\n      to: [{identity: e0}]\n      ports: [{port: 22, protocol: TCP}]\n";
    auto r = policy::parseText(y, "t.yaml");
    EXPECT_TRUE(r.ok());
    auto ids = identity::assignIdentities(r.bundle);
    RuleRegistry reg;
    auto out = compile(r.bundle, ids, reg);
    // Whatever the entries, every range still gets world's verdict.
    for (const auto& [id, e] : ids.externals) {
      EXPECT_EQ(evaluate(out, ids.byWorkload.at("web"), id, Direction::Egress, MS_PROTO_TCP, 443).verdict,
                MS_VERDICT_ALLOW);
      if (namedOne) {
        const bool e0 = e.externals == std::vector<std::string>{"e0"};
        EXPECT_EQ(evaluate(out, ids.byWorkload.at("web"), id, Direction::Egress, MS_PROTO_TCP, 22).verdict,
                  MS_VERDICT_DENY) << e0;
      }
    }
    return out.entries.size();
  };
  const size_t none = entriesWith(0, false);
  EXPECT_EQ(entriesWith(200, false), none);
  EXPECT_EQ(entriesWith(200, true), none + 2) << "e0's own deny, plus world's 443 folded into e0";
}

}  // namespace
}  // namespace microseg::compiler

namespace microseg::compiler {
namespace {

TEST(RuleRegistry, IdsAreStableAndNamedForever) {
  RuleRegistry reg;
  const uint32_t a = reg.idFor("p", policy::Direction::Egress, 0);
  const uint32_t b = reg.idFor("p", policy::Direction::Ingress, 0);
  const uint32_t c = reg.idFor("q", policy::Direction::Egress, 2);
  EXPECT_NE(a, b);
  EXPECT_EQ(reg.idFor("p", policy::Direction::Egress, 0), a);
  EXPECT_EQ(reg.nameOf(a), "p/0");
  EXPECT_EQ(reg.nameOf(b), "p/0");
  EXPECT_EQ(reg.nameOf(c), "q/2");
  EXPECT_EQ(reg.nameOf(c + 1), "rule-" + std::to_string(c + 1));
  EXPECT_EQ(reg.nameOf(0), "rule-0");
}

// Rule ids stay with (policy, direction, index) for the daemon's life, and
// every id ever handed out keeps its name, past the registry's chunks.
TEST(RuleRegistry, IdsAreStableAndNamedAcrossChunks) {
  RuleRegistry reg;
  std::vector<uint32_t> ids;
  for (uint32_t i = 0; i < 9000; i++) ids.push_back(reg.idFor(i % 2 ? "odd" : "even", Direction::Egress, i / 2));
  for (uint32_t i = 0; i < 9000; i++) {
    ASSERT_EQ(ids[i], i + 1) << "ids are handed out in order";
    ASSERT_EQ(reg.idFor(i % 2 ? "odd" : "even", Direction::Egress, i / 2), ids[i]) << "and kept";
    ASSERT_EQ(reg.nameOf(ids[i]), std::string(i % 2 ? "odd" : "even") + "/" + std::to_string(i / 2));
  }
  EXPECT_EQ(reg.idFor("even", Direction::Ingress, 0), 9001u) << "a direction has ids of its own";
  EXPECT_EQ(reg.nameOf(9001), "even/0");
  EXPECT_EQ(reg.nameOf(0), "rule-0");
  EXPECT_EQ(reg.nameOf(9002), "rule-9002") << "never handed out";
}

// A restarted daemon's registry takes the ids it handed out back (saved
// with the flow history): the same rules get the same ids whatever order
// they are asked for in, new ones come after every saved one, and an
// inconsistent set is refused whole.
TEST(RuleRegistry, ARestoredRegistryHandsTheSameIdsOutAgain) {
  RuleRegistry before;
  const uint32_t p0 = before.idFor("p", Direction::Egress, 0);
  before.idFor("gone", Direction::Ingress, 1);
  for (uint32_t i = 0; i < 5000; i++) before.idFor("big", Direction::Egress, i);
  const uint32_t q2 = before.idFor("q", Direction::Ingress, 2);

  RuleRegistry after;
  ASSERT_TRUE(after.restore(before.handedOut(), before.nextId()));
  EXPECT_EQ(after.idFor("q", Direction::Ingress, 2), q2) << "asked first, same id";
  EXPECT_EQ(after.idFor("p", Direction::Egress, 0), p0);
  EXPECT_EQ(after.nameOf(q2), "q/2");
  EXPECT_EQ(after.nameOf(before.idFor("big", Direction::Egress, 4321)), "big/4321");
  EXPECT_EQ(after.nameOf(2), "gone/1") << "a rule of a policy since removed keeps its name";
  const uint32_t fresh = after.idFor("new", Direction::Egress, 0);
  EXPECT_EQ(fresh, before.nextId()) << "after every saved id";
  EXPECT_EQ(after.nameOf(fresh), "new/0");
  EXPECT_FALSE(after.restore(before.handedOut(), before.nextId())) << "only into a registry in no use";

  auto twice = before.handedOut();
  twice[0].ids[0].push_back(q2);
  RuleRegistry refused;
  EXPECT_FALSE(refused.restore(twice, before.nextId())) << "an id twice";
  EXPECT_EQ(refused.idFor("p", Direction::Egress, 0), 1u) << "nothing was taken";
}

// A generation's rule table is a copy of the last one with some policies'
// rules swapped; the copies share the index and must not see each other's
// changes.
TEST(RuleTable, ACopyChangesWithoutItsOriginal) {
  auto rules = [](std::initializer_list<uint32_t> ids) {
    auto v = std::make_shared<std::vector<RuleInfo>>();
    for (uint32_t id : ids) {
      RuleInfo r;
      r.id = id;
      r.index = id;
      v->push_back(r);
    }
    return std::shared_ptr<const std::vector<RuleInfo>>(v);
  };
  auto idsOf = [](const RuleTable& t) {
    std::vector<uint32_t> out;
    for (const auto& [id, r] : t) {
      EXPECT_EQ(r.id, id);
      out.push_back(id);
    }
    return out;
  };
  const auto a = rules({1, 2, 1500, 70000});
  RuleTable t;
  t.add(a);
  RuleTable u = t;
  u.remove(a);
  u.add(rules({3, 2000}));
  EXPECT_EQ(idsOf(t), (std::vector<uint32_t>{1, 2, 1500, 70000}));
  EXPECT_EQ(t.size(), 4u);
  EXPECT_EQ(t.maxId(), 70000u);
  ASSERT_NE(t.find(1500), nullptr);
  EXPECT_EQ(t.find(1500)->index, 1500u);
  EXPECT_EQ(t.find(3), nullptr);
  EXPECT_EQ(idsOf(u), (std::vector<uint32_t>{3, 2000}));
  EXPECT_EQ(u.size(), 2u);
  EXPECT_EQ(u.find(1), nullptr);
  EXPECT_EQ(u.find(70000), nullptr);
  EXPECT_EQ(u.maxId(), 70000u) << "the highest id ever indexed";
  EXPECT_THROW(u.at(1), std::out_of_range);
  EXPECT_EQ(RuleTable().find(5), nullptr);
  EXPECT_TRUE(idsOf(RuleTable()).empty());
}

}  // namespace
}  // namespace microseg::compiler
