// microsegd: owns the datapath, the policy generations, the cgroup identity
// view, the flow log and the control socket.
#pragma once

#include <cstdint>
#include <map>
#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "compiler/compiler.h"
#include "flows/flow_record.h"
#include "flows/flow_store.h"
#include "daemon/reload.h"
#include "datapath/datapath.h"
#include "datapath/event_spool.h"
#include "identity/cgroup_scanner.h"
#include "identity/identities.h"
#include "identity/address_watcher.h"
#include "identity/netns.h"
#include "policy/model.h"
#include "policy/watch.h"

namespace microseg::control {
class ControlServer;
}
namespace microseg::metrics {
class HttpEndpoint;
}

namespace microseg::daemon {

struct DaemonConfig {
  std::string cgroupRoot;
  std::vector<std::string> policyPaths;
  uint32_t mode = MS_MODE_MONITOR;
  std::string socketPath = "/run/microseg/microseg.sock";
  std::optional<unsigned> socketGroup;
  std::string stateDir = "/sys/fs/bpf/microseg";
  std::string flowLog;  // "" = none, "-" = stdout
  bool logAllowed = false;
  uint32_t answerTtlSeconds = 30;
  uint32_t rescanIntervalMs = 1000;
  compiler::DefaultEnforcement defaultEnforcement = compiler::DefaultEnforcement::Always;
  bool modeFromFlagOrFile = false;  // only to explain a kept pinned mode in the log
  uint32_t reloadDebounceMs = 300;
  size_t flowStoreSize = 10000;  // aggregated flow records kept in memory
  std::string metricsListen;     // "127.0.0.1:9464"; empty = no metrics endpoint

  nlohmann::json toJson() const;
};

// Outcome of a policy load: applied, or rejected with located errors.
struct ReloadResult {
  bool ok = false;
  uint64_t generation = 0;
  size_t entries = 0;
  std::vector<std::string> errors;  // "FILE:LINE:COL: error: ..." or datapath errors
};

// Makes the datapath for a configuration and this host's netns cookie
// (main.cpp: the kernel's; tests: a fake).
using DatapathFactory =
    std::function<Result<std::unique_ptr<datapath::Datapath>>(const DaemonConfig&, uint64_t hostNetnsCookie)>;

class Daemon {
 public:
  Daemon(DaemonConfig config, DatapathFactory datapath);
  ~Daemon();
  // Runs until SIGINT/SIGTERM. Returns the process exit code.
  int run();

 private:
  int setup();
  void loop();
  void shutdown();

  // All of these expect mu_ held.
  // `allowEmpty`: a set without any Workload may replace one with some
  // (every workload becomes unmanaged); refused otherwise.
  ReloadResult reloadLocked(const std::vector<std::string>& paths, const std::string& why, bool allowEmpty = false);
  // What the reload applied, for the rest of the daemon: the classification,
  // the watched paths, the log line.
  void tookGenerationLocked(const ReloadOutcome& r, const std::string& why);
  // The generation in force (its model, identities and compiled entries).
  const Generation& gen() const { return reloader_->inForce(); }
  void rescanLocked();
  // Addresses of this host and of the workloads' own netns (addresses_'s
  // snapshot) -> ipcache entries.
  std::vector<datapath::AddressEntry> addressEntriesLocked() const;
  // Writes the address watcher's latest snapshot into the ipcache if it is
  // not the one there.
  void refreshAddressesLocked();
  // Tells the address watcher which cgroups hold workloads (after cgroups_
  // changed); with `wait`, until it has looked at them.
  void watchWorkloadNetnsLocked(bool wait);
  void drainEventsLocked();
  // Events the kernel's ring and the spool had no room for.
  uint64_t eventsLostLocked(const datapath::Counters& c) const;
  nlohmann::json statusLocked();

  void registerCommands();
  void registerQueries();  // read-only views: daemon/queries.cpp
  std::string renderMetricsLocked();  // daemon/metrics.cpp
  Result<void> startMetricsLocked();
  flows::FlowContext flowContextLocked() const;
  // A workload's own mode: the CLI's override, else its policies', else
  // MS_MODE_INHERIT (the global mode).
  uint32_t workloadModeLocked(const std::string& workload, uint32_t identity) const;
  void writeFlowLine(const flows::FlowRecord& r, uint64_t delta);
  // Identities named by a CLI filter: a workload name, a reserved name, or a
  // label selector "k=v,k2=v2". Empty result = matches nothing.
  std::set<uint32_t> resolvePeerFilterLocked(const std::string& spec) const;
  // Reads the policy watches' events; true if one concerns the policy set.
  bool drainPolicyEvents();
  void watchPolicyPaths();
  // inotify on every cgroup dir of the tree: a new cgroup is classified
  // right away, not at the next periodic rescan.
  void watchCgroupsLocked(const std::vector<identity::CgroupInfo>& cgroups);
  void wake();

  DaemonConfig config_;
  DatapathFactory makeDatapath_;
  std::mutex mu_;
  std::unique_ptr<datapath::Datapath> datapath_;
  // Takes events out of the ring while mu_ is held elsewhere (a reload).
  std::unique_ptr<datapath::EventSpool> events_;
  std::vector<ms_event> eventBatch_;  // drainEventsLocked()'s, kept for its memory
  std::unique_ptr<control::ControlServer> control_;

  // Reloads, and the generation in force (gen()).
  std::unique_ptr<Reloader> reloader_;
  std::map<uint64_t, identity::CgroupInfo> cgroups_;  // by cgroup id
  std::map<uint64_t, std::string> cgroupPaths_, cgroupWorkloads_;
  std::map<std::string, uint32_t> workloadModes_;  // runtime overrides by workload name
  uint64_t hostNetnsCookie_ = 0;
  uint64_t hostNetnsInode_ = 0;
  // Host and workload-netns addresses, kept current by a thread of its own.
  std::unique_ptr<identity::AddressWatcher> addressWatcher_;
  std::shared_ptr<const identity::AddressWatcher::Snapshot> addrSnapshot_;  // the one in the ipcache
  std::vector<datapath::AddressEntry> addresses_;  // what the ipcache has of them

  nlohmann::json lastReload_;
  std::atomic<bool> uninstallRequested_{false};
  int wakeFd_ = -1;
  int inotifyFd_ = -1;
  std::map<int, policy::PolicyWatch> policyWatches_;  // by inotify watch descriptor
  int cgroupInotifyFd_ = -1;
  int64_t startedAt_ = 0;
  int64_t clockOffsetNs_ = 0;
  flows::FlowStore flowStore_;
  // Events received, by (direction, verdict, source workload), for metrics.
  std::map<std::tuple<std::string, std::string, std::string>, uint64_t> flowEventCounts_;
  std::unique_ptr<metrics::HttpEndpoint> metrics_;
  int64_t lastFlushMs_ = 0;
  double lastApplyMs_ = 0;
  uint64_t reloadFailures_ = 0;
  FILE* flowLog_ = nullptr;
  bool flowLogIsStdout_ = false;
  uint64_t flowLogWriteErrors_ = 0;
  uint64_t udpExchangesExpired_ = 0;  // UDP exchange entries the periodic sweep removed
};

}  // namespace microseg::daemon
