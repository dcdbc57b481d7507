// Workload matching of cgroup paths (pure logic; the filesystem walk is
// covered by the e2e tests on a real cgroup tree).
#include <gtest/gtest.h>

#include "identity/cgroup_scanner.h"

namespace microseg::identity {
namespace {

policy::Workload workload(std::string name, std::vector<std::string> cgroups) {
  policy::Workload w;
  w.name = std::move(name);
  w.cgroups = std::move(cgroups);
  return w;
}

TEST(MatchWorkload, ExactPathMatches) {
  policy::Bundle b;
  b.workloads.push_back(workload("payments", {"system.slice/payments.service"}));
  const auto* w = matchWorkload(b, "system.slice/payments.service");
  ASSERT_NE(w, nullptr);
  EXPECT_EQ(w->name, "payments");
  EXPECT_EQ(matchWorkload(b, "system.slice/payments.service/child"), nullptr);
  EXPECT_EQ(matchWorkload(b, "system.slice"), nullptr);
}

TEST(MatchWorkload, StarDoesNotCrossSlash) {
  policy::Bundle b;
  b.workloads.push_back(workload("vms", {"machine.slice/*"}));
  EXPECT_NE(matchWorkload(b, "machine.slice/vm-1"), nullptr);
  EXPECT_EQ(matchWorkload(b, "machine.slice/vm-1/payload"), nullptr);
}

TEST(MatchWorkload, ExactBeatsGlobAndLongerBeatsShorter) {
  policy::Bundle b;
  b.workloads.push_back(workload("any-service", {"system.slice/*.service"}));
  b.workloads.push_back(workload("db", {"system.slice/postgres.service"}));
  b.workloads.push_back(workload("pg-any", {"system.slice/postgres*.service"}));
  EXPECT_EQ(matchWorkload(b, "system.slice/postgres.service")->name, "db");
  EXPECT_EQ(matchWorkload(b, "system.slice/postgres-2.service")->name, "pg-any");
  EXPECT_EQ(matchWorkload(b, "system.slice/nginx.service")->name, "any-service");
}

TEST(MatchWorkload, TieBrokenByName) {
  policy::Bundle b;
  b.workloads.push_back(workload("zeta", {"a/*"}));
  b.workloads.push_back(workload("alpha", {"a/?"}));
  EXPECT_EQ(matchWorkload(b, "a/x")->name, "alpha");
}

}  // namespace
}  // namespace microseg::identity
