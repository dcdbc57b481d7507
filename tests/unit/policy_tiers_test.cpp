// Tiers in the policy language: spec.tier, spec.priority and action: pass
// read into the model, every misspelling or misuse a located error, and
// admin policies of one priority a located warning.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "policy/parser.h"

namespace microseg::policy {
namespace {

std::string policyDoc(const std::string& name, const std::string& specHead, const std::string& action = "allow") {
  return "apiVersion: microseg.dev/v1\n"
         "kind: Policy\n"
         "metadata: {name: " + name + "}\n"
         "spec:\n"
         "  selector: {matchLabels: {app: a}}\n" +
         specHead +
         "  egress:\n"
         "    - action: " + action + "\n"
         "      ports: [{port: 53}]\n";
}

std::string errorsOf(const std::string& text) {
  auto r = parseText(text, "t.yaml");
  std::string s;
  for (const auto& e : r.errors) s += e.str() + "\n";
  return s;
}

TEST(PolicyTiers, TierAndPriorityAreRead) {
  auto r = parseText(policyDoc("a", "  tier: admin\n  priority: 10\n", "pass") + "---\n" +
                         policyDoc("b", "  tier: baseline\n", "deny") + "---\n" + policyDoc("c", ""),
                     "t.yaml");
  ASSERT_TRUE(r.ok()) << r.errors[0].str();
  ASSERT_EQ(r.bundle.policies.size(), 3u);
  EXPECT_EQ(r.bundle.policies[0].tier, Tier::Admin);
  EXPECT_EQ(r.bundle.policies[0].priority, 10);
  EXPECT_EQ(r.bundle.policies[0].egress[0].action, Action::Pass);
  EXPECT_EQ(r.bundle.policies[1].tier, Tier::Baseline);
  EXPECT_EQ(r.bundle.policies[1].egress[0].action, Action::Deny);
  EXPECT_EQ(r.bundle.policies[2].tier, Tier::Application) << "the default";
  EXPECT_EQ(std::string(tierName(Tier::Baseline)), "baseline");
}

TEST(PolicyTiers, BoundsOfPriority) {
  EXPECT_EQ(errorsOf(policyDoc("a", "  tier: admin\n  priority: 0\n")), "");
  EXPECT_EQ(errorsOf(policyDoc("a", "  tier: admin\n  priority: 1000\n")), "");
  EXPECT_EQ(errorsOf(policyDoc("a", "  tier: admin\n  priority: 1001\n")),
            "t.yaml:7:13: error: spec.priority: 1001 is out of range 0..1000\n");
  EXPECT_EQ(errorsOf(policyDoc("a", "  tier: admin\n  priority: -1\n")),
            "t.yaml:7:13: error: spec.priority: -1 is out of range 0..1000\n");
  EXPECT_EQ(errorsOf(policyDoc("a", "  tier: admin\n  priority: \"5\"\n")),
            "t.yaml:7:13: error: spec.priority: must be an integer, not a quoted string\n");
}

TEST(PolicyTiers, MisusesAreLocatedErrors) {
  EXPECT_EQ(errorsOf(policyDoc("a", "  tier: Admin\n")),
            "t.yaml:6:9: error: spec.tier: 'Admin' is not admin, application or baseline\n");
  EXPECT_EQ(errorsOf(policyDoc("a", "  tier: admin\n")),
            "t.yaml:6:9: error: spec.priority: required in the admin tier (0..1000, lower is evaluated first)\n");
  EXPECT_EQ(errorsOf(policyDoc("a", "  priority: 3\n")),
            "t.yaml:6:13: error: spec.priority: only an admin tier policy has a priority (this one is application)\n");
  EXPECT_EQ(errorsOf(policyDoc("a", "  tier: baseline\n  priority: 3\n")),
            "t.yaml:7:13: error: spec.priority: only an admin tier policy has a priority (this one is baseline)\n");
  EXPECT_EQ(errorsOf(policyDoc("a", "", "pass")),
            "t.yaml:7:7: error: spec.egress[0].action: 'pass' is only valid in the admin tier (this policy is "
            "application)\n");
  EXPECT_EQ(errorsOf(policyDoc("a", "  tier: baseline\n", "pass")),
            "t.yaml:8:7: error: spec.egress[0].action: 'pass' is only valid in the admin tier (this policy is "
            "baseline)\n");
  EXPECT_EQ(errorsOf(policyDoc("a", "", "Pass")),
            "t.yaml:7:15: error: spec.egress[0].action: 'Pass' is not allow, deny or pass\n");
  EXPECT_EQ(errorsOf(policyDoc("a", "  tiers: admin\n")),
            "t.yaml:6:3: error: spec: unknown field 'tiers' (allowed: selector, enforcement, tier, priority, staged, "
            "revokeEstablished, egress, ingress)\n");
}

TEST(PolicyTiers, AdminPoliciesOfOnePriorityWarn) {
  auto r = parseText(policyDoc("z", "  tier: admin\n  priority: 5\n") + "---\n" +
                         policyDoc("m", "  tier: admin\n  priority: 5\n") + "---\n" +
                         policyDoc("a", "  tier: admin\n  priority: 6\n") + "---\n" + policyDoc("b", ""),
                     "t.yaml");
  ASSERT_TRUE(r.ok()) << r.errors[0].str();
  const auto w = tierWarnings(r.bundle);
  ASSERT_EQ(w.size(), 1u);
  EXPECT_EQ(w[0].loc.line, 3) << "at the later one in name order (z, the first document's metadata)";
  EXPECT_EQ(w[0].message,
            "admin policy 'z' has priority 5 like 'm': policies of one priority are evaluated in name order");
}

}  // namespace
}  // namespace microseg::policy
