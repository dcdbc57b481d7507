// The kernel features the datapath needs, checked before anything is
// loaded or attached: on a kernel without one, the daemon refuses to start
// (fail closed: nothing attached, nothing half-enforced) and names each
// missing feature with the Linux version that has it.
#pragma once

#include <bpf/libbpf.h>

#include <string>
#include <vector>

#include "common/result.h"

namespace microseg::datapath {

// The exit status of microsegd when the kernel lacks a feature: what the
// daemon returns for an error isKernelMissing() recognises.
inline constexpr int kExitKernelMissing = 3;

struct KernelFeature {
  enum class Kind {
    File,       // a path exists: `what`
    ProgType,   // the program type `progType` loads
    MapType,    // the map type `mapType` can be created
    Helper,     // programs of `progType` may call helper `helper`
    Kfunc,      // the kernel's BTF has the function `what`
    BtfMember,  // the kernel's BTF has struct `what` with member `member`
    CgroupLink, // BPF_LINK_CREATE takes cgroup attach types
  };
  Kind kind;
  std::string name;   // what it is, as the message says it
  const char* since;  // the first Linux version that has it
  const char* what = nullptr;
  const char* member = nullptr;
  bpf_prog_type progType = BPF_PROG_TYPE_UNSPEC;
  bpf_map_type mapType = BPF_MAP_TYPE_UNSPEC;
  bpf_func_id helper = BPF_FUNC_unspec;
};

// Every feature the datapath uses, in the order they are checked.
const std::vector<KernelFeature>& kernelFeatures();

// One line for a missing feature: "kernel lacks <name> (Linux >= <since>)".
std::string missingFeatureLine(const KernelFeature& f);

// Is `f` there on the running kernel? (Loads tiny programs and makes tiny
// maps, never attaches anything.)
bool kernelHas(const KernelFeature& f);

struct ProbeReport {
  std::vector<const KernelFeature*> missing;
  size_t checked = 0;
};
// `missing` points into `features`, which must outlive the report.
ProbeReport probeKernel(const std::vector<KernelFeature>& features = kernelFeatures());

// What BpfDatapath::load() fails with when `report` misses a feature (the
// features themselves are logged a line each), and the test for it.
Error kernelMissingError(const ProbeReport& report);
bool isKernelMissing(const Error& e);

}  // namespace microseg::datapath
