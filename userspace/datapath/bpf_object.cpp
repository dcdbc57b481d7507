#include "datapath/bpf_object.h"

#include <bpf/btf.h>

#include <set>

namespace microseg::datapath {
namespace {

constexpr const char* kPerRunTag = "microseg:per_run";  // MS_PER_RUN, bpf/lib/maps.bpf.h

// Names of the variables the object's BTF tags MS_PER_RUN.
std::set<std::string> perRunMaps(bpf_object* obj) {
  std::set<std::string> out;
  const btf* b = bpf_object__btf(obj);
  if (b == nullptr) return out;
  const uint32_t n = btf__type_cnt(b);
  for (uint32_t id = 1; id < n; id++) {
    const btf_type* t = btf__type_by_id(b, id);
    if (!btf_is_decl_tag(t) || std::string(btf__name_by_offset(b, t->name_off)) != kPerRunTag) continue;
    const btf_type* target = btf__type_by_id(b, t->type);
    if (target != nullptr && btf_is_var(target)) out.insert(btf__name_by_offset(b, target->name_off));
  }
  return out;
}

}  // namespace

Result<InnerSpec> innerSpecOf(bpf_map* outer) {
  const bpf_map* inner = bpf_map__inner_map(outer);
  if (inner == nullptr) return Error{"read inner map declaration", bpf_map__name(outer), EINVAL, "not a map of maps"};
  InnerSpec s;
  s.type = bpf_map__type(inner);
  s.name = std::string(bpf_map__name(outer)) + "_in";
  s.keySize = bpf_map__key_size(inner);
  s.valueSize = bpf_map__value_size(inner);
  s.maxEntries = bpf_map__max_entries(inner);
  s.flags = bpf_map__map_flags(inner);
  return s;
}

std::vector<bpf_map*> pinnedMaps(bpf_object* obj) {
  const std::set<std::string> perRun = perRunMaps(obj);
  std::vector<bpf_map*> out;
  bpf_map* m = nullptr;
  bpf_object__for_each_map(m, obj) {
    if (bpf_map__is_internal(m) || perRun.count(bpf_map__name(m)) != 0) continue;
    out.push_back(m);
  }
  return out;
}

std::vector<bpf_program*> programs(bpf_object* obj) {
  std::vector<bpf_program*> out;
  bpf_program* p = nullptr;
  bpf_object__for_each_program(p, obj) out.push_back(p);
  return out;
}

bool attachedOnDemand(const bpf_program* prog) {
  return bpf_program__type(prog) == BPF_PROG_TYPE_SOCK_OPS;
}

std::string linkPinName(const bpf_program* prog) { return std::string("link_") + bpf_program__name(prog); }

}  // namespace microseg::datapath
