// Big sorted vectors edited a few groups at a time. The compiled entries of
// a generation (100k+) are sorted by key bytes, so the entries of one
// subject form a contiguous group; a one-rule change replaces one subject's
// group. Finding groups by galloping search from a cursor and copying the
// runs between them whole costs a few searches and a memcpy, where an
// entry-by-entry merge compared every key.
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

// Where each of `groups` (in order, disjoint) is in `from` and in `fresh`
// (which holds elements of those groups only, sorted the same way, by
// keyLess on keyOf(element)), as index ranges. std::logic_error if `fresh`
// has an element outside the groups.
struct GroupCut {
  size_t lo, hi;            // the group in `from`
  size_t freshLo, freshHi;  // its elements in `fresh`
};

template <typename T, typename K, typename KeyOf, typename KeyLess>
std::vector<GroupCut> cutGroups(const std::vector<T>& from, const std::vector<T>& fresh,
                                const std::vector<GroupBounds<K>>& groups, KeyOf keyOf, KeyLess keyLess) {
  auto below = [&](const T& e, const K& k) { return keyLess(keyOf(e), k); };
  auto above = [&](const T& e, const K& k) { return !keyLess(k, keyOf(e)); };  // e <= k
  std::vector<GroupCut> cuts;
  cuts.reserve(groups.size());
  auto p = from.begin();
  auto f = fresh.begin();
  for (const auto& g : groups) {
    const auto lo = gallopLower(p, from.end(), g.lo, below);
    p = gallopLower(lo, from.end(), g.hi, above);
    if (f != fresh.end() && below(*f, g.lo)) throw std::logic_error("replaceGroups: an element outside the groups");
    const auto fLo = f;
    f = gallopLower(f, fresh.end(), g.hi, above);
    cuts.push_back({static_cast<size_t>(lo - from.begin()), static_cast<size_t>(p - from.begin()),
                    static_cast<size_t>(fLo - fresh.begin()), static_cast<size_t>(f - fresh.begin())});
  }
  if (f != fresh.end()) throw std::logic_error("replaceGroups: an element outside the groups");
  return cuts;
}

// `from` with the elements of `groups` replaced by those of `fresh` (see
// cutGroups). Runs of `from` between the groups are copied whole, into a
// vector of the exact size (every page of a new vector costs a fault: on
// a VM ~12 us per 4 KiB).
template <typename T, typename K, typename KeyOf, typename KeyLess>
std::vector<T> replaceGroups(const std::vector<T>& from, const std::vector<T>& fresh,
                             const std::vector<GroupBounds<K>>& groups, KeyOf keyOf, KeyLess keyLess) {
  const std::vector<GroupCut> cuts = cutGroups(from, fresh, groups, keyOf, keyLess);
  size_t replaced = 0;
  for (const GroupCut& c : cuts) replaced += c.hi - c.lo;
  std::vector<T> out;
  out.reserve(from.size() - replaced + fresh.size());
  size_t p = 0;
  for (const GroupCut& c : cuts) {
    out.insert(out.end(), from.begin() + static_cast<std::ptrdiff_t>(p), from.begin() + static_cast<std::ptrdiff_t>(c.lo));
    out.insert(out.end(), fresh.begin() + static_cast<std::ptrdiff_t>(c.freshLo),
               fresh.begin() + static_cast<std::ptrdiff_t>(c.freshHi));
    p = c.hi;
  }
  out.insert(out.end(), from.begin() + static_cast<std::ptrdiff_t>(p), from.end());
  return out;
}

// replaceGroups() in place: `v` becomes what replaceGroups(v, ...) returns,
// without a second vector as big as `v` (its new pages faulted in, the old
// one's freed). Up to kInPlaceGroups groups are replaced one by one, from
// the last, each a memmove of what follows it if its size changed; more
// are copied into a new vector. A vector that must grow past its capacity
// gets 1/64 of slack, so that the next few growths do not reallocate (a
// doubling would be 2x).
constexpr size_t kInPlaceGroups = 32;
template <typename T, typename K, typename KeyOf, typename KeyLess>
void replaceGroupsInPlace(std::vector<T>& v, const std::vector<T>& fresh, const std::vector<GroupBounds<K>>& groups,
                          KeyOf keyOf, KeyLess keyLess) {
  if (groups.size() > kInPlaceGroups) {
    v = replaceGroups(v, fresh, groups, keyOf, keyLess);
    return;
  }
  const std::vector<GroupCut> cuts = cutGroups(v, fresh, groups, keyOf, keyLess);
  size_t size = v.size();
  for (const GroupCut& c : cuts) size = size - (c.hi - c.lo) + (c.freshHi - c.freshLo);
  if (size > v.capacity()) v.reserve(size + size / 64);
  auto at = [](auto& vec, size_t i) { return vec.begin() + static_cast<std::ptrdiff_t>(i); };
  for (auto c = cuts.rbegin(); c != cuts.rend(); ++c) {
    const size_t old = c->hi - c->lo, now = c->freshHi - c->freshLo;
    const size_t kept = std::min(old, now);
    std::copy(at(fresh, c->freshLo), at(fresh, c->freshLo + kept), at(v, c->lo));
    if (now > old) {
      v.insert(at(v, c->hi), at(fresh, c->freshLo + kept), at(fresh, c->freshHi));
    } else if (old > now) {
      v.erase(at(v, c->lo + kept), at(v, c->hi));
    }
  }
}

// The elements of `v` in `groups` (see cutGroups), in order: what
// replaceGroupsInPlace(v, elements, groups) puts back after a replacement.
template <typename T, typename K, typename KeyOf, typename KeyLess>
std::vector<T> groupElements(const std::vector<T>& v, const std::vector<GroupBounds<K>>& groups, KeyOf keyOf,
                             KeyLess keyLess) {
  std::vector<T> out;
  for (const GroupCut& c : cutGroups(v, std::vector<T>{}, groups, keyOf, keyLess)) {
    out.insert(out.end(), v.begin() + static_cast<std::ptrdiff_t>(c.lo), v.begin() + static_cast<std::ptrdiff_t>(c.hi));
  }
  return out;
}

}  // namespace microseg
