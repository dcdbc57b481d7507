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
#include <string_view>
#include <unordered_map>
#include <unordered_set>
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

// matchWorkload() and mayHaveWorkloadChildren() for every cgroup of a scan,
// with the patterns indexed once: a pattern without wildcards or escapes
// (the usual "system.slice/payments.service") is found by a hash lookup,
// only the others are tried one by one. Same answers as the functions
// above (tested against them on random patterns and paths); a scan of a
// tree with 10k literal workload patterns no longer calls fnmatch 10k
// times per cgroup. It holds the Workloads it was built from: the daemon
// keeps one while the Workloads stay the same objects (a policy edit does
// not change them), for its reloads and its periodic rescans.
class WorkloadMatcher {
 public:
  explicit WorkloadMatcher(const policy::Bundle& bundle);
  const policy::Workload* match(const std::string& relPath) const;
  bool mayHaveChildren(const std::string& relPath) const;
  // Built from these very Workload objects?
  bool builtFrom(const policy::Bundle& bundle) const { return workloads_.sameObjects(bundle.workloads); }

 private:
  struct Literal {
    const policy::Workload* workload;
    const std::string* pattern;
  };
  struct Pattern {  // one with wildcards or escapes
    Literal of;
    std::vector<std::string> prefixes;  // [k]: its first k+1 components
  };
  policy::SharedList<policy::Workload> workloads_;
  bool any_ = false;                                      // some pattern at all
  std::unordered_map<std::string_view, Literal> literal_;  // the best literal pattern per path
  std::unordered_set<std::string_view> literalPrefixes_;   // proper prefixes of literal patterns
  std::vector<Pattern> others_;
};

struct ScanLimits {
  uint32_t maxDepth = 32;
  uint32_t maxCgroups = 100000;
};

// Walk the cgroup tree under `root` and classify every cgroup.
Result<std::vector<CgroupInfo>> scanCgroups(const std::string& root, const policy::Bundle& bundle,
                                            const IdentityTable& ids, const ScanLimits& limits = {});
// The same with the bundle's Workloads already indexed.
Result<std::vector<CgroupInfo>> scanCgroups(const std::string& root, const WorkloadMatcher& matcher,
                                            const IdentityTable& ids, const ScanLimits& limits = {});

}  // namespace microseg::identity
