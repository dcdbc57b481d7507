// LabelSelector::matches: Kubernetes semantics, matchLabels AND every expression.
#include <gtest/gtest.h>

#include "policy/model.h"

namespace microseg::policy {
namespace {

LabelRequirement req(const std::string& key, SelectorOp op, std::vector<std::string> values = {}) {
  LabelRequirement r;
  r.key = key;
  r.op = op;
  r.values = std::move(values);
  return r;
}

LabelSelector exprs(std::vector<LabelRequirement> reqs) {
  LabelSelector s;
  s.matchExpressions = std::move(reqs);
  return s;
}

TEST(PolicySelector, MatchLabelsOnly) {
  LabelSelector s;
  s.matchLabels = {{"app", "web"}, {"tier", "front"}};
  EXPECT_TRUE(s.matches({{"app", "web"}, {"tier", "front"}}));
  EXPECT_TRUE(s.matches({{"app", "web"}, {"tier", "front"}, {"extra", "x"}}));  // superset
  EXPECT_FALSE(s.matches({{"app", "web"}}));                                    // missing key
  EXPECT_FALSE(s.matches({{"app", "web"}, {"tier", "back"}}));                  // wrong value
  EXPECT_FALSE(s.matches({}));
}

TEST(PolicySelector, MatchLabelsEmptyValue) {
  LabelSelector s;
  s.matchLabels = {{"flag", ""}};
  EXPECT_TRUE(s.matches({{"flag", ""}}));
  EXPECT_FALSE(s.matches({}));  // absent is not the same as empty
  EXPECT_FALSE(s.matches({{"flag", "x"}}));
}

TEST(PolicySelector, OperatorIn) {
  auto s = exprs({req("env", SelectorOp::In, {"prod", "staging"})});
  EXPECT_TRUE(s.matches({{"env", "prod"}}));
  EXPECT_TRUE(s.matches({{"env", "staging"}, {"app", "x"}}));
  EXPECT_FALSE(s.matches({{"env", "dev"}}));
  EXPECT_FALSE(s.matches({{"app", "x"}}));  // missing key
  EXPECT_FALSE(s.matches({}));
}

TEST(PolicySelector, OperatorNotIn) {
  auto s = exprs({req("env", SelectorOp::NotIn, {"dev", "test"})});
  EXPECT_FALSE(s.matches({{"env", "dev"}}));
  EXPECT_FALSE(s.matches({{"env", "test"}}));
  EXPECT_TRUE(s.matches({{"env", "prod"}}));
  EXPECT_TRUE(s.matches({{"app", "x"}}));  // missing key matches NotIn
  EXPECT_TRUE(s.matches({}));
}

TEST(PolicySelector, OperatorExists) {
  auto s = exprs({req("pci", SelectorOp::Exists)});
  EXPECT_TRUE(s.matches({{"pci", "true"}}));
  EXPECT_TRUE(s.matches({{"pci", ""}}));
  EXPECT_FALSE(s.matches({{"app", "x"}}));
  EXPECT_FALSE(s.matches({}));
}

TEST(PolicySelector, OperatorDoesNotExist) {
  auto s = exprs({req("legacy", SelectorOp::DoesNotExist)});
  EXPECT_FALSE(s.matches({{"legacy", "true"}}));
  EXPECT_FALSE(s.matches({{"legacy", ""}}));
  EXPECT_TRUE(s.matches({{"app", "x"}}));
  EXPECT_TRUE(s.matches({}));
}

TEST(PolicySelector, CombinationIsAnd) {
  LabelSelector s;
  s.matchLabels = {{"app", "api"}};
  s.matchExpressions = {req("env", SelectorOp::In, {"prod", "staging"}), req("tier", SelectorOp::NotIn, {"web"}),
                        req("team", SelectorOp::Exists), req("legacy", SelectorOp::DoesNotExist)};
  const Labels good{{"app", "api"}, {"env", "prod"}, {"tier", "back"}, {"team", "pay"}};
  EXPECT_TRUE(s.matches(good));

  // Breaking any single part makes the whole selector fail.
  Labels l = good;
  l["app"] = "web";
  EXPECT_FALSE(s.matches(l)) << "matchLabels";
  l = good;
  l["env"] = "dev";
  EXPECT_FALSE(s.matches(l)) << "In";
  l = good;
  l["tier"] = "web";
  EXPECT_FALSE(s.matches(l)) << "NotIn";
  l = good;
  l.erase("team");
  EXPECT_FALSE(s.matches(l)) << "Exists";
  l = good;
  l["legacy"] = "yes";
  EXPECT_FALSE(s.matches(l)) << "DoesNotExist";

  // NotIn on a missing key still holds within the conjunction.
  l = good;
  l.erase("tier");
  EXPECT_TRUE(s.matches(l));
}

TEST(PolicySelector, ExpressionsOnSameKeyAreAnded) {
  auto s = exprs({req("env", SelectorOp::Exists), req("env", SelectorOp::NotIn, {"dev"})});
  EXPECT_TRUE(s.matches({{"env", "prod"}}));
  EXPECT_FALSE(s.matches({{"env", "dev"}}));
  EXPECT_FALSE(s.matches({}));  // NotIn holds but Exists does not
}

// Selectors see effective labels: the namespace label (and a label-less
// workload's implicit name label) can be selected like any other.
TEST(PolicySelector, EffectiveLabelsOfNamespacedObjects) {
  Workload bare;
  bare.name = "api";
  bare.namespaceName = "shop";
  Workload labelled = bare;
  labelled.labels = {{"app", "api"}};
  External corp;
  corp.name = "corp-net";
  corp.namespaceName = "shop";
  LabelSelector inShop;
  inShop.matchLabels = {{kNamespaceLabel, "shop"}};
  EXPECT_TRUE(inShop.matches(bare.effectiveLabels()));
  EXPECT_TRUE(inShop.matches(labelled.effectiveLabels()));
  EXPECT_TRUE(inShop.matches(corp.effectiveLabels()));
  EXPECT_FALSE(inShop.matches(labelled.labels)) << "spec.labels as written do not carry the namespace";
  LabelSelector byName;
  byName.matchLabels = {{kWorkloadLabel, "api"}};
  EXPECT_TRUE(byName.matches(bare.effectiveLabels()));
  EXPECT_FALSE(byName.matches(labelled.effectiveLabels())) << "spec.labels replace the implicit name label";
  Workload elsewhere = bare;
  elsewhere.namespaceName = "lab";
  EXPECT_FALSE(inShop.matches(elsewhere.effectiveLabels()));
}

// Kubernetes semantics hold for Externals too: a missing key satisfies NotIn
// and DoesNotExist, so such selectors also match label-less Externals.
TEST(PolicySelector, NegativeExpressionsMatchExternalsWithoutTheKey) {
  External bare;
  bare.name = "partner";
  EXPECT_TRUE(bare.effectiveLabels().empty());
  EXPECT_TRUE(exprs({req("tier", SelectorOp::NotIn, {"web"})}).matches(bare.effectiveLabels()));
  EXPECT_TRUE(exprs({req("tier", SelectorOp::DoesNotExist)}).matches(bare.effectiveLabels()));
  EXPECT_FALSE(exprs({req("tier", SelectorOp::Exists)}).matches(bare.effectiveLabels()));
}

}  // namespace
}  // namespace microseg::policy
