#include "daemon/daemon.h"
#include "datapath/probe.h"
#include "datapath/sockets.h"

#include <malloc.h>
#include <poll.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>

#include "common/cgroup.h"
#include "common/names.h"
#include "common/text.h"
#include "control/metrics_http.h"
#include "control/server.h"
#include "daemon/caller_files.h"
#include "identity/netns.h"
#include "policy/progress.h"

namespace microseg::daemon {
namespace {

// When malloc holds free more than half of what is in use, give it back to
// the kernel (see the callers for when that is worth it).
void giveBackMemoryIfMostlyFree(const char* after) {
  const struct mallinfo2 mi = mallinfo2();
  const bool trim = mi.fordblks > mi.uordblks / 2;
  spdlog::debug("memory: {} KiB in use, {} KiB free in malloc after {}{}", mi.uordblks / 1024, mi.fordblks / 1024,
                after, trim ? ": given back" : "");
  if (trim) malloc_trim(0);
}

using nlohmann::json;

int64_t nowRealtimeNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

Daemon::Daemon(DaemonConfig config, DatapathFactory datapath, SocketsFactory sockets)
    : config_(std::move(config)),
      makeDatapath_(std::move(datapath)),
      makeSockets_(std::move(sockets)),
      flowStore_(config_.flowStoreSize) {}

Daemon::~Daemon() = default;

void Daemon::stop() {
  stopRequested_ = true;
  wake();
}

void Daemon::wake() {
  uint64_t one = 1;
  (void)!write(wakeFd_.get(), &one, sizeof(one));
}

int Daemon::run() {
  // Signals are handled synchronously by the main loop (signalfd); block
  // them before any thread starts so no thread takes them asynchronously.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGHUP);
  sigaddset(&set, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);

  int rc = setup();
  if (rc != 0) {
    shutdown();
    return rc;
  }
  loop();
  shutdown();
  return 0;
}

int Daemon::setup() {
  startedAt_ = nowRealtimeNs();
  clockOffsetNs_ = flows::monotonicToRealtimeOffsetNs();
  spdlog::info("microsegd starting: {}", text::jsonText(config_.toJson()));

  // The datapath checks that it is a cgroup v2 directory it may attach to.
  config_.cgroupRoot = normalizePath(config_.cgroupRoot);

  auto flowLog = FlowLogFile::open(config_.flowLog);
  if (!flowLog) {
    spdlog::error("{}", flowLog.error().str());
    return 1;
  }
  flowLog_ = std::move(*flowLog);

  auto cookie = identity::currentNetnsCookie();
  if (!cookie) {
    spdlog::error("{}", cookie.error().str());
    return 1;
  }
  hostNetnsCookie_ = *cookie;
  hostNetnsInode_ = identity::ownNetnsInode();
  wakeFd_.reset(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!wakeFd_) {
    spdlog::error("{}", sysError("create eventfd", "main loop").str());
    return 1;
  }
  identity::AddressWatcher::Options wopts;
  wopts.hostNetnsInode = hostNetnsInode_;
  wopts.onChange = [this] { wake(); };
  wopts.rediscoverMs = static_cast<int>(config_.rescanIntervalMs);
  auto watcher = identity::AddressWatcher::start(std::move(wopts));
  if (!watcher) {
    spdlog::error("identity: {}", watcher.error().str());
    return 1;
  }
  addressWatcher_ = std::move(*watcher);

  auto dp = makeDatapath_(config_, hostNetnsCookie_);
  if (!dp) {
    spdlog::error("datapath: {}", dp.error().str());
    // A kernel without a feature the datapath needs: nothing was attached,
    // and the exit status says why (README "Kernel requirements").
    return datapath::isKernelMissing(dp.error()) ? datapath::kExitKernelMissing : 1;
  }
  datapath_ = std::move(dp.value());
  reloader_ = std::make_unique<Reloader>(*datapath_,
                                         Reloader::Settings{config_.cgroupRoot, config_.defaultEnforcement});
  auto spool = datapath::EventSpool::start(*datapath_);
  if (!spool) {
    spdlog::error("datapath: {}", spool.error().str());
    return 1;
  }
  events_ = std::move(spool.value());
  cgroupWatch_ = std::make_unique<CgroupWatch>();

  std::unique_lock<std::mutex> lock(mu_);
  if (auto r = startClusterLocked(); !r) {
    spdlog::error("cluster: {}", r.error().str());
    return 1;
  }
  if (datapath_->adopted()) {
    // The pinned state is what is in force right now: keep its mode and
    // continue its generation numbers.
    reloader_->adopt(datapath_->generation());
    if (config_.modeFromFlagOrFile && config_.mode != datapath_->mode()) {
      spdlog::info("mode: keeping {} from the pinned state (configured {} applies to fresh "
                   "installs; change it with `microseg mode`)",
                   modeName(datapath_->mode()), modeName(config_.mode));
    }
    config_.mode = datapath_->mode();
  }
  loadEdgeHistoryLocked();  // edges.cpp: before the first drain folds anything
  // The first generation must be complete before anything is attached:
  // programs never run against empty maps.
  addrSnapshot_ = addressWatcher_->snapshot();
  addresses_ = addressEntriesLocked();
  waitForClusterLocked(lock);
  if (agent_) {
    // The other nodes' listeners and addresses, before the first verdict.
    clusterTickLocked();
    addresses_ = addressEntriesLocked();
  } else if (auto r = datapath_->setWireKeys({}, 0); !r) {
    // Adopted from a run in cluster mode: no keys, no signing.
    spdlog::error("datapath: {}", r.error().str());
    return 1;
  }
  ReloadResult first;
  if (policyPathsLocked().empty()) {
    first.errors.push_back("policy: no policy set has been pushed to the cluster yet (`microseg policy push`), "
                           "and none is cached in " + config_.dataDir);
  } else {
    first = reloadLocked(policyPathsLocked(), "startup");
  }
  if (first.ok && config_.policyFromEtcd()) appliedPolicyRevision_ = agentSnap_->policyRevision;
  if (first.ok && agent_ && !gen().ids.pending.empty()) {
    // Its label sets were not known to the agent before this first load:
    // give it a moment to allocate them, then take them.
    publishLocalLocked();
    waitForClusterLocked(lock);
    if (!gen().ids.pending.empty() || fleetFrom_ != 0) reloadLocked(policyPathsLocked(), "startup (cluster identities)");
  }
  if (!first.ok) {
    for (const auto& e : first.errors) spdlog::error("{}", e);
    if (!datapath_->adopted()) {
      spdlog::error("policy: refusing to start without a valid policy");
      return 1;
    }
    spdlog::error("policy: invalid; the adopted generation {} stays in force until a valid "
                  "policy is applied",
                  gen().number);
  }
  // Containers' addresses: known before the first verdict.
  if (gen().loaded) {
    watchWorkloadNetnsLocked(/*wait=*/true);
    refreshAddressesLocked();
  }
  loadGrantsLocked();  // grant_command.cpp: before any program runs
  if (auto r = datapath_->activate(); !r) {
    spdlog::error("datapath: {}", r.error().str());
    return 1;
  }
  spdlog::info("datapath: {} {} (mode {}, generation {})",
               datapath_->adopted() ? "adopted pinned links on" : "attached to", config_.cgroupRoot,
               modeName(datapath_->mode()), gen().number);
  if (!config_.policyFromEtcd()) policyWatch_.watch(config_.policyPaths);
  scanListenersLocked();
  publishLocalLocked();
  // After the start-up reloads (a restart is no change of policy).
  openRevocationLocked();
  syncConnectionAgesLocked();
  publishStatusLocked();

  control::ControlServer::Options copts;
  copts.path = config_.socketPath;
  if (config_.socketGroup) copts.group = static_cast<gid_t>(*config_.socketGroup);
  // A big reply (policy.show, graph, flows at 100k rules or records: tens of
  // MiB of text, built from a document of hundreds) leaves that much free in
  // malloc, which it keeps: give it back.
  copts.repliesFreed = [](size_t bytes) {
    if (bytes >= (size_t{1} << 20)) giveBackMemoryIfMostlyFree("a large control reply");
  };
  control_ = std::make_unique<control::ControlServer>(copts);
  registerCommands();
  registerQueries();
  registerReach();
  registerFqdn();
  registerSuggest();
  registerDiff();
  registerGrants();
  if (auto r = control_->start(); !r) {
    spdlog::error("control: {}", r.error().str());
    return 1;
  }
  if (auto r = startMetricsLocked(); !r) {
    spdlog::error("metrics: {}", r.error().str());
    return 1;
  }
  spdlog::info("microsegd ready: control socket {}", config_.socketPath);
  return 0;
}

void Daemon::loop() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGHUP);
  UniqueFd sfd(signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK));
  // 100 ms tick: drain events (no per-event wakeups), flush the flow log.
  UniqueFd tfd(timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK));
  itimerspec its{};
  its.it_interval.tv_nsec = 100 * 1000 * 1000;
  its.it_value.tv_nsec = 100 * 1000 * 1000;
  timerfd_settime(tfd.get(), 0, &its, nullptr);
  const int efd = datapath_->eventFd();
  auto lastRescan = std::chrono::steady_clock::now();
  auto lastUdpSweep = lastRescan;
  bool udpSweeping = false;
  // UDP exchange entries are of no use after the answer TTL: sweep them at
  // half of it (1..15 s), so the LRU map does not fill up in the long run.
  const auto udpSweepEvery =
      std::chrono::milliseconds(std::clamp<int64_t>(int64_t(config_.answerTtlSeconds) * 500, 1000, 15000));
  int64_t reloadDueMs = 0;  // 0: no reload pending
  auto steadyMs = [] {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
  };

  // What the loop waits on, by name.
  enum Source : size_t { kSignals, kTick, kRing, kWake, kPolicyFiles, kCgroups, kSources };
  for (;;) {
    pollfd fds[kSources] = {};
    fds[kSignals] = {sfd.get(), POLLIN, 0};
    fds[kTick] = {tfd.get(), POLLIN, 0};
    fds[kRing] = {efd, POLLIN, 0};
    fds[kWake] = {wakeFd_.get(), POLLIN, 0};
    fds[kPolicyFiles] = {policyWatch_.fd(), POLLIN, 0};
    fds[kCgroups] = {cgroupWatch_->fd(), POLLIN, 0};
    if (poll(fds, kSources, 1000) < 0 && errno != EINTR) {
      spdlog::error("{}", sysError("poll", "main loop").str());
      return;
    }
    if (fds[kSignals].revents & POLLIN) {
      signalfd_siginfo si{};
      while (read(sfd.get(), &si, sizeof(si)) == sizeof(si)) {
        if (si.ssi_signo == SIGHUP) {
          std::lock_guard<std::mutex> lock(mu_);
          if (auto paths = policyPathsLocked(); !paths.empty()) reloadLocked(paths, "SIGHUP");
        } else {
          spdlog::info("received signal {}, shutting down", si.ssi_signo);
          return;
        }
      }
    }
    if (fds[kTick].revents & POLLIN) {
      uint64_t ticks;
      (void)!read(tfd.get(), &ticks, sizeof(ticks));
    }
    if (fds[kWake].revents & POLLIN) {
      uint64_t v;
      (void)!read(wakeFd_.get(), &v, sizeof(v));
    }
    if (uninstallRequested_) {
      spdlog::info("uninstall requested, shutting down");
      return;
    }
    if (stopRequested_) return;
    if ((fds[kPolicyFiles].revents & POLLIN) && policyWatch_.drain()) {
      // Debounced: an editor or `cp` produces bursts of events.
      reloadDueMs = steadyMs() + config_.reloadDebounceMs;
    }
    const bool cgroupsChanged = (fds[kCgroups].revents & POLLIN) && cgroupWatch_->drain();
    std::lock_guard<std::mutex> lock(mu_);
    if (gen().loaded) refreshAddressesLocked();
    if (cgroupsChanged) {
      // Classify new cgroups now: until then they are pending (fail closed)
      // or inherit their parent's workload.
      rescanLocked();
      lastRescan = std::chrono::steady_clock::now();
    }
    if (reloadDueMs != 0 && steadyMs() >= reloadDueMs) {
      reloadDueMs = 0;
      auto paths = config_.policyPaths;
      reloadLocked(paths, "policy files changed");
    }
    clusterTickLocked();
    if (auto r = datapath_->refreshClock(); !r) spdlog::warn("datapath: {}", r.error().str());
    drainEventsLocked();
    edgesTickLocked(/*force=*/false);
    grantsTickLocked();
    auto now = std::chrono::steady_clock::now();
    // A sweep goes in bounded steps, one per tick, so the lock is never held
    // long (a full map of 65,536 entries is 16 steps).
    if (udpSweeping || now - lastUdpSweep >= udpSweepEvery) {
      if (!udpSweeping) lastUdpSweep = now;
      auto step = datapath_->expireUdpExchanges();
      if (!step) {
        udpSweeping = false;
        spdlog::warn("datapath: expiring UDP exchanges: {}", step.error().str());
      } else {
        udpSweeping = !step->done;
        udpExchangesExpired_ += step->expired;
        if (step->expired > 0) {
          spdlog::debug("datapath: {} UDP exchange entries expired ({:.1f} ms)", step->expired,
                        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - now).count());
        }
      }
    }
    if (now - lastRescan >= std::chrono::milliseconds(config_.rescanIntervalMs)) {
      lastRescan = now;
      rescanLocked();
      scanListenersLocked();
      publishLocalLocked();
    }
  }
}

void Daemon::shutdown() {
  if (control_) control_->stop();
  control_.reset();
  metrics_.reset();
  addressWatcher_.reset();
  if (agent_ && uninstallRequested_) agent_->leave();  // this node's keys go at once
  agent_.reset();  // otherwise its lease is kept: a restart takes it back
  if (datapath_) {
    std::lock_guard<std::mutex> lock(mu_);
    drainEventsLocked();
    edgesTickLocked(/*force=*/true);  // what the kernel counted until now, saved with its ledger
    events_.reset();  // before the datapath it reads from
    if (uninstallRequested_) {
      datapath_->uninstall();
    } else {
      datapath_->release();
      spdlog::info("datapath: exiting; pinned links in {} keep enforcing generation {} (mode {}); "
                   "`microseg uninstall` or `microsegd --cleanup` removes them",
                   datapath_->pinDir(), gen().number, modeName(datapath_->mode()));
    }
  }
  datapath_.reset();
  flowLog_.flush();
}

ReloadResult Daemon::reloadLocked(const std::vector<std::string>& paths, const std::string& why, bool allowEmpty,
                                  const FsIdentity* as) {
  // A reload of 100k rules takes about a second, and events are rendered
  // under the same lock: render them while it runs (about every 10 ms of
  // parsing or map writes), so the spool that keeps the ring empty
  // meanwhile (events_) stays small. They are rendered with the model in
  // force, which is the one that judged them.
  const policy::ProgressScope progress([this] { drainEventsLocked(); });
  ReloadRequest req;
  req.paths = paths;
  req.trigger = why;
  req.allowEmpty = allowEmpty;
  req.modeOverrides = workloadModes_;
  req.addresses = addresses_;
  req.fleet = agent_ ? &fleet_ : nullptr;
  const CallerFileAccess files(as != nullptr ? *as : pathsOwner_);
  req.files = &files;
  const uint64_t before = gen().number;
  ReloadOutcome r = reloader_->reload(req);
  if (r.ok && as != nullptr) pathsOwner_ = *as;

  ReloadResult out;
  out.ok = r.ok;
  out.errors = r.errors;
  out.generation = gen().number;
  out.entries = gen().compiled.entries.size();
  if (!r.ok) {
    reloadFailures_++;
    spdlog::error("policy: {} rejected ({} errors); generation {} stays in force", why, r.errors.size(), before);
    for (const auto& e : r.errors) spdlog::error("policy: {}", e);
  } else {
    tookGenerationLocked(r, why);
    syncConnectionAgesLocked();  // a policy with revokeEstablished may have come or gone
    // Not at start-up (the iterators are loaded once the daemon is ready):
    // a restart is no change of policy.
    revokeEstablishedLocked({"generation " + std::to_string(gen().number) + " (" + why + ")", true, {}});
  }
  json errs = json::array();
  for (size_t i = 0; i < r.errors.size() && i < 20; i++) errs.push_back(r.errors[i]);
  lastReload_ = json{{"ok", r.ok},
                     {"time", flows::isoTime(nowRealtimeNs())},
                     {"trigger", why},
                     {"errors", errs},
                     {"error_count", r.errors.size()}};
  // A status answered while another thread holds the lock comes from the
  // last one built: make that this reload's.
  publishStatusLocked();
  // A reload that compiled everything frees the previous generation's model
  // and compiled policy and the parse's temporaries. When malloc then holds
  // free more than half of what is in use, it goes back to the kernel:
  // after a reload that shrank the policy (100k rules to 10) that is tens
  // of MiB. After a reload that grew it or kept its size, what is free is
  // about what the next reload builds again (7.7 MiB of 29 after 10 ->
  // 100k rules over 10 identities; 6 of 34 after a same-size reload):
  // trimming it made the next one-rule change fault ~1400 pages back in
  // (20-40 ms on a VM, where a fault costs ~12 us), for RSS that this
  // change took back anyway. A small change (one policy compiled) is never
  // followed by a trim.
  const auto& st = reloader_->compilerStats();
  if (st.full || st.expanded * 10 > st.policies) giveBackMemoryIfMostlyFree("the reload");
  return out;
}

void Daemon::tookGenerationLocked(const ReloadOutcome& r, const std::string& why) {
  if (!config_.policyFromEtcd()) {
    const bool pathsChanged = config_.policyPaths != gen().paths;
    config_.policyPaths = gen().paths;
    if (pathsChanged) policyWatch_.watch(config_.policyPaths);
  }
  watchCgroupsLocked(r.cgroups);
  classifiedLocked(r.cgroups);
  if (grantsLoaded_) syncGrantsLocked();  // a workload's identity may have changed
  edgesDirty_ = true;                     // the numbering the history is saved with may have too
  lastApplyMs_ = r.ms.total;
  const auto& docs = reloader_->loaderStats();
  const auto& cs = reloader_->compilerStats();
  spdlog::info("policy: generation {} applied ({}): {} workloads, {} policies, {} identities, "
               "{} map entries, {} cgroups, {} map writes, {:.1f} ms (read {:.1f} ms, {} of {} documents "
               "parsed, {} rules of them reused; compile {:.1f} ms, {} of {} policies compiled; kernel maps "
               "{:.1f} ms)",
               gen().number, why, gen().bundle.workloads.size(), gen().bundle.policies.size(), gen().ids.labels.size(),
               gen().compiled.entries.size(), r.cgroups.size(), r.mapWrites, r.ms.total, r.ms.read,
               docs.documents - docs.reused, docs.documents, docs.rulesReused, r.ms.compile, cs.expanded, cs.policies,
               r.ms.apply);
}

}  // namespace microseg::daemon
