// Temporary access (bpf/abi.h: ms_grants): one map for every generation,
// written as the difference from what it holds.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <algorithm>

#include "datapath/bpf_datapath.h"
#include "datapath/map_writes.h"
#include "microseg.skel.h"

namespace microseg::datapath {

Result<void> BpfDatapath::setGrants(const GrantEntries& entries) {
  const int fd = bpf_map__fd(skel_->maps.ms_grants);
  if (!grantsRead_) {
    // An adopted map holds the last run's entries: start from them, so
    // only differences are written (and stale ones removed).
    ms_grant_key key{}, next{};
    bool first = true;
    while (bpf_map_get_next_key(fd, first ? nullptr : &key, &next) == 0) {
      first = false;
      key = next;
      ms_grant_value v{};
      if (bpf_map_lookup_elem(fd, &key, &v) == 0) grants_.emplace_back(key, v);
    }
    std::sort(grants_.begin(), grants_.end(),
              [](const auto& a, const auto& b) { return keyLess(a.first, b.first); });
    grantsRead_ = true;
  }
  const auto d = diff(grants_, entries);
  // Removes first (they make room); on an error the mirror is read again
  // next time.
  for (const auto& k : d.removes) {
    if (bpf_map_delete_elem(fd, &k) != 0 && errno != ENOENT) {
      grantsRead_ = false;
      grants_.clear();
      return sysError("delete from map", "ms_grants");
    }
  }
  for (const auto& [k, v] : d.upserts) {
    if (auto r = updateElem(fd, "ms_grants", &k, &v); !r) {
      grantsRead_ = false;
      grants_.clear();
      return r;
    }
  }
  grants_ = entries;
  return {};
}

}  // namespace microseg::datapath
