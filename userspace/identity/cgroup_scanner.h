// Which cgroup under the managed root is which workload.
//
// A cgroup matches a Workload when its path relative to the root matches one
// of the workload's `cgroups` globs (fnmatch, `*` does not cross '/'). A cgroup
// that matches nothing inherits the workload of its nearest matched ancestor;
// with none it is unmanaged (and gets no entry: the datapath treats a cgroup
// without an entry or matched ancestor as MS_IDENTITY_UNMANAGED).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "bpf/abi.h"
#include "common/result.h"
#include "identity/identities.h"
#include "policy/model.h"

namespace microseg::identity {

struct CgroupInfo {
  uint64_t id = 0;
  std::string path;      // relative to the root, with a leading '/' ("/" = the root)
  std::string workload;  // empty = unmanaged
  uint32_t identity = 0;
  bool inherited = false;  // identity comes from an ancestor
  // Some Workload pattern could match a cgroup created below this one, so an
  // unclassified new descendant must fail closed (MS_CGROUP_F_PENDING_CHILDREN).
  bool pendingChildren = false;
  uint32_t mapIdentity() const { return identity != 0 ? identity : MS_IDENTITY_UNMANAGED; }
};

// True if a cgroup created below `relPath` ("" = the root) could match one of
// the bundle's workload patterns: some pattern has a proper prefix of path
// components that matches relPath.
bool mayHaveWorkloadChildren(const policy::Bundle& bundle, const std::string& relPath);

// Pure matching: workload for a relative path (no leading '/'), given the
// workloads in bundle order. More specific wins: a pattern without wildcards
// beats one with, then the longer pattern, then the workload name order.
// Returns nullptr when nothing matches.
const policy::Workload* matchWorkload(const policy::Bundle& bundle, const std::string& relPath);

struct ScanLimits {
  uint32_t maxDepth = 32;
  uint32_t maxCgroups = 100000;
};

// Walk the cgroup tree under `root` and classify every cgroup.
Result<std::vector<CgroupInfo>> scanCgroups(const std::string& root, const policy::Bundle& bundle,
                                            const IdentityTable& ids, const ScanLimits& limits = {});

}  // namespace microseg::identity
