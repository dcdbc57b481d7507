// suggest/suggest.h: the documents validate, name peers by identity, merge
// port runs, keep denied flows out (in a comment), and allow exactly what
// was observed when compiled.
#include <gtest/gtest.h>

#include <arpa/inet.h>

#include "compiler/compiler.h"
#include "compiler/explain.h"
#include "identity/identities.h"
#include "policy/parser.h"
#include "suggest/suggest.h"

namespace microseg::suggest {
namespace {

const std::string kWorkloads = R"(apiVersion: microseg.dev/v1
kind: Workload
metadata: {name: web}
spec: {cgroups: [web], labels: {app: web}}
---
apiVersion: microseg.dev/v1
kind: Workload
metadata: {name: db}
spec: {cgroups: [db], labels: {app: db}}
---
apiVersion: microseg.dev/v1
kind: External
metadata: {name: dns}
spec: {cidrs: [192.0.2.53/32]}
---
)";

ms_addr v4(const char* text) {
  ms_addr a{};
  a.a[10] = a.a[11] = 0xff;
  inet_pton(AF_INET, text, &a.a[12]);
  return a;
}

struct Fixture {
  policy::Bundle bundle;
  identity::IdentityTable ids;
  Naming naming;
  Fixture() {
    auto r = policy::parseText(kWorkloads + "apiVersion: microseg.dev/v1\nkind: Policy\nmetadata: {name: x}\nspec:\n"
                                            "  selector: {identity: web}\n  egress:\n    - to: [{identity: dns}]\n",
                               "w.yaml");
    EXPECT_TRUE(r.ok());
    bundle = r.bundle;
    ids = identity::assignIdentities(bundle);
    naming.workload = [this](uint32_t id) -> std::string {
      auto it = ids.workloads.find(id);
      return it == ids.workloads.end() ? "" : it->second.front();
    };
    naming.external = [this](uint32_t id) -> std::string {
      auto it = ids.externals.find(id);
      return it == ids.externals.end() || it->second.externals.size() != 1 ? "" : it->second.externals.front();
    };
  }
  uint32_t id(const char* w) const { return ids.byWorkload.at(w); }
  uint32_t dns() const { return ids.externals.begin()->first; }
};

Flow flow(uint8_t dir, uint32_t src, uint32_t dst, uint16_t port, uint8_t verdict, uint8_t proto = MS_PROTO_TCP) {
  Flow f;
  f.direction = dir;
  f.src = src;
  f.dst = dst;
  f.port = port;
  f.protocol = proto;
  f.verdict = verdict;
  f.count = 3;
  f.firstSeenNs = 1700000000000000000;
  f.lastSeenNs = 1700000100000000000;
  return f;
}

TEST(Suggest, ObservedFlowsBecomeRulesThatAllowExactlyThem) {
  Fixture fx;
  const uint32_t web = fx.id("web"), db = fx.id("db");
  std::vector<Flow> flows;
  flows.push_back(flow(MS_DIR_EGRESS, web, db, 5432, MS_VERDICT_AUDIT));
  flows.push_back(flow(MS_DIR_INGRESS, web, db, 5432, MS_VERDICT_AUDIT));
  for (uint16_t p = 9000; p < 9006; p++) flows.push_back(flow(MS_DIR_EGRESS, web, db, p, MS_VERDICT_AUDIT));
  flows.push_back(flow(MS_DIR_EGRESS, web, fx.dns(), 53, MS_VERDICT_ALLOW, MS_PROTO_UDP));
  Flow world = flow(MS_DIR_EGRESS, web, MS_IDENTITY_WORLD, 443, MS_VERDICT_AUDIT);
  world.dstAddr = v4("203.0.113.7");
  flows.push_back(world);
  flows.push_back(flow(MS_DIR_EGRESS, web, MS_IDENTITY_HOST, 22, MS_VERDICT_DENY));
  const std::string y = suggest(flows, fx.naming, {});
  EXPECT_NE(y.find("to: [{identity: \"db\"}]"), std::string::npos) << y;
  EXPECT_NE(y.find("{port: 9000, endPort: 9005, protocol: TCP}"), std::string::npos) << y;
  EXPECT_NE(y.find("{port: 5432, protocol: TCP}"), std::string::npos) << y;
  EXPECT_NE(y.find("to: [{identity: \"dns\"}]"), std::string::npos) << y;
  EXPECT_NE(y.find("to: [{cidr: 203.0.113.7/32}]"), std::string::npos) << y;
  EXPECT_NE(y.find("# denied by the policy in force, NOT allowed here (wanted?): egress to host 22/TCP"),
            std::string::npos)
      << y;
  EXPECT_NE(y.find("seen 3 times, first 2023-11-14T22:13:20"), std::string::npos) << y;

  // The suggestion, with the workloads, validates and allows what was seen.
  auto r = policy::parseText(kWorkloads + y, "s.yaml");
  ASSERT_TRUE(r.ok()) << (r.errors.empty() ? "" : r.errors.front().str()) << "\n" << y;
  auto ids = identity::assignIdentities(r.bundle);
  compiler::RuleRegistry reg;
  auto c = compiler::compile(r.bundle, ids, reg);
  auto verdict = [&](uint32_t s, uint32_t p, policy::Direction d, uint16_t port, uint8_t proto = MS_PROTO_TCP) {
    return compiler::evaluate(c, s, p, d, proto, port).verdict;
  };
  const uint32_t w = ids.byWorkload.at("web"), d = ids.byWorkload.at("db");
  EXPECT_EQ(verdict(w, d, policy::Direction::Egress, 5432), MS_VERDICT_ALLOW);
  EXPECT_EQ(verdict(w, d, policy::Direction::Egress, 9003), MS_VERDICT_ALLOW);
  EXPECT_EQ(verdict(d, w, policy::Direction::Ingress, 5432), MS_VERDICT_ALLOW);
  EXPECT_EQ(verdict(w, d, policy::Direction::Egress, 5433), MS_VERDICT_DENY) << "unobserved";
  EXPECT_EQ(verdict(d, w, policy::Direction::Ingress, 9003), MS_VERDICT_DENY) << "db's side never saw 9003";
  EXPECT_EQ(verdict(w, MS_IDENTITY_HOST, policy::Direction::Egress, 22), MS_VERDICT_DENY) << "denied stays denied";
}

TEST(Suggest, OneWorkloadAWindowAndNothingToAllow) {
  Fixture fx;
  const uint32_t web = fx.id("web"), db = fx.id("db");
  std::vector<Flow> flows{flow(MS_DIR_EGRESS, web, db, 80, MS_VERDICT_AUDIT),
                          flow(MS_DIR_INGRESS, web, db, 80, MS_VERDICT_AUDIT)};
  Options only;
  only.workloads = {"db"};
  const std::string y = suggest(flows, fx.naming, only);
  EXPECT_EQ(y.find("\"web-observed\""), std::string::npos) << y;
  EXPECT_NE(y.find("\"db-observed\""), std::string::npos) << y;
  Options later;
  later.sinceNs = 1800000000000000000;
  EXPECT_EQ(suggest(flows, fx.naming, later), "");
  const std::string denied = suggest({flow(MS_DIR_EGRESS, web, db, 80, MS_VERDICT_DENY)}, fx.naming, {});
  EXPECT_NE(denied.find("no policy suggested"), std::string::npos) << denied;
  EXPECT_EQ(denied.find("kind: Policy"), std::string::npos) << denied;
}

}  // namespace
}  // namespace microseg::suggest
