// FQDN peers (bpf/abi.h: ms_fqdn_names): the names a generation's policies
// use, written before it is in force, and the bindings DNS answers made.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <algorithm>
#include <cstring>
#include <set>

#include "datapath/bpf_datapath.h"
#include "datapath/map_writes.h"
#include "microseg.skel.h"

namespace microseg::datapath {

namespace {

bool sameName(const ms_fqdn_name_value& a, const ms_fqdn_name_value& b) {
  return a.peer == b.peer && a.len == b.len && std::memcmp(a.text, b.text, sizeof(a.text)) == 0;
}

}  // namespace

// What the map holds is read first (an adopted map holds the last run's
// names). An entry that is gone or changed is removed, and so are the
// bindings of a peer that no longer stands for what it did (its number
// may be given to another pattern): all before the generation is in
// force, so no binding ever stands for a pattern it was not made for.
Result<void> BpfDatapath::writeFqdnNames(const std::vector<std::pair<ms_fqdn_name_key, ms_fqdn_name_value>>& want) {
  const int names = bpf_map__fd(skel_->maps.ms_fqdn_names);
  std::vector<std::pair<ms_fqdn_name_key, ms_fqdn_name_value>> held;
  ms_fqdn_name_key key{}, next{};
  bool first = true;
  while (bpf_map_get_next_key(names, first ? nullptr : &key, &next) == 0) {
    first = false;
    key = next;
    ms_fqdn_name_value v{};
    if (bpf_map_lookup_elem(names, &key, &v) == 0) held.emplace_back(key, v);
  }
  auto wanted = [&](const ms_fqdn_name_key& k) -> const ms_fqdn_name_value* {
    for (const auto& [wk, wv] : want) {
      if (std::memcmp(&wk, &k, sizeof(k)) == 0) return &wv;
    }
    return nullptr;
  };
  std::set<uint32_t> stale;  // peers whose bindings must go
  std::set<uint32_t> kept;
  for (const auto& [k, v] : held) {
    const ms_fqdn_name_value* w = wanted(k);
    if (w != nullptr && sameName(*w, v)) {
      kept.insert(v.peer);
      continue;
    }
    stale.insert(v.peer);
    if (bpf_map_delete_elem(names, &k) != 0 && errno != ENOENT) return sysError("delete from map", "ms_fqdn_names");
  }
  // A peer number now given to a new pattern: what it bound was another's.
  for (const auto& [k, v] : want) {
    if (!kept.count(v.peer)) stale.insert(v.peer);
  }
  if (!stale.empty()) {
    const int bindings = bpf_map__fd(skel_->maps.ms_fqdn_bindings);
    std::vector<ms_fqdn_binding_key> drop;
    ms_fqdn_binding_key bk{}, bnext{};
    first = true;
    while (bpf_map_get_next_key(bindings, first ? nullptr : &bk, &bnext) == 0) {
      first = false;
      bk = bnext;
      ms_fqdn_binding_value v{};
      if (bpf_map_lookup_elem(bindings, &bk, &v) == 0 && stale.count(v.peer)) drop.push_back(bk);
    }
    for (const auto& k : drop) {
      if (bpf_map_delete_elem(bindings, &k) != 0 && errno != ENOENT) {
        return sysError("delete from map", "ms_fqdn_bindings");
      }
    }
  }
  for (const auto& [k, v] : want) {
    if (auto r = updateElem(names, "ms_fqdn_names", &k, &v); !r) return r;
  }
  return {};
}

Result<std::vector<FqdnBinding>> BpfDatapath::fqdnBindings() const {
  const int bindings = bpf_map__fd(skel_->maps.ms_fqdn_bindings);
  const int texts = bpf_map__fd(skel_->maps.ms_fqdn_texts);
  std::vector<FqdnBinding> out;
  ms_fqdn_binding_key key{}, next{};
  bool first = true;
  while (bpf_map_get_next_key(bindings, first ? nullptr : &key, &next) == 0) {
    first = false;
    key = next;
    FqdnBinding b;
    b.key = key;
    if (bpf_map_lookup_elem(bindings, &key, &b.value) != 0) continue;  // evicted meanwhile
    ms_fqdn_text t{};
    if (bpf_map_lookup_elem(texts, &b.value.name, &t) == 0) b.name.assign(t.name, strnlen(t.name, sizeof(t.name)));
    out.push_back(std::move(b));
  }
  return out;
}

}  // namespace microseg::datapath
