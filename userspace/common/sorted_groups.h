// Big sorted vectors edited a few groups at a time. The compiled entries of
// a generation (100k+) and the datapath's mirror of them are sorted by key
// bytes, so the entries of one subject form a contiguous group; a one-rule
// change replaces one subject's group. Finding groups by galloping search
// from a cursor and copying the runs between them whole costs a few
// searches and a memcpy, where an entry-by-entry merge compared every key.
#pragma once

#include <algorithm>
#include <cstddef>
#include <iterator>
#include <stdexcept>
#include <utility>
#include <vector>

namespace microseg {

// The first element in [first, last) not less than `value` (as
// std::lower_bound), searched from `first` outwards: O(log d) for an answer
// d elements on, so a left-to-right series of searches costs about one pass
// over the gaps' logarithms, not one binary search of the whole range each.
template <typename It, typename V, typename Less>
It gallopLower(It first, It last, const V& value, Less less) {
  typename std::iterator_traits<It>::difference_type step = 1;
  It lo = first;
  while (lo != last && less(*lo, value)) {
    const auto left = std::distance(lo, last);
    It probe = lo + (step < left ? step : left - 1);
    if (!less(*probe, value)) return std::lower_bound(lo + 1, probe + 1, value, less);
    lo = probe + 1;
    step *= 2;
  }
  return lo;
}

// A group of a sorted vector: the elements whose key k has
// !keyLess(k, lo) && !keyLess(hi, k).
template <typename K>
struct GroupBounds {
  K lo, hi;
};

// `from` with the elements of `groups` (in order, disjoint) replaced by
// those of `fresh`, which holds elements of those groups only, sorted the
// same way (by keyLess on keyOf(element)). Runs of `from` between the
// groups are copied whole. std::logic_error if `fresh` has an element
// outside the groups.
template <typename T, typename K, typename KeyOf, typename KeyLess>
std::vector<T> replaceGroups(const std::vector<T>& from, const std::vector<T>& fresh,
                             const std::vector<GroupBounds<K>>& groups, KeyOf keyOf, KeyLess keyLess) {
  auto below = [&](const T& e, const K& k) { return keyLess(keyOf(e), k); };
  auto above = [&](const T& e, const K& k) { return !keyLess(k, keyOf(e)); };  // e <= k
  std::vector<T> out;
  out.reserve(from.size() + fresh.size());
  auto p = from.begin();
  auto f = fresh.begin();
  for (const auto& g : groups) {
    const auto lo = gallopLower(p, from.end(), g.lo, below);
    out.insert(out.end(), p, lo);
    p = gallopLower(lo, from.end(), g.hi, above);
    if (f != fresh.end() && below(*f, g.lo)) throw std::logic_error("replaceGroups: an element outside the groups");
    const auto fEnd = gallopLower(f, fresh.end(), g.hi, above);
    out.insert(out.end(), f, fEnd);
    f = fEnd;
  }
  if (f != fresh.end()) throw std::logic_error("replaceGroups: an element outside the groups");
  out.insert(out.end(), p, from.end());
  return out;
}

}  // namespace microseg
