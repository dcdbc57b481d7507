#include <gtest/gtest.h>

#include "compiler/compiler.h"
#include "compiler/explain.h"
#include "compiler/rule_text.h"
#include "identity/identities.h"
#include "policy/parser.h"

namespace microseg::compiler {
namespace {

const char* kSet = R"(
apiVersion: microseg.dev/v1
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
kind: Policy
metadata: {name: web-out}
spec:
  selector: {identity: web}
  egress:
    - to: [{identity: db}]
      ports: [{port: 5432, protocol: TCP}]
    - ports: [{port: 53, protocol: UDP}]
---
apiVersion: microseg.dev/v1
kind: Policy
metadata: {name: guard}
spec:
  selector: {matchLabels: {app: web}}
  egress:
    - action: deny
      to: [{identity: db}]
      ports: [{port: 5433}]
)";

struct F {
  policy::Bundle b;
  identity::IdentityTable ids;
  RuleRegistry reg;
  CompiledPolicy c;
  F() {
    auto r = policy::parseText(kSet, "t.yaml");
    EXPECT_TRUE(r.ok());
    b = r.bundle;
    ids = identity::assignIdentities(b);
    c = compile(b, ids, reg);
  }
  Explanation ex(const char* from, const char* to, uint8_t proto, uint16_t port) {
    return explain(b, ids, c, ids.byWorkload.at(from), ids.byWorkload.at(to), policy::Direction::Egress, proto, port);
  }
};

TEST(Explain, NamesTheDecidingRule) {
  F f;
  auto e = f.ex("web", "db", MS_PROTO_TCP, 5432);
  EXPECT_EQ(e.decision.verdict, MS_VERDICT_ALLOW);
  EXPECT_EQ(f.c.rules.at(e.decision.ruleId).name(), "web-out/0");
  EXPECT_EQ(e.selectingPolicies, (std::vector<std::string>{"guard", "web-out"}));
}

TEST(Explain, DefaultDenySaysWhyEachRuleMissed) {
  F f;
  auto e = f.ex("web", "db", MS_PROTO_TCP, 6000);
  EXPECT_EQ(e.decision.verdict, MS_VERDICT_DENY);
  EXPECT_EQ(e.decision.reason, MS_REASON_DEFAULT_DENY);
  ASSERT_EQ(e.rules.size(), 3u);
  EXPECT_EQ(e.rules[0].rule, "guard/0");
  EXPECT_NE(e.rules[0].why.find("wrong port"), std::string::npos) << e.rules[0].why;
  EXPECT_EQ(e.rules[1].rule, "web-out/0");
  EXPECT_NE(e.rules[1].why.find("wrong port: 6000/TCP"), std::string::npos) << e.rules[1].why;
  EXPECT_EQ(e.rules[2].rule, "web-out/1");
  EXPECT_NE(e.rules[2].why.find("wrong protocol"), std::string::npos) << e.rules[2].why;
}

TEST(Explain, DenyRuleAndWrongPeer) {
  F f;
  auto e = f.ex("web", "db", MS_PROTO_TCP, 5433);
  EXPECT_EQ(e.decision.verdict, MS_VERDICT_DENY);
  EXPECT_EQ(f.c.rules.at(e.decision.ruleId).name(), "guard/0");
  EXPECT_TRUE(e.rules[0].matches);
  auto w = f.ex("db", "web", MS_PROTO_TCP, 5432);
  EXPECT_TRUE(w.selectingPolicies.empty());
  EXPECT_EQ(w.decision.reason, MS_REASON_DEFAULT_DENY);
  auto p = f.ex("web", "web", MS_PROTO_TCP, 5432);
  EXPECT_NE(p.rules[1].why.find("wrong peer"), std::string::npos);
}

}  // namespace
}  // namespace microseg::compiler
