// The map writes of a generation: whole maps, differences, and the errors
// they fail with ("update of map 'ms_policy_in' failed: ... (N writes,
// capacity M)"). Used by BpfDatapath only.
#pragma once

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <cerrno>
#include <iterator>
#include <string>

#include "common/fd.h"
#include "common/result.h"
#include "compiler/compiler.h"
#include "datapath/bpf_object.h"
#include "datapath/slot_state.h"
#include "policy/progress.h"

namespace microseg::datapath {

// libbpf returns -errno (or sets errno); normalise once here.
inline Error libbpfError(std::string op, std::string object, long rc) {
  int e = rc < 0 ? static_cast<int>(-rc) : errno;
  return Error{std::move(op), std::move(object), e, {}};
}

inline Result<UniqueFd> createInner(const InnerSpec& spec) {
  LIBBPF_OPTS(bpf_map_create_opts, opts, .map_flags = spec.flags);
  UniqueFd fd(bpf_map_create(spec.type, spec.name.c_str(), spec.keySize, spec.valueSize, spec.maxEntries, &opts));
  if (!fd) return libbpfError("create map", spec.name, -errno);
  return fd;
}

inline Result<void> updateElem(int fd, const std::string& name, const void* key, const void* value,
                        uint64_t flags = BPF_ANY) {
  int rc = bpf_map_update_elem(fd, key, value, flags);
  if (rc != 0) return libbpfError("update of map", name, rc);
  return {};
}

// One map write; counts it in `writes`. A write is a progress tick
// (policy/progress.h): 100k of them take a second under load, and the
// daemon drains events meanwhile.
template <typename K>
Result<void> deleteOne(int fd, const InnerSpec& spec, const K& k, size_t& writes) {
  policy::progressTick();
  if (bpf_map_delete_elem(fd, &k) != 0 && errno != ENOENT) return sysError("delete from map", spec.name);
  writes++;
  return {};
}

template <typename K, typename V>
Result<void> upsertOne(int fd, const InnerSpec& spec, const K& k, const V& v, size_t& writes, size_t total) {
  policy::progressTick();
  if (auto r = updateElem(fd, spec.name, &k, &v); !r) {
    Error err = r.error();
    err.detail = std::to_string(total) + " writes, capacity " + std::to_string(spec.maxEntries);
    return err;
  }
  writes++;
  return {};
}

// Writes `d` into the map `fd` (of `spec`): removes first (they make room).
template <typename K, typename V>
Result<void> writeDiff(int fd, const InnerSpec& spec, const Diff<K, V>& d, size_t& writes) {
  for (const auto& k : d.removes) {
    if (auto r = deleteOne(fd, spec, k, writes); !r) return r;
  }
  for (const auto& [k, v] : d.upserts) {
    if (auto r = upsertOne(fd, spec, k, v, writes, d.upserts.size()); !r) return r;
  }
  return {};
}

// Writes into the map `fd`, which holds the sorted run [from, fromEnd),
// what turns it into [to, toEnd), as writeDiff() would, without making the
// difference: at a full reload it is every entry (100k entries were a
// 2.4-4 MB copy at the daemon's peak). Two passes, the removes first.
// `mapKey` turns an entry's key into the map's.
template <typename It, typename MapKey>
Result<void> writeDifference(int fd, const InnerSpec& spec, It from, It fromEnd, It to, It toEnd, MapKey mapKey,
                             size_t& writes) {
  Result<void> failed;
  auto skip = [](const auto&) { return true; };
  const size_t total = static_cast<size_t>(std::distance(to, toEnd));
  diffWalk(
      from, fromEnd, to, toEnd,
      [&](const auto& k) {
        failed = deleteOne(fd, spec, mapKey(k), writes);
        return failed.ok();
      },
      skip);
  if (!failed) return failed;
  diffWalk(from, fromEnd, to, toEnd, skip, [&](const auto& e) {
    failed = upsertOne(fd, spec, mapKey(entryKey(e)), entryValue(e), writes, total);
    return failed.ok();
  });
  return failed;
}

// Of two mirrored states of a map.
template <typename K, typename V>
Result<void> writeDifference(int fd, const InnerSpec& spec, const Entries<K, V>& from, const Entries<K, V>& to,
                             size_t& writes) {
  return writeDifference(fd, spec, from.begin(), from.end(), to.begin(), to.end(),
                         [](const K& k) -> const K& { return k; }, writes);
}

// Of the exact-port blocks of two compiled policies (see exactBlock()).
using ExactRun = std::pair<const compiler::PolicyEntry*, const compiler::PolicyEntry*>;
inline Result<void> writeExactDifference(int fd, const InnerSpec& spec, ExactRun from, ExactRun to, size_t& writes) {
  return writeDifference(fd, spec, from.first, from.second, to.first, to.second, compiler::exactKey, writes);
}

// Writes the whole `want` into an empty map.
template <typename K, typename V>
Result<void> writeAll(int fd, const InnerSpec& spec, const Entries<K, V>& want, size_t& writes) {
  for (const auto& [k, v] : want) {
    if (auto r = upsertOne(fd, spec, k, v, writes, want.size()); !r) return r;
  }
  return {};
}

}  // namespace microseg::datapath
