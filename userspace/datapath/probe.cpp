#include "datapath/probe.h"

#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <sys/stat.h>

#include <memory>
#include <utility>

#include "common/fd.h"

namespace microseg::datapath {
namespace {

using Kind = KernelFeature::Kind;

constexpr const char* kProbeOp = "probe kernel features";
constexpr const char* kProbeObject = "running kernel";

KernelFeature helper(std::string name, const char* since, bpf_prog_type type, bpf_func_id id) {
  KernelFeature f{Kind::Helper, std::move(name), since};
  f.progType = type;
  f.helper = id;
  return f;
}

std::vector<KernelFeature> makeFeatures() {
  std::vector<KernelFeature> v = {
      {Kind::File, "BTF of the running kernel (/sys/kernel/btf/vmlinux, CONFIG_DEBUG_INFO_BTF)", "5.4",
       "/sys/kernel/btf/vmlinux"},
      {Kind::ProgType, "cgroup_skb programs", "4.10", nullptr, nullptr, BPF_PROG_TYPE_CGROUP_SKB},
      {Kind::ProgType, "cgroup/connect and cgroup/sendmsg programs (cgroup_sock_addr)", "4.18", nullptr, nullptr,
       BPF_PROG_TYPE_CGROUP_SOCK_ADDR},
      {Kind::ProgType, "sockops programs (connection ages; the wire identity of cluster mode)", "4.13", nullptr, nullptr,
       BPF_PROG_TYPE_SOCK_OPS},
      {Kind::CgroupLink, "BPF links on cgroups (BPF_LINK_CREATE for cgroup/connect4)", "5.7"},
  };
  auto map = [&](const char* name, const char* since, bpf_map_type t) {
    KernelFeature f{Kind::MapType, name, since};
    f.mapType = t;
    v.push_back(f);
  };
  map("hash maps", "3.19", BPF_MAP_TYPE_HASH);
  map("array maps", "3.19", BPF_MAP_TYPE_ARRAY);
  map("per-CPU array maps", "4.6", BPF_MAP_TYPE_PERCPU_ARRAY);
  map("LRU hash maps", "4.10", BPF_MAP_TYPE_LRU_HASH);
  map("LPM trie maps", "4.11", BPF_MAP_TYPE_LPM_TRIE);
  map("array-of-maps maps", "4.12", BPF_MAP_TYPE_ARRAY_OF_MAPS);
  map("socket storage maps (BPF_MAP_TYPE_SK_STORAGE)", "5.2", BPF_MAP_TYPE_SK_STORAGE);
  map("ring buffer maps (BPF_MAP_TYPE_RINGBUF)", "5.8", BPF_MAP_TYPE_RINGBUF);
  // Helpers: `since` is the helper's first version; a program type may have
  // gained it later (the probe asks the kernel for each type).
  struct H {
    const char* name;
    const char* since;
    bpf_func_id id;
    bool sockAddr, skb;
    bool sockOps = false;
  };
  const H helpers[] = {
      {"bpf_map_lookup_elem()", "3.19", BPF_FUNC_map_lookup_elem, true, true, true},
      {"bpf_map_update_elem()", "3.19", BPF_FUNC_map_update_elem, true, true},
      {"bpf_ktime_get_ns()", "4.1", BPF_FUNC_ktime_get_ns, true, true},
      {"bpf_get_current_pid_tgid()", "4.2", BPF_FUNC_get_current_pid_tgid, true, true},
      {"bpf_get_current_comm()", "4.2", BPF_FUNC_get_current_comm, true, true},
      {"bpf_get_socket_cookie() (socket cookies)", "4.12", BPF_FUNC_get_socket_cookie, true, true},
      {"bpf_skb_load_bytes_relative()", "4.18", BPF_FUNC_skb_load_bytes_relative, false, true},
      {"bpf_sk_lookup_tcp() (the kernel's socket lookup)", "4.20", BPF_FUNC_sk_lookup_tcp, true, true},
      {"bpf_sk_lookup_udp()", "4.20", BPF_FUNC_sk_lookup_udp, true, true},
      {"bpf_sk_release()", "4.20", BPF_FUNC_sk_release, true, true},
      {"bpf_sk_fullsock()", "5.1", BPF_FUNC_sk_fullsock, false, true},
      {"bpf_sk_storage_get() (socket storage)", "5.2", BPF_FUNC_sk_storage_get, true, true, true},
      {"bpf_get_netns_cookie()", "5.7", BPF_FUNC_get_netns_cookie, true, true, true},
      {"bpf_ringbuf_reserve() (ring buffer)", "5.8", BPF_FUNC_ringbuf_reserve, true, true},
      {"bpf_ringbuf_submit()", "5.8", BPF_FUNC_ringbuf_submit, true, true},
      {"bpf_ringbuf_query()", "5.8", BPF_FUNC_ringbuf_query, true, true},
      {"bpf_ktime_get_coarse_ns()", "5.11", BPF_FUNC_ktime_get_coarse_ns, true, true, true},
      {"bpf_loop() (the deep-cgroup search)", "5.17", BPF_FUNC_loop, true, true, true},
      {"bpf_sock_ops_cb_flags_set()", "4.17", BPF_FUNC_sock_ops_cb_flags_set, false, false, true},
      {"bpf_reserve_hdr_opt() (TCP header options)", "5.10", BPF_FUNC_reserve_hdr_opt, false, false, true},
      {"bpf_store_hdr_opt()", "5.10", BPF_FUNC_store_hdr_opt, false, false, true},
  };
  for (const auto& h : helpers) {
    if (h.sockAddr) {
      v.push_back(helper(std::string(h.name) + " in cgroup/connect and sendmsg programs", h.since,
                         BPF_PROG_TYPE_CGROUP_SOCK_ADDR, h.id));
    }
    if (h.skb) v.push_back(helper(std::string(h.name) + " in cgroup_skb programs", h.since, BPF_PROG_TYPE_CGROUP_SKB, h.id));
    if (h.sockOps) v.push_back(helper(std::string(h.name) + " in sockops programs", h.since, BPF_PROG_TYPE_SOCK_OPS, h.id));
  }
  v.push_back({Kind::Kfunc, "the bpf_rdonly_cast() kfunc (a socket's creator cgroup)", "6.2", "bpf_rdonly_cast"});
  v.push_back({Kind::BtfMember, "struct cgroup's ancestors[] array (cgroup ancestors at any depth)", "6.1",
               "cgroup", "ancestors"});
  v.push_back({Kind::BtfMember, "struct sock_cgroup_data's cgroup pointer (a socket's cgroup)", "5.15",
               "sock_cgroup_data", "cgroup"});
  return v;
}

struct BtfDeleter {
  void operator()(btf* b) const { btf__free(b); }
};
using BtfPtr = std::unique_ptr<btf, BtfDeleter>;

const btf* vmlinuxBtf() {
  static BtfPtr b(btf__load_vmlinux_btf());
  return libbpf_get_error(b.get()) == 0 ? b.get() : nullptr;
}

bool btfHasMember(const char* type, const char* member) {
  const btf* b = vmlinuxBtf();
  if (b == nullptr) return false;
  const int id = btf__find_by_name_kind(b, type, BTF_KIND_STRUCT);
  if (id <= 0) return false;
  const btf_type* t = btf__type_by_id(b, uint32_t(id));
  const btf_member* m = btf_members(t);
  for (uint16_t i = 0; i < btf_vlen(t); i++, m++) {
    if (std::string(btf__name_by_offset(b, m->name_off)) == member) return true;
  }
  return false;
}

// BPF_LINK_CREATE with a cgroup attach type and no valid cgroup: a kernel
// with cgroup links refuses the fd (EBADF), one without refuses the
// command or the attach type (EINVAL). Nothing is attached either way.
bool cgroupLinks() {
  // r0 = 1; exit
  bpf_insn insns[2] = {};
  insns[0].code = BPF_ALU64 | BPF_MOV | BPF_K;
  insns[0].dst_reg = BPF_REG_0;
  insns[0].imm = 1;
  insns[1].code = BPF_JMP | BPF_EXIT;
  LIBBPF_OPTS(bpf_prog_load_opts, opts, .expected_attach_type = BPF_CGROUP_INET4_CONNECT);
  UniqueFd prog(bpf_prog_load(BPF_PROG_TYPE_CGROUP_SOCK_ADDR, "ms_probe", "GPL", insns, 2, &opts));
  if (!prog) return false;
  UniqueFd link(bpf_link_create(prog.get(), -1, BPF_CGROUP_INET4_CONNECT, nullptr));
  return !link && errno == EBADF;
}

}  // namespace

const std::vector<KernelFeature>& kernelFeatures() {
  static const std::vector<KernelFeature> v = makeFeatures();
  return v;
}

std::string missingFeatureLine(const KernelFeature& f) {
  return std::string("kernel lacks ") + f.name + " (Linux >= " + f.since + ")";
}

bool kernelHas(const KernelFeature& f) {
  switch (f.kind) {
    case Kind::File: {
      struct stat st {};
      return ::stat(f.what, &st) == 0;
    }
    case Kind::ProgType:
      return libbpf_probe_bpf_prog_type(f.progType, nullptr) == 1;
    case Kind::MapType:
      return libbpf_probe_bpf_map_type(f.mapType, nullptr) == 1;
    case Kind::Helper:
      return libbpf_probe_bpf_helper(f.progType, f.helper, nullptr) == 1;
    case Kind::Kfunc: {
      const btf* b = vmlinuxBtf();
      return b != nullptr && btf__find_by_name_kind(b, f.what, BTF_KIND_FUNC) > 0;
    }
    case Kind::BtfMember:
      return btfHasMember(f.what, f.member);
    case Kind::CgroupLink:
      return cgroupLinks();
  }
  return false;
}

ProbeReport probeKernel(const std::vector<KernelFeature>& features) {
  ProbeReport r;
  for (const auto& f : features) {
    r.checked++;
    if (!kernelHas(f)) r.missing.push_back(&f);
  }
  return r;
}

Error kernelMissingError(const ProbeReport& report) {
  return Error{kProbeOp, kProbeObject, 0,
               std::to_string(report.missing.size()) + " of " + std::to_string(report.checked) +
                   " features missing (listed above); nothing was attached"};
}

bool isKernelMissing(const Error& e) { return e.op == kProbeOp && e.object == kProbeObject; }

}  // namespace microseg::datapath
