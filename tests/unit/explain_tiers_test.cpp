// The tier chain where people read it: explain (which tier decided, which
// admin rule passed, which application policies select the workload, why
// each rule did not decide), the rule text policy show prints, flow
// records' tier, and the CLI's renderings of them.
#include <gtest/gtest.h>

#include <arpa/inet.h>

#include <sstream>

#include "cli/views.h"
#include "compiler/compiler.h"
#include "compiler/explain.h"
#include "compiler/rule_text.h"
#include "flows/flow_record.h"
#include "identity/identities.h"
#include "policy/parser.h"

namespace microseg::compiler {
namespace {

using nlohmann::json;

const char* kSet = R"(
apiVersion: microseg.dev/v1
kind: Workload
metadata: {name: web}
spec: {cgroups: [web], labels: {app: web, env: prod}}
---
apiVersion: microseg.dev/v1
kind: Workload
metadata: {name: db}
spec: {cgroups: [db], labels: {app: db, env: prod}}
---
apiVersion: microseg.dev/v1
kind: Workload
metadata: {name: batch}
spec: {cgroups: [batch], labels: {app: batch, env: prod}}
---
apiVersion: microseg.dev/v1
kind: Policy
metadata: {name: tenancy}
spec:
  selector: {matchLabels: {env: prod}}
  tier: admin
  priority: 100
  egress:
    - action: pass
      to: [{identity: db}]
      ports: [{port: 5432, protocol: TCP}]
    - action: deny
      to: [{matchLabels: {env: prod}}]
---
apiVersion: microseg.dev/v1
kind: Policy
metadata: {name: web-out}
spec:
  selector: {identity: web}
  egress:
    - to: [{identity: db}]
      ports: [{port: 5432, protocol: TCP}]
---
apiVersion: microseg.dev/v1
kind: Policy
metadata: {name: dns-default}
spec:
  selector: {matchLabels: {env: prod}}
  tier: baseline
  egress:
    - to: [{identity: db}]
)";

struct F {
  policy::Bundle b;
  identity::IdentityTable ids;
  RuleRegistry reg;
  CompiledPolicy c;
  F() {
    auto r = policy::parseText(kSet, "t.yaml");
    EXPECT_TRUE(r.ok()) << (r.errors.empty() ? "" : r.errors[0].str());
    b = r.bundle;
    ids = identity::assignIdentities(b);
    c = compile(b, ids, reg);
  }
  Explanation ex(const char* from, const char* to, uint16_t port) {
    return explain(b, ids, c, ids.byWorkload.at(from), ids.byWorkload.at(to), policy::Direction::Egress, MS_PROTO_TCP,
                   port);
  }
  std::string why(const Explanation& e, const std::string& rule) {
    for (const auto& r : e.rules) {
      if (r.rule == rule) return r.why;
    }
    return "(not listed)";
  }
};

TEST(ExplainTiers, PassThenTheApplicationTierDecides) {
  F f;
  auto e = f.ex("web", "db", 5432);
  EXPECT_EQ(e.decision.verdict, MS_VERDICT_ALLOW);
  EXPECT_EQ(f.c.rules.at(e.decision.ruleId).name(), "web-out/0");
  EXPECT_EQ(e.tier, "application");
  EXPECT_EQ(e.passedBy, "tenancy/0");
  EXPECT_EQ(e.applicationPolicies, (std::vector<std::string>{"web-out"}));
  // Chain order: admin, application, baseline.
  std::vector<std::string> order;
  for (const auto& r : e.rules) order.push_back(r.rule);
  EXPECT_EQ(order, (std::vector<std::string>{"tenancy/0", "tenancy/1", "web-out/0", "dns-default/0"}));
  EXPECT_EQ(f.why(e, "tenancy/0"), "matches: pass, on to the application tier");
  EXPECT_EQ(f.why(e, "tenancy/1"), "matches, but skipped: an earlier admin rule passed");
  EXPECT_EQ(f.why(e, "web-out/0"), "");
  EXPECT_EQ(f.why(e, "dns-default/0"), "matches, but not consulted: application policies select the workload");
  EXPECT_EQ(e.rules[0].tier, "admin");
  EXPECT_EQ(e.rules[0].text, "[admin 100] pass to [identity: db] ports [5432/TCP]");
  EXPECT_EQ(e.rules[3].text, "[baseline] allow to [identity: db] ports any");
}

TEST(ExplainTiers, PassThenTheBaselineWhereNoApplicationPolicySelects) {
  F f;
  auto e = f.ex("batch", "db", 5432);
  EXPECT_EQ(e.decision.verdict, MS_VERDICT_ALLOW);
  EXPECT_EQ(f.c.rules.at(e.decision.ruleId).name(), "dns-default/0");
  EXPECT_EQ(e.tier, "baseline");
  EXPECT_TRUE(e.applicationPolicies.empty());
  EXPECT_EQ(f.why(e, "dns-default/0"), "");
}

TEST(ExplainTiers, AdminDenyDecidesAndTheOthersAreNotConsulted) {
  F f;
  auto e = f.ex("web", "db", 5433);
  EXPECT_EQ(e.decision.verdict, MS_VERDICT_DENY);
  EXPECT_EQ(f.c.rules.at(e.decision.ruleId).name(), "tenancy/1");
  EXPECT_EQ(e.tier, "admin");
  EXPECT_EQ(e.passedBy, "");
  EXPECT_EQ(f.why(e, "tenancy/0"), "wrong port: 5433/TCP is not among the rule's ports");
  EXPECT_EQ(f.why(e, "tenancy/1"), "");
  EXPECT_EQ(f.why(e, "web-out/0"), "wrong port: 5433/TCP is not among the rule's ports");
  EXPECT_EQ(f.why(e, "dns-default/0"), "matches, but not consulted: the admin tier decided");
  // Rule text as policy show prints it: tier and priority first.
  const RuleInfo& r = f.c.rules.at(e.decision.ruleId);
  EXPECT_EQ(ruleText(*f.b.findPolicy(r.policy()), r), "[admin 100] deny to [matchLabels: env=prod] ports any");
}

TEST(ExplainTiers, FlowRecordsNameTheTierOfAnAdminOrBaselineRule) {
  F f;
  identity::IdentityTable ids;
  std::map<uint64_t, std::string> paths, workloads;
  flows::FlowContext ctx{&ids, &paths, &workloads, &f.reg, 0};
  ms_event e{};
  e.protocol = MS_PROTO_TCP;
  e.direction = MS_DIR_EGRESS;
  e.hook = MS_HOOK_CONNECT4;
  e.reason = MS_REASON_RULE;
  e.verdict = MS_VERDICT_DENY;
  e.rule_id = f.reg.idFor("tenancy", policy::Direction::Egress, 1);
  EXPECT_EQ(flows::eventToJson(e, ctx)["tier"], "admin");
  e.rule_id = f.reg.idFor("dns-default", policy::Direction::Egress, 0);
  EXPECT_EQ(flows::eventToJson(e, ctx)["tier"], "baseline");
  e.rule_id = f.reg.idFor("web-out", policy::Direction::Egress, 0);
  EXPECT_FALSE(flows::eventToJson(e, ctx).contains("tier")) << "application records read as before tiers";
  e.reason = MS_REASON_DEFAULT_DENY;
  e.rule_id = MS_RULE_NONE;
  EXPECT_FALSE(flows::eventToJson(e, ctx).contains("tier"));
}

TEST(ExplainTiers, CliRendersTheChainAndThePassAction) {
  json side = {{"direction", "egress"}, {"judged_by", {{"workload", "web"}}}, {"verdict", "allow"},
               {"outcome", "allow"}, {"mode", "enforce"}, {"reason", "rule"},
               {"decided_by", {{"rule", "web-out/0"}, {"text", "allow to [identity: db] ports [5432/TCP]"},
                               {"location", "p.yaml:3"}}},
               {"selecting_policies", {"tenancy", "web-out"}}, {"tier", "application"},
               {"passed_by", "tenancy/0"}, {"application_policies", {"web-out"}},
               {"rules_checked", json::array()}};
  json r = {{"from", {{"workload", "web"}}}, {"to", {{"workload", "db"}}}, {"port", 5432},
            {"protocol", "tcp"}, {"verdict", "allow"}, {"outcome", "allow"}, {"sides", {side}}};
  std::ostringstream out;
  cli::printExplain(r, out);
  EXPECT_NE(out.str().find("tier chain: decided in the application tier, after admin rule tenancy/0 passed; "
                           "application policies: web-out"),
            std::string::npos)
      << out.str();

  json show = {{"generation", 1}, {"entries", 3}, {"default_deny_hits", 0},
               {"rules", {{{"id", 1}, {"rule", "tenancy/0"}, {"direction", "egress"}, {"action", "deny"},
                           {"hits", 0}, {"text", "[admin 100] pass to [identity: db] ports [5432/TCP]"}}}}};
  std::ostringstream table;
  cli::printPolicyShow(show, table);
  EXPECT_NE(table.str().find(" pass "), std::string::npos) << table.str();
  EXPECT_EQ(table.str().find(" deny "), std::string::npos) << "the daemon's action field knows allow/deny only\n"
                                                           << table.str();
}

}  // namespace
}  // namespace microseg::compiler
