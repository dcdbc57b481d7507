// Reach (reach/reach.h): direct edges need both sides' consent, paths are
// the shortest within the hop limit, and every edge's ports are exactly the
// ports the reference evaluator allows on both sides.
#include <gtest/gtest.h>

#include <random>

#include "compiler/compiler.h"
#include "compiler/explain.h"
#include "identity/identities.h"
#include "policy/parser.h"
#include "reach/reach.h"

namespace microseg::reach {
namespace {

std::string workloads(const std::vector<std::string>& names) {
  std::string y;
  for (const auto& w : names) {
    y += "apiVersion: microseg.dev/v1\nkind: Workload\nmetadata: {name: " + w + "}\nspec: {cgroups: [" + w +
         "], labels: {app: " + w + "}}\n---\n";
  }
  return y;
}

// `from` may call `to` on `port`: its egress and the callee's ingress.
std::string link(const std::string& from, const std::string& to, const std::string& port) {
  return "apiVersion: microseg.dev/v1\nkind: Policy\nmetadata: {name: " + from + "-" + to + "-out}\nspec:\n"
         "  selector: {identity: " + from + "}\n  egress:\n    - to: [{identity: " + to + "}]\n"
         "      ports: [{port: " + port + "}]\n---\n"
         "apiVersion: microseg.dev/v1\nkind: Policy\nmetadata: {name: " + from + "-" + to + "-in}\nspec:\n"
         "  selector: {identity: " + to + "}\n  ingress:\n    - from: [{identity: " + from + "}]\n"
         "      ports: [{port: " + port + "}]\n---\n";
}

struct Compiled {
  policy::Bundle bundle;
  identity::IdentityTable ids;
  compiler::RuleRegistry reg;
  compiler::CompiledPolicy c;
  explicit Compiled(const std::string& yaml) {
    auto r = policy::parseText(yaml, "t.yaml");
    EXPECT_TRUE(r.ok()) << (r.errors.empty() ? "" : r.errors.front().str());
    bundle = r.bundle;
    ids = identity::assignIdentities(bundle);
    c = compiler::compile(bundle, ids, reg);
  }
  uint32_t id(const std::string& w) const { return ids.byWorkload.at(w); }
  Graph graph() const {
    std::vector<uint32_t> ws;
    for (const auto& [name, i] : ids.byWorkload) ws.push_back(i);
    return Graph(c, ws);
  }
};

TEST(Reach, AChainOfThreeHopsAndNoneWithoutItsMiddleLink) {
  const std::string ws = workloads({"a", "b", "c", "d"});
  Compiled full(ws + link("a", "b", "80") + link("b", "c", "5432") + link("c", "d", "6379"));
  const Graph g = full.graph();
  auto p = paths(g, full.id("a"), 3, false);
  ASSERT_EQ(p.size(), 3u);
  EXPECT_EQ(p[2].target, full.id("d"));
  ASSERT_EQ(p[2].edges.size(), 3u);
  EXPECT_EQ(p[2].edges[0].from, full.id("a"));
  EXPECT_EQ(p[2].edges[1].to, full.id("c"));
  EXPECT_EQ(formatPorts(p[2].edges[1].ports.at(0)), "5432/tcp");
  EXPECT_EQ(paths(g, full.id("a"), 2, false).size(), 2u) << "d is 3 hops away";
  // Who can reach d: c directly, b and a through it.
  auto r = paths(g, full.id("d"), 3, true);
  ASSERT_EQ(r.size(), 3u);
  EXPECT_EQ(r[2].target, full.id("a"));
  EXPECT_EQ(r[2].edges.front().from, full.id("a"));
  EXPECT_EQ(r[2].edges.back().to, full.id("d"));

  Compiled cut(ws + link("a", "b", "80") + link("c", "d", "6379"));
  const Graph h = cut.graph();
  auto q = paths(h, cut.id("a"), 3, false);
  ASSERT_EQ(q.size(), 1u) << "a reaches b only";
  EXPECT_EQ(q[0].target, cut.id("b"));
  auto radius = blastRadius(g);
  EXPECT_EQ(radius.front().workload, full.id("a"));
  EXPECT_EQ(radius.front().reachable, 3u);
}

TEST(Reach, BothSidesMustConsent) {
  const std::string ws = workloads({"a", "b"});
  // a may call b, but b admits nobody.
  Compiled c(ws +
             "apiVersion: microseg.dev/v1\nkind: Policy\nmetadata: {name: out}\nspec:\n"
             "  selector: {identity: a}\n  egress:\n    - to: [{identity: b}]\n      ports: [{port: 80}]\n---\n"
             "apiVersion: microseg.dev/v1\nkind: Policy\nmetadata: {name: in}\nspec:\n"
             "  selector: {identity: b}\n  ingress:\n    - from: [{identity: a}]\n      ports: [{port: 81}]\n");
  EXPECT_TRUE(c.graph().from(c.id("a")).empty());
}

TEST(Reach, PortsAreExactlyWhatBothSidesAllow) {
  // Overlapping ranges, a deny inside an allow, any-peer rules, UDP.
  const std::string ws = workloads({"a", "b", "c"});
  const std::string y =
      ws +
      "apiVersion: microseg.dev/v1\nkind: Policy\nmetadata: {name: a-out}\nspec:\n"
      "  selector: {identity: a}\n  egress:\n"
      "    - to: [{identity: b}]\n      ports: [{port: 8000, endPort: 8999}, {port: 53, protocol: UDP}]\n"
      "    - ports: [{port: 443}]\n"
      "    - action: deny\n      to: [{identity: b}]\n      ports: [{port: 8500, endPort: 8510}]\n---\n"
      "apiVersion: microseg.dev/v1\nkind: Policy\nmetadata: {name: b-in}\nspec:\n"
      "  selector: {identity: b}\n  ingress:\n"
      "    - from: [{identity: a}]\n      ports: [{port: 8100, endPort: 9100}, {port: 443}, {port: 53, protocol: UDP}]\n";
  Compiled c(y);
  const Graph g = c.graph();
  const uint32_t a = c.id("a"), b = c.id("b");
  // Brute force over every port: the edge's ports are exactly where both
  // sides' reference verdicts allow.
  for (uint8_t proto : {uint8_t(MS_PROTO_TCP), uint8_t(MS_PROTO_UDP)}) {
    for (uint32_t x : {a, b, c.id("c")}) {
      for (uint32_t z : {a, b, c.id("c")}) {
        if (x == z) continue;
        const Edge* e = nullptr;
        for (const auto& ed : g.from(x)) {
          if (ed.to == z) e = &ed;
        }
        for (uint32_t port = 1; port <= 65535; port++) {
          const bool want =
              compiler::evaluate(c.c, x, z, policy::Direction::Egress, proto, port).verdict == MS_VERDICT_ALLOW &&
              compiler::evaluate(c.c, z, x, policy::Direction::Ingress, proto, port).verdict == MS_VERDICT_ALLOW;
          bool got = false;
          if (e != nullptr) {
            for (const auto& r : e->ports) got |= r.protocol == proto && port >= r.first && port <= r.last;
          }
          ASSERT_EQ(got, want) << x << "->" << z << " " << port << "/" << int(proto);
        }
      }
    }
  }
  std::vector<std::string> ab;
  for (const auto& e : g.from(a)) {
    if (e.to != b) continue;
    for (const auto& r : e.ports) ab.push_back(formatPorts(r));
  }
  // A port without a protocol is both (policies/README.md).
  EXPECT_EQ(ab, (std::vector<std::string>{"443/tcp", "8100-8499/tcp", "8511-8999/tcp", "53/udp", "443/udp",
                                          "8100-8499/udp", "8511-8999/udp"}));
}

}  // namespace
}  // namespace microseg::reach
