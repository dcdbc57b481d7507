// microsegd: owns the main loop, the signals, the control socket, the
// watches and the generation in force; it asks the reload unit
// (daemon/reload.h) for new generations and keeps the classification, the
// addresses and the flow records current between them.
//
// Where each part lives: daemon.cpp (lifecycle, the loop, reloads),
// classification.cpp (cgroups), addresses.cpp (the ipcache's run-time part),
// events.cpp (verdict events -> flow records, flow log), status.cpp,
// commands.cpp (control commands that change things), queries.cpp
// (read-only views), metrics.cpp.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/fs_credentials.h"
#include "cluster/agent.h"
#include "daemon/config.h"
#include "daemon/flow_log.h"
#include "daemon/reload.h"
#include "daemon/watches.h"
#include "datapath/datapath.h"
#include "datapath/event_spool.h"
#include "datapath/sockets.h"
#include "edges/edge_ledger.h"
#include "flows/flow_record.h"
#include "flows/flow_store.h"
#include "grants/grants.h"
#include "identity/address_watcher.h"
#include "identity/cgroup_scanner.h"
#include "identity/listeners.h"

namespace microseg::control {
class ControlServer;
}
namespace microseg::revoke {
struct Judged;
}
namespace microseg::metrics {
class HttpEndpoint;
}

namespace microseg::daemon {

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

// Makes what revocation lists and destroys sockets with, given the
// datapath's pin dir (main.cpp: the kernel's socket iterators; unit tests:
// none, revocation unavailable).
using SocketsFactory = std::function<Result<std::unique_ptr<datapath::Sockets>>(const std::string& pinDir)>;

class Daemon {
 public:
  Daemon(DaemonConfig config, DatapathFactory datapath, SocketsFactory sockets = {});
  ~Daemon();
  // Runs until SIGINT/SIGTERM, `microseg uninstall` or stop(). Returns the
  // process exit code.
  int run();
  // Ends run() from another thread (tests; signals do it in the daemon).
  void stop();

 private:
  int setup();
  void loop();
  void shutdown();
  void wake();

  // All of these expect mu_ held.
  // `allowEmpty`: a set without any Workload may replace one with some
  // (every workload becomes unmanaged); refused otherwise.
  // `as`: the caller who named the paths (a `policy apply`); they are read
  // with that caller's credentials, now and in later reloads of them.
  ReloadResult reloadLocked(const std::vector<std::string>& paths, const std::string& why, bool allowEmpty = false,
                            const FsIdentity* as = nullptr);
  // What the reload applied, for the rest of the daemon: the classification,
  // the watched paths, the log line.
  void tookGenerationLocked(const ReloadOutcome& r, const std::string& why);
  // The generation in force (its model, identities and compiled entries).
  const Generation& gen() const { return reloader_->inForce(); }

  // classification.cpp
  void rescanLocked();
  // New cgroups' directories get an inotify watch.
  void watchCgroupsLocked(const std::vector<identity::CgroupInfo>& cgroups);
  // Takes a classification: the maps by id, and the netns watcher's view.
  void classifiedLocked(const std::vector<identity::CgroupInfo>& cgroups);
  // A workload's own mode: the CLI's override, else its policies', else
  // MS_MODE_INHERIT (the global mode).
  uint32_t workloadModeLocked(const std::string& workload, uint32_t identity) const;

  // addresses.cpp
  // Addresses of this host and of the workloads' own netns (addrSnapshot_)
  // -> ipcache entries.
  std::vector<datapath::AddressEntry> addressEntriesLocked() const;
  // Writes the address watcher's latest snapshot into the ipcache if it is
  // not the one there.
  void refreshAddressesLocked();
  // Tells the address watcher which cgroups hold workloads (after cgroups_
  // changed); with `wait`, until it has looked at them.
  void watchWorkloadNetnsLocked(bool wait);

  // events.cpp
  void drainEventsLocked();
  // Events the kernel's ring and the spool had no room for.
  uint64_t eventsLostLocked(const datapath::Counters& c) const;
  flows::FlowContext flowContextLocked() const;
  // The staged verdict of a record (judged once per staged set), and the
  // would-deny count by workload (events.cpp).
  uint8_t judgeStagedLocked(const diff::StagedSet& staged, const flows::FlowRecord& r);
  void countStagedDenyLocked(const std::string& workload, uint64_t n);
  void writeFlowLine(const flows::FlowRecord& r, uint64_t delta);
  // A flow of the record counted by metrics (and the staged would-deny
  // count): `n` flows judged by `workload`.
  void countFlowsLocked(const flows::FlowRecord& r, const std::string& workload, uint64_t n);
  void noteFqdnNameLocked(uint64_t hash);  // events.cpp

  // edges.cpp: the kernel's observed edges (ms_edges) folded into the flow
  // records, and the records' history across restarts (<dataDir>/edges.json).
  void foldEdgesLocked();
  // Setup, once the datapath is made: the saved history; its ledger only
  // if the kernel's edge map is the one it was taken from (adopted).
  void loadEdgeHistoryLocked();
  // Every few seconds and at exit: expired records dropped, the rest saved.
  void edgesTickLocked(bool force);

  // status.cpp
  nlohmann::json statusLocked();
  // The last status with fresh counters: what `status` answers while a
  // reload holds the lock.
  nlohmann::json statusWithoutLock();
  void publishStatusLocked();

  // cluster.cpp (cluster mode only; each a no-op without it)
  Result<void> startClusterLocked();
  void waitForClusterLocked(std::unique_lock<std::mutex>& lock);
  void takeAgentSnapshotLocked();
  void clusterTickLocked();
  void publishLocalLocked();
  void scanListenersLocked();
  std::vector<datapath::AddressEntry> remoteAddressEntriesLocked() const;
  nlohmann::json clusterStatusLocked() const;
  nlohmann::json remoteWorkloadsLocked() const;  // status.cpp
  // `microseg cluster status`: etcd's health (asked by the caller), every node, every identity.
  nlohmann::json clusterReportLocked(nlohmann::json etcd) const;
  // The paths a reload reads: the configured ones, or (--policy etcd) the
  // pushed set's directory (empty until there is one).
  std::vector<std::string> policyPathsLocked() const;

  void registerCommands();            // commands.cpp
  void registerQueries();             // queries.cpp
  void registerReach();               // reach_command.cpp
  void registerFqdn();                // fqdn_command.cpp
  void registerSuggest();             // suggest_command.cpp
  void registerDiff();                // diff_command.cpp
  // grant_command.cpp: temporary access (grants/grants.h).
  void registerGrants();
  // Setup: the saved grants, written to the kernel before activate().
  void loadGrantsLocked();
  // Writes ms_grants from the book and the identities in force (after a
  // generation: an identity may have changed); false if the write failed.
  bool syncGrantsLocked();
  // Every tick: grants whose time is up are ended, logged and removed.
  void grantsTickLocked();
  // A grant's creation, revocation or expiry: daemon log and flow log.
  void grantRecordLocked(const std::string& event, const grants::Grant& g, uint32_t uid, int32_t pid);
  grants::Resolve grantResolverLocked() const;

  // revocation.cpp: established connections a change no longer allows
  // (README "Revocation").
  struct RevocationCause {
    std::string what;  // for the log and the records: "generation 12 (SIGHUP)", "mode enforce"
    // A new generation or a mode switch: ended where --revoke-established
    // or a policy selecting the refusing side says on-change.
    bool policyChange = false;
    // Grants that ended: the connections only they allowed end, always.
    std::vector<grants::Grant> endedGrants;
  };
  // Setup: loads the socket iterators, or says why revocation is unavailable.
  void openRevocationLocked();
  // Some policy in force, or the daemon's setting, asks for on-change.
  bool revocationWantedLocked() const;
  // The kernel stamps connections' ages (Datapath::setConnectionAges) while
  // revocation may end some: an on-change setting or policy, an active
  // grant (or one about to be written: `grantComing`).
  void syncConnectionAgesLocked(bool grantComing = false);
  void revokeEstablishedLocked(const RevocationCause& cause);
  // What ended a revoked connection: a grant (its id; `what` is "grant N
  // expired|revoked"), or a change (`what`: the cause's text).
  struct EndedBy {
    uint32_t grant = 0;
    std::string what;
  };
  // A revoked (or would-revoke) connection: a flow record (with what ended
  // it and its age), a counter, a log line (the first ones of a pass at
  // info, `logged` counts them).
  void recordRevocationLocked(const revoke::Judged& j, uint8_t verdict, const EndedBy& by, size_t& logged);
  nlohmann::json revocationStatusLocked() const;
  std::string renderMetricsLocked();  // metrics.cpp
  Result<void> startMetricsLocked();
  // Identities named by a CLI filter: a workload name, a reserved name, or a
  // label selector "k=v,k2=v2". Empty result = matches nothing.
  std::set<uint32_t> resolvePeerFilterLocked(const std::string& spec) const;

  DaemonConfig config_;
  DatapathFactory makeDatapath_;
  SocketsFactory makeSockets_;
  bool connectionAges_ = false;  // the kernel stamps connections (syncConnectionAgesLocked)
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
  std::map<uint64_t, std::string> fqdnNames_;  // flows::FlowContext::fqdnNames
  std::map<std::string, uint32_t> workloadModes_;  // runtime overrides by workload name
  FsIdentity pathsOwner_;  // who named the policy paths in force (root unless a `policy apply`)
  uint64_t hostNetnsCookie_ = 0;
  uint64_t hostNetnsInode_ = 0;
  // Host and workload-netns addresses, kept current by a thread of its own.
  std::unique_ptr<identity::AddressWatcher> addressWatcher_;
  std::shared_ptr<const identity::AddressWatcher::Snapshot> addrSnapshot_;  // the one in the ipcache
  std::vector<datapath::AddressEntry> addresses_;  // what the ipcache has of them

  nlohmann::json lastReload_;
  std::atomic<bool> uninstallRequested_{false};
  std::atomic<bool> stopRequested_{false};
  UniqueFd wakeFd_;  // eventfd: wakes the loop
  PolicyWatch policyWatch_;
  std::unique_ptr<CgroupWatch> cgroupWatch_;
  int64_t startedAt_ = 0;
  int64_t clockOffsetNs_ = 0;
  flows::FlowStore flowStore_;
  // Events received, by (direction, verdict, source workload), for metrics.
  std::map<std::tuple<std::string, std::string, std::string>, uint64_t> flowEventCounts_;
  // Events the staged set would deny, by judging workload (bounded labels).
  std::map<std::string, uint64_t> stagedWouldDeny_;
  // What each kernel edge counted that is in the records already (edges.cpp).
  edges::EdgeLedger edgeLedger_;
  int64_t lastEdgeSaveMs_ = 0;
  bool edgesDirty_ = false;          // records changed since the last save
  uint64_t edgeReadFailures_ = 0;    // reads of ms_edges that failed (counts wait for the next)
  uint64_t edgeSaveFailures_ = 0;
  uint64_t edgeRecordsExpired_ = 0;  // records dropped by --edge-retention
  uint64_t edgesPruned_ = 0;         // idle edges removed from the kernel's map
  std::unique_ptr<metrics::HttpEndpoint> metrics_;
  int64_t lastFlushMs_ = 0;
  double lastApplyMs_ = 0;
  uint64_t reloadFailures_ = 0;
  FlowLogFile flowLog_;
  uint64_t udpExchangesExpired_ = 0;  // UDP exchange entries the periodic sweep removed
  // Temporary access: the book (saved in <dataDir>/grants.json) and what
  // the kernel's ms_grants was last given.
  grants::GrantBook grants_;
  datapath::GrantEntries grantEntries_;
  std::string bootId_;
  uint64_t grantSyncFailures_ = 0;
  bool grantsLoaded_ = false;  // loadGrantsLocked() ran
  // Revocation: the socket iterators (null: unavailable, and why).
  std::unique_ptr<datapath::Sockets> sockets_;
  std::string revocationUnavailable_;
  struct {
    uint64_t passes = 0, revoked = 0, wouldRevoke = 0, failed = 0, unknownPeer = 0;
    uint64_t skipped = 0;  // passes a change asked for while revocation is unavailable
    double lastPassMs = 0;
  } revocations_;
  // Sockets already recorded as would-revoke (cookies; those still open):
  // a connection is recorded and counted once, not at every change after.
  std::set<uint64_t> wouldRevoked_;
  // Cluster mode.
  std::unique_ptr<cluster::Agent> agent_;
  std::shared_ptr<const cluster::AgentSnapshot> agentSnap_;  // the one the kernel has
  identity::FleetIdentities fleet_;
  uint64_t fleetFrom_ = 0;                     // the agent's identitiesVersion fleet_ was built from
  std::vector<ms_addr> nodeAddresses_;         // --node-address (else the host's)
  std::vector<identity::ListeningSocket> listeners_;  // of the host netns, last scanned
  bool listenersScanned_ = false;                      // once: the agent may publish endpoints
  int64_t appliedPolicyRevision_ = 0;          // --policy etcd
  int64_t rejectedPolicyRevision_ = 0;
  std::string rejectedPolicyError_;
  uint64_t endpointsApplies_ = 0;              // other nodes' endpoints written to the kernel
  uint64_t lastEndpointsApplyUs_ = 0;          // what the last such write took
  cluster::WireKeysInForce wireKeys_;          // the cluster keys the kernel was given (cluster.cpp)
  std::mutex statusMu_;               // guards statusSnapshot_ only
  std::shared_ptr<const nlohmann::json> statusSnapshot_;
};

}  // namespace microseg::daemon
