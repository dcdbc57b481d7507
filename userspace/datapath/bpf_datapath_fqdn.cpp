// FQDN peers (bpf/abi.h: ms_fqdn_names): the names a generation's policies
// use, written before it is in force, and the bindings DNS answers made.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>

#include "datapath/bpf_datapath.h"
#include "datapath/map_writes.h"
#include "policy/cidr.h"
#include "microseg.skel.h"

namespace microseg::datapath {

namespace {

bool sameName(const ms_fqdn_name_value& a, const ms_fqdn_name_value& b) {
  return a.peer == b.peer && a.len == b.len && std::memcmp(a.text, b.text, sizeof(a.text)) == 0;
}

// The nameservers of a resolv.conf (`nameserver ADDR` lines).
std::vector<std::string> resolvConfNameservers(const std::string& path) {
  std::vector<std::string> out;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream words(line);
    std::string key, addr;
    if (words >> key >> addr && key == "nameserver") out.push_back(addr);
  }
  return out;
}

}  // namespace

// A setting of this run: the map is emptied (an adopted one holds the last
// run's) and filled. An address that does not parse is an error naming it.
Result<void> BpfDatapath::writeFqdnResolvers(const std::vector<std::string>& addresses) {
  std::vector<std::string> wanted = addresses;
  const bool fromResolvConf = wanted.empty();
  if (fromResolvConf) wanted = resolvConfNameservers("/etc/resolv.conf");
  std::vector<ms_addr> parsed;
  for (const auto& a : wanted) {
    auto addr = policy::parseAddress(a);
    if (!addr) {
      if (fromResolvConf) {
        spdlog::warn("fqdn: /etc/resolv.conf names '{}', not an address: its answers bind no names", a);
        continue;
      }
      return Error{"set fqdn resolvers", a, EINVAL, "not an IPv4 or IPv6 address"};
    }
    parsed.push_back(*addr);
  }
  if (parsed.size() > MS_MAX_FQDN_RESOLVERS) {
    return Error{"set fqdn resolvers", "--fqdn-resolvers", EINVAL,
                 "more than " + std::to_string(MS_MAX_FQDN_RESOLVERS) + " addresses"};
  }
  const int fd = bpf_map__fd(skel_->maps.ms_fqdn_resolvers);
  std::vector<ms_addr> held;
  ms_addr key{}, next{};
  bool first = true;
  while (bpf_map_get_next_key(fd, first ? nullptr : &key, &next) == 0) {
    first = false;
    key = next;
    held.push_back(key);
  }
  for (const auto& k : held) {
    if (bpf_map_delete_elem(fd, &k) != 0 && errno != ENOENT) return sysError("delete from map", "ms_fqdn_resolvers");
  }
  const uint8_t one = 1;
  for (const auto& a : parsed) {
    if (auto r = updateElem(fd, "ms_fqdn_resolvers", &a, &one); !r) return r;
  }
  std::string list;
  for (const auto& a : parsed) list += (list.empty() ? "" : ", ") + policy::formatAddress(a);
  spdlog::info("fqdn: answers of {} bind names{}", list.empty() ? "no resolver" : list,
               fromResolvConf ? " (the nameservers of /etc/resolv.conf)" : "");
  return {};
}

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
    // A slot of a stale peer is emptied; an entry left with none goes.
    const int bindings = bpf_map__fd(skel_->maps.ms_fqdn_bindings);
    std::vector<std::pair<ms_fqdn_binding_key, ms_fqdn_binding_value>> touched;
    ms_fqdn_binding_key bk{}, bnext{};
    first = true;
    while (bpf_map_get_next_key(bindings, first ? nullptr : &bk, &bnext) == 0) {
      first = false;
      bk = bnext;
      ms_fqdn_binding_value v{};
      if (bpf_map_lookup_elem(bindings, &bk, &v) != 0) continue;
      bool changed = false;
      for (auto& slot : v.slot) {
        if (slot.peer != 0 && stale.count(slot.peer)) {
          slot = ms_fqdn_bound{};
          changed = true;
        }
      }
      if (changed) touched.emplace_back(bk, v);
    }
    for (const auto& [k, v] : touched) {
      const bool empty = std::all_of(std::begin(v.slot), std::end(v.slot), [](const ms_fqdn_bound& b) { return b.peer == 0; });
      if (empty) {
        if (bpf_map_delete_elem(bindings, &k) == 0) {
          fqdnRemoved_++;
        } else if (errno != ENOENT) {
          return sysError("delete from map", "ms_fqdn_bindings");
        }
      } else if (bpf_map_update_elem(bindings, &k, &v, BPF_EXIST) != 0 && errno != ENOENT) {
        return sysError("update of map", "ms_fqdn_bindings");
      }
    }
  }
  for (const auto& [k, v] : want) {
    if (auto r = updateElem(names, "ms_fqdn_names", &k, &v); !r) return r;
  }
  return {};
}

Result<std::string> BpfDatapath::fqdnText(uint64_t hash) const {
  ms_fqdn_text t{};
  if (bpf_map_lookup_elem(bpf_map__fd(skel_->maps.ms_fqdn_texts), &hash, &t) != 0) {
    if (errno == ENOENT) return std::string();
    return sysError("lookup in map", "ms_fqdn_texts");
  }
  return std::string(t.name, strnlen(t.name, sizeof(t.name)));
}

Result<Datapath::FqdnTable> BpfDatapath::fqdnTable() const {
  const int bindings = bpf_map__fd(skel_->maps.ms_fqdn_bindings);
  FqdnTable t;
  t.removed = fqdnRemoved_;
  ms_fqdn_binding_key key{}, next{};
  bool first = true;
  while (bpf_map_get_next_key(bindings, first ? nullptr : &key, &next) == 0) {
    first = false;
    key = next;
    t.entries++;
  }
  return t;
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
    ms_fqdn_binding_value v{};
    if (bpf_map_lookup_elem(bindings, &key, &v) != 0) continue;  // evicted meanwhile
    for (const auto& slot : v.slot) {
      if (slot.peer == 0) continue;
      FqdnBinding b;
      b.key = key;
      b.value = slot;
      ms_fqdn_text t{};
      if (bpf_map_lookup_elem(texts, &slot.name, &t) == 0) b.name.assign(t.name, strnlen(t.name, sizeof(t.name)));
      out.push_back(std::move(b));
    }
  }
  return out;
}

}  // namespace microseg::datapath
