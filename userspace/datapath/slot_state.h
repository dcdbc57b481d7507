// What one slot of the generation maps (policy, ipcache, cgroups,
// identities) holds, mirrored in userspace as sorted vectors, and the
// difference between two such states. Pure logic: the kernel backend writes a
// new generation as the difference from the one in force, first into the
// inactive slot (then flips), then into the other, so both slots stay equal
// and a one-rule change costs a handful of map writes, not a rebuild.
#pragma once

#include <cstdint>
#include <cstring>
#include <utility>
#include <vector>

#include "bpf/abi.h"
#include "common/bytes.h"
#include "common/sorted_groups.h"
#include "datapath/datapath.h"

namespace microseg::datapath {

// Keys compare by their bytes (hash and LPM keys are raw bytes to the kernel).
template <typename K>
bool keyLess(const K& a, const K& b) {
  return bytesLess(a, b);
}

template <typename K, typename V>
using Entries = std::vector<std::pair<K, V>>;  // sorted by keyLess, unique keys

// The exact-port entries (ms_policy) are not here: they are the compiled
// policy's last block (exactBlock()), read from it.
struct SlotState {
  Entries<ms_policy_key, ms_policy_value> ranges;        // port prefixes (ms_ranges)
  Entries<ms_ipcache_key, ms_ipcache_value> ipcache;
  Entries<uint64_t, ms_cgroup_value> cgroups;            // with their identity's settings
  // Per-identity settings (userspace only: the kernel reads them from each
  // cgroup entry of the identity).
  Entries<uint32_t, ms_identity_value> identities;
  size_t size() const { return ranges.size() + ipcache.size() + cgroups.size(); }
};

// The compiled address ranges of a policy, as ipcache entries.
Entries<ms_ipcache_key, ms_ipcache_value> compiledRanges(const compiler::CompiledPolicy* policy);

// A cgroup's map value: its identity with that identity's settings.
ms_cgroup_value cgroupValue(uint32_t identity, uint32_t cgroupFlags,
                            const Entries<uint32_t, ms_identity_value>& identities);

// The state a generation asks for, as the compiler laid it out: the range
// trie's entries (compiler/kernel_layout.h), the identities (with the
// runtime mode overrides), the compiled address ranges with the run-time
// addresses written over them (an address wins over a range of the same
// prefix), and the cgroups.
SlotState slotStateOf(const Generation& gen);

template <typename K, typename V>
struct Diff {
  Entries<K, V> upserts;  // new keys and keys whose value changed
  std::vector<K> removes;
  size_t size() const { return upserts.size() + removes.size(); }
};

// An entry's key and value: a mirrored map's pair, or a compiled entry.
template <typename K, typename V>
const K& entryKey(const std::pair<K, V>& e) {
  return e.first;
}
inline const ms_policy_key& entryKey(const compiler::PolicyEntry& e) { return e.key; }
template <typename K, typename V>
const V& entryValue(const std::pair<K, V>& e) {
  return e.second;
}
inline const ms_policy_value& entryValue(const compiler::PolicyEntry& e) { return e.value; }

// Walks what turns the sorted run [from, fromEnd) into [to, toEnd), in key
// order: remove(key) for a key only `from` has, upsert(entry) for an entry
// of `to` that is new or whose value changed. Either returning false stops
// the walk, and diffWalk() returns false.
template <typename From, typename To, typename Remove, typename Upsert>
bool diffWalk(From from, From fromEnd, To to, To toEnd, Remove&& remove, Upsert&& upsert) {
  while (from != fromEnd || to != toEnd) {
    if (to == toEnd || (from != fromEnd && keyLess(entryKey(*from), entryKey(*to)))) {
      if (!remove(entryKey(*from++))) return false;
    } else if (from == fromEnd || keyLess(entryKey(*to), entryKey(*from))) {
      if (!upsert(*to++)) return false;
    } else {
      if (std::memcmp(&entryValue(*from), &entryValue(*to), sizeof(entryValue(*to))) != 0 && !upsert(*to)) {
        return false;
      }
      ++from;
      ++to;
    }
  }
  return true;
}

// Adds to `d` what turns the sorted run [from, fromEnd) into [to, toEnd).
template <typename K, typename V, typename From, typename To>
void diffInto(From from, From fromEnd, To to, To toEnd, Diff<K, V>& d) {
  diffWalk(
      from, fromEnd, to, toEnd,
      [&](const K& k) {
        d.removes.push_back(k);
        return true;
      },
      [&](const std::pair<K, V>& e) {
        d.upserts.push_back(e);
        return true;
      });
}

template <typename K, typename V>
Diff<K, V> diff(const Entries<K, V>& from, const Entries<K, V>& to) {
  Diff<K, V> d;
  diffInto(from.begin(), from.end(), to.begin(), to.end(), d);
  return d;
}

// The exact-port block of `policy` (empty without one): compiler::exactBlock().
std::pair<const compiler::PolicyEntry*, const compiler::PolicyEntry*> exactBlock(
    const compiler::CompiledPolicy* policy);

// Adds to `d` what turns the exact-port entries [was, wasEnd) into [now,
// nowEnd) (sorted compiled entries of the exact-port block).
void exactDiffInto(const compiler::PolicyEntry* was, const compiler::PolicyEntry* wasEnd,
                   const compiler::PolicyEntry* now, const compiler::PolicyEntry* nowEnd,
                   Diff<ms_policy_exact_key, ms_policy_value>& d);

// Adds to `d` the difference of the exact-port entries of `now`, compiled
// on `was`, in the groups the compiler recomputed (compiler::changedExactRuns()).
void exactPatch(const compiler::CompiledPolicy& was, const compiler::CompiledPolicy& now,
                Diff<ms_policy_exact_key, ms_policy_value>& d);

// Sorts by key and keeps the LAST value of a duplicate key.
template <typename K, typename V>
void normalize(Entries<K, V>& e) {
  // Usually already sorted and unique (the compiler sorts its entries): one
  // pass instead of a sort and a copy.
  if (std::adjacent_find(e.begin(), e.end(), [](const auto& a, const auto& b) { return !keyLess(a.first, b.first); }) ==
      e.end()) {
    return;
  }
  std::stable_sort(e.begin(), e.end(), [](const auto& a, const auto& b) { return keyLess(a.first, b.first); });
  Entries<K, V> out;
  out.reserve(e.size());
  for (auto& x : e) {
    if (!out.empty() && std::memcmp(&out.back().first, &x.first, sizeof(K)) == 0) {
      out.back().second = x.second;
    } else {
      out.push_back(x);
    }
  }
  e = std::move(out);
}

// Replaces (or inserts) the values of `changes` in the sorted `e`, and
// removes `removes`.
template <typename K, typename V>
void patch(Entries<K, V>& e, const Entries<K, V>& changes, const std::vector<K>& removes) {
  Entries<K, V> c = changes;
  normalize(c);
  Entries<K, V> merged;
  merged.reserve(e.size() + c.size());
  size_t i = 0, j = 0;
  while (i < e.size() || j < c.size()) {
    if (j == c.size() || (i < e.size() && keyLess(e[i].first, c[j].first))) {
      merged.push_back(e[i++]);
    } else if (i == e.size() || keyLess(c[j].first, e[i].first)) {
      merged.push_back(c[j++]);
    } else {
      merged.push_back(c[j++]);
      i++;
    }
  }
  if (!removes.empty()) {
    std::vector<K> r = removes;
    std::sort(r.begin(), r.end(), keyLess<K>);
    Entries<K, V> kept;
    kept.reserve(merged.size());
    size_t k = 0;
    for (auto& x : merged) {
      while (k < r.size() && keyLess(r[k], x.first)) k++;
      if (k < r.size() && std::memcmp(&r[k], &x.first, sizeof(K)) == 0) continue;
      kept.push_back(x);
    }
    merged = std::move(kept);
  }
  e = std::move(merged);
}

}  // namespace microseg::datapath
