// Workload matching of cgroup paths (pure logic; the filesystem walk is
// covered by the e2e tests on a real cgroup tree).
#include <gtest/gtest.h>

#include <random>

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

// The indexed matcher of a scan gives what the functions above give, on
// random patterns (literals, '*', '?', classes, escapes, several
// components, the same pattern in two workloads) and random paths.
TEST(WorkloadMatcher, AgreesWithMatchWorkloadAndMayHaveWorkloadChildren) {
  std::mt19937 rng(20261202);
  auto pick = [&](size_t n) { return static_cast<size_t>(rng() % n); };
  const std::vector<std::string> parts = {"a", "b", "ab", "a*", "*", "?", "[ab]", "b\\*", "a\\b", "*.service", "x.service"};
  const std::vector<std::string> names = {"a", "b", "ab", "aa", "a*", "b*", "x.service", "ab.service", "?"};
  auto pattern = [&] {
    std::string p = parts[pick(parts.size())];
    for (size_t k = pick(3); k > 0; k--) p += "/" + parts[pick(parts.size())];
    return p;
  };
  size_t matched = 0, pending = 0;
  for (int round = 0; round < 300; round++) {
    policy::Bundle b;
    std::vector<std::string> pats;
    for (size_t w = 0, n = 1 + pick(6); w < n; w++) {
      std::vector<std::string> cg;
      for (size_t k = 0, m = 1 + pick(3); k < m; k++) {
        cg.push_back(!pats.empty() && pick(4) == 0 ? pats[pick(pats.size())] : pattern());
        pats.push_back(cg.back());
      }
      b.workloads.push_back(workload("w" + std::to_string(pick(100)) + "-" + std::to_string(w), cg));
    }
    const WorkloadMatcher m(b);
    for (int q = 0; q < 40; q++) {
      std::string path = pick(8) == 0 ? "" : names[pick(names.size())];
      for (size_t k = path.empty() ? 0 : pick(3); k > 0; k--) path += "/" + names[pick(names.size())];
      SCOPED_TRACE("path '" + path + "'");
      if (!path.empty()) {
        const policy::Workload* want = matchWorkload(b, path);
        EXPECT_EQ(m.match(path), want);
        matched += want != nullptr;
      }
      const bool children = mayHaveWorkloadChildren(b, path);
      EXPECT_EQ(m.mayHaveChildren(path), children);
      pending += children;
      if (HasFailure()) return;
    }
  }
  EXPECT_GT(matched, 500u);  // the cases are not all misses
  EXPECT_GT(pending, 500u);
}

}  // namespace
}  // namespace microseg::identity
