// The cluster keys of the wire identity (bpf/abi.h: ms_wire_opt,
// ms_wire_keys): which the kernel accepts on SYNs from other nodes and which
// it signs this node's SYNs with.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <ctime>
#include <set>

#include "common/kernel_clock.h"
#include "datapath/bpf_datapath.h"
#include "datapath/map_writes.h"
#include "microseg.skel.h"

namespace microseg::datapath {

int64_t taiOffsetNs() {
  timespec tai{}, mono{};
  clock_gettime(CLOCK_TAI, &tai);
  clock_gettime(CLOCK_MONOTONIC, &mono);
  return (static_cast<int64_t>(tai.tv_sec) - mono.tv_sec) * 1000000000 + (tai.tv_nsec - mono.tv_nsec);
}

Result<void> BpfDatapath::refreshClock() {
  // The observed edges' clock (bpf/lib/edges.bpf.h): one store into the
  // mapped .bss, the clock bpf_ktime_get_coarse_ns() reads.
  __atomic_store_n(&skel_->bss->ms_edge_clock_ns, kernelCoarseNs(), __ATOMIC_RELAXED);
  const int64_t now = taiOffsetNs();
  const int64_t moved = now - config_.tai_offset_ns;
  if (moved > -10000000 && moved < 10000000) return {};
  ms_config next = config_;
  next.tai_offset_ns = now;
  const uint32_t zero = 0;
  if (auto r = updateElem(bpf_map__fd(skel_->maps.ms_config), "ms_config", &zero, &next); !r) return r;
  config_ = next;
  return {};
}

Result<void> BpfDatapath::setWireKeys(const std::vector<WireKey>& accepted, uint8_t signKeyId) {
  const int fd = bpf_map__fd(skel_->maps.ms_wire_keys);
  std::set<uint32_t> keep;
  bool signable = signKeyId == 0;
  for (const auto& k : accepted) {
    if (k.id == 0) return Error{"set wire keys", "ms_wire_keys", EINVAL, "key id 0 is reserved"};
    if (k.id == signKeyId) signable = true;
  }
  if (!signable) return Error{"set wire keys", "ms_wire_keys", EINVAL, "the signing key is not an accepted one"};
  // New keys first, then the signing id, then the retired keys go: a SYN
  // is never signed with a key this node does not accept itself.
  for (const auto& k : accepted) {
    ms_wire_key v{};
    v.k0 = k.k0;
    v.k1 = k.k1;
    v.flags = MS_WIRE_KEY_F_VALID;
    const uint32_t id = k.id;
    if (auto r = updateElem(fd, "ms_wire_keys", &id, &v); !r) return r;
    keep.insert(id);
  }
  if (config_.wire_key_id != signKeyId) {
    ms_config next = config_;
    next.wire_key_id = signKeyId;
    const uint32_t zero = 0;
    if (auto r = updateElem(bpf_map__fd(skel_->maps.ms_config), "ms_config", &zero, &next); !r) return r;
    config_ = next;
  }
  if (auto r = syncSigner(); !r) return r;
  const ms_wire_key none{};
  for (uint32_t id = 1; id < MS_WIRE_MAX_KEYS; id++) {
    if (keep.count(id)) continue;
    ms_wire_key cur{};
    if (bpf_map_lookup_elem(fd, &id, &cur) != 0) return sysError("lookup in map", "ms_wire_keys");
    if (cur.flags == 0 && cur.k0 == 0 && cur.k1 == 0) continue;
    if (auto r = updateElem(fd, "ms_wire_keys", &id, &none); !r) return r;
  }
  return {};
}

}  // namespace microseg::datapath
