// Galloping search and group replacement in sorted vectors, against the
// plain algorithms they replace.
#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <set>
#include <utility>
#include <vector>

#include "common/sorted_groups.h"

namespace microseg {
namespace {

TEST(SortedGroups, GallopFindsWhatLowerBoundFinds) {
  std::mt19937 rng(7);
  for (int round = 0; round < 300; round++) {
    std::vector<int> v(rng() % 200);
    for (auto& x : v) x = static_cast<int>(rng() % 100);
    std::sort(v.begin(), v.end());
    const auto less = [](int a, int b) { return a < b; };
    for (int t = 0; t < 20; t++) {
      const size_t from = v.empty() ? 0 : rng() % (v.size() + 1);
      const int value = static_cast<int>(rng() % 110) - 5;
      auto first = v.begin() + static_cast<std::ptrdiff_t>(from);
      EXPECT_EQ(gallopLower(first, v.end(), value, less), std::lower_bound(first, v.end(), value, less))
          << "size " << v.size() << " from " << from << " value " << value;
    }
  }
}

// Elements (group, item): groups are the first member.
using Elem = std::pair<int, int>;

TEST(SortedGroups, ReplaceGroupsIsTheNaiveMerge) {
  std::mt19937 rng(11);
  const auto keyOf = [](const Elem& e) -> const Elem& { return e; };
  const auto keyLess = [](const Elem& a, const Elem& b) { return a < b; };
  for (int round = 0; round < 500; round++) {
    const int groupsIn = 1 + static_cast<int>(rng() % 40);
    std::set<Elem> from;
    for (int n = static_cast<int>(rng() % 300); n > 0; n--) from.insert({static_cast<int>(rng() % groupsIn), static_cast<int>(rng() % 50)});
    std::set<int> replaced;
    // Up to 40 groups (in place; more than kInPlaceGroups are copied).
    for (int n = static_cast<int>(rng() % 41); n > 0; n--) replaced.insert(static_cast<int>(rng() % (groupsIn + 2)));
    std::set<Elem> fresh;
    for (int g : replaced) {
      for (int n = static_cast<int>(rng() % 8); n > 0; n--) fresh.insert({g, static_cast<int>(rng() % 50)});
    }
    std::vector<GroupBounds<Elem>> bounds;
    for (int g : replaced) bounds.push_back({{g, INT32_MIN}, {g, INT32_MAX}});
    std::vector<Elem> want;
    for (const auto& e : from) {
      if (!replaced.count(e.first)) want.push_back(e);
    }
    want.insert(want.end(), fresh.begin(), fresh.end());
    std::sort(want.begin(), want.end());
    const std::vector<Elem> freshV(fresh.begin(), fresh.end());
    const std::vector<Elem> got = replaceGroups(std::vector<Elem>(from.begin(), from.end()), freshV, bounds, keyOf, keyLess);
    ASSERT_EQ(got, want) << "round " << round;
    std::vector<Elem> inPlace(from.begin(), from.end());
    const std::vector<Elem> before = inPlace;
    const std::vector<Elem> old = groupElements(inPlace, bounds, keyOf, keyLess);
    replaceGroupsInPlace(inPlace, freshV, bounds, keyOf, keyLess);
    ASSERT_EQ(inPlace, want) << "round " << round << ", " << bounds.size() << " groups in place";
    replaceGroupsInPlace(inPlace, old, bounds, keyOf, keyLess);
    ASSERT_EQ(inPlace, before) << "round " << round << ": the groups' old elements put back";
  }
}

TEST(SortedGroups, AFreshElementOutsideTheGroupsIsRefused) {
  const auto keyOf = [](const Elem& e) -> const Elem& { return e; };
  const auto keyLess = [](const Elem& a, const Elem& b) { return a < b; };
  const std::vector<Elem> from = {{1, 1}, {2, 1}, {3, 1}};
  const std::vector<GroupBounds<Elem>> bounds = {{{2, INT32_MIN}, {2, INT32_MAX}}};
  EXPECT_THROW(replaceGroups(from, std::vector<Elem>{{1, 5}}, bounds, keyOf, keyLess), std::logic_error);
  EXPECT_THROW(replaceGroups(from, std::vector<Elem>{{2, 5}, {4, 1}}, bounds, keyOf, keyLess), std::logic_error);
  EXPECT_EQ(replaceGroups(from, std::vector<Elem>{{2, 5}}, bounds, keyOf, keyLess),
            (std::vector<Elem>{{1, 1}, {2, 5}, {3, 1}}));
  std::vector<Elem> v = from;
  EXPECT_THROW(replaceGroupsInPlace(v, std::vector<Elem>{{1, 5}}, bounds, keyOf, keyLess), std::logic_error);
  EXPECT_EQ(v, from) << "refused before anything changed";
}

}  // namespace
}  // namespace microseg
