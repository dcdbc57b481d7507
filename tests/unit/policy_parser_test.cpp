// policy::parseText / loadPaths: good documents become the exact model; bad
// documents are rejected with a located diagnostic (1-based line:column).
#include <gtest/gtest.h>

#include <random>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "policy/parser.h"
#include "policy/rule_lists.h"
#include "policy/progress.h"

namespace microseg::policy {
namespace {

std::string dump(const std::vector<Diagnostic>& errors) {
  std::string s;
  for (const auto& e : errors) s += "  " + e.str() + "\n";
  return s;
}

// ---- 1. good documents ------------------------------------------------------

#define EXT_HEAD_DOC               \
  "apiVersion: microseg.dev/v1\n"  \
  "kind: External\n"               \
  "metadata: {name: e}\n"          \
  "spec:\n"

// Line numbers are given in the comments; the test checks locations against them.
const char* kGood =
    "apiVersion: microseg.dev/v1\n"                                   // 1
    "kind: Workload\n"                                                // 2
    "metadata: {name: api}\n"                                         // 3
    "spec:\n"                                                         // 4
    "  cgroups: [\"system.slice/api.service\", \"kubepods/*/api\"]\n"  // 5
    "  labels: {app: api, tier: backend}\n"                           // 6
    "  spiffeId: spiffe://example.org/ns/prod/sa/api\n"               // 7
    "---\n"                                                           // 8
    "apiVersion: microseg.dev/v1\n"                                   // 9
    "kind: Workload\n"                                                // 10
    "metadata: {name: db}\n"                                          // 11
    "spec:\n"                                                         // 12
    "  cgroups: [db]\n"                                               // 13
    "  labels: {app: db}\n"                                           // 14
    "---\n"                                                           // 15
    "apiVersion: microseg.dev/v1\n"                                   // 16
    "kind: Policy\n"                                                  // 17
    "metadata:\n"                                                     // 18
    "  name: api-policy\n"                                            // 19
    "spec:\n"                                                         // 20
    "  selector:\n"                                                   // 21
    "    matchLabels: {app: api}\n"                                   // 22
    "    matchExpressions:\n"                                         // 23
    "      - {key: tier, operator: In, values: [backend, middle]}\n"  // 24
    "      - {key: env, operator: NotIn, values: [dev]}\n"            // 25
    "      - {key: app, operator: Exists}\n"                          // 26
    "      - {key: legacy, operator: DoesNotExist}\n"                 // 27
    "  enforcement: enforce\n"                                        // 28
    "  egress:\n"                                                     // 29
    "    - to:\n"                                                     // 30
    "        - matchLabels: {app: db}\n"                              // 31
    "        - identity: db\n"                                        // 32
    "        - reserved: host\n"                                      // 33
    "        - world\n"                                               // 34
    "      ports:\n"                                                  // 35
    "        - port: 5432\n"                                          // 36
    "          protocol: TCP\n"                                       // 37
    "        - port: 8000\n"                                          // 38
    "          endPort: 8100\n"                                       // 39
    "        - protocol: UDP\n"                                       // 40
    "    - action: deny\n"                                            // 41
    "      to: [{matchLabels: {app: db}}]\n"                          // 42
    "  ingress: []\n"                                                 // 43
    "---\n"                                                           // 44
    "apiVersion: microseg.dev/v1\n"                                   // 45
    "kind: Policy\n"                                                  // 46
    "metadata: {name: by-identity}\n"                                 // 47
    "spec:\n"                                                         // 48
    "  selector: {identity: api}\n"                                   // 49
    "  enforcement: monitor\n"                                        // 50
    "  ingress:\n"                                                    // 51
    "    - from: [unmanaged]\n"                                       // 52
    "      ports: [{port: 53, protocol: UDP}]\n";                     // 53

TEST(PolicyParser, GoodWorkloads) {
  auto r = parseText(kGood, "good.yaml");
  ASSERT_TRUE(r.ok()) << dump(r.errors);
  ASSERT_EQ(r.bundle.workloads.size(), 2u);

  const Workload& api = r.bundle.workloads[0];
  EXPECT_EQ(api.name, "api");
  EXPECT_EQ(api.cgroups, (std::vector<std::string>{"system.slice/api.service", "kubepods/*/api"}));
  EXPECT_EQ(api.labels, (Labels{{"app", "api"}, {"tier", "backend"}}));
  EXPECT_EQ(api.spiffeId, "spiffe://example.org/ns/prod/sa/api");
  EXPECT_EQ(api.loc.file, "good.yaml");
  EXPECT_EQ(api.loc.line, 3);
  EXPECT_EQ(api.loc.column, 18);  // the name value

  const Workload& db = r.bundle.workloads[1];
  EXPECT_EQ(db.name, "db");
  EXPECT_EQ(db.cgroups, (std::vector<std::string>{"db"}));
  EXPECT_EQ(db.labels, (Labels{{"app", "db"}}));
  EXPECT_EQ(db.spiffeId, "");
  EXPECT_EQ(db.loc.line, 11);
  EXPECT_EQ(db.loc.column, 18);

  EXPECT_EQ(r.bundle.findWorkload("db"), &db);
  EXPECT_EQ(r.bundle.findWorkload("nope"), nullptr);
}

TEST(PolicyParser, GoodPolicySelectorAndExpressions) {
  auto r = parseText(kGood, "good.yaml");
  ASSERT_TRUE(r.ok()) << dump(r.errors);
  ASSERT_EQ(r.bundle.policies.size(), 2u);
  const Policy& p = r.bundle.policies[0];
  EXPECT_EQ(p.name, "api-policy");
  EXPECT_EQ(p.loc.line, 19);
  EXPECT_EQ(p.loc.column, 9);
  ASSERT_TRUE(p.enforcement.has_value());
  EXPECT_EQ(*p.enforcement, Enforcement::Enforce);

  EXPECT_EQ(p.selector.kind, Peer::Kind::Selector);
  EXPECT_EQ(p.selector.loc.line, 22);
  EXPECT_EQ(p.selector.loc.column, 5);
  EXPECT_EQ(p.selector.selector().matchLabels, (Labels{{"app", "api"}}));
  const auto& me = p.selector.selector().matchExpressions;
  ASSERT_EQ(me.size(), 4u);
  EXPECT_EQ(me[0].key, "tier");
  EXPECT_EQ(me[0].op, SelectorOp::In);
  EXPECT_EQ(me[0].values, (std::vector<std::string>{"backend", "middle"}));
  EXPECT_EQ(me[1].key, "env");
  EXPECT_EQ(me[1].op, SelectorOp::NotIn);
  EXPECT_EQ(me[1].values, (std::vector<std::string>{"dev"}));
  EXPECT_EQ(me[2].key, "app");
  EXPECT_EQ(me[2].op, SelectorOp::Exists);
  EXPECT_TRUE(me[2].values.empty());
  EXPECT_EQ(me[3].key, "legacy");
  EXPECT_EQ(me[3].op, SelectorOp::DoesNotExist);
  EXPECT_TRUE(me[3].values.empty());
}

TEST(PolicyParser, GoodPolicyEgressRules) {
  auto r = parseText(kGood, "good.yaml");
  ASSERT_TRUE(r.ok()) << dump(r.errors);
  ASSERT_EQ(r.bundle.policies.size(), 2u);
  const Policy& p = r.bundle.policies[0];
  EXPECT_TRUE(p.hasEgress);
  ASSERT_EQ(p.egress.size(), 2u);
  EXPECT_EQ(r.bundle.findPolicy(p.name), &p);
  EXPECT_EQ(r.bundle.findPolicy("nope"), nullptr);

  const Rule& r0 = p.egress[0];
  EXPECT_EQ(r0.action, Action::Allow);
  EXPECT_EQ(r0.loc.file, "good.yaml");
  EXPECT_EQ(r0.loc.line, 30);
  EXPECT_EQ(r0.loc.column, 7);
  ASSERT_TRUE(r0.peers.has_value());
  ASSERT_EQ(r0.peers->size(), 4u);

  const Peer& sel = (*r0.peers)[0];
  EXPECT_EQ(sel.kind, Peer::Kind::Selector);
  EXPECT_EQ(sel.selector().matchLabels, (Labels{{"app", "db"}}));
  EXPECT_TRUE(sel.selector().matchExpressions.empty());
  EXPECT_EQ(sel.loc.line, 31);
  EXPECT_EQ(sel.loc.column, 11);

  const Peer& id = (*r0.peers)[1];
  EXPECT_EQ(id.kind, Peer::Kind::Identity);
  EXPECT_EQ(id.identity, "db");
  EXPECT_EQ(id.loc.line, 32);
  EXPECT_EQ(id.loc.column, 21);  // the identity value

  const Peer& host = (*r0.peers)[2];
  EXPECT_EQ(host.kind, Peer::Kind::Reserved);
  EXPECT_EQ(host.reserved, ReservedPeer::Host);
  EXPECT_EQ(host.loc.line, 33);
  EXPECT_EQ(host.loc.column, 21);

  const Peer& world = (*r0.peers)[3];
  EXPECT_EQ(world.kind, Peer::Kind::Reserved);
  EXPECT_EQ(world.reserved, ReservedPeer::World);
  EXPECT_EQ(world.loc.line, 34);
  EXPECT_EQ(world.loc.column, 11);

  ASSERT_EQ(r0.ports.size(), 3u);
  EXPECT_EQ(r0.ports[0].first, 5432);
  EXPECT_EQ(r0.ports[0].last, 5432);
  EXPECT_EQ(r0.ports[0].protocol, Protocol::TCP);
  EXPECT_FALSE(r0.ports[0].anyPort());
  EXPECT_EQ(r0.ports[0].loc.line, 36);
  EXPECT_EQ(r0.ports[0].loc.column, 11);
  EXPECT_EQ(r0.ports[1].first, 8000);
  EXPECT_EQ(r0.ports[1].last, 8100);
  EXPECT_EQ(r0.ports[1].protocol, Protocol::Any);
  EXPECT_EQ(r0.ports[1].loc.line, 38);
  EXPECT_EQ(r0.ports[2].first, 0);
  EXPECT_EQ(r0.ports[2].last, 0);
  EXPECT_TRUE(r0.ports[2].anyPort());
  EXPECT_EQ(r0.ports[2].protocol, Protocol::UDP);
  EXPECT_EQ(r0.ports[2].loc.line, 40);

  const Rule& r1 = p.egress[1];
  EXPECT_EQ(r1.action, Action::Deny);
  EXPECT_EQ(r1.loc.line, 41);
  EXPECT_EQ(r1.loc.column, 7);
  ASSERT_TRUE(r1.peers.has_value());
  ASSERT_EQ(r1.peers->size(), 1u);
  EXPECT_EQ((*r1.peers)[0].kind, Peer::Kind::Selector);
  EXPECT_EQ((*r1.peers)[0].selector().matchLabels, (Labels{{"app", "db"}}));
  EXPECT_TRUE(r1.ports.empty());

  // `ingress: []` is present and empty: ingress is isolated.
  EXPECT_TRUE(p.hasIngress);
  EXPECT_TRUE(p.ingress.empty());
}

TEST(PolicyParser, GoodPolicyIdentitySelectorAndIngress) {
  auto r = parseText(kGood, "good.yaml");
  ASSERT_TRUE(r.ok()) << dump(r.errors);
  ASSERT_EQ(r.bundle.policies.size(), 2u);
  const Policy& p = r.bundle.policies[1];
  EXPECT_EQ(p.name, "by-identity");
  EXPECT_EQ(p.loc.line, 47);
  EXPECT_EQ(p.selector.kind, Peer::Kind::Identity);
  EXPECT_EQ(p.selector.identity, "api");
  EXPECT_EQ(p.selector.loc.line, 49);
  EXPECT_EQ(p.selector.loc.column, 24);  // the identity value
  ASSERT_TRUE(p.enforcement.has_value());
  EXPECT_EQ(*p.enforcement, Enforcement::Monitor);
  EXPECT_FALSE(p.hasEgress);
  EXPECT_TRUE(p.egress.empty());
  EXPECT_TRUE(p.hasIngress);
  ASSERT_EQ(p.ingress.size(), 1u);
  const Rule& in = p.ingress[0];
  EXPECT_EQ(in.action, Action::Allow);
  EXPECT_EQ(in.loc.line, 52);
  ASSERT_TRUE(in.peers.has_value());
  ASSERT_EQ(in.peers->size(), 1u);
  EXPECT_EQ((*in.peers)[0].kind, Peer::Kind::Reserved);
  EXPECT_EQ((*in.peers)[0].reserved, ReservedPeer::Unmanaged);
  ASSERT_EQ(in.ports.size(), 1u);
  EXPECT_EQ(in.ports[0].first, 53);
  EXPECT_EQ(in.ports[0].last, 53);
  EXPECT_EQ(in.ports[0].protocol, Protocol::UDP);
}

TEST(PolicyParser, OmittedPeersAndPortsMeanAny) {
  auto r = parseText(
      "apiVersion: microseg.dev/v1\n"
      "kind: Policy\n"
      "metadata: {name: p}\n"
      "spec:\n"
      "  selector: {matchLabels: {app: a}}\n"
      "  egress:\n"
      "    - action: allow\n",
      "f.yaml");
  ASSERT_TRUE(r.ok()) << dump(r.errors);
  ASSERT_EQ(r.bundle.policies.size(), 1u);
  const Policy& p = r.bundle.policies[0];
  EXPECT_FALSE(p.enforcement.has_value());
  EXPECT_TRUE(p.hasEgress);
  EXPECT_FALSE(p.hasIngress);
  ASSERT_EQ(p.egress.size(), 1u);
  EXPECT_FALSE(p.egress[0].peers.has_value());
  EXPECT_TRUE(p.egress[0].ports.empty());
}

TEST(PolicyParser, EmptyDocumentsAreIgnored) {
  auto r = parseText("# only a comment\n---\n---\n", "f.yaml");
  EXPECT_TRUE(r.ok()) << dump(r.errors);
  EXPECT_TRUE(r.bundle.workloads.empty());
  EXPECT_TRUE(r.bundle.policies.empty());
}

TEST(PolicyParser, ShopExampleLoads) {
  const std::string path = std::string(MS_SOURCE_DIR) + "/policies/examples/shop.yaml";
  auto r = loadPaths({path});
  ASSERT_TRUE(r.ok()) << dump(r.errors);
  ASSERT_EQ(r.bundle.workloads.size(), 4u);
  ASSERT_EQ(r.bundle.policies.size(), 8u);
  EXPECT_EQ(r.bundle.workloads[0].name, "frontend");
  EXPECT_EQ(r.bundle.workloads[3].name, "db");
  EXPECT_EQ(r.bundle.workloads[0].loc.file, path);
  EXPECT_EQ(r.bundle.policies[0].name, "frontend-egress");
  EXPECT_EQ(r.bundle.policies[0].selector.kind, Peer::Kind::Identity);
  EXPECT_EQ(r.bundle.policies[3].name, "no-db-from-web");
  ASSERT_EQ(r.bundle.policies[3].egress.size(), 1u);
  EXPECT_EQ(r.bundle.policies[3].egress[0].action, Action::Deny);
  const Policy& pay = r.bundle.policies[2];
  ASSERT_EQ(pay.egress.size(), 2u);
  ASSERT_TRUE(pay.egress[1].peers.has_value());
  EXPECT_EQ((*pay.egress[1].peers)[0].kind, Peer::Kind::Identity);
  EXPECT_EQ((*pay.egress[1].peers)[0].identity, "card-network");
  ASSERT_EQ(r.bundle.externals.size(), 1u);
  EXPECT_EQ(r.bundle.externals[0].name, "card-network");
  EXPECT_EQ(r.bundle.externals[0].except.size(), 1u);
}

// Externals, inline cidr peers and namespaces; line numbers in the comments.
const char* kRemote =
    "apiVersion: microseg.dev/v1\n"                                    // 1
    "kind: External\n"                                                 // 2
    "metadata: {name: corp-net, namespace: shop}\n"                    // 3
    "spec:\n"                                                          // 4
    "  labels: {zone: corp}\n"                                         // 5
    "  cidrs: [\"10.0.0.0/8\", \"fd00::/8\"]\n"                        // 6
    "  except: [\"10.66.0.0/16\", \"fd00:66::/32\"]\n"                 // 7
    "---\n"                                                            // 8
    "apiVersion: microseg.dev/v1\n"                                    // 9
    "kind: External\n"                                                 // 10
    "metadata: {name: partner}\n"                                      // 11
    "spec:\n"                                                          // 12
    "  cidrs:\n"                                                       // 13
    "    - 192.0.2.0/24\n"                                             // 14
    "    - 2001:DB8::/32\n"                                            // 15
    "---\n"                                                            // 16
    "apiVersion: microseg.dev/v1\n"                                    // 17
    "kind: Workload\n"                                                 // 18
    "metadata: {name: api, namespace: shop}\n"                         // 19
    "spec: {cgroups: [api]}\n"                                         // 20
    "---\n"                                                            // 21
    "apiVersion: microseg.dev/v1\n"                                    // 22
    "kind: Workload\n"                                                 // 23
    "metadata: {name: web, namespace: shop}\n"                         // 24
    "spec: {cgroups: [web], labels: {app: web, microseg.dev/namespace: shop}}\n"  // 25
    "---\n"                                                            // 26
    "apiVersion: microseg.dev/v1\n"                                    // 27
    "kind: Policy\n"                                                   // 28
    "metadata: {name: api-remote, namespace: shop}\n"                  // 29
    "spec:\n"                                                          // 30
    "  selector: {identity: api}\n"                                    // 31
    "  egress:\n"                                                      // 32
    "    - to:\n"                                                      // 33
    "        - cidr: 10.0.0.0/8\n"                                     // 34
    "          except: [10.2.0.0/16, 10.1.0.0/16]\n"                   // 35
    "        - identity: partner\n"                                    // 36
    "        - {cidr: \"::/0\"}\n"                                     // 37
    "  ingress:\n"                                                     // 38
    "    - from: [{cidr: 203.0.113.0/24}, {matchLabels: {zone: corp}}]\n";  // 39

Cidr cidrOf(const char* text) {
  auto c = parseCidr(text);
  EXPECT_TRUE(c.has_value()) << text;
  return c.value_or(Cidr{});
}

TEST(PolicyParser, GoodExternals) {
  auto r = parseText(kRemote, "remote.yaml");
  ASSERT_TRUE(r.ok()) << dump(r.errors);
  validateBundle(r.bundle, r.errors);
  ASSERT_TRUE(r.errors.empty()) << dump(r.errors);
  ASSERT_EQ(r.bundle.externals.size(), 2u);
  const External& corp = r.bundle.externals[0];
  EXPECT_EQ(corp.name, "corp-net");
  EXPECT_EQ(corp.namespaceName, "shop");
  EXPECT_EQ(corp.labels, (Labels{{"zone", "corp"}}));
  EXPECT_EQ(corp.effectiveLabels(), (Labels{{"zone", "corp"}, {"microseg.dev/namespace", "shop"}}));
  EXPECT_EQ(corp.cidrs, (std::vector<Cidr>{cidrOf("10.0.0.0/8"), cidrOf("fd00::/8")}));
  EXPECT_EQ(corp.except, (std::vector<Cidr>{cidrOf("10.66.0.0/16"), cidrOf("fd00:66::/32")}));
  EXPECT_EQ(corp.loc.file, "remote.yaml");
  EXPECT_EQ(corp.loc.line, 3);
  EXPECT_EQ(corp.loc.column, 18);
  EXPECT_TRUE(corp.contains(*parseAddress("10.1.2.3")));
  EXPECT_FALSE(corp.contains(*parseAddress("10.66.0.1")));
  EXPECT_TRUE(corp.contains(*parseAddress("fd00:1::1")));
  EXPECT_FALSE(corp.contains(*parseAddress("fd00:66::1")));
  EXPECT_FALSE(corp.contains(*parseAddress("11.0.0.1")));

  const External& partner = r.bundle.externals[1];
  EXPECT_EQ(partner.name, "partner");
  EXPECT_EQ(partner.namespaceName, "");
  EXPECT_TRUE(partner.labels.empty());
  EXPECT_TRUE(partner.effectiveLabels().empty()) << "no implicit label: an External is known by its addresses";
  ASSERT_EQ(partner.cidrs.size(), 2u);
  EXPECT_EQ(partner.cidrs[0].str(), "192.0.2.0/24");
  EXPECT_EQ(partner.cidrs[1].str(), "2001:db8::/32");  // unquoted in a block list, canonical lowercase
  EXPECT_TRUE(partner.except.empty());
  EXPECT_EQ(r.bundle.findExternal("partner"), &partner);
  EXPECT_EQ(r.bundle.findExternal("api"), nullptr);
}

TEST(PolicyParser, GoodNamespaces) {
  auto r = parseText(kRemote, "remote.yaml");
  ASSERT_TRUE(r.ok()) << dump(r.errors);
  ASSERT_EQ(r.bundle.workloads.size(), 2u);
  const Workload& api = r.bundle.workloads[0];
  EXPECT_EQ(api.namespaceName, "shop");
  EXPECT_TRUE(api.labels.empty());
  // Without spec.labels: still an identity of its own, in the namespace.
  EXPECT_EQ(api.effectiveLabels(),
            (Labels{{"microseg.dev/workload", "api"}, {"microseg.dev/namespace", "shop"}}));
  const Workload& web = r.bundle.workloads[1];
  EXPECT_EQ(web.labels, (Labels{{"app", "web"}, {"microseg.dev/namespace", "shop"}}));  // same value: fine
  EXPECT_EQ(web.effectiveLabels(), (Labels{{"app", "web"}, {"microseg.dev/namespace", "shop"}}));
  ASSERT_EQ(r.bundle.policies.size(), 1u);
  EXPECT_EQ(r.bundle.policies[0].namespaceName, "shop");
  EXPECT_EQ(r.bundle.policies[0].selector.identity, "api");
  // No namespace: the plain label sets of before.
  auto plain = parseText(kGood, "good.yaml");
  ASSERT_TRUE(plain.ok());
  EXPECT_EQ(plain.bundle.workloads[0].effectiveLabels(), (Labels{{"app", "api"}, {"tier", "backend"}}));
  EXPECT_EQ(plain.bundle.policies[0].namespaceName, "");
}

TEST(PolicyParser, GoodCidrPeers) {
  auto r = parseText(kRemote, "remote.yaml");
  ASSERT_TRUE(r.ok()) << dump(r.errors);
  const Policy& p = r.bundle.policies[0];
  ASSERT_EQ(p.egress.size(), 1u);
  ASSERT_TRUE(p.egress[0].peers.has_value());
  const auto& to = *p.egress[0].peers;
  ASSERT_EQ(to.size(), 3u);
  EXPECT_EQ(to[0].kind, Peer::Kind::Cidr);
  EXPECT_EQ(to[0].cidr(), cidrOf("10.0.0.0/8"));
  EXPECT_EQ(to[0].except(), (std::vector<Cidr>{cidrOf("10.2.0.0/16"), cidrOf("10.1.0.0/16")}));  // as written
  EXPECT_EQ(to[0].cidrText(), "10.0.0.0/8 except 10.1.0.0/16,10.2.0.0/16");             // sorted
  EXPECT_EQ(to[0].loc.line, 34);
  EXPECT_EQ(to[0].loc.column, 17);  // the cidr value
  EXPECT_EQ(to[1].kind, Peer::Kind::Identity);
  EXPECT_EQ(to[1].identity, "partner");
  EXPECT_EQ(to[2].kind, Peer::Kind::Cidr);
  EXPECT_EQ(to[2].cidrText(), "::/0");
  EXPECT_TRUE(to[2].except().empty());
  EXPECT_EQ(to[2].loc.line, 37);
  EXPECT_EQ(to[2].loc.column, 18);  // the opening quote
  ASSERT_EQ(p.ingress.size(), 1u);
  const auto& from = *p.ingress[0].peers;
  ASSERT_EQ(from.size(), 2u);
  EXPECT_EQ(from[0].kind, Peer::Kind::Cidr);
  EXPECT_EQ(from[0].cidrText(), "203.0.113.0/24");
  EXPECT_EQ(from[0].loc.line, 39);
  EXPECT_EQ(from[0].loc.column, 21);
  EXPECT_EQ(from[1].kind, Peer::Kind::Selector);
  EXPECT_EQ(from[1].selector().matchLabels, (Labels{{"zone", "corp"}}));
}

TEST(PolicyParser, ExternalWithManyProblemsReportsAll) {
  auto r = parseText(EXT_HEAD_DOC                                      // 1-4
                     "  cidrs: [10.0.0.0, 10.1.2.3/8, \"::ffff:1.2.3.4/120\"]\n"  // 5
                     "  except: [11.0.0.0/8]\n"                          // 6
                     "  zone: x\n",                                      // 7
                     "f.yaml");
  // Four, not five: the except is not judged against ranges that did not parse.
  ASSERT_EQ(r.errors.size(), 4u) << dump(r.errors);
  EXPECT_NE(r.errors[0].message.find("spec: unknown field 'zone'"), std::string::npos) << dump(r.errors);
  EXPECT_EQ(r.errors[0].loc.line, 7);
  EXPECT_NE(r.errors[1].message.find("spec.cidrs[0]: '10.0.0.0' has no prefix length"), std::string::npos);
  EXPECT_NE(r.errors[2].message.find("spec.cidrs[1]: 10.1.2.3/8 has host bits set"), std::string::npos);
  EXPECT_NE(r.errors[3].message.find("spec.cidrs[2]: '::ffff:1.2.3.4/120' is IPv4-mapped"), std::string::npos);
}

// ---- 2. bad documents -------------------------------------------------------

// Headers: four lines each, so a `spec` body starts on line 5.
#define WL_HEAD                    \
  "apiVersion: microseg.dev/v1\n"  \
  "kind: Workload\n"               \
  "metadata: {name: w}\n"          \
  "spec:\n"
#define POL_HEAD                   \
  "apiVersion: microseg.dev/v1\n"  \
  "kind: Policy\n"                 \
  "metadata: {name: p}\n"          \
  "spec:\n"
#define EXT_HEAD EXT_HEAD_DOC
#define POL_SEL "  selector: {matchLabels: {app: a}}\n"  // line 5

struct BadCase {
  const char* name;
  const char* yaml;
  const char* substr;  // expected in the diagnostic's message
  int line;
  int column;
  bool exact = false;  // the whole message, not a part of it
};

// Columns: count from 1. Flow-style lines used below, e.g.
//   "    - ports: [{port: 0}]"   '-'=5 'ports'=7 '['=14 '{'=15 'port'=16 value=22
//   "    - to: [{...}]"          'to'=7 '['=11 '{'=12 first key=13
//   "  selector: {...}"          '{'=13
//   "      - {key: app, operator: X, values: [x]}"  '{'=9 'key'=10 'operator'=20 X=30
const BadCase kBad[] = {
    // -- unknown fields (located at the key)
    {"UnknownTopLevel", WL_HEAD "  cgroups: [a]\n" "extra: 1\n", "document: unknown field 'extra'", 6, 1},
    {"UnknownInMetadata",
     "apiVersion: microseg.dev/v1\nkind: Workload\nmetadata: {name: w, uid: x}\nspec: {cgroups: [a]}\n",
     "metadata: unknown field 'uid' (allowed: name, namespace, labels, annotations)", 3, 21},
    {"UnknownInWorkloadSpec", WL_HEAD "  cgroups: [a]\n" "  label: {app: x}\n", "spec: unknown field 'label'", 6, 3},
    {"UnknownInPolicySpec", POL_HEAD POL_SEL "  egress: []\n" "  podSelector: {}\n",
     "spec: unknown field 'podSelector'", 7, 3},
    {"UnknownInRule", POL_HEAD POL_SEL "  egress:\n" "    - to: [world]\n" "      port: 80\n",
     "spec.egress[0]: unknown field 'port'", 8, 7},
    {"UnknownInPortItem", POL_HEAD POL_SEL "  egress:\n" "    - ports: [{port: 80, proto: TCP}]\n",
     "spec.egress[0].ports[0]: unknown field 'proto'", 7, 26},
    {"UnknownInPeer", POL_HEAD POL_SEL "  egress:\n" "    - to: [{matchLabels: {app: b}, namespace: x}]\n",
     "spec.egress[0].to[0]: unknown field 'namespace'", 7, 36},
    {"UnknownInMatchExpression",
     POL_HEAD "  selector:\n" "    matchExpressions:\n" "      - {key: app, operator: Exists, value: [x]}\n"
              "  egress: []\n",
     "spec.selector.matchExpressions[0]: unknown field 'value'", 7, 38},
    {"DuplicateKey", WL_HEAD "  cgroups: [a]\n" "  cgroups: [b]\n", "spec: duplicate key 'cgroups'", 6, 3},

    // -- header
    {"WrongApiVersion", "apiVersion: microseg.dev/v2\nkind: Workload\nmetadata: {name: w}\nspec: {cgroups: [a]}\n",
     "apiVersion: 'microseg.dev/v2' is not supported", 1, 13},
    {"UnknownKind", "apiVersion: microseg.dev/v1\nkind: Service\nmetadata: {name: w}\nspec: {cgroups: [a]}\n",
     "kind: 'Service' is not Workload, External or Policy", 2, 7},
    {"MissingMetadataName",
     "apiVersion: microseg.dev/v1\nkind: Workload\nmetadata: {labels: {a: b}}\nspec: {cgroups: [a]}\n",
     "metadata: 'name' is required", 3, 11},
    {"InvalidNameUppercase", "apiVersion: microseg.dev/v1\nkind: Workload\nmetadata: {name: Web}\nspec: {cgroups: [a]}\n",
     "metadata.name: 'Web' is not a valid name", 3, 18},
    {"WorkloadMetadataLabels",
     "apiVersion: microseg.dev/v1\nkind: Workload\nmetadata: {name: w, labels: {app: w}}\nspec: {cgroups: [a]}\n",
     "metadata.labels: a Workload's labels go in spec.labels", 3, 29},
    {"DuplicateAnnotation",
     "apiVersion: microseg.dev/v1\nkind: Policy\nmetadata: {name: p, annotations: {a: b, a: c}}\n"
     "spec: {selector: {identity: w}, egress: []}\n",
     "metadata.annotations: duplicate key 'a'", 3, 41},
    {"NameTooLong",
     "apiVersion: microseg.dev/v1\nkind: Workload\nmetadata: {name: "
     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa}\nspec: {cgroups: [a]}\n",
     "is not a valid name", 3, 18},
    {"NameTrailingDash", "apiVersion: microseg.dev/v1\nkind: Workload\nmetadata: {name: web-}\nspec: {cgroups: [a]}\n",
     "metadata.name: 'web-' is not a valid name", 3, 18},
    {"MissingSpec", "apiVersion: microseg.dev/v1\nkind: Workload\nmetadata: {name: w}\n",
     "document: 'spec' is required", 1, 1},

    // -- ports (located at the value)
    {"PortZero", POL_HEAD POL_SEL "  egress:\n" "    - ports: [{port: 0}]\n",
     "spec.egress[0].ports[0].port: 0 is out of range", 7, 22},
    {"Port70000", POL_HEAD POL_SEL "  egress:\n" "    - ports: [{port: 70000}]\n",
     "port: 70000 is out of range (1-65535)", 7, 22},
    {"PortNegative", POL_HEAD POL_SEL "  egress:\n" "    - ports: [{port: -1}]\n", "port: -1 is out of range", 7, 22},
    {"PortQuotedString", POL_HEAD POL_SEL "  egress:\n" "    - ports: [{port: \"80\"}]\n",
     "port: must be an integer, not a quoted string", 7, 22},
    {"PortFloat", POL_HEAD POL_SEL "  egress:\n" "    - ports: [{port: 1.5}]\n", "port: '1.5' is not an integer", 7,
     22},
    {"PortLeadingZero", POL_HEAD POL_SEL "  egress:\n" "    - ports: [{port: 080}]\n", "port: '080' has a leading zero",
     7, 22},
    {"PortTaggedString", POL_HEAD POL_SEL "  egress:\n" "    - ports: [{port: !!str 80}]\n",
     "port: must be an integer, not a tagged value", 7, 22},
    {"PortBareNumber", POL_HEAD POL_SEL "  egress:\n" "    - ports: [80]\n",
     "spec.egress[0].ports[0]: must be a mapping; write {port: 80}", 7, 15},
    // An empty value is located at its key, not at the token after it.
    {"PortEmptyValue", POL_HEAD POL_SEL "  egress:\n" "    - ports:\n" "        - port:\n" "          protocol: TCP\n",
     "ports[0].port: must be an integer, not empty", 8, 11},
    {"EndPortBelowPort", POL_HEAD POL_SEL "  egress:\n" "    - ports: [{port: 100, endPort: 50}]\n",
     "endPort: 50 is below port 100", 7, 36},
    {"EndPortOutOfRange", POL_HEAD POL_SEL "  egress:\n" "    - ports: [{port: 100, endPort: 70000}]\n",
     "endPort: 70000 is out of range", 7, 36},
    {"EndPortWithoutPort", POL_HEAD POL_SEL "  egress:\n" "    - ports: [{endPort: 90, protocol: TCP}]\n",
     "endPort: needs 'port'", 7, 25},
    {"ProtocolLowercase", POL_HEAD POL_SEL "  egress:\n" "    - ports: [{port: 80, protocol: tcp}]\n",
     "protocol: 'tcp' is not TCP or UDP (use TCP)", 7, 36},
    {"ProtocolSCTP", POL_HEAD POL_SEL "  egress:\n" "    - ports: [{port: 80, protocol: SCTP}]\n",
     "protocol: 'SCTP' is not TCP or UDP", 7, 36},
    {"EmptyPortItem", POL_HEAD POL_SEL "  egress:\n" "    - ports: [{}]\n",
     "spec.egress[0].ports[0]: empty port item", 7, 15},
    {"EmptyPortsList", POL_HEAD POL_SEL "  egress:\n" "    - ports: []\n",
     "spec.egress[0].ports: empty list; omit 'ports'", 7, 14},

    // -- rules and peers
    {"EmptyToList", POL_HEAD POL_SEL "  egress:\n" "    - to: []\n", "spec.egress[0].to: empty list; omit 'to'", 7, 11},
    {"FromInEgress", POL_HEAD POL_SEL "  egress:\n" "    - from: [world]\n",
     "'from' is not valid in an egress rule; use 'to'", 7, 13},
    {"ToInIngress", POL_HEAD POL_SEL "  ingress:\n" "    - to: [world]\n",
     "'to' is not valid in an ingress rule; use 'from'", 7, 11},
    {"EgressNull", POL_HEAD POL_SEL "  egress:\n" "  ingress: []\n",
     "spec.egress: must be a list of rules (write [] to allow nothing)", 6, 3},
    {"EgressNullAtEnd", POL_HEAD POL_SEL "  egress:\n", "spec.egress: must be a list of rules", 6, 3},
    {"RulesNotAList", POL_HEAD POL_SEL "  egress: {to: [world]}\n", "spec.egress: must be a list of rules", 6, 11},
    {"BadAction", POL_HEAD POL_SEL "  egress:\n" "    - action: drop\n",
     "spec.egress[0].action: 'drop' is not allow, deny or pass", 7, 15},
    // -- cidr peers (located at the offending value)
    {"CidrPeerHostBits", POL_HEAD POL_SEL "  egress:\n" "    - to: [{cidr: 10.1.2.3/8}]\n",
     "spec.egress[0].to[0].cidr: 10.1.2.3/8 has host bits set; did you mean 10.0.0.0/8?", 7, 19, true},
    {"CidrPeerNoPrefix", POL_HEAD POL_SEL "  egress:\n" "    - to: [{cidr: 10.1.2.3}]\n",
     "spec.egress[0].to[0].cidr: '10.1.2.3' has no prefix length (/n); write 10.1.2.3/32 for this one address", 7,
     19, true},
    {"CidrPeerExceptOutside", POL_HEAD POL_SEL "  egress:\n" "    - to: [{cidr: 10.1.0.0/16, except: [10.2.0.0/16]}]\n",
     "spec.egress[0].to[0].except[0]: 10.2.0.0/16 is not inside cidr 10.1.0.0/16", 7, 41, true},
    {"CidrPeerExceptCoversCidr", POL_HEAD POL_SEL "  egress:\n" "    - to: [{cidr: 10.1.0.0/16, except: [10.0.0.0/8]}]\n",
     "spec.egress[0].to[0].except[0]: 10.0.0.0/8 covers all of cidr 10.1.0.0/16 (nothing would be left)", 7, 41, true},
    {"CidrPeerExceptIpv4InIpv6", POL_HEAD POL_SEL "  egress:\n" "    - to: [{cidr: \"::/0\", except: [10.0.0.0/8]}]\n",
     "spec.egress[0].to[0].except[0]: 10.0.0.0/8 is not inside cidr ::/0 (::/0 is IPv6 and never contains IPv4 "
     "addresses)", 7, 36, true},
    {"CidrPeerExceptTwice", POL_HEAD POL_SEL "  egress:\n" "    - to: [{cidr: 10.0.0.0/8, except: [10.1.0.0/16, 10.1.0.0/16]}]\n",
     "spec.egress[0].to[0].except[1]: 10.1.0.0/16 is listed twice (first at spec.egress[0].to[0].except[0])", 7, 53, true},
    {"CidrPeerExceptNotAList", POL_HEAD POL_SEL "  egress:\n" "    - to: [{cidr: 10.0.0.0/8, except: 10.1.0.0/16}]\n",
     "spec.egress[0].to[0].except: must be a list of CIDRs (e.g. [\"10.0.0.0/8\"])", 7, 39, true},
    {"ExceptWithoutCidr", POL_HEAD POL_SEL "  egress:\n" "    - to: [{except: [10.2.0.0/16]}]\n",
     "spec.egress[0].to[0]: 'except' needs 'cidr' (the range to take the exceptions out of)", 7, 21, true},
    {"CidrAndIdentity", POL_HEAD POL_SEL "  egress:\n" "    - to: [{cidr: 10.0.0.0/8, identity: w}]\n",
     "spec.egress[0].to[0]: a peer is exactly one of: a selector (matchLabels/matchExpressions), identity, "
     "reserved, cidr, fqdn", 7, 12, true},
    {"CidrPeerUnknownField", POL_HEAD POL_SEL "  egress:\n" "    - to: [{cidr: 10.0.0.0/8, exclude: [10.1.0.0/16]}]\n",
     "spec.egress[0].to[0]: unknown field 'exclude' (allowed: matchLabels, matchExpressions, identity, "
     "reserved, cidr, except, fqdn)", 7, 31, true},
    {"IngressCidrPeerMapped", POL_HEAD POL_SEL "  ingress:\n" "    - from: [{cidr: \"::ffff:10.0.0.0/104\"}]\n",
     "spec.ingress[0].from[0].cidr: '::ffff:10.0.0.0/104' is IPv4-mapped IPv6; write the IPv4 form 10.0.0.0/8", 7, 21, true},
    {"IngressCidrPeerPrefixTooLong", POL_HEAD POL_SEL "  ingress:\n" "    - from: [{cidr: \"fd00::/129\"}]\n",
     "spec.ingress[0].from[0].cidr: 'fd00::/129': prefix length 129 is out of range for IPv6 (0-128)", 7, 21, true},
    {"ReservedInternet", POL_HEAD POL_SEL "  egress:\n" "    - to: [{reserved: internet}]\n",
     "spec.egress[0].to[0]: 'internet' is not a reserved peer", 7, 23},
    {"ScalarPeerInternet", POL_HEAD POL_SEL "  egress:\n" "    - to: [world, internet]\n",
     "spec.egress[0].to[1]: 'internet' is not a reserved peer", 7, 19},
    {"PeerTwoForms", POL_HEAD POL_SEL "  egress:\n" "    - to: [{identity: w, reserved: host}]\n",
     "a peer is exactly one of", 7, 12},

    // -- selectors
    {"EmptySelector", POL_HEAD "  selector: {}\n" "  egress: []\n", "spec.selector: empty selector", 5, 13},
    {"EmptyMatchLabels", POL_HEAD "  selector: {matchLabels: {}}\n" "  egress: []\n", "spec.selector: empty selector",
     5, 13},
    {"IdentityWithMatchLabels", POL_HEAD "  selector: {identity: w, matchLabels: {app: a}}\n" "  egress: []\n",
     "use either 'identity' or matchLabels/matchExpressions, not both", 5, 13},
    {"MissingSelector", POL_HEAD "  egress: []\n", "spec: 'selector' is required", 5, 3},
    {"OperatorFoo",
     POL_HEAD "  selector:\n" "    matchExpressions:\n" "      - {key: app, operator: Foo, values: [x]}\n"
              "  egress: []\n",
     "operator: 'Foo' is not one of In, NotIn, Exists, DoesNotExist", 7, 30},
    {"InWithoutValues",
     POL_HEAD "  selector:\n" "    matchExpressions:\n" "      - {key: app, operator: In}\n" "  egress: []\n",
     "matchExpressions[0]: operator In needs a non-empty 'values' list", 7, 9},
    {"ExistsWithValues",
     POL_HEAD "  selector:\n" "    matchExpressions:\n" "      - {key: app, operator: Exists, values: [x]}\n"
              "  egress: []\n",
     "values: must be empty for operator Exists", 7, 46},
    {"BadLabelKey", WL_HEAD "  cgroups: [a]\n" "  labels: {_app: x}\n", "'_app' is not a valid label key", 6, 12},
    {"BadLabelKeyPrefix", WL_HEAD "  cgroups: [a]\n" "  labels: {Example.COM/app: x}\n",
     "'Example.COM/app' is not a valid label key", 6, 12},
    {"BadLabelValue", WL_HEAD "  cgroups: [a]\n" "  labels: {app: \"has space\"}\n",
     "spec.labels.app: 'has space' is not a valid label value", 6, 17},
    {"BadEnforcement", POL_HEAD POL_SEL "  enforcement: strict\n" "  egress: []\n",
     "spec.enforcement: 'strict' is not monitor or enforce", 6, 16},

    // -- workloads
    {"AbsoluteCgroup", WL_HEAD "  cgroups: [/sys/fs/cgroup/a]\n", "must be relative to the daemon's cgroup root", 5, 13},
    {"DotDotCgroup", WL_HEAD "  cgroups: [a/../b]\n", "'a/../b' has an empty, '.' or '..' path component", 5, 13},
    {"EmptyCgroupComponent", WL_HEAD "  cgroups: [a//b]\n", "'a//b' has an empty, '.' or '..' path component", 5, 13},
    {"CgroupUnclosedBracket", WL_HEAD "  cgroups: [\"a/[bc\"]\n", "'[' at offset 2 has no closing ']'", 5, 13},
    {"EmptyCgroupsList", WL_HEAD "  cgroups: []\n", "spec.cgroups: must be a non-empty list", 5, 12},
    {"MissingCgroups", WL_HEAD "  labels: {app: a}\n", "spec: 'cgroups' is required", 5, 3},
    {"SpiffeIdWithoutScheme", WL_HEAD "  cgroups: [a]\n" "  spiffeId: example.org/w\n",
     "spec.spiffeId: 'example.org/w' must start with spiffe://", 6, 13},

    // -- externals
    {"ExternalMissingCidrs", EXT_HEAD "  labels: {zone: corp}\n",
     "spec: 'cidrs' is required (the address ranges this External stands for)", 5, 3, true},
    {"ExternalEmptyCidrs", EXT_HEAD "  cidrs: []\n", "spec.cidrs: must be a non-empty list of CIDRs", 5, 10, true},
    {"ExternalCidrsNotAList", EXT_HEAD "  cidrs: 10.0.0.0/8\n",
     "spec.cidrs: must be a list of CIDRs (e.g. [\"10.0.0.0/8\"])", 5, 10, true},
    {"ExternalCidrNoPrefix", EXT_HEAD "  cidrs: [\"10.0.0.0/8\", \"10.1.2.3\"]\n",
     "spec.cidrs[1]: '10.1.2.3' has no prefix length (/n); write 10.1.2.3/32 for this one address", 5, 25, true},
    {"ExternalCidrHostBits", EXT_HEAD "  cidrs: [10.0.0.0/8, 10.1.2.3/8]\n",
     "spec.cidrs[1]: 10.1.2.3/8 has host bits set; did you mean 10.0.0.0/8?", 5, 23, true},
    {"ExternalCidrIpv6HostBits", EXT_HEAD "  cidrs: [\"fd00::1/8\"]\n",
     "spec.cidrs[0]: fd00::1/8 has host bits set; did you mean fd00::/8?", 5, 11, true},
    {"ExternalCidrMapped", EXT_HEAD "  cidrs: [\"::ffff:1.2.3.4/120\"]\n",
     "spec.cidrs[0]: '::ffff:1.2.3.4/120' is IPv4-mapped IPv6; write the IPv4 form 1.2.3.0/24", 5, 11, true},
    {"ExternalCidrPrefixTooLong", EXT_HEAD "  cidrs: [10.0.0.0/33]\n",
     "spec.cidrs[0]: '10.0.0.0/33': prefix length 33 is out of range for IPv4 (0-32)", 5, 11, true},
    {"ExternalCidrBadAddress", EXT_HEAD "  cidrs: [10.0.0.300/8]\n",
     "spec.cidrs[0]: '10.0.0.300/8' is not a CIDR: '10.0.0.300' is not an IPv4 address (want "
     "ADDRESS/LENGTH, e.g. 10.0.0.0/8 or fd00::/8)", 5, 11, true},
    {"ExternalCidrNotAString", EXT_HEAD "  cidrs: [{a: b}]\n", "spec.cidrs[0]: must be a string", 5, 11, true},
    {"ExternalDuplicateCidr", EXT_HEAD "  cidrs: [\"fd00::/8\", \"FD00:0::/8\"]\n",
     "spec.cidrs[1]: fd00::/8 is listed twice (first at spec.cidrs[0])", 5, 23, true},
    {"ExternalExceptOutside", EXT_HEAD "  cidrs: [10.0.0.0/8]\n" "  except: [10.66.0.0/16, 11.0.0.0/16]\n",
     "spec.except[1]: 11.0.0.0/16 is not inside any of spec.cidrs", 6, 26, true},
    {"ExternalExceptCoversCidr", EXT_HEAD "  cidrs: [10.0.0.0/8, 10.1.2.0/24]\n" "  except: [10.1.0.0/16]\n",
     "spec.except[0]: 10.1.0.0/16 covers all of spec.cidrs[1] (10.1.2.0/24); remove that cidr instead", 6, 12, true},
    {"ExternalExceptIpv4InIpv6", EXT_HEAD "  cidrs: [\"::/0\"]\n" "  except: [10.0.0.0/8]\n",
     "spec.except[0]: 10.0.0.0/8 is not inside any of spec.cidrs (::/0 is IPv6 and never contains IPv4 addresses)",
     6, 12, true},
    {"ExternalExceptTwice", EXT_HEAD "  cidrs: [10.0.0.0/8]\n" "  except: [10.1.0.0/16, 10.1.0.0/16]\n",
     "spec.except[1]: 10.1.0.0/16 is listed twice (first at spec.except[0])", 6, 25, true},
    {"ExternalExceptNull", EXT_HEAD "  cidrs: [10.0.0.0/8]\n" "  except:\n",
     "spec.except: must be a list of CIDRs (e.g. [\"10.0.0.0/8\"])", 6, 3, true},
    {"ExternalUnknownField", EXT_HEAD "  cidrs: [10.0.0.0/8]\n" "  cgroups: [a]\n",
     "spec: unknown field 'cgroups' (allowed: labels, cidrs, except)", 6, 3, true},
    {"ExternalMetadataLabels",
     "apiVersion: microseg.dev/v1\nkind: External\nmetadata: {name: e, labels: {zone: x}}\nspec: {cidrs: [10.0.0.0/8]}\n",
     "metadata.labels: an External's labels go in spec.labels", 3, 29, true},
    {"ExternalBadLabelValue", EXT_HEAD "  cidrs: [10.0.0.0/8]\n" "  labels: {zone: \"a b\"}\n",
     "spec.labels.zone: 'a b' is not a valid label value", 6, 18, true},

    // -- namespaces
    {"BadNamespace", "apiVersion: microseg.dev/v1\nkind: Workload\nmetadata: {name: w, namespace: Shop}\nspec: {cgroups: [a]}\n",
     "metadata.namespace: 'Shop' is not a valid namespace (lowercase letters, digits and '-', at most 63)", 3, 32, true},
    {"NamespaceNotAString", "apiVersion: microseg.dev/v1\nkind: Workload\nmetadata: {name: w, namespace: [a]}\nspec: {cgroups: [a]}\n",
     "metadata.namespace: must be a string", 3, 32, true},
    {"WorkloadNamespaceLabelContradicts",
     "apiVersion: microseg.dev/v1\nkind: Workload\nmetadata: {name: w, namespace: shop}\nspec:\n"
     "  cgroups: [a]\n" "  labels: {app: a, microseg.dev/namespace: other}\n",
     "spec.labels.microseg.dev/namespace: 'other' contradicts metadata.namespace 'shop' (the namespace sets this "
     "label)", 6, 44, true},
    {"ExternalNamespaceLabelContradicts",
     "apiVersion: microseg.dev/v1\nkind: External\nmetadata: {name: e, namespace: shop}\nspec:\n"
     "  cidrs: [10.0.0.0/8]\n" "  labels: {microseg.dev/namespace: other}\n",
     "spec.labels.microseg.dev/namespace: 'other' contradicts metadata.namespace 'shop' (the namespace sets this "
     "label)", 6, 36, true},
    {"PolicySelectorNamespaceContradicts",
     "apiVersion: microseg.dev/v1\nkind: Policy\nmetadata: {name: p, namespace: shop}\nspec:\n"
     "  selector: {matchLabels: {microseg.dev/namespace: web}}\n" "  egress: []\n",
     "spec.selector.matchLabels.microseg.dev/namespace: 'web' contradicts metadata.namespace 'shop' (the namespace "
     "sets this label)", 5, 52, true},

    // -- policy shape and document shape
    {"PolicyWithoutRules", POL_HEAD POL_SEL, "spec: a policy needs 'egress' and/or 'ingress' rules", 5, 3},
    {"NonMapDocument", "- a\n- b\n", "document: must be a mapping", 1, 1},
    // Unclosed flow sequence: the parser runs to the end of input (line 6, col 1).
    {"YamlSyntaxError", POL_HEAD "  selector: [unclosed\n", "YAML syntax", 6, 1},
};

class PolicyParserBad : public ::testing::TestWithParam<BadCase> {};

TEST_P(PolicyParserBad, ReportsLocatedDiagnostic) {
  const BadCase& c = GetParam();
  auto r = parseText(c.yaml, "bad.yaml");
  ASSERT_FALSE(r.ok()) << c.yaml;
  const Diagnostic* hit = nullptr;
  for (const auto& e : r.errors) {
    if (e.message.find(c.substr) != std::string::npos) {
      hit = &e;
      break;
    }
  }
  ASSERT_NE(hit, nullptr) << "no diagnostic contains \"" << c.substr << "\"; got:\n" << dump(r.errors);
  if (c.exact) {
    EXPECT_EQ(hit->message, c.substr);
  }
  EXPECT_EQ(hit->loc.file, "bad.yaml");
  EXPECT_EQ(hit->loc.line, c.line) << hit->str();
  EXPECT_EQ(hit->loc.column, c.column) << hit->str();
}

INSTANTIATE_TEST_SUITE_P(Policy, PolicyParserBad, ::testing::ValuesIn(kBad),
                         [](const ::testing::TestParamInfo<BadCase>& info) { return std::string(info.param.name); });

TEST(PolicyParser, BadTableIsLargeEnough) { EXPECT_GE(std::size(kBad), 60u); }

// ---- FQDN peers (`{fqdn: NAME}`, egress `to:` only) -------------------------

// A workload and a policy whose egress names `peers` (one flow list); the
// policy's rule list starts on line 11, its `to:` on line 12.
std::string fqdnDoc(const std::string& peers) {
  return "apiVersion: microseg.dev/v1\n"       // 1
         "kind: Workload\n"                    // 2
         "metadata: {name: w}\n"               // 3
         "spec: {cgroups: [w]}\n"              // 4
         "---\n"                               // 5
         "apiVersion: microseg.dev/v1\n"       // 6
         "kind: Policy\n"                      // 7
         "metadata: {name: p}\n"               // 8
         "spec:\n"                             // 9
         "  selector: {identity: w}\n"         // 10
         "  egress:\n"                         // 11
         "    - to: " + peers + "\n"           // 12
         "      ports: [{port: 443, protocol: TCP}]\n";  // 13
}

TEST(PolicyParserFqdn, AcceptedFormsAreNormalised) {
  auto r = parseText(fqdnDoc("[{fqdn: api.example.com}, {fqdn: \"*.example.com\"}, {fqdn: API.Example.COM.},"
                             " {fqdn: \"*.CDN.Example.net.\"}, {fqdn: _acme-challenge.my_host.example.org},"
                             " {fqdn: 'x-1.y2'}]"),
                     "fqdn.yaml");
  ASSERT_TRUE(r.ok()) << dump(r.errors);
  validateBundle(r.bundle, r.errors);
  ASSERT_TRUE(r.errors.empty()) << "an fqdn peer names no Workload or External: " << dump(r.errors);
  ASSERT_EQ(r.bundle.policies.size(), 1u);
  const Policy& p = r.bundle.policies[0];
  ASSERT_EQ(p.egress.size(), 1u);
  ASSERT_TRUE(p.egress[0].peers.has_value());
  const auto& to = *p.egress[0].peers;
  ASSERT_EQ(to.size(), 6u);
  const char* want[] = {"api.example.com",  "*.example.com",   "api.example.com",
                        "*.cdn.example.net", "_acme-challenge.my_host.example.org", "x-1.y2"};
  for (size_t i = 0; i < to.size(); i++) {
    EXPECT_EQ(to[i].kind, Peer::Kind::Fqdn) << i;
    EXPECT_EQ(to[i].identity, want[i]) << i;
    EXPECT_EQ(to[i].loc.file, "fqdn.yaml");
    EXPECT_EQ(to[i].loc.line, 12) << i;
  }
  EXPECT_EQ(to[0].loc.column, 19);  // the value, as for cidr peers
  EXPECT_EQ(to[1].loc.column, 44);  // the opening quote
  EXPECT_TRUE(p.hasCidrPeers) << "an fqdn peer is an identity input, like a cidr peer";
}

TEST(PolicyParserFqdn, BlockStyleAndOtherActions) {
  auto r = parseText("apiVersion: microseg.dev/v1\n"        // 1
                     "kind: Policy\n"                       // 2
                     "metadata: {name: p}\n"                // 3
                     "spec:\n"                              // 4
                     "  selector: {matchLabels: {app: a}}\n"  // 5
                     "  egress:\n"                          // 6
                     "    - action: deny\n"                 // 7
                     "      to:\n"                          // 8
                     "        - fqdn: \"*.ads.example\"\n"  // 9
                     "    - to:\n"                          // 10
                     "        - fqdn: example.com\n"        // 11
                     "        - world\n",                   // 12
                     "b.yaml");
  ASSERT_TRUE(r.ok()) << dump(r.errors);
  const Policy& p = r.bundle.policies[0];
  ASSERT_EQ(p.egress.size(), 2u);
  EXPECT_EQ(p.egress[0].action, Action::Deny);
  ASSERT_EQ(p.egress[0].peers->size(), 1u);
  EXPECT_EQ((*p.egress[0].peers)[0].kind, Peer::Kind::Fqdn);
  EXPECT_EQ((*p.egress[0].peers)[0].identity, "*.ads.example");
  EXPECT_EQ((*p.egress[0].peers)[0].loc.line, 9);
  EXPECT_EQ((*p.egress[0].peers)[0].loc.column, 17);
  ASSERT_EQ(p.egress[1].peers->size(), 2u);
  EXPECT_EQ((*p.egress[1].peers)[0].identity, "example.com");
  EXPECT_EQ((*p.egress[1].peers)[1].kind, Peer::Kind::Reserved);
  EXPECT_TRUE(p.hasCidrPeers);
}

TEST(PolicyParserFqdn, WithoutCidrOrFqdnPeersHasCidrPeersIsFalse) {
  auto r = parseText(fqdnDoc("[{identity: w}, world]"), "n.yaml");
  ASSERT_TRUE(r.ok()) << dump(r.errors);
  EXPECT_FALSE(r.bundle.policies[0].hasCidrPeers);
}

// The bounds of RFC 1035, written without the trailing dot: 253 characters,
// labels of 63.
TEST(PolicyParserFqdn, LengthBoundsAreInclusive) {
  const std::string l63(63, 'a');
  const std::string n253 = l63 + "." + l63 + "." + l63 + "." + std::string(61, 'b');
  ASSERT_EQ(n253.size(), 253u);
  for (const std::string& name : {n253, n253 + ".", "*." + l63 + ".example.com", l63 + ".com"}) {
    auto r = parseText(fqdnDoc("[{fqdn: \"" + name + "\"}]"), "len.yaml");
    ASSERT_TRUE(r.ok()) << name << "\n" << dump(r.errors);
    const Peer& peer = (*r.bundle.policies[0].egress[0].peers)[0];
    EXPECT_EQ(peer.kind, Peer::Kind::Fqdn);
    EXPECT_EQ(peer.identity, name.back() == '.' ? name.substr(0, name.size() - 1) : name);
  }
}

TEST(PolicyParserFqdn, EveryBadPeerOfAListIsReported) {
  auto r = parseText(fqdnDoc("[{fqdn: a..b}, {fqdn: ok.example}, {fqdn: \"*.com\"}]"), "m.yaml");
  ASSERT_FALSE(r.ok());
  ASSERT_EQ(r.errors.size(), 2u) << dump(r.errors);
  EXPECT_EQ(r.errors[0].message.rfind("spec.egress[0].to[0].fqdn: ", 0), 0u) << dump(r.errors);
  EXPECT_EQ(r.errors[0].loc.column, 19);
  EXPECT_EQ(r.errors[1].message.rfind("spec.egress[0].to[2].fqdn: ", 0), 0u) << dump(r.errors);
  EXPECT_EQ(r.errors[1].loc.column, 53);
  for (const auto& e : r.errors) EXPECT_EQ(e.loc.line, 12);
}

// An unquoted `*.example.com` is a YAML alias, not a string: an error,
// never a peer that quietly means something else.
TEST(PolicyParserFqdn, UnquotedWildcardIsAnError) {
  auto r = parseText(fqdnDoc("[{fqdn: *.example.com}]"), "alias.yaml");
  EXPECT_FALSE(r.ok());
  ASSERT_FALSE(r.errors.empty());
  EXPECT_EQ(r.errors[0].loc.line, 12) << dump(r.errors);
}

struct FqdnBadCase {
  std::string name;
  std::string yaml;
  std::string path;  // the message starts with "<path>: "
  std::string why;   // and contains this
  int line;
  int column;
};

// One egress (or ingress) rule whose peer list is `peers`, on line 7.
// Columns: "    - to: [{fqdn: V}]" '{'=12 V=19; "    - from: [{fqdn: V}]" V=21.
std::string fqdnRule(const std::string& peers, bool ingress = false) {
  return std::string(POL_HEAD POL_SEL) + (ingress ? "  ingress:\n    - from: " : "  egress:\n    - to: ") + peers +
         "\n";
}

std::vector<FqdnBadCase> fqdnBadCases() {
  const std::string l63(63, 'a');
  const std::string n254 = l63 + "." + l63 + "." + l63 + "." + std::string(62, 'b');
  const std::string to0 = "spec.egress[0].to[0].fqdn";
  return {
      {"InFrom", fqdnRule("[{fqdn: api.example.com}]", true), "spec.ingress[0].from[0].fqdn",
       "an fqdn peer is only valid in 'to' (egress)", 7, 21},
      {"InFromEvenIfMalformed", fqdnRule("[{fqdn: [a]}]", true), "spec.ingress[0].from[0].fqdn",
       "only valid in 'to' (egress)", 7, 21},
      {"WildcardNotFirst", fqdnRule("[{fqdn: api.*.example.com}]"), to0,
       "has a '*' that is not the whole first label", 7, 19},
      {"WildcardInsideLabel", fqdnRule("[{fqdn: \"a*.example.com\"}]"), to0,
       "has a '*' that is not the whole first label", 7, 19},
      {"TwoWildcards", fqdnRule("[{fqdn: \"*.*.example.com\"}]"), to0,
       "has a '*' that is not the whole first label", 7, 19},
      // Alone, '*' is not "*." and so an ordinary label with a '*' in it.
      {"StarAlone", fqdnRule("[{fqdn: \"*\"}]"), to0, "has a '*'", 7, 19},
      {"WildcardOfTopLevelDomain", fqdnRule("[{fqdn: \"*.com\"}]"), to0,
       "leaves a single label under '*' (a wildcard of a whole top-level domain)", 7, 19},
      {"SingleLabel", fqdnRule("[{fqdn: localhost}]"), to0,
       "has a single label (write the full name, e.g. api.example.com)", 7, 19},
      {"TooLong", fqdnRule("[{fqdn: " + n254 + "}]"), to0, "is 254 characters long (at most 253)", 7, 19},
      {"LabelTooLong", fqdnRule("[{fqdn: " + std::string(64, 'a') + ".example.com}]"), to0,
       "has a label of 64 characters (at most 63)", 7, 19},
      {"EmptyString", fqdnRule("[{fqdn: \"\"}]"), to0, "is empty", 7, 19},
      {"OnlyADot", fqdnRule("[{fqdn: \".\"}]"), to0, "is empty", 7, 19},
      {"EmptyLabel", fqdnRule("[{fqdn: a..example.com}]"), to0, "has an empty label", 7, 19},
      {"LeadingDot", fqdnRule("[{fqdn: .example.com}]"), to0, "has an empty label", 7, 19},
      {"LabelStartsWithDash", fqdnRule("[{fqdn: -api.example.com}]"), to0,
       "has a label that starts or ends with '-'", 7, 19},
      {"LabelEndsWithDash", fqdnRule("[{fqdn: api.example-.com}]"), to0,
       "has a label that starts or ends with '-'", 7, 19},
      {"Space", fqdnRule("[{fqdn: \"api example.com\"}]"), to0,
       "has a character that is not a letter, digit, '-' or '_' (' ')", 7, 19},
      {"UrlNotAName", fqdnRule("[{fqdn: \"https://api.example.com\"}]"), to0,
       "has a character that is not a letter, digit, '-' or '_' (':')", 7, 19},
      {"List", fqdnRule("[{fqdn: [api.example.com]}]"), to0, "must be a string", 7, 19},
      {"EmptyValue", fqdnRule("[{fqdn: }]"), to0, "must be a string", 7, 13},  // located at the key
      {"Ipv6Address", fqdnRule("[{fqdn: \"2001:db8::1\"}]"), to0,
       "has a character that is not a letter, digit, '-' or '_' (':')", 7, 19},
      {"Map", fqdnRule("[{fqdn: {name: api.example.com}}]"), to0, "must be a string", 7, 19},
      {"ControlCharacter", fqdnRule("[{fqdn: \"api.example.com\\x01\"}]"), to0, "contains a control character", 7,
       19},
      // Exactly one form per peer map: located at the map.
      {"WithCidr", fqdnRule("[{fqdn: api.example.com, cidr: 10.0.0.0/8}]"), "spec.egress[0].to[0]",
       "a peer is exactly one of: a selector (matchLabels/matchExpressions), identity, reserved, cidr, fqdn", 7, 12},
      {"WithExcept", fqdnRule("[{fqdn: api.example.com, except: [10.0.0.0/8]}]"), "spec.egress[0].to[0]",
       "a peer is exactly one of", 7, 12},
      {"WithIdentity", fqdnRule("[{identity: w, fqdn: api.example.com}]"), "spec.egress[0].to[0]",
       "a peer is exactly one of", 7, 12},
      {"WithMatchLabels", fqdnRule("[{matchLabels: {app: x}, fqdn: api.example.com}]"), "spec.egress[0].to[0]",
       "a peer is exactly one of", 7, 12},
      {"SecondPeerOfTheList", fqdnRule("[world, {fqdn: \"*.com\"}]"), "spec.egress[0].to[1].fqdn",
       "a wildcard of a whole top-level domain", 7, 26},
  };
}

class PolicyParserFqdnBad : public ::testing::TestWithParam<FqdnBadCase> {};

TEST_P(PolicyParserFqdnBad, ReportsLocatedDiagnostic) {
  const FqdnBadCase& c = GetParam();
  auto r = parseText(c.yaml, "bad.yaml");
  ASSERT_FALSE(r.ok()) << c.yaml;
  const Diagnostic* hit = nullptr;
  for (const auto& e : r.errors) {
    if (e.message.find(c.why) != std::string::npos) {
      hit = &e;
      break;
    }
  }
  ASSERT_NE(hit, nullptr) << "no diagnostic contains \"" << c.why << "\"; got:\n" << dump(r.errors);
  EXPECT_EQ(hit->message.rfind(c.path + ": ", 0), 0u) << "the message names the path " << c.path << ": "
                                                      << hit->message;
  EXPECT_EQ(hit->loc.file, "bad.yaml");
  EXPECT_EQ(hit->loc.line, c.line) << hit->str();
  EXPECT_EQ(hit->loc.column, c.column) << hit->str();
  EXPECT_EQ(r.errors.size(), 1u) << "one problem, one diagnostic:\n" << dump(r.errors);
}

INSTANTIATE_TEST_SUITE_P(Policy, PolicyParserFqdnBad, ::testing::ValuesIn(fqdnBadCases()),
                         [](const ::testing::TestParamInfo<FqdnBadCase>& info) { return info.param.name; });

// The example of the language brief, verbatim.
TEST(PolicyParser, BriefExample) {
  auto r = parseText(
      "apiVersion: microseg.dev/v1\n"
      "kind: Workload\n"
      "metadata: {name: payments}\n"
      "spec:\n"
      "  cgroups: [\"system.slice/payments.service\"]\n"
      "  labels: {app: payments, tier: backend}\n"
      "---\n"
      "apiVersion: microseg.dev/v1\n"
      "kind: Policy\n"
      "metadata: {name: payments-egress}\n"
      "spec:\n"
      "  selector: {matchLabels: {app: payments}}\n"
      "  enforcement: monitor\n"
      "  egress:\n"
      "    - to: [{identity: payments}]\n"
      "      ports: [{port: 5432, protocol: TCP}, {port: 8000, endPort: 8100}]\n"
      "    - action: deny\n"
      "      to: [world]\n",
      "brief.yaml");
  ASSERT_TRUE(r.ok()) << dump(r.errors);
  std::vector<Diagnostic> errors;
  validateBundle(r.bundle, errors);
  EXPECT_TRUE(errors.empty()) << dump(errors);
  ASSERT_EQ(r.bundle.workloads.size(), 1u);
  EXPECT_EQ(r.bundle.workloads[0].cgroups, (std::vector<std::string>{"system.slice/payments.service"}));
  EXPECT_EQ(r.bundle.workloads[0].labels, (Labels{{"app", "payments"}, {"tier", "backend"}}));
  ASSERT_EQ(r.bundle.policies.size(), 1u);
  const Policy& p = r.bundle.policies[0];
  EXPECT_EQ(p.name, "payments-egress");
  EXPECT_EQ(p.selector.kind, Peer::Kind::Selector);
  EXPECT_EQ(p.selector.selector().matchLabels, (Labels{{"app", "payments"}}));
  EXPECT_EQ(p.enforcement, Enforcement::Monitor);
  EXPECT_TRUE(p.hasEgress);
  EXPECT_FALSE(p.hasIngress);
  ASSERT_EQ(p.egress.size(), 2u);
  ASSERT_TRUE(p.egress[0].peers.has_value());
  ASSERT_EQ(p.egress[0].peers->size(), 1u);
  EXPECT_EQ((*p.egress[0].peers)[0].kind, Peer::Kind::Identity);
  EXPECT_EQ((*p.egress[0].peers)[0].identity, "payments");
  ASSERT_EQ(p.egress[0].ports.size(), 2u);
  EXPECT_EQ(p.egress[0].ports[0].first, 5432);
  EXPECT_EQ(p.egress[0].ports[0].last, 5432);
  EXPECT_EQ(p.egress[0].ports[0].protocol, Protocol::TCP);
  EXPECT_EQ(p.egress[0].ports[1].first, 8000);
  EXPECT_EQ(p.egress[0].ports[1].last, 8100);
  EXPECT_EQ(p.egress[0].ports[1].protocol, Protocol::Any);
  EXPECT_EQ(p.egress[1].action, Action::Deny);
  ASSERT_TRUE(p.egress[1].peers.has_value());
  ASSERT_EQ(p.egress[1].peers->size(), 1u);
  EXPECT_EQ((*p.egress[1].peers)[0].kind, Peer::Kind::Reserved);
  EXPECT_EQ((*p.egress[1].peers)[0].reserved, ReservedPeer::World);
  EXPECT_TRUE(p.egress[1].ports.empty());
}

TEST(PolicyParser, CgroupGlobsAccepted) {
  auto r = parseText(WL_HEAD "  cgroups: [\"machine.slice/*\", \"k/pod[0-9]?/c\", \"a/[!]x]\", \"b/\\\\[lit\"]\n", "f.yaml");
  ASSERT_TRUE(r.ok()) << dump(r.errors);
  ASSERT_EQ(r.bundle.workloads.size(), 1u);
  EXPECT_EQ(r.bundle.workloads[0].cgroups,
            (std::vector<std::string>{"machine.slice/*", "k/pod[0-9]?/c", "a/[!]x]", "b/\\[lit"}));
}

TEST(PolicyParser, PrefixedLabelKeysAndEmptyValue) {
  auto r = parseText(WL_HEAD "  cgroups: [a]\n" "  labels: {example.com/team: pay, app.kubernetes.io/name: x, flag: \"\"}\n",
                     "f.yaml");
  ASSERT_TRUE(r.ok()) << dump(r.errors);
  EXPECT_EQ(r.bundle.workloads[0].labels,
            (Labels{{"example.com/team", "pay"}, {"app.kubernetes.io/name", "x"}, {"flag", ""}}));
}

TEST(PolicyParser, TooManyLabels) {
  std::string labels = "  labels:\n";
  for (int i = 0; i < 65; i++) labels += "    k" + std::to_string(i) + ": v\n";
  auto r = parseText(WL_HEAD "  cgroups: [a]\n" + labels, "f.yaml");
  ASSERT_EQ(r.errors.size(), 1u) << dump(r.errors);
  EXPECT_NE(r.errors[0].message.find("spec.labels: at most 64 labels"), std::string::npos) << r.errors[0].message;
}

TEST(PolicyParser, BadNameStillChecksSpec) {
  // The name is wrong and so is the spec: both are reported, nothing is kept.
  auto r = parseText("apiVersion: microseg.dev/v1\nkind: Workload\nmetadata: {name: Bad}\nspec: {cgroups: [/abs]}\n",
                     "f.yaml");
  ASSERT_EQ(r.errors.size(), 2u) << dump(r.errors);
  EXPECT_EQ(r.errors[0].loc.line, 3);
  EXPECT_EQ(r.errors[1].loc.line, 4);
  EXPECT_TRUE(r.bundle.workloads.empty());
}

TEST(PolicyParser, ManyErrorsInOneDocumentAllReported) {
  auto r = parseText(POL_HEAD POL_SEL "  egress:\n"
                     "    - to: []\n"                                           // 7
                     "      ports: [{port: 0}, {port: 80, protocol: tcp}]\n"    // 8
                     "    - from: [world]\n"                                    // 9
                     "      action: maybe\n",                                   // 10
                     "f.yaml");
  ASSERT_EQ(r.errors.size(), 5u) << dump(r.errors);
  EXPECT_EQ(r.errors[0].loc.line, 7);
  EXPECT_EQ(r.errors[1].loc.line, 8);
  EXPECT_EQ(r.errors[2].loc.line, 8);
  EXPECT_EQ(r.errors[3].loc.line, 9);
  EXPECT_EQ(r.errors[4].loc.line, 10);
}

TEST(PolicyParser, ErrorsDoNotStopParsing) {
  // Two independent problems in one file: both are reported.
  auto r = parseText(WL_HEAD "  cgroups: [/abs]\n" "---\n" WL_HEAD "  cgroups: [a]\n" "  spiffeId: nope\n", "f.yaml");
  ASSERT_EQ(r.errors.size(), 2u) << dump(r.errors);
  EXPECT_EQ(r.errors[0].loc.line, 5);
  EXPECT_EQ(r.errors[1].loc.line, 12);
}

// ---- regressions for parser bugs found by these tests ----------------------

TEST(PolicyParser, PeerUnknownFieldReportedOnce) {
  auto r = parseText(POL_HEAD POL_SEL "  egress:\n" "    - to: [{matchLabels: {app: b}, namespace: x}]\n", "f.yaml");
  EXPECT_EQ(r.errors.size(), 1u) << dump(r.errors);
}

TEST(PolicyParser, ExistsWithEmptyValuesListIsAccepted) {
  auto r = parseText(POL_HEAD "  selector:\n" "    matchExpressions:\n"
                              "      - {key: app, operator: Exists, values: []}\n" "  egress: []\n",
                     "f.yaml");
  EXPECT_TRUE(r.ok()) << dump(r.errors);
}

TEST(PolicyParser, NullPortMessageIsAccurate) {
  auto r = parseText(POL_HEAD POL_SEL "  egress:\n" "    - ports: [{port: }]\n", "f.yaml");
  ASSERT_EQ(r.errors.size(), 1u) << dump(r.errors);
  EXPECT_NE(r.errors[0].message.find("must be an integer"), std::string::npos);
  EXPECT_EQ(r.errors[0].message.find("collection"), std::string::npos) << r.errors[0].message;
}

// ---- 3. cross-document validation via loadPaths ------------------------------

class PolicyLoadPaths : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/microseg-parser-test-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    std::error_code ec;
    if (!dir_.empty()) std::filesystem::remove_all(dir_, ec);
  }
  std::string write(const std::string& name, const std::string& text) {
    const std::string path = dir_ + "/" + name;
    std::ofstream(path) << text;
    return path;
  }
  std::string dir_;
};

const char* kWorkloadW1 =
    "apiVersion: microseg.dev/v1\n"
    "kind: Workload\n"
    "metadata: {name: w1}\n"  // name value at 3:18
    "spec: {cgroups: [a]}\n";

const char* kPolicyP1 =
    "apiVersion: microseg.dev/v1\n"
    "kind: Policy\n"
    "metadata: {name: p1}\n"
    "spec:\n"
    "  selector: {identity: w1}\n"
    "  egress: []\n";

TEST_F(PolicyLoadPaths, DuplicateWorkloadNames) {
  const std::string a = write("a.yaml", kWorkloadW1);
  const std::string b = write("b.yaml", std::string("# second copy\n") + kWorkloadW1);
  auto r = loadPaths({dir_});
  ASSERT_EQ(r.errors.size(), 1u) << dump(r.errors);
  const Diagnostic& e = r.errors[0];
  EXPECT_EQ(e.loc.file, b);
  EXPECT_EQ(e.loc.line, 4);
  EXPECT_EQ(e.loc.column, 18);
  EXPECT_NE(e.message.find("duplicate Workload name 'w1'"), std::string::npos) << e.message;
  EXPECT_NE(e.message.find("first defined at " + a + ":3:18"), std::string::npos) << e.message;
  EXPECT_EQ(r.bundle.workloads.size(), 2u);
}

TEST_F(PolicyLoadPaths, DuplicatePolicyNames) {
  const std::string a = write("a.yaml", std::string(kWorkloadW1) + "---\n" + kPolicyP1);
  const std::string b = write("b.yml", kPolicyP1);
  auto r = loadPaths({a, b});
  ASSERT_EQ(r.errors.size(), 1u) << dump(r.errors);
  const Diagnostic& e = r.errors[0];
  EXPECT_EQ(e.loc.file, b);
  EXPECT_EQ(e.loc.line, 3);
  EXPECT_EQ(e.loc.column, 18);
  EXPECT_NE(e.message.find("duplicate Policy name 'p1'"), std::string::npos) << e.message;
  // p1 in a.yaml starts after the 4-line workload and the '---' line: name at 8:18.
  EXPECT_NE(e.message.find("first defined at " + a + ":8:18"), std::string::npos) << e.message;
}

TEST_F(PolicyLoadPaths, UnknownIdentityInSelector) {
  write("a.yaml", kWorkloadW1);
  const std::string b = write("b.yaml",
                              "apiVersion: microseg.dev/v1\n"
                              "kind: Policy\n"
                              "metadata: {name: p}\n"
                              "spec:\n"
                              "  selector: {identity: ghost}\n"
                              "  egress: []\n");
  auto r = loadPaths({dir_});
  ASSERT_EQ(r.errors.size(), 1u) << dump(r.errors);
  const Diagnostic& e = r.errors[0];
  EXPECT_EQ(e.loc.file, b);
  EXPECT_EQ(e.loc.line, 5);
  EXPECT_EQ(e.loc.column, 24);
  EXPECT_NE(e.message.find("spec.selector: identity 'ghost' names no Workload"), std::string::npos) << e.message;
}

TEST_F(PolicyLoadPaths, UnknownIdentityInPeer) {
  const std::string a = write("a.yaml",
                              std::string(kWorkloadW1) +
                                  "---\n"
                                  "apiVersion: microseg.dev/v1\n"  // 6
                                  "kind: Policy\n"                 // 7
                                  "metadata: {name: p}\n"          // 8
                                  "spec:\n"                        // 9
                                  "  selector: {identity: w1}\n"   // 10
                                  "  ingress:\n"                   // 11
                                  "    - from: [{identity: ghost}]\n");  // 12, ghost at col 25
  auto r = loadPaths({a});
  ASSERT_EQ(r.errors.size(), 1u) << dump(r.errors);
  const Diagnostic& e = r.errors[0];
  EXPECT_EQ(e.loc.file, a);
  EXPECT_EQ(e.loc.line, 12);
  EXPECT_EQ(e.loc.column, 25);
  EXPECT_NE(e.message.find("peer: identity 'ghost' names no Workload"), std::string::npos) << e.message;
}

const char* kExternalE1 =
    "apiVersion: microseg.dev/v1\n"
    "kind: External\n"
    "metadata: {name: e1}\n"  // name value at 3:18
    "spec: {cidrs: [10.0.0.0/8]}\n";

TEST_F(PolicyLoadPaths, DuplicateExternalNames) {
  const std::string a = write("a.yaml", kExternalE1);
  const std::string b = write("b.yaml", kExternalE1);
  auto r = loadPaths({dir_});
  ASSERT_EQ(r.errors.size(), 1u) << dump(r.errors);
  EXPECT_EQ(r.errors[0].loc.file, b);
  EXPECT_EQ(r.errors[0].loc.line, 3);
  EXPECT_EQ(r.errors[0].loc.column, 18);
  EXPECT_EQ(r.errors[0].message, "duplicate External name 'e1' (first defined at " + a + ":3:18)");
  EXPECT_EQ(r.bundle.externals.size(), 2u);
}

TEST_F(PolicyLoadPaths, ExternalNamedLikeAWorkload) {
  const std::string a = write("a.yaml", kWorkloadW1);
  const std::string b = write("b.yaml",
                              "apiVersion: microseg.dev/v1\nkind: External\nmetadata: {name: w1}\n"
                              "spec: {cidrs: [10.0.0.0/8]}\n");
  auto r = loadPaths({dir_});
  ASSERT_EQ(r.errors.size(), 1u) << dump(r.errors);
  EXPECT_EQ(r.errors[0].loc.file, b);
  EXPECT_EQ(r.errors[0].loc.line, 3);
  EXPECT_EQ(r.errors[0].loc.column, 18);
  EXPECT_EQ(r.errors[0].message, "External name 'w1' is also a Workload's (defined at " + a +
                                     ":3:18); 'identity: w1' must name one thing");
}

std::vector<Diagnostic> validated(const std::string& text) {
  auto r = parseText(text, "v.yaml");
  validateBundle(r.bundle, r.errors);
  return r.errors;
}

TEST(PolicyValidate, PeerIdentityMayNameAnExternal) {
  auto errors = validated(std::string(kWorkloadW1) + "---\n" + kExternalE1 +
                          "---\n"
                          "apiVersion: microseg.dev/v1\nkind: Policy\nmetadata: {name: p}\nspec:\n"
                          "  selector: {identity: w1}\n"
                          "  egress: [{to: [{identity: e1}]}]\n"
                          "  ingress: [{from: [{identity: e1}, {identity: w1}]}]\n");
  EXPECT_TRUE(errors.empty()) << dump(errors);
}

TEST(PolicyValidate, SelectorIdentityMustBeAWorkload) {
  auto errors = validated(std::string(kExternalE1) +
                          "---\n"                                                                  // 5
                          "apiVersion: microseg.dev/v1\nkind: Policy\nmetadata: {name: p}\nspec:\n"  // 6-9
                          "  selector: {identity: e1}\n"                                           // 10
                          "  egress: [{to: [{identity: ghost}]}]\n");                              // 11
  ASSERT_EQ(errors.size(), 2u) << dump(errors);
  EXPECT_EQ(errors[0].str(), "v.yaml:10:24: error: spec.selector: identity 'e1' is an External; a policy's "
                             "selector selects Workloads only");
  EXPECT_EQ(errors[1].str(), "v.yaml:11:29: error: peer: identity 'ghost' names no Workload or External");
}

TEST(PolicyValidate, NamespacedPolicySelectsOnlyItsNamespace) {
  const std::string workloads =
      "apiVersion: microseg.dev/v1\nkind: Workload\nmetadata: {name: in-shop, namespace: shop}\n"
      "spec: {cgroups: [a]}\n---\n"
      "apiVersion: microseg.dev/v1\nkind: Workload\nmetadata: {name: in-web, namespace: web}\n"
      "spec: {cgroups: [b]}\n---\n"
      "apiVersion: microseg.dev/v1\nkind: Workload\nmetadata: {name: nowhere}\n"
      "spec: {cgroups: [c]}\n---\n"
      "apiVersion: microseg.dev/v1\nkind: Workload\nmetadata: {name: labelled}\n"
      "spec: {cgroups: [d], labels: {microseg.dev/namespace: shop}}\n---\n";  // lines 1-20
  auto policy = [](const char* who) {
    return std::string("apiVersion: microseg.dev/v1\nkind: Policy\nmetadata: {name: p-") + who +
           ", namespace: shop}\nspec:\n  selector: {identity: " + who + "}\n  egress: []\n---\n";
  };
  auto errors = validated(workloads + policy("in-shop") + policy("in-web") + policy("nowhere") + policy("labelled"));
  ASSERT_EQ(errors.size(), 2u) << dump(errors);
  // Each policy is 7 lines from line 21; the identity value is at column 24.
  EXPECT_EQ(errors[0].str(), "v.yaml:32:24: error: spec.selector: workload 'in-web' is in namespace 'web', not in "
                             "the policy's namespace 'shop'");
  EXPECT_EQ(errors[1].str(), "v.yaml:39:24: error: spec.selector: workload 'nowhere' is in no namespace, not in "
                             "the policy's namespace 'shop'");
}

TEST_F(PolicyLoadPaths, DirectoryWithoutYaml) {
  write("README.txt", "not a policy\n");
  auto r = loadPaths({dir_});
  ASSERT_EQ(r.errors.size(), 1u) << dump(r.errors);
  EXPECT_EQ(r.errors[0].loc.file, dir_);
  EXPECT_EQ(r.errors[0].loc.line, 0);
  EXPECT_NE(r.errors[0].message.find("directory has no *.yaml or *.yml files"), std::string::npos);
}

TEST_F(PolicyLoadPaths, MissingPath) {
  const std::string missing = dir_ + "/nope.yaml";
  auto r = loadPaths({missing});
  ASSERT_EQ(r.errors.size(), 1u) << dump(r.errors);
  EXPECT_EQ(r.errors[0].loc.file, missing);
  EXPECT_NE(r.errors[0].message.find("cannot read: No such file or directory"), std::string::npos)
      << r.errors[0].message;
}

TEST_F(PolicyLoadPaths, NoPathGiven) {
  auto r = loadPaths({});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.errors[0].message.find("no policy path given"), std::string::npos);
}

TEST_F(PolicyLoadPaths, DirectoryFilesAreSortedAndNonYamlIgnored) {
  write("b.yaml", "apiVersion: microseg.dev/v1\nkind: Workload\nmetadata: {name: second}\nspec: {cgroups: [b]}\n");
  write("a.yml", "apiVersion: microseg.dev/v1\nkind: Workload\nmetadata: {name: first}\nspec: {cgroups: [a]}\n");
  write("c.txt", "garbage: [\n");
  auto r = loadPaths({dir_});
  ASSERT_TRUE(r.ok()) << dump(r.errors);
  ASSERT_EQ(r.bundle.workloads.size(), 2u);
  EXPECT_EQ(r.bundle.workloads[0].name, "first");
  EXPECT_EQ(r.bundle.workloads[1].name, "second");
}

TEST(PolicyDiagnostic, StrFormat) {
  Diagnostic d{{"dir/x.yaml", 12, 7}, "something broke"};
  EXPECT_EQ(d.str(), "dir/x.yaml:12:7: error: something broke");

  auto r = parseText("apiVersion: microseg.dev/v1\nkind: Service\nmetadata: {name: w}\nspec: {}\n", "k.yaml");
  ASSERT_EQ(r.errors.size(), 1u) << dump(r.errors);
  EXPECT_EQ(r.errors[0].str(), "k.yaml:2:7: error: kind: 'Service' is not Workload, External or Policy");

  // No line/column: the location is just the file.
  EXPECT_EQ((Diagnostic{{"d", 0, 0}, "m"}).str(), "d: error: m");
}

}  // namespace
}  // namespace microseg::policy

// ---- PolicyLoader: documents not parsed again when unchanged -----------------

namespace microseg::policy {
namespace {

std::string locText(const SourceLocation& l) {
  return l.file.str() + ":" + std::to_string(l.line) + ":" + std::to_string(l.column);
}

// Everything a result holds, locations included, as text.
std::string dump(const ParseResult& r) {
  std::string s;
  for (const auto& w : r.bundle.workloads) {
    s += "W " + w.name + " " + locText(w.loc);
    for (const auto& c : w.cgroups) s += " cg=" + c;
    for (const auto& [k, v] : w.labels) s += " " + k + "=" + v;
    s += "\n";
  }
  for (const auto& e : r.bundle.externals) {
    s += "E " + e.name + " " + locText(e.loc);
    for (const auto& c : e.cidrs) s += " " + c.str();
    s += "\n";
  }
  auto peer = [](const Peer& p) {
    return std::to_string(int(p.kind)) + ":" + p.identity + ":" + (p.kind == Peer::Kind::Cidr ? p.cidrText() : "") +
           "@" + locText(p.loc);
  };
  for (const auto& p : r.bundle.policies) {
    s += "P " + p.name + " " + locText(p.loc) + " sel " + peer(p.selector) + "\n";
    for (const auto* list : {&p.egress, &p.ingress}) {
      for (const auto& rule : *list) {
        s += "  R " + std::to_string(int(rule.action)) + " " + locText(rule.loc);
        if (rule.peers) {
          for (const auto& pe : *rule.peers) s += " " + peer(pe);
        }
        for (const auto& pr : rule.ports) {
          s += " " + std::to_string(pr.first) + "-" + std::to_string(pr.last) + "/" +
               std::to_string(int(pr.protocol)) + "@" + locText(pr.loc);
        }
        s += "\n";
      }
    }
  }
  for (const auto& d : r.errors) s += "! " + d.str() + "\n";
  return s;
}

std::string workloadDoc(const std::string& name) {
  return "apiVersion: microseg.dev/v1\nkind: Workload\nmetadata: {name: " + name + "}\nspec:\n  cgroups: [\"" +
         name + "\"]\n  labels: {app: " + name + "}\n";
}

std::string policyDoc(const std::string& name, const std::string& subject, int port, int extraRules = 0) {
  std::string y = "apiVersion: microseg.dev/v1\nkind: Policy\nmetadata: {name: " + name +
                  "}\nspec:\n  selector: {identity: " + subject + "}\n  egress:\n";
  y += "    - to: [{identity: a}]\n      ports: [{port: " + std::to_string(port) + ", protocol: TCP}]\n";
  for (int i = 0; i < extraRules; i++) {
    y += "    - to: [{matchLabels: {app: b}}, {cidr: 10.0.0.0/8}]\n      ports:\n        - port: " +
         std::to_string(2000 + i) + "\n          endPort: " + std::to_string(2100 + i) + "\n";
  }
  return y;
}

class Loader : public PolicyLoadPaths {
 protected:
  // The loader's result for the file's new text must be exactly what a
  // fresh parse gives.
  void expectSameAsFresh(const std::string& path, PolicyLoader& loader, size_t reused) {
    ParseResult warm = loader.load({path});
    ParseResult cold = loadPaths({path});
    std::ifstream in(path);
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    ParseResult whole = parseText(text, path);
    validateBundle(whole.bundle, whole.errors);
    EXPECT_EQ(dump(warm), dump(whole));
    EXPECT_EQ(dump(cold), dump(whole));
    if (reused != SIZE_MAX) {
      EXPECT_EQ(loader.lastStats().reused, reused);
    }
  }
};

TEST_F(Loader, UnchangedDocumentsAreNotParsedAgain) {
  const std::string docs[] = {workloadDoc("a"), workloadDoc("b"), policyDoc("p1", "a", 80, 3),
                              policyDoc("p2", "b", 81, 2), policyDoc("p3", "a", 82)};
  std::string text;
  for (const auto& d : docs) text += d + "---\n";
  const std::string path = write("set.yaml", text);
  PolicyLoader loader;
  expectSameAsFresh(path, loader, 0);
  EXPECT_EQ(loader.lastStats().documents, 6u);  // the empty one after the last '---' too
  expectSameAsFresh(path, loader, 6);

  // One port changes: one document is parsed.
  std::string edited = text;
  edited.replace(edited.find("port: 81,"), 9, "port: 91,");
  write("set.yaml", edited);
  expectSameAsFresh(path, loader, 5);
  // Found where they were: the five others without a scan for their end.
  EXPECT_EQ(loader.lastStats().unscanned, 5u);
  ParseResult r = loader.load({path});
  EXPECT_EQ(r.bundle.policies[1].egress[0].ports[0].first, 91);
}

// Validation checks again only new policies, but only while the Workloads
// and Externals are the same: a reused policy whose workload went away is
// an error, and one whose reference failed is reported again.
TEST_F(Loader, ReusedPoliciesAreCheckedAgainWhenTheNamesChange) {
  const std::string a = workloadDoc("a") + "---\n", b = workloadDoc("b") + "---\n";
  const std::string p1 = policyDoc("p1", "b", 80) + "---\n", p2 = policyDoc("p2", "a", 81) + "---\n";
  const std::string path = write("set.yaml", a + b + p1 + p2);
  PolicyLoader loader(std::chrono::seconds(0));
  expectSameAsFresh(path, loader, 0);
  EXPECT_TRUE(loader.load({path}).ok());
  // Workload b goes: p1 (reused) now names nothing.
  write("set.yaml", a + p1 + p2);
  expectSameAsFresh(path, loader, 4);
  ParseResult r = loader.load({path});
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_NE(r.errors[0].message.find("identity 'b'"), std::string::npos) << r.errors[0].str();
  // Another policy changes, the names do not: p1 is reported again.
  write("set.yaml", a + p1 + policyDoc("p2", "a", 82) + "---\n");
  expectSameAsFresh(path, loader, 3);
  EXPECT_EQ(loader.load({path}).errors.size(), 1u);
  // b is back (and p2 as it was): all valid again.
  write("set.yaml", a + b + p1 + p2);
  expectSameAsFresh(path, loader, 3);
  EXPECT_TRUE(loader.load({path}).ok());
}

// A one-rule change checks the references of that policy only; a name
// taken twice is reported (by both loads) however the policies came to be
// known, and once it is gone, the index kept is right again.
TEST_F(Loader, OnlyChangedPoliciesAreCheckedAndDuplicatesAreStillFound) {
  std::string text = workloadDoc("a") + "---\n" + workloadDoc("b");
  for (int i = 0; i < 20; i++) text += "---\n" + policyDoc("p" + std::to_string(i), i % 2 ? "a" : "b", 80 + i);
  const std::string path = write("set.yaml", text);
  PolicyLoader loader(std::chrono::seconds(0));
  expectSameAsFresh(path, loader, 0);
  EXPECT_EQ(loader.lastStats().policiesChecked, 20u);
  std::string edited = text;
  edited.replace(edited.find("port: 87,"), 9, "port: 97,");
  write("set.yaml", edited);
  expectSameAsFresh(path, loader, 21);
  EXPECT_EQ(loader.lastStats().policiesChecked, 1u);
  // p7 edited again, now naming a workload that does not exist.
  std::string broken = edited;
  broken.replace(broken.find("{identity: a}", broken.find("name: p7")), 13, "{identity: z}");
  write("set.yaml", broken);
  expectSameAsFresh(path, loader, 21);
  EXPECT_EQ(loader.load({path}).errors.size(), 1u);
  // p3 becomes a second p12 (first defined further down the file).
  std::string twice = broken;
  twice.replace(twice.find("name: p3}"), 9, "name: p12}");
  write("set.yaml", twice);
  expectSameAsFresh(path, loader, 21);
  ParseResult r = loader.load({path});
  ASSERT_EQ(r.errors.size(), 2u);  // in file order: p7's reference, then the second p12
  EXPECT_NE(r.errors[1].message.find("duplicate Policy name 'p12'"), std::string::npos) << r.errors[1].str();
  // Both fixed, p3 removed: valid, and the next one-rule change checks one.
  std::string fixed = edited;
  const size_t p3 = fixed.find("---\napiVersion: microseg.dev/v1\nkind: Policy\nmetadata: {name: p3}");
  fixed.erase(p3, fixed.find("---", p3 + 4) - p3);
  write("set.yaml", fixed);
  expectSameAsFresh(path, loader, SIZE_MAX);
  EXPECT_TRUE(loader.load({path}).ok());
  fixed.replace(fixed.find("port: 88,"), 9, "port: 98,");
  write("set.yaml", fixed);
  expectSameAsFresh(path, loader, 20);
  EXPECT_EQ(loader.lastStats().policiesChecked, 1u);
  r = loader.load({path});
  EXPECT_TRUE(r.ok());
  EXPECT_EQ(r.bundle.policies.size(), 19u);
}

// A load under a ProgressScope calls it now and then, also inside one big
// document (the daemon drains events there); without a scope, or after it,
// nothing is called.
TEST_F(Loader, ALongLoadReportsProgressOnlyUnderAScope) {
  std::string text = workloadDoc("a") + "---\n" + policyDoc("big", "a", 80, 30000);
  const std::string path = write("big.yaml", text);
  int calls = 0;
  {
    const ProgressScope scope([&] { calls++; });
    PolicyLoader loader;
    ParseResult r = loader.load({path});
    ASSERT_TRUE(r.ok()) << r.errors[0].str();
    EXPECT_EQ(r.bundle.policies[0].egress.size(), 30001u);
  }
  EXPECT_GT(calls, 0) << "one 30k-rule document takes well over 10 ms to parse";
  const int after = calls;
  PolicyLoader().load({path});
  EXPECT_EQ(calls, after);
}

TEST_F(Loader, APolicyKnowsWhetherItHasCidrPeers) {
  const std::string path =
      write("set.yaml", workloadDoc("a") + "---\n" + policyDoc("p1", "a", 80) + "---\n" + policyDoc("p2", "a", 80, 1));
  ParseResult r = loadPaths({path});
  ASSERT_TRUE(r.ok()) << r.errors[0].str();
  EXPECT_FALSE(r.bundle.policies[0].hasCidrPeers);
  EXPECT_TRUE(r.bundle.policies[1].hasCidrPeers);
}

// Random edits of a many-document file (documents replaced, added, removed,
// moved, lines added, markers with comments, a missing final newline, text
// that cannot be cut, a line break other than '\n' in the middle): every
// load is exactly a fresh parse, locations and errors included, and
// unchanged documents are reused, whatever the size of the chunks the file
// is read in (1 byte: every line and document spans reads).
TEST_F(Loader, RandomEditsGiveWhatAFreshParseGives) {
  std::mt19937 rng(20261202);
  auto pick = [&](int n) { return static_cast<int>(rng() % static_cast<unsigned>(n)); };
  auto body = [&](int k) {
    switch (pick(8)) {
      case 0: return workloadDoc(k % 2 ? "a" : "b");
      case 1: return policyDoc("p" + std::to_string(k), "a", 80 + pick(5), pick(3));
      case 2: return "# only a comment\n" + policyDoc("q" + std::to_string(k), "b", 90);
      case 3: return policyDoc("bad" + std::to_string(k), "nobody", 1);  // an error
      case 4: return std::string("apiVersion: microseg.dev/v1\nkind: Workload\nmetadata: {name: x}\n");
      case 5: return policyDoc("dup" + std::to_string(pick(3)), pick(2) ? "a" : "b", 100 + pick(3));  // names taken twice
      case 6: return workloadDoc("s" + std::to_string(k)) + "x-list:\n- a\n-  b\n";  // lines that start with '-'
      default: return workloadDoc("w" + std::to_string(k));
    }
  };
  const char* seps[] = {"---\n", "--- # next\n", "---\n\n", "\n---\n"};
  // A document with the separator line that comes before it.
  auto doc = [&](int k) { return seps[pick(4)] + body(k); };
  const std::string path = write("edit.yaml", "");
  const size_t chunks[] = {1, 7, 64, size_t(1) << 20};
  std::vector<std::unique_ptr<PolicyLoader>> loaders;
  for (size_t c : chunks) loaders.push_back(std::make_unique<PolicyLoader>(std::chrono::seconds(0), c));
  std::vector<std::string> docs;
  for (int k = 0; k < 8; k++) docs.push_back(doc(k));
  size_t reused = 0, unscanned = 0, documents = 0;
  for (int step = 0; step < 150; step++) {
    switch (pick(6)) {
      case 0: docs[pick(int(docs.size()))] = doc(step); break;
      case 1: docs.insert(docs.begin() + pick(int(docs.size()) + 1), doc(step)); break;
      case 2:
        if (docs.size() > 1) docs.erase(docs.begin() + pick(int(docs.size())));
        break;
      case 3: std::swap(docs[pick(int(docs.size()))], docs[pick(int(docs.size()))]); break;
      case 4: {  // a port changes in place (the policy keeps its name)
        std::string& d = docs[pick(int(docs.size()))];
        if (size_t at = d.find("port: "); at != std::string::npos) d[at + 6] = char('1' + pick(9));
        break;
      }
      default: {
        std::string& d = docs[pick(int(docs.size()))];
        d.insert(d.find('\n') + 1, "# a line more\n");
        break;
      }
    }
    std::string text = pick(8) == 0 ? "# header\n" : "";
    for (size_t k = 0; k < docs.size(); k++) text += k ? docs[k] : docs[k].substr(docs[k].find('\n') + 1);
    if (pick(10) == 0) text += "---\n";
    if (pick(10) == 0 && !text.empty()) text.pop_back();  // no final newline
    if (pick(25) == 0) text = "%YAML 1.1\n---\n" + text;  // not cut
    if (pick(25) == 0) text += "...\n";                   // not cut
    if (pick(25) == 0 && text.size() > 2) text.insert(text.find('\n', text.size() / 2) , "\r");  // not cut
    write("edit.yaml", text);
    SCOPED_TRACE("step " + std::to_string(step) + "\n" + text);
    for (size_t k = 0; k < loaders.size(); k++) {
      SCOPED_TRACE("read " + std::to_string(chunks[k]) + " bytes at a time");
      expectSameAsFresh(path, *loaders[k], SIZE_MAX);
      reused += loaders[k]->lastStats().reused;
      unscanned += loaders[k]->lastStats().unscanned;
      documents += loaders[k]->lastStats().documents;
      EXPECT_LE(loaders[k]->lastStats().unscanned, loaders[k]->lastStats().reused);
      if (HasFailure()) return;
      EXPECT_EQ(loaders[k]->lastStats().reused, loaders[0]->lastStats().reused);
    }
  }
  EXPECT_GT(reused, documents / 3);  // most edits leave most documents as they were
  EXPECT_GT(unscanned, reused / 3);  // and most of those where they were
}

// A document found where the same one was last time is taken without a
// scan for its end, but only if a '---' line (or the file's end) follows
// it: a rule appended to its end makes it another document.
TEST_F(Loader, ARuleAppendedToADocumentIsRead) {
  const std::string p1 = policyDoc("p1", "a", 80, 2);
  const std::string rest = "---\n" + policyDoc("p2", "b", 81, 2);
  const std::string appended = "    - to: [{identity: b}]\n      ports: [{port: 99}]\n";
  const std::string path = write("set.yaml", workloadDoc("a") + "---\n" + workloadDoc("b") + "---\n" + p1 + rest);
  PolicyLoader loader(std::chrono::seconds(0));
  expectSameAsFresh(path, loader, 0);
  write("set.yaml", workloadDoc("a") + "---\n" + workloadDoc("b") + "---\n" + p1 + appended + rest);
  expectSameAsFresh(path, loader, 3);
  EXPECT_EQ(loader.lastStats().unscanned, 3u);
  ParseResult r = loader.load({path});
  ASSERT_TRUE(r.ok()) << r.errors[0].str();
  EXPECT_EQ(r.bundle.policies[0].egress.back().ports[0].first, 99);
  // The last document too: nothing follows it but the text appended.
  write("set.yaml", workloadDoc("a") + "---\n" + workloadDoc("b") + "---\n" + p1 + appended + rest + appended);
  expectSameAsFresh(path, loader, 3);
  r = loader.load({path});
  ASSERT_TRUE(r.ok()) << r.errors[0].str();
  EXPECT_EQ(r.bundle.policies[1].egress.back().ports[0].first, 99);
}

TEST_F(Loader, DocumentsAfterAnInsertedLineMoveTheirLocations) {
  std::string text = workloadDoc("a") + "---\n" + workloadDoc("b") + "---\n" + policyDoc("p1", "a", 80, 2) +
                     "---\n" + policyDoc("p2", "b", 81, 2);
  const std::string path = write("set.yaml", text);
  PolicyLoader loader;
  expectSameAsFresh(path, loader, 0);
  // Two lines more in the first document (a comment and a label).
  std::string edited = text;
  edited.replace(edited.find("  labels: {app: a}\n"), 19, "  # owner: team-a\n  labels: {app: a, tier: x}\n\n");
  write("set.yaml", edited);
  expectSameAsFresh(path, loader, 3);
  // And back: every document moves up again.
  write("set.yaml", text);
  expectSameAsFresh(path, loader, 3);
}

TEST_F(Loader, ErrorsOfAReusedDocumentAreReportedAgainWhereItNowIs) {
  const std::string bad =
      "apiVersion: microseg.dev/v1\nkind: Policy\nmetadata: {name: bad}\nspec:\n  selector: {identity: a}\n"
      "  egress:\n    - to: [{identity: a}]\n      ports: [{port: 70000}]\n";
  std::string text = workloadDoc("a") + "---\n" + bad;
  const std::string path = write("set.yaml", text);
  PolicyLoader loader;
  ParseResult first = loader.load({path});
  ASSERT_EQ(first.errors.size(), 1u);
  write("set.yaml", "# a comment\n" + text);
  expectSameAsFresh(path, loader, 1);
  ParseResult again = loader.load({path});
  ASSERT_EQ(again.errors.size(), 1u);
  EXPECT_EQ(again.errors[0].loc.line, first.errors[0].loc.line + 1) << again.errors[0].str();
}

TEST_F(Loader, ASyntaxErrorIsTheFilesOnlyDiagnosticAndIsFixedByTheNextLoad) {
  std::string text = workloadDoc("a") + "---\n" + policyDoc("p1", "a", 80) + "---\n" + workloadDoc("b");
  const std::string path = write("set.yaml", text);
  PolicyLoader loader;
  ASSERT_TRUE(loader.load({path}).ok());
  std::string broken = text;
  broken.replace(broken.find("ports: [{port: 80"), 17, "ports: [{port: 80 ");
  broken.replace(broken.find("TCP}]"), 5, "TCP}");
  write("set.yaml", broken);
  ParseResult r = loader.load({path});
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0].message.rfind("YAML syntax: ", 0), 0u) << r.errors[0].str();
  EXPECT_GE(r.errors[0].loc.line, 8);  // in the policy, not before it
  EXPECT_TRUE(r.bundle.workloads.empty());
  write("set.yaml", text);
  expectSameAsFresh(path, loader, 2);  // the policy is read again
}

// Found by the policy_loader fuzzer: a byte that is not UTF-8 in a later
// document was "YAML syntax: invalid ... octet" at the document's first line
// from the loader and at 1:1 from a fresh parse; a syntax error in an
// earlier document was the loader's diagnostic and the byte a fresh
// parse's. Now both say the text's first problem, where it is.
TEST_F(Loader, AByteThatIsNotTextIsWhereAFreshParseSaysItIs) {
  const std::string bad = "apiVersion: microseg.dev/v1\nkind: Workload\nmetadata: {name: \xe0\xdf}\n";
  const std::string path = write("set.yaml", workloadDoc("a") + "---\n" + workloadDoc("b") + "---\n" + bad);
  PolicyLoader loader;
  expectSameAsFresh(path, loader, 0);
  ParseResult r = loader.load({path});
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0].loc.line, 17) << r.errors[0].str();
  EXPECT_EQ(r.errors[0].loc.column, 18) << r.errors[0].str();
  // A syntax error in the first document comes first.
  write("set.yaml", "a: [b\n---\n" + workloadDoc("b") + "---\n" + bad);
  expectSameAsFresh(path, loader, SIZE_MAX);
  r = loader.load({path});
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0].loc.line, 2) << r.errors[0].str();
}

// Found by the policy_loader fuzzer: a quoted scalar left open before a
// '---' line was "found unexpected end of stream" from the loader (which
// reads the document alone) and "found unexpected document indicator"
// from a fresh parse. The loader says what the file says, also when the
// document comes to be followed by one only later (a document with a
// syntax error is not reused: its error depends on what follows it).
TEST_F(Loader, AQuotedScalarOpenBeforeAMarkerIsWhatTheFileSays) {
  const std::string open = "apiVersion: microseg.dev/v1\nkind: Workload\nmetadata: {name: \"w}\n";
  const std::string path = write("set.yaml", workloadDoc("a") + "---\n" + open + "---\n" + workloadDoc("b"));
  PolicyLoader loader;
  expectSameAsFresh(path, loader, 0);
  ParseResult r = loader.load({path});
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_NE(r.errors[0].message.find("found unexpected document indicator"), std::string::npos)
      << r.errors[0].str();
  // Last in the file: the end of the stream, in both.
  write("set.yaml", workloadDoc("a") + "---\n" + open);
  expectSameAsFresh(path, loader, SIZE_MAX);
  // And followed again: the same text, not the same error.
  write("set.yaml", workloadDoc("a") + "---\n" + open + "---\n");
  expectSameAsFresh(path, loader, SIZE_MAX);
}

TEST_F(Loader, IdenticalDocumentsTwiceAreBothRead) {
  std::string text = workloadDoc("a") + "---\n" + workloadDoc("a");
  const std::string path = write("set.yaml", text);
  PolicyLoader loader;
  ParseResult r = loader.load({path});
  EXPECT_EQ(r.bundle.workloads.size(), 2u);
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_NE(r.errors[0].message.find("duplicate Workload name 'a'"), std::string::npos);
  expectSameAsFresh(path, loader, 2);
}

TEST_F(Loader, TextsItDoesNotCutAreReadWhole) {
  const std::string texts[] = {
      "%YAML 1.1\n---\n" + workloadDoc("a") + "---\n" + workloadDoc("b"),
      workloadDoc("a") + "...\n---\n" + workloadDoc("b"),
      "apiVersion: microseg.dev/v1\r\nkind: Workload\r\nmetadata: {name: a}\r\nspec: {cgroups: [a]}\r\n---\r\n" +
          workloadDoc("b"),
  };
  for (const auto& t : texts) {
    const std::string path = write("set.yaml", t);
    PolicyLoader loader;
    ParseResult r = loader.load({path});
    EXPECT_TRUE(r.ok()) << r.errors[0].str();
    EXPECT_EQ(r.bundle.workloads.size(), 2u) << t;
    EXPECT_EQ(loader.lastStats().documents, 1u) << t;  // the whole file is one
    expectSameAsFresh(path, loader, 1);
  }
}

// A file read whole because it could not be cut is cut again once it can
// be, and a document bigger than the read buffer is read whole too.
TEST_F(Loader, AFileThatCanBeCutAgainIsCutAgain) {
  const std::string docs = workloadDoc("a") + "---\n" + policyDoc("p1", "a", 80, 40) + "---\n" + workloadDoc("b");
  const std::string path = write("set.yaml", "%YAML 1.1\n---\n" + docs);
  PolicyLoader loader(std::chrono::seconds(0), 256);
  expectSameAsFresh(path, loader, 0);
  EXPECT_EQ(loader.lastStats().documents, 1u);
  write("set.yaml", docs);
  expectSameAsFresh(path, loader, 0);
  EXPECT_EQ(loader.lastStats().documents, 3u);
  write("set.yaml", docs + "---\n" + workloadDoc("c"));
  expectSameAsFresh(path, loader, 3);
  EXPECT_EQ(loader.lastStats().documents, 4u);
}

TEST_F(Loader, DashesThatAreNotADocumentStartStayInTheirDocument) {
  // '---x' and an indented '---' are content; a block scalar ends at a
  // real marker.
  std::string text = "apiVersion: microseg.dev/v1\nkind: Workload\nmetadata:\n  name: a\n  annotations:\n"
                     "    note: |\n      ---x\n       ---\n    other: ---y\nspec: {cgroups: [a]}\n---\n" +
                     workloadDoc("b");
  const std::string path = write("set.yaml", text);
  PolicyLoader loader;
  ParseResult r = loader.load({path});
  ASSERT_TRUE(r.ok()) << r.errors[0].str();
  EXPECT_EQ(r.bundle.workloads.size(), 2u);
  expectSameAsFresh(path, loader, 2);
}

TEST_F(Loader, RemovedDocumentsAndFilesAreGone) {
  const std::string a = write("a.yaml", workloadDoc("a") + "---\n" + workloadDoc("b"));
  const std::string b = write("b.yaml", workloadDoc("c"));
  PolicyLoader loader;
  EXPECT_EQ(loader.load({dir_}).bundle.workloads.size(), 3u);
  write("a.yaml", workloadDoc("a"));
  std::filesystem::remove(b);
  ParseResult r = loader.load({dir_});
  ASSERT_EQ(r.bundle.workloads.size(), 1u);
  EXPECT_EQ(r.bundle.workloads[0].name, "a");
  EXPECT_EQ(loader.lastStats().reused, 1u);
}

}  // namespace
}  // namespace microseg::policy

namespace microseg::policy {
namespace {

TEST_F(Loader, AFileUnchangedSinceItWasReadIsNotReadAgain) {
  const std::string a = write("a.yaml", workloadDoc("a") + "---\n" + workloadDoc("b"));
  const std::string b = write("b.yaml", workloadDoc("c"));
  PolicyLoader loader(std::chrono::nanoseconds(0));  // trust any stamp
  ASSERT_TRUE(loader.load({dir_}).ok());
  EXPECT_EQ(loader.lastStats().filesUnchanged, 0u);
  ParseResult again = loader.load({dir_});
  EXPECT_EQ(loader.lastStats().files, 2u);
  EXPECT_EQ(loader.lastStats().filesUnchanged, 2u);
  EXPECT_EQ(loader.lastStats().reused, 3u);
  EXPECT_EQ(dump(again), dump(loadPaths({dir_})));
  // Replaced by rename: another inode, read again.
  const std::string tmp = dir_ + "/../" + std::filesystem::path(dir_).filename().string() + "-b.tmp";
  std::ofstream(tmp) << workloadDoc("d");
  std::filesystem::rename(tmp, b);
  ParseResult r = loader.load({dir_});
  EXPECT_EQ(loader.lastStats().filesUnchanged, 1u);
  ASSERT_EQ(r.bundle.workloads.size(), 3u);
  EXPECT_EQ(r.bundle.workloads[2].name, "d");
}

TEST_F(Loader, AFileStillFreshWhenReadIsReadAgainEvenWithTheSameStamp) {
  // File timestamps are coarse: two writes of the same size within one
  // tick can leave size, mtime and ctime as they were. A file written less
  // than 2 s before it was read is never trusted by its stamp.
  const std::string a = write("a.yaml", workloadDoc("a"));
  PolicyLoader loader;  // the default: 2 s
  ASSERT_EQ(loader.load({a}).bundle.workloads[0].name, "a");
  {
    std::fstream f(a, std::ios::in | std::ios::out);
    f.seekp(std::streamoff(std::string("apiVersion: microseg.dev/v1\nkind: Workload\nmetadata: {name: ").size()));
    f << "z";  // same size
  }
  ParseResult r = loader.load({a});
  EXPECT_EQ(loader.lastStats().filesUnchanged, 0u);
  ASSERT_EQ(r.bundle.workloads.size(), 1u);
  EXPECT_EQ(r.bundle.workloads[0].name, "z");
}


// ---- rule-level reuse inside an edited policy document ---------------------

// One rule item of a big policy, in one of the shapes YAML allows for it.
std::string ruleItem(int shape, int port, const std::string& ind = "    ") {
  const std::string p = std::to_string(port);
  switch (shape % 9) {
    case 0: return ind + "- to: [{identity: a}]\n" + ind + "  ports: [{port: " + p + ", protocol: TCP}]\n";
    case 1: return ind + "- ports: [{port: " + p + "}]\n";
    case 2:  // a block map under a lone dash, a comment and a blank line inside
      return ind + "-\n" + ind + "  to:\n" + ind + "    - identity: a\n" + ind + "  # why: it\n\n" + ind +
             "  ports:\n" + ind + "    - port: " + p + "\n" + ind + "      endPort: " + std::to_string(port + 5) + "\n";
    case 3:  // a flow list over several lines
      return ind + "- to: [{identity: a},\n" + ind + "        {cidr: 10.0.0.0/8}]\n" + ind + "  ports: [{port: " + p +
             "}]\n";
    case 4: return ind + "- action: deny\n" + ind + "  ports: [{port: " + p + ", protocol: UDP}]\n";
    case 5: return ind + "- ports: [{port: " + std::to_string(port + 70000) + "}]\n";  // an error
    case 6: return ind + "- {ports: [{port: " + p + "}]}  # flow map item\n";
    case 7: return ind + "- to: [{matchLabels: {app: b}}]\n" + ind + "  ports: [{port: " + p + "}]\n";
    default: return ind + "- to: [{identity: a}]\n" + ind + "  from: [{identity: a}]\n";  // wrong key: an error
  }
}

std::string bigPolicy(const std::string& name, const std::vector<std::string>& egress,
                      const std::vector<std::string>& ingress, const std::string& keyIndent = "  ") {
  std::string y = "apiVersion: microseg.dev/v1\nkind: Policy\nmetadata: {name: " + name + "}\nspec:\n" + keyIndent +
                  "selector: {identity: a}\n" + keyIndent + "egress:\n";
  for (const auto& r : egress) y += r;
  if (!ingress.empty()) {
    y += keyIndent + "ingress:  # inbound\n";
    for (const auto& r : ingress) y += r;
  }
  return y;
}

TEST(RuleLists, FoundFromTheTextAlone) {
  const std::string text = bigPolicy("p", {ruleItem(0, 80), ruleItem(2, 81), ruleItem(6, 82)}, {ruleItem(1, 90)});
  auto lists = findRuleLists(text);
  ASSERT_TRUE(lists);
  ASSERT_EQ(lists->size(), 2u);
  EXPECT_EQ((*lists)[0].dir, Direction::Egress);
  ASSERT_EQ((*lists)[0].items.size(), 3u);
  EXPECT_EQ(text.substr((*lists)[0].items[1].begin, (*lists)[0].items[1].end - (*lists)[0].items[1].begin),
            ruleItem(2, 81));
  EXPECT_EQ((*lists)[1].dir, Direction::Ingress);
  ASSERT_EQ((*lists)[1].items.size(), 1u);
  EXPECT_EQ((*lists)[1].end, text.size());
  // The skeleton keeps every line where it was.
  const std::string skel = ruleListSkeleton(text, *lists);
  EXPECT_EQ(std::count(skel.begin(), skel.end(), '\n'), std::count(text.begin(), text.end(), '\n'));
  EXPECT_NE(skel.find("    - " + rulePlaceholder(0) + "\n"), std::string::npos);
  // A list at its key's indentation.
  auto compact = findRuleLists("spec:\n  egress:\n  - ports: [80]\n  - ports: [81]\n  ingress: []\n");
  ASSERT_TRUE(compact);
  ASSERT_EQ(compact->size(), 1u);
  EXPECT_EQ((*compact)[0].items.size(), 2u);
  EXPECT_EQ((*compact)[0].endLine, 4);
  // A list that runs to the end of a text without a final line break.
  const std::string open = "spec:\n  egress:\n  - ports: [80]\n  - ports: [81]";
  auto openLists = findRuleLists(open);
  ASSERT_TRUE(openLists);
  ASSERT_EQ(openLists->size(), 1u);
  const std::string openSkel = ruleListSkeleton(open, *openLists);
  EXPECT_EQ(std::count(openSkel.begin(), openSkel.end(), '\n'), std::count(open.begin(), open.end(), '\n'));
  // What can tie one part of a text to another is not cut.
  for (const char* c : {"&a", "*a", "!!str", "|", ">", "\"q\"", "'q'", "? k", "\t", "%TAG", "\xc3\xa9"}) {
    EXPECT_FALSE(findRuleLists(text + "# " + c + "\n")) << c;
  }
}

TEST_F(Loader, AOneRuleChangeInABigPolicyParsesThatRule) {
  std::vector<std::string> rules;
  for (int i = 0; i < 200; i++) rules.push_back(ruleItem(0, 1000 + i));
  const std::string a = workloadDoc("a") + "---\n" + bigPolicy("big", rules, {ruleItem(1, 90)});
  const std::string path = write("big.yaml", a);
  PolicyLoader loader(std::chrono::seconds(0));
  expectSameAsFresh(path, loader, 0);
  EXPECT_EQ(loader.lastStats().spliced, 0u);
  // One port moves: one rule is parsed, 200 kept.
  rules[120] = ruleItem(0, 5000);
  write("big.yaml", workloadDoc("a") + "---\n" + bigPolicy("big", rules, {ruleItem(1, 90)}));
  expectSameAsFresh(path, loader, 1);
  EXPECT_EQ(loader.lastStats().spliced, 1u);
  EXPECT_EQ(loader.lastStats().rulesReused, 200u);
  // A rule more in the middle: the rules after it move down two lines.
  rules.insert(rules.begin() + 50, ruleItem(0, 6000));
  write("big.yaml", workloadDoc("a") + "---\n" + bigPolicy("big", rules, {ruleItem(1, 90)}));
  expectSameAsFresh(path, loader, 1);
  EXPECT_EQ(loader.lastStats().rulesReused, 201u);
  // Lines more before the list: every rule moves.
  write("big.yaml", "# header\n\n" + workloadDoc("a") + "---\n" + bigPolicy("big", rules, {ruleItem(1, 90)}));
  expectSameAsFresh(path, loader, 1);             // the policy's text did not change: reused whole
  EXPECT_EQ(loader.lastStats().rulesReused, 0u);
  // A small policy is parsed whole.
  write("big.yaml", workloadDoc("a") + "---\n" + bigPolicy("small", {ruleItem(0, 1)}, {}));
  expectSameAsFresh(path, loader, 0);
  write("big.yaml", workloadDoc("a") + "---\n" + bigPolicy("small", {ruleItem(0, 2)}, {}));
  expectSameAsFresh(path, loader, 1);
  EXPECT_EQ(loader.lastStats().spliced, 0u);
}

TEST_F(Loader, RandomRuleEditsGiveWhatAFreshParseGives) {
  std::mt19937 rng(20261203);
  auto pick = [&](int n) { return static_cast<int>(rng() % static_cast<unsigned>(n)); };
  std::vector<std::string> egress, ingress;
  int port = 1;
  // Good items in any shape; odd ones (errors, items that break the list)
  // are marked and replaced after the step they were in.
  auto item = [&](bool in) {
    static constexpr int kGood[] = {0, 1, 2, 3, 4, 6, 7};
    std::string r = ruleItem(kGood[pick(7)], port++);
    for (size_t at; in && (at = r.find("to:")) != std::string::npos;) r.replace(at, 3, "from:");
    return r;
  };
  for (int i = 0; i < 12; i++) egress.push_back(item(false));
  for (int i = 0; i < 4; i++) ingress.push_back(item(true));
  const std::string path = write("edit.yaml", "");
  PolicyLoader loader(std::chrono::seconds(0), size_t(1) << 20, 2);
  size_t spliced = 0, reusedRules = 0;
  for (int step = 0; step < 400; step++) {
    const bool in = pick(3) == 0;
    auto& list = in ? ingress : egress;
    auto& one = list[pick(int(list.size()))];
    std::string extra;  // after the policy, for this step only
    switch (pick(16)) {
      case 0: list.insert(list.begin() + pick(int(list.size()) + 1), item(in)); break;
      case 1:
        if (list.size() > 1) list.erase(list.begin() + pick(int(list.size())));
        break;
      case 2: std::swap(one, list[pick(int(list.size()))]); break;
      case 3: one = ruleItem(pick(2) ? 5 : 8, port++) + "    # odd\n"; break;  // an error
      case 4: one += "\n  # odd: a comment at less indentation\n"; break;
      case 5: one += "  selector: {identity: b}  # odd: ends the list early\n"; break;
      case 6: one += "    - [unclosed  # odd\n"; break;  // a syntax error
      case 7: extra = "  enforcement: monitor\n"; break;
      case 8: extra = "  egress: []\n"; break;  // a second egress key
      case 9: one = "    - to: [{identity: a},\n  {identity: b}]  # odd\n"; break;
      case 10: one = "    - ports: [{port: 7}]  # odd\n  ingress:\n    - ports: [8]\n"; break;
      case 11: one = "    - ports: [{port: 7}]  # odd\n   - ports: [8]\n"; break;  // a dash off by one
      case 12: one = "    - ports: [{port: 7}]\n    # odd\n    ports: [8]\n"; break;
      case 13: one = ruleItem(pick(9), port++, "      ") + "      # odd\n"; break;  // deeper than the others
      default: one = item(in); break;
    }
    std::string text = workloadDoc("a") + "---\n" + workloadDoc("b") + "---\n" +
                       bigPolicy("p", egress, ingress, pick(10) == 0 ? "   " : "  ") + extra;
    if (pick(15) == 0) text += "---\n" + bigPolicy("q", {ruleItem(0, 1), ruleItem(0, 2)}, {});
    write("edit.yaml", text);
    SCOPED_TRACE("step " + std::to_string(step) + "\n" + text);
    expectSameAsFresh(path, loader, SIZE_MAX);
    if (HasFailure()) return;
    spliced += loader.lastStats().spliced;
    reusedRules += loader.lastStats().rulesReused;
    for (auto* l : {&egress, &ingress}) {
      for (auto& r : *l) {
        if (r.find("odd") != std::string::npos) r = item(l == &ingress);
      }
    }
  }
  EXPECT_GT(spliced, 60u);  // many edits were read in part
  EXPECT_GT(reusedRules, 1000u);
}
}  // namespace
}  // namespace microseg::policy
