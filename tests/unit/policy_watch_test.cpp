#include <gtest/gtest.h>

#include "policy/watch.h"

namespace microseg::policy {
namespace {

auto dirs(std::set<std::string> d) {
  return [d](const std::string& p) { return d.count(p) != 0; };
}

TEST(PolicyWatch, FilesAreWatchedThroughTheirDirectoryAndOnlyTheyCount) {
  auto w = policyWatches({"/etc/microseg/a.yaml", "/etc/microseg/b.yaml", "/srv/p.yml"}, dirs({}));
  ASSERT_EQ(w.size(), 2u);
  EXPECT_EQ(w[0].dir, "/etc/microseg");
  EXPECT_FALSE(w[0].wholeDir);
  EXPECT_TRUE(concerns(w[0], "a.yaml"));
  EXPECT_TRUE(concerns(w[0], "b.yaml"));
  EXPECT_FALSE(concerns(w[0], "microseg.yaml"));  // the daemon's config next to them
  EXPECT_FALSE(concerns(w[0], ".a.yaml.swp"));
  EXPECT_FALSE(concerns(w[0], "a.yaml~"));
  EXPECT_TRUE(concerns(w[0], ""));  // the directory itself went away
  EXPECT_EQ(w[1].dir, "/srv");
  EXPECT_TRUE(concerns(w[1], "p.yml"));
}

TEST(PolicyWatch, ADirectoryCountsEveryYamlFileInIt) {
  auto w = policyWatches({"/etc/microseg/policies", "/etc/microseg/policies/x.txt", "rel.yaml", "/top.yaml"},
                         dirs({"/etc/microseg/policies"}));
  ASSERT_EQ(w.size(), 3u);
  EXPECT_EQ(w[0].dir, "."); EXPECT_TRUE(concerns(w[0], "rel.yaml"));
  EXPECT_EQ(w[1].dir, "/"); EXPECT_TRUE(concerns(w[1], "top.yaml")); EXPECT_FALSE(concerns(w[1], "etc"));
  const PolicyWatch& d = w[2];
  EXPECT_EQ(d.dir, "/etc/microseg/policies");
  EXPECT_TRUE(d.wholeDir);
  EXPECT_TRUE(concerns(d, "shop.yaml"));
  EXPECT_TRUE(concerns(d, "shop.yml"));
  EXPECT_TRUE(concerns(d, "x.txt"));  // named by path as well
  EXPECT_FALSE(concerns(d, "notes.md"));
  EXPECT_FALSE(concerns(d, ".yaml"));
  EXPECT_FALSE(concerns(d, "shop.yaml.tmp"));
}

}  // namespace
}  // namespace microseg::policy
