// A policy reload, as one unit: the policy paths are read (documents), the
// set is validated (model), identities assigned, entries compiled, the
// cgroups classified, and the datapath writes the new generation into its
// inactive slot and flips. All of it or nothing: on any failure the
// generation in force stays, and the compiled entries it lent (a one-rule
// change edits them in place) are handed back.
//
//   paths ─► loader ─► bundle ─► identities ─► compiler ─► cgroup scan ─► datapath
//
// The Reloader owns what this needs between reloads (the loader's document
// cache, the compiler's part cache, the rule registry) and the generation
// in force; the daemon asks for reloads and reads the generation.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "compiler/compiler.h"
#include "datapath/datapath.h"
#include "diff/staged.h"
#include "identity/cgroup_scanner.h"
#include "identity/identities.h"
#include "policy/model.h"
#include "policy/parser.h"

namespace microseg::daemon {

// The generation in force: what the kernel holds, and what the views
// (status, explain, policy show, metrics) explain it with.
struct Generation {
  uint64_t number = 0;
  bool loaded = false;  // a policy set of ours (not only the adopted maps of an earlier run)
  policy::Bundle bundle;
  // The bundle's Workloads indexed for cgroup scans (kept while they are
  // the same objects: reloads that edit policies and every rescan reuse it).
  std::shared_ptr<const identity::WorkloadMatcher> matcher;
  identity::IdentityTable ids;
  compiler::CompiledPolicy compiled;
  // `bundle` holds the policies in force only: staged ones (spec.staged)
  // are here, with "in force + staged" compiled for userspace judging;
  // null when the set has none.
  std::shared_ptr<const diff::StagedSet> staged;
  std::vector<std::string> paths;
  int64_t appliedAtNs = 0;  // realtime
};

struct ReloadRequest {
  std::vector<std::string> paths;
  std::string trigger;  // for the log and status: "startup", "SIGHUP", "apply (uid 0)", ...
  // A set without any Workload may replace one with some (every workload
  // becomes unmanaged) only when asked for.
  bool allowEmpty = false;
  // Runtime per-workload mode overrides (`microseg mode X --workload W`).
  std::map<std::string, uint32_t> modeOverrides;
  // Addresses of this host and of workloads' netns (the ipcache's run-time part).
  std::vector<datapath::AddressEntry> addresses;
  // Every file-system access of the load (nullptr: the daemon's own, root).
  const policy::FileAccess* files = nullptr;
  // Cluster mode: the fleet's identities (nullptr: numbered here).
  const identity::FleetIdentities* fleet = nullptr;
};

struct ReloadOutcome {
  bool ok = false;
  std::vector<std::string> errors;  // "FILE:LINE:COL: error: ..." or "datapath: ..."
  // The classification the new generation was written with (ok only).
  std::vector<identity::CgroupInfo> cgroups;
  struct Timings {
    double total = 0, read = 0, compile = 0, apply = 0;  // ms
  } ms;
  size_t mapWrites = 0;
};

// A policy set compiled beside the generation in force and never applied
// (`policy diff`): identities assigned as a reload would assign them (those
// in force kept, the fleet's in cluster mode), its own rule registry.
struct Candidate {
  bool ok = false;
  std::vector<std::string> errors;  // "FILE:LINE:COL: error: ..."
  Generation gen;                    // number: the one in force (nothing new is in force)
  compiler::RuleRegistry rules;
};

class Reloader {
 public:
  struct Settings {
    std::string cgroupRoot;
    compiler::DefaultEnforcement defaultEnforcement = compiler::DefaultEnforcement::Always;
  };
  Reloader(datapath::Datapath& datapath, Settings settings);

  // The generation of an adopted earlier run's maps: new ones continue its numbers.
  void adopt(uint64_t number) { gen_.number = number; }
  // The numbering of a restarted daemon's last run (edges/numbering.h):
  // the first reload gives the label sets, ranges and rules it knew the
  // same numbers again. Before the first reload only; false (nothing taken)
  // if the rule ids cannot be.
  bool resumeNumbering(identity::IdentityTable previous,
                       const std::vector<compiler::RuleRegistry::PolicyIds>& rules, uint32_t nextRuleId);
  ReloadOutcome reload(const ReloadRequest& request);
  // The generation `request` would make, built with a loader and compiler of
  // its own: the caches, the registry, the generation in force and the
  // kernel are left exactly as they are. Reads request.paths, .files and
  // .fleet only.
  Candidate candidate(const ReloadRequest& request) const;

  const Generation& inForce() const { return gen_; }
  const compiler::RuleRegistry& rules() const { return registry_; }
  const policy::PolicyLoader::Stats& loaderStats() const { return loader_.lastStats(); }
  const compiler::Compiler::Stats& compilerStats() const { return compiler_.lastStats(); }

 private:
  datapath::Datapath& datapath_;
  Settings settings_;
  policy::PolicyLoader loader_;  // remembers the documents it read
  compiler::RuleRegistry registry_;
  compiler::Compiler compiler_;  // remembers its work between reloads
  Generation gen_;
  uint64_t fleetVersion_ = 0;  // of the fleet identities gen_.ids was assigned with
};

}  // namespace microseg::daemon
