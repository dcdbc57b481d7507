#include "daemon/daemon.h"
#include "policy/progress.h"

#include <arpa/inet.h>
#include <malloc.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <optional>
#include <set>

#include "common/cgroup.h"
#include "common/fd.h"
#include "control/metrics_http.h"
#include "control/protocol.h"
#include "control/server.h"
#include "flows/flow_record.h"
#include "policy/parser.h"
#include "policy/watch.h"

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

const char* modeName(uint32_t m) {
  switch (m) {
    case MS_MODE_MONITOR: return "monitor";
    case MS_MODE_ENFORCE: return "enforce";
    default: return "inherit";
  }
}

std::optional<uint32_t> parseMode(const std::string& s) {
  if (s == "monitor") return MS_MODE_MONITOR;
  if (s == "enforce") return MS_MODE_ENFORCE;
  if (s == "inherit") return MS_MODE_INHERIT;
  return std::nullopt;
}

int64_t nowRealtimeNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

json DaemonConfig::toJson() const {
  return json{{"cgroup_root", cgroupRoot},
              {"policy_paths", policyPaths},
              {"mode", modeName(mode)},
              {"socket", socketPath},
              {"socket_group", socketGroup ? json(*socketGroup) : json(nullptr)},
              {"state_dir", stateDir},
              {"flow_log", flowLog},
              {"log_allowed", logAllowed},
              {"answer_ttl_seconds", answerTtlSeconds},
              {"metrics_listen", metricsListen},
              {"flow_store_size", flowStoreSize},
              {"default_enforcement",
               defaultEnforcement == compiler::DefaultEnforcement::Always ? "always" : "selected"}};
}

Daemon::Daemon(DaemonConfig config) : config_(std::move(config)), flowStore_(config_.flowStoreSize) {}

Daemon::~Daemon() {
  if (flowLog_ != nullptr && !flowLogIsStdout_) fclose(flowLog_);
  if (wakeFd_ >= 0) close(wakeFd_);
  if (inotifyFd_ >= 0) close(inotifyFd_);
  if (cgroupInotifyFd_ >= 0) close(cgroupInotifyFd_);
}

void Daemon::watchCgroupsLocked(const std::vector<identity::CgroupInfo>& cgroups) {
  if (cgroupInotifyFd_ < 0) return;
  for (const auto& c : cgroups) {
    if (cgroups_.count(c.id)) continue;  // already watched
    const std::string dir = c.path == "/" ? config_.cgroupRoot : config_.cgroupRoot + c.path;
    inotify_add_watch(cgroupInotifyFd_, dir.c_str(), IN_CREATE | IN_DELETE | IN_ONLYDIR);
  }
}

void Daemon::wake() {
  uint64_t one = 1;
  (void)!write(wakeFd_, &one, sizeof(one));
}

void Daemon::watchPolicyPaths() {
  // Re-created on every change of paths: simplest way to drop old watches.
  if (inotifyFd_ >= 0) close(inotifyFd_);
  inotifyFd_ = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (inotifyFd_ < 0) {
    spdlog::warn("policy: inotify unavailable ({}); reload with SIGHUP or `microseg policy reload`",
                 std::strerror(errno));
    return;
  }
  const uint32_t mask = IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_CREATE | IN_DELETE |
                        IN_DELETE_SELF | IN_MOVE_SELF | IN_ATTRIB;
  policyWatches_.clear();
  auto isDir = [](const std::string& p) {
    struct stat st {};
    return ::stat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
  };
  for (auto& w : policy::policyWatches(config_.policyPaths, isDir)) {
    const int wd = inotify_add_watch(inotifyFd_, w.dir.c_str(), mask);
    if (wd < 0) {
      spdlog::warn("policy: cannot watch {}: {}", w.dir, std::strerror(errno));
      continue;
    }
    policyWatches_[wd] = std::move(w);
  }
}

bool Daemon::drainPolicyEvents() {
  bool relevant = false;
  alignas(inotify_event) char buf[8192];
  for (ssize_t n; (n = read(inotifyFd_, buf, sizeof(buf))) > 0;) {
    for (ssize_t off = 0; off + static_cast<ssize_t>(sizeof(inotify_event)) <= n;) {
      const auto* ev = reinterpret_cast<const inotify_event*>(buf + off);
      off += static_cast<ssize_t>(sizeof(inotify_event) + ev->len);
      if (ev->mask & IN_Q_OVERFLOW) {
        relevant = true;  // events were lost: one may have been ours
        continue;
      }
      auto w = policyWatches_.find(ev->wd);
      if (w == policyWatches_.end()) continue;
      const std::string_view name = ev->len > 0 ? std::string_view(ev->name) : std::string_view();
      if (policy::concerns(w->second, name)) {
        relevant = true;
      } else {
        spdlog::debug("policy: {}/{} changed; not a policy file, no reload", w->second.dir, name);
      }
    }
  }
  return relevant;
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
  spdlog::info("microsegd starting: {}", config_.toJson().dump());

  config_.cgroupRoot = normalizePath(config_.cgroupRoot);
  if (auto level = cgroupLevel(config_.cgroupRoot); !level) {
    spdlog::error("{}", level.error().str());
    return 1;
  }

  if (config_.flowLog == "-") {
    flowLog_ = stdout;
    flowLogIsStdout_ = true;
  } else if (!config_.flowLog.empty()) {
    flowLog_ = fopen(config_.flowLog.c_str(), "ae");
    if (flowLog_ == nullptr) {
      spdlog::error("{}", sysError("open flow log", config_.flowLog).str());
      return 1;
    }
  }

  auto cookie = identity::currentNetnsCookie();
  if (!cookie) {
    spdlog::error("{}", cookie.error().str());
    return 1;
  }
  hostNetnsCookie_ = *cookie;
  hostNetnsInode_ = identity::ownNetnsInode();
  if (auto own = identity::inspectOwnNetns(&hostAddrSubscription_); own) {
    hostAddrs_ = own->addrs;
  } else {
    spdlog::warn("identity: {}", own.error().str());
  }

  datapath::BpfOptions opts;
  opts.cgroupRoot = config_.cgroupRoot;
  opts.hostNetnsCookie = hostNetnsCookie_;
  opts.stateDir = config_.stateDir;
  opts.mode = config_.mode;
  opts.logAllowed = config_.logAllowed;
  opts.answerTtlNs = uint64_t(config_.answerTtlSeconds) * 1000000000ull;
  auto dp = datapath::BpfDatapath::load(opts);
  if (!dp) {
    spdlog::error("datapath: {}", dp.error().str());
    return 1;
  }
  datapath_ = std::move(dp.value());
  auto spool = datapath::EventSpool::start(*datapath_);
  if (!spool) {
    spdlog::error("datapath: {}", spool.error().str());
    return 1;
  }
  events_ = std::move(spool.value());
  wakeFd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  cgroupInotifyFd_ = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);

  std::lock_guard<std::mutex> lock(mu_);
  if (datapath_->adopted()) {
    // The pinned state is what is in force right now: keep its mode and
    // continue its generation numbers.
    generation_ = datapath_->generation();
    if (config_.modeFromFlagOrFile && config_.mode != datapath_->mode()) {
      spdlog::info("mode: keeping {} from the pinned state (configured {} applies to fresh "
                   "installs; change it with `microseg mode`)",
                   modeName(datapath_->mode()), modeName(config_.mode));
    }
    config_.mode = datapath_->mode();
  }
  // The first generation must be complete before anything is attached:
  // programs never run against empty maps.
  addresses_ = addressEntriesLocked();
  ReloadResult first = reloadLocked(config_.policyPaths, "startup");
  if (!first.ok) {
    for (const auto& e : first.errors) spdlog::error("{}", e);
    if (!datapath_->adopted()) {
      spdlog::error("policy: refusing to start without a valid policy");
      return 1;
    }
    spdlog::error("policy: invalid; the adopted generation {} stays in force until a valid "
                  "policy is applied",
                  generation_);
  }
  // Containers' addresses: known before the first verdict.
  if (haveModel_) {
    discoverNetnsLocked();
    refreshAddressesLocked();
  }
  if (auto r = datapath_->activate(); !r) {
    spdlog::error("datapath: {}", r.error().str());
    return 1;
  }
  spdlog::info("datapath: {} {} (mode {}, generation {})",
               datapath_->adopted() ? "adopted pinned links on" : "attached to", config_.cgroupRoot,
               modeName(datapath_->mode()), generation_);
  watchPolicyPaths();

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

  for (;;) {
    std::vector<pollfd> fds = {{sfd.get(), POLLIN, 0},       {tfd.get(), POLLIN, 0},
                               {efd, POLLIN, 0},             {wakeFd_, POLLIN, 0},
                               {inotifyFd_, POLLIN, 0},      {cgroupInotifyFd_, POLLIN, 0},
                               {hostAddrSubscription_.get(), POLLIN, 0}};
    constexpr size_t kFixedFds = 7;
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (int fd : workloadNetns_.subscriptionFds()) fds.push_back({fd, POLLIN, 0});
    }
    int n = poll(fds.data(), fds.size(), 1000);
    if (n < 0 && errno != EINTR) {
      spdlog::error("{}", sysError("poll", "main loop").str());
      return;
    }
    if (fds[0].revents & POLLIN) {
      signalfd_siginfo si{};
      while (read(sfd.get(), &si, sizeof(si)) == sizeof(si)) {
        if (si.ssi_signo == SIGHUP) {
          std::lock_guard<std::mutex> lock(mu_);
          auto paths = config_.policyPaths;
          reloadLocked(paths, "SIGHUP");
        } else {
          spdlog::info("received signal {}, shutting down", si.ssi_signo);
          return;
        }
      }
    }
    if (fds[1].revents & POLLIN) {
      uint64_t ticks;
      (void)!read(tfd.get(), &ticks, sizeof(ticks));
    }
    if (fds[3].revents & POLLIN) {
      uint64_t v;
      (void)!read(wakeFd_, &v, sizeof(v));
    }
    if (uninstallRequested_) {
      spdlog::info("uninstall requested, shutting down");
      return;
    }
    if (inotifyFd_ >= 0 && (fds[4].revents & POLLIN) && drainPolicyEvents()) {
      // Debounced: an editor or `cp` produces bursts of events.
      reloadDueMs = steadyMs() + config_.reloadDebounceMs;
    }
    bool cgroupsChanged = false;
    if (cgroupInotifyFd_ >= 0 && (fds[5].revents & POLLIN)) {
      alignas(inotify_event) char buf[8192];
      while (read(cgroupInotifyFd_, buf, sizeof(buf)) > 0) {
      }
      cgroupsChanged = true;
    }
    std::lock_guard<std::mutex> lock(mu_);
    bool addressesChanged = false;
    if (fds[6].revents & POLLIN) {
      if (identity::drainSubscription(hostAddrSubscription_.get())) {
        hostAddrs_ = identity::interfaceAddrs();
        addressesChanged = true;
      }
    }
    std::vector<int> readable;
    for (size_t i = kFixedFds; i < fds.size(); i++) {
      if (fds[i].revents & POLLIN) readable.push_back(fds[i].fd);
    }
    if (!readable.empty()) {
      for (const auto& p : workloadNetns_.refresh(readable)) spdlog::warn("identity: {}", p);
      addressesChanged = true;
    }
    if (addressesChanged && haveModel_) refreshAddressesLocked();
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
    drainEventsLocked();
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
      if (haveModel_) {
        hostAddrs_ = identity::interfaceAddrs();
        discoverNetnsLocked();
        refreshAddressesLocked();
      }
    }
  }
}

void Daemon::shutdown() {
  if (control_) control_->stop();
  control_.reset();
  metrics_.reset();
  if (datapath_) {
    std::lock_guard<std::mutex> lock(mu_);
    drainEventsLocked();
    events_.reset();  // before the datapath it reads from
    if (uninstallRequested_) {
      datapath_->uninstall();
    } else {
      datapath_->release();
      spdlog::info("datapath: exiting; pinned links in {} keep enforcing generation {} (mode {}); "
                   "`microseg uninstall` or `microsegd --cleanup` removes them",
                   datapath_->pinDir(), generation_, modeName(datapath_->mode()));
    }
  }
  datapath_.reset();
  if (flowLog_ != nullptr) fflush(flowLog_);
}

ReloadResult Daemon::reloadLocked(const std::vector<std::string>& paths, const std::string& why) {
  ReloadResult r = buildAndApplyLocked(paths, why);
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
  const auto& st = compiler_.lastStats();
  if (st.full || st.expanded * 10 > st.policies) giveBackMemoryIfMostlyFree("the reload");
  return r;
}

ReloadResult Daemon::buildAndApplyLocked(const std::vector<std::string>& paths, const std::string& why) {
  ReloadResult out;
  const auto started = std::chrono::steady_clock::now();
  auto record = [&](const ReloadResult& r) {
    if (!r.ok) reloadFailures_++;
    json errs = json::array();
    for (size_t i = 0; i < r.errors.size() && i < 20; i++) errs.push_back(r.errors[i]);
    lastReload_ = json{{"ok", r.ok},
                       {"time", flows::isoTime(nowRealtimeNs())},
                       {"trigger", why},
                       {"errors", errs},
                       {"error_count", r.errors.size()}};
  };

  // A reload of 100k rules takes about a second, and events are rendered
  // under the same lock: render them while it runs (about every 10 ms of
  // parsing or map writes, and between phases), so the spool that keeps
  // the ring empty meanwhile (events_) stays small. They are rendered with
  // the model in force, which is the one that judged them.
  auto drain = [this] { drainEventsLocked(); };  // nothing to do without a datapath (no spool)
  const policy::ProgressScope progress(drain);
  policy::ParseResult parsed = loader_.load(paths);
  drain();
  const auto parsedAt = std::chrono::steady_clock::now();
  if (!parsed.ok()) {
    for (const auto& d : parsed.errors) out.errors.push_back(d.str());
    spdlog::error("policy: {} rejected ({} errors); generation {} stays in force", why,
                  out.errors.size(), generation_);
    for (const auto& e : out.errors) spdlog::error("policy: {}", e);
    record(out);
    return out;
  }

  // Identities are assigned again only when their inputs changed.
  std::optional<identity::IdentityTable> assigned;
  if (!haveModel_ || !identity::sameIdentityInputs(parsed.bundle, bundle_)) {
    assigned = identity::assignIdentities(parsed.bundle, ids_);
  }
  const identity::IdentityTable& ids = assigned ? *assigned : ids_;
  compiler::Options copts;
  copts.defaultEnforcement = config_.defaultEnforcement;
  // A small change edits the entries in force in place (no copy of 100k+
  // at the peak): until the new generation is applied, compiled_ has lent
  // them, and every way out that keeps compiled_ hands them back.
  compiler::CompiledPolicy compiled = haveModel_
                                          ? compiler_.compileInPlace(parsed.bundle, ids, registry_, copts, compiled_)
                                          : compiler_.compile(parsed.bundle, ids, registry_, copts);
  struct GiveBack {
    compiler::CompiledPolicy& result;
    compiler::CompiledPolicy& previous;
    ~GiveBack() { compiler::Compiler::giveBack(result, previous); }
  } giveBack{compiled, compiled_};
  const auto compiledAt = std::chrono::steady_clock::now();

  auto matcher = matcher_ && matcher_->builtFrom(parsed.bundle)
                     ? matcher_
                     : std::make_shared<const identity::WorkloadMatcher>(parsed.bundle);
  auto scanned = identity::scanCgroups(config_.cgroupRoot, *matcher, ids);
  if (!scanned) {
    out.errors.push_back(scanned.error().str());
    spdlog::error("identity: {}", scanned.error().str());
    record(out);
    return out;
  }

  datapath::Generation gen;
  gen.number = generation_ + 1;
  gen.policy = &compiled;
  gen.inForce = haveModel_ ? &compiled_ : nullptr;
  for (const auto& c : *scanned) {
    gen.cgroups.push_back({c.id, c.mapIdentity(), c.pendingChildren ? MS_CGROUP_F_PENDING_CHILDREN : 0u});
  }
  for (const auto& [workload, mode] : workloadModes_) {
    if (auto it = ids.byWorkload.find(workload); it != ids.byWorkload.end()) {
      gen.modeOverrides[it->second] = mode;
    }
  }
  gen.addresses = addresses_;
  drain();
  const auto applyFrom = std::chrono::steady_clock::now();
  if (auto r = datapath_->applyGeneration(gen); !r) {
    out.errors.push_back("datapath: " + r.error().str());
    spdlog::error("datapath: {}; generation {} stays in force", r.error().str(), generation_);
    record(out);
    return out;
  }

  bundle_ = std::move(parsed.bundle);
  matcher_ = std::move(matcher);
  if (assigned) ids_ = std::move(*assigned);
  compiled_ = std::move(compiled);
  compiled = {};  // nothing to hand back
  compiled_.settle();
  generation_ = gen.number;
  appliedAt_ = flows::isoTime(nowRealtimeNs());
  const bool pathsChanged = config_.policyPaths != paths;
  config_.policyPaths = paths;
  if (pathsChanged && inotifyFd_ >= 0) watchPolicyPaths();
  haveModel_ = true;
  watchCgroupsLocked(*scanned);
  cgroups_.clear();
  cgroupPaths_.clear();
  cgroupWorkloads_.clear();
  for (const auto& c : *scanned) {
    cgroups_[c.id] = c;
    cgroupPaths_[c.id] = c.path;
    if (!c.workload.empty()) cgroupWorkloads_[c.id] = c.workload;
  }
  out.ok = true;
  out.generation = generation_;
  out.entries = compiled_.entries.size();
  const auto now = std::chrono::steady_clock::now();
  auto msBetween = [](auto a, auto b) { return std::chrono::duration<double, std::milli>(b - a).count(); };
  const double ms = msBetween(started, now);
  lastApplyMs_ = ms;
  const auto& docs = loader_.lastStats();
  spdlog::info("policy: generation {} applied ({}): {} workloads, {} policies, {} identities, "
               "{} map entries, {} cgroups, {} map writes, {:.1f} ms (read {:.1f} ms, {} of {} documents "
               "parsed, {} rules of them reused; compile {:.1f} ms, {} of {} policies compiled; kernel maps "
               "{:.1f} ms)",
               generation_, why, bundle_.workloads.size(), bundle_.policies.size(), ids_.labels.size(),
               out.entries, gen.cgroups.size(), datapath_->lastApplyWrites(), ms, msBetween(started, parsedAt),
               docs.documents - docs.reused, docs.documents, docs.rulesReused, msBetween(parsedAt, compiledAt),
               compiler_.lastStats().expanded, compiler_.lastStats().policies, msBetween(applyFrom, now));
  record(out);
  return out;
}

uint32_t Daemon::workloadModeLocked(const std::string& workload, uint32_t identity) const {
  if (auto m = workloadModes_.find(workload); m != workloadModes_.end()) return m->second;
  if (const ms_identity_value* v = compiled_.identity(identity); v != nullptr) return v->mode;
  return MS_MODE_INHERIT;
}

void Daemon::rescanLocked() {
  // Without a policy model of our own (adopted maps, invalid policy) we
  // would classify every cgroup as unmanaged: leave the maps alone.
  if (!haveModel_) return;
  if (!matcher_ || !matcher_->builtFrom(bundle_)) matcher_ = std::make_shared<const identity::WorkloadMatcher>(bundle_);
  auto scanned = identity::scanCgroups(config_.cgroupRoot, *matcher_, ids_);
  if (!scanned) {
    spdlog::warn("identity: rescan failed: {}", scanned.error().str());
    return;
  }
  std::vector<datapath::CgroupEntry> upserts;
  std::map<uint64_t, identity::CgroupInfo> next;
  for (const auto& c : *scanned) {
    next[c.id] = c;
    auto it = cgroups_.find(c.id);
    if (it == cgroups_.end() || it->second.identity != c.identity ||
        it->second.pendingChildren != c.pendingChildren) {
      upserts.push_back({c.id, c.mapIdentity(), c.pendingChildren ? MS_CGROUP_F_PENDING_CHILDREN : 0u});
    }
  }
  std::vector<uint64_t> removed;
  for (const auto& [id, c] : cgroups_) {
    if (!next.count(id)) removed.push_back(id);
  }
  if (!upserts.empty()) {
    if (auto r = datapath_->upsertCgroups(upserts); !r) {
      spdlog::warn("identity: {}", r.error().str());
      return;
    }
  }
  if (!removed.empty()) {
    if (auto r = datapath_->removeCgroups(removed); !r) spdlog::warn("identity: {}", r.error().str());
  }
  if (!upserts.empty() || !removed.empty()) {
    spdlog::debug("identity: {} cgroups added/changed, {} removed", upserts.size(), removed.size());
  }
  watchCgroupsLocked(*scanned);
  cgroups_ = std::move(next);
  cgroupPaths_.clear();
  cgroupWorkloads_.clear();
  for (const auto& [id, c] : cgroups_) {
    cgroupPaths_[id] = c.path;
    if (!c.workload.empty()) cgroupWorkloads_[id] = c.workload;
  }
}

void Daemon::discoverNetnsLocked() {
  std::map<uint64_t, identity::WorkloadNetns::Seen> seen;
  std::map<uint64_t, std::set<std::string>> workloadsIn;
  for (const auto& [id, c] : cgroups_) {
    if (c.workload.empty()) continue;
    const std::string dir = c.path == "/" ? config_.cgroupRoot : config_.cgroupRoot + c.path;
    for (pid_t pid : identity::cgroupPids(dir, 4)) {
      const uint64_t inode = identity::netnsInodeOf(pid);
      if (inode == 0 || inode == hostNetnsInode_) continue;
      workloadsIn[inode].insert(c.workload);
      auto& s = seen[inode];
      // Several workloads in one netns (a pod's containers): the address
      // can name only one; the first by name, and listeners still resolve
      // by their own cgroup.
      if (s.workload.empty() || c.workload < s.workload) {
        s.workload = c.workload;
        s.identity = c.identity;
        s.pid = pid;
      }
    }
  }
  for (const auto& [inode, names] : workloadsIn) {
    if (names.size() > 1 && !workloadNetns_.entries().count(inode)) {
      std::string all;
      for (const auto& n : names) all += (all.empty() ? "" : ", ") + n;
      spdlog::warn("identity: workloads {} share a network namespace; its addresses are {}'s", all,
                   seen[inode].workload);
    }
  }
  for (const auto& p : workloadNetns_.update(seen)) spdlog::warn("identity: {}", p);
}

std::vector<datapath::AddressEntry> Daemon::addressEntriesLocked() const {
  std::vector<datapath::AddressEntry> next;
  auto add = [&](const ms_addr& a, uint32_t identity, uint32_t flags, uint64_t netns) {
    datapath::AddressEntry e;
    e.key.prefixlen = 128;
    e.key.addr = a;
    e.value.identity = identity;
    e.value.flags = flags;
    e.value.netns_cookie = netns;
    next.push_back(e);
  };
  std::set<std::string> taken;
  auto keyOf = [](const ms_addr& a) { return std::string(reinterpret_cast<const char*>(a.a), sizeof(a.a)); };
  for (const auto& a : hostAddrs_) {
    if (taken.insert(keyOf(a)).second) add(a, MS_IDENTITY_HOST, MS_IPCACHE_F_HOST, hostNetnsCookie_);
  }
  for (const auto& [inode, e] : workloadNetns_.entries()) {
    for (const auto& a : e.view.addrs) {
      // Loopback is per netns and never looked up; an address the host
      // also has stays the host's.
      const bool loop4 = a.a[10] == 0xff && a.a[11] == 0xff && a.a[12] == 127;
      static const uint8_t kLoop6[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
      if (loop4 || std::memcmp(a.a, kLoop6, 16) == 0) continue;
      if (taken.insert(keyOf(a)).second) {
        add(a, e.seen.identity, MS_IPCACHE_F_NETNS, e.view.cookie);
      }
    }
  }
  // Subnet broadcast addresses, in the netns they are broadcasts of (the
  // kernel checks the netns): a datagram to one is not to a unicast peer.
  // Last: an address that is some netns's unicast address stays that.
  for (const auto& b : identity::interfaceBroadcasts()) {
    if (taken.insert(keyOf(b)).second) add(b, MS_IDENTITY_MULTICAST, MS_IPCACHE_F_BROADCAST, hostNetnsCookie_);
  }
  for (const auto& [inode, e] : workloadNetns_.entries()) {
    for (const auto& b : e.view.broadcasts) {
      if (taken.insert(keyOf(b)).second) add(b, MS_IDENTITY_MULTICAST, MS_IPCACHE_F_BROADCAST, e.view.cookie);
    }
  }
  return next;
}

void Daemon::refreshAddressesLocked() {
  auto next = addressEntriesLocked();
  auto same = [](const datapath::AddressEntry& x, const datapath::AddressEntry& y) {
    return std::memcmp(&x.key, &y.key, sizeof(x.key)) == 0 && std::memcmp(&x.value, &y.value, sizeof(x.value)) == 0;
  };
  if (next.size() == addresses_.size() && std::equal(next.begin(), next.end(), addresses_.begin(), same)) return;
  if (auto r = datapath_->setAddresses(next); !r) {
    spdlog::warn("datapath: {}", r.error().str());
    return;
  }
  spdlog::debug("identity: {} addresses of the host and workload netns in the ipcache", next.size());
  addresses_ = std::move(next);
}

flows::FlowContext Daemon::flowContextLocked() const {
  flows::FlowContext ctx;
  ctx.ids = &ids_;
  ctx.cgroupPaths = &cgroupPaths_;
  ctx.cgroupWorkloads = &cgroupWorkloads_;
  ctx.rules = &registry_;
  ctx.monotonicToRealtimeNs = clockOffsetNs_;
  return ctx;
}

void Daemon::writeFlowLine(const flows::FlowRecord& r, uint64_t delta) {
  if (flowLog_ == nullptr || delta == 0) return;
  std::string line = flows::recordToJson(r, delta, flowContextLocked()).dump();
  line.push_back('\n');
  if (fwrite(line.data(), 1, line.size(), flowLog_) != line.size()) flowLogWriteErrors_++;
}

// Events are folded into aggregated records; the flow log gets a line when a
// record is new (at once) and then at most once a second per record with the
// count since its previous line, so a flood cannot flood the log and the
// counts of all lines add up to the events received.
void Daemon::drainEventsLocked() {
  if (!events_) return;
  if (auto r = events_->take(eventBatch_); !r) spdlog::warn("datapath: {}", r.error().str());
  auto onEvict = [this](const flows::FlowRecord& r) { writeFlowLine(r, r.count - r.flushedCount); };
  for (const ms_event& e : eventBatch_) {
    flowStore_.add(e, static_cast<int64_t>(e.timestamp_ns) + clockOffsetNs_, onEvict);
    // By the workload whose policy judged: the source for egress, the
    // destination for ingress.
    const bool egress = e.direction == MS_DIR_EGRESS;
    auto w = cgroupWorkloads_.find(egress ? e.src_cgroup_id : e.dst_cgroup_id);
    flowEventCounts_[{flows::directionName(e.direction), flows::verdictName(e.verdict),
                      w != cgroupWorkloads_.end() ? w->second
                                                  : ids_.nameOf(egress ? e.src_identity : e.dst_identity)}]++;
  }
  const int64_t now = nowRealtimeNs() / 1000000;
  const bool periodic = now - lastFlushMs_ >= 1000;
  if (periodic) lastFlushMs_ = now;
  bool wrote = false;
  for (const auto& r : flowStore_.takeUnflushed(/*onlyNew=*/!periodic)) {
    writeFlowLine(r, r.count - r.flushedCount);
    wrote = true;
  }
  if (wrote && flowLog_ != nullptr) fflush(flowLog_);
}

uint64_t Daemon::eventsLostLocked(const datapath::Counters& c) const {
  return c.eventsLost() + (events_ ? events_->dropped() : 0);
}

json Daemon::statusLocked() {
  json workloads = json::array();
  std::map<std::string, std::vector<std::string>> cgroupsByWorkload;
  for (const auto& [id, c] : cgroups_) {
    if (!c.workload.empty() && !c.inherited) cgroupsByWorkload[c.workload].push_back(c.path);
  }
  for (const auto& w : bundle_.workloads) {
    auto it = ids_.byWorkload.find(w.name);
    uint32_t ident = it == ids_.byWorkload.end() ? 0 : it->second;
    const uint32_t mode = workloadModeLocked(w.name, ident);
    // Its own network namespaces (containers) and their addresses, as the
    // ipcache has them.
    json netns = json::array();
    for (const auto& [inode, e] : workloadNetns_.entries()) {
      if (e.seen.workload != w.name) continue;
      json addrs = json::array();
      for (const auto& a : e.view.addrs) addrs.push_back(flows::formatAddr(a));
      netns.push_back(json{{"inode", inode}, {"cookie", e.view.cookie}, {"addresses", addrs}});
    }
    workloads.push_back(json{{"name", w.name},
                             {"identity", ident},
                             {"labels", w.labels},
                             {"cgroups", cgroupsByWorkload[w.name]},
                             {"netns", netns},
                             {"mode", modeName(mode)}});
  }
  json counters = json::object();
  if (auto c = datapath_->counters(); c) {
    counters = json{{"allowed", c->allowed()},
                    {"denied", c->denied()},
                    {"audited", c->audited()},
                    {"events_lost", eventsLostLocked(*c)},
                    {"udp_answers", c->udpAnswers()},
                    {"udp_exchanges_expired", udpExchangesExpired_},
                    {"no_policy", c->values[MS_CTR_NO_POLICY]},
                    {"unparsed", c->values[MS_CTR_UNPARSED]},
                    {"unsupported_protocol", c->values[MS_CTR_UNSUPPORTED_PROTO]},
                    {"deep_cgroup", c->values[MS_CTR_DEEP_CGROUP]},
                    {"unattributed", c->values[MS_CTR_UNATTRIBUTED]},
                    {"multicast", c->values[MS_CTR_MULTICAST]}};
  }
  return json{{"version_string", "0.1.0"},
              {"mode", modeName(datapath_->mode())},
              {"policy_generation", generation_},
              {"policy_paths", config_.policyPaths},
              {"cgroup_root", config_.cgroupRoot},
              {"state_dir", config_.stateDir},
              {"uptime_seconds", (nowRealtimeNs() - startedAt_) / 1000000000},
              {"workloads", workloads},
              {"counters", counters},
              {"flow_log_write_errors", flowLogWriteErrors_},
              {"datapath",
               {{"adopted", datapath_->adopted()},
                {"pin_dir", datapath_->pinDir()},
                {"cgroup_entries", datapath_->activeCgroupIds().size()},
                {"cgroups_known", cgroups_.size()},
                {"addresses", addresses_.size()},
                {"host_netns_cookie", hostNetnsCookie_}}},
              {"policy",
               {{"entries", compiled_.entries.size()},
                {"rules", compiled_.rules.size()},
                {"identities", ids_.labels.size()},
                {"applied_at", appliedAt_}}},
              {"last_reload", lastReload_},
              {"config", config_.toJson()}};
}

void Daemon::registerCommands() {
  using control::ControlError;
  using control::Request;

  control_->registerCommand(
      "status", [this](const Request&) {
        std::lock_guard<std::mutex> lock(mu_);
        return statusLocked();
      },
      false);

  control_->registerCommand(
      "mode.get", [this](const Request&) {
        std::lock_guard<std::mutex> lock(mu_);
        return json{{"mode", modeName(datapath_->mode())}};
      },
      false);

  control_->registerCommand(
      "mode.set", [this](const Request& req) {
        if (!req.body.contains("mode") || !req.body["mode"].is_string()) {
          throw ControlError(control::kErrBadRequest, "field 'mode' (string) is required", {});
        }
        const std::string want = req.body["mode"].get<std::string>();
        auto mode = parseMode(want);
        std::lock_guard<std::mutex> lock(mu_);
        if (req.body.contains("workload")) {
          if (!req.body["workload"].is_string()) {
            throw ControlError(control::kErrBadRequest, "field 'workload' must be a string", {});
          }
          const std::string w = req.body["workload"].get<std::string>();
          if (!mode) {
            throw ControlError(control::kErrBadRequest,
                               "mode '" + want + "' is not one of monitor, enforce, inherit", {});
          }
          auto it = ids_.byWorkload.find(w);
          if (it == ids_.byWorkload.end()) {
            throw ControlError(control::kErrBadRequest, "no workload named '" + w + "'", {});
          }
          if (auto r = datapath_->setIdentityMode(it->second, *mode, compiled_); !r) {
            throw ControlError(control::kErrInternal, r.error().str(), {});
          }
          std::string previous = "inherit";
          if (auto m = workloadModes_.find(w); m != workloadModes_.end()) previous = modeName(m->second);
          if (*mode == MS_MODE_INHERIT) {
            workloadModes_.erase(w);
          } else {
            workloadModes_[w] = *mode;
          }
          spdlog::info("control: workload {} mode {} -> {} (uid={} pid={})", w, previous, want,
                       req.peer.uid, req.peer.pid);
          return json{{"workload", w}, {"mode", want}, {"previous", previous}};
        }
        if (!mode || *mode == MS_MODE_INHERIT) {
          throw ControlError(control::kErrBadRequest,
                             "mode '" + want + "' is not one of monitor, enforce", {});
        }
        const std::string previous = modeName(datapath_->mode());
        if (auto r = datapath_->setMode(*mode); !r) {
          throw ControlError(control::kErrInternal, r.error().str(), {});
        }
        spdlog::info("control: mode {} -> {} (uid={} pid={})", previous, want, req.peer.uid,
                     req.peer.pid);
        return json{{"mode", want}, {"previous", previous}};
      },
      true);

  control_->registerCommand(
      "uninstall", [this](const Request& req) {
        spdlog::warn("control: uninstall requested by uid={} pid={}", req.peer.uid, req.peer.pid);
        uninstallRequested_ = true;
        wake();
        return json{{"uninstalling", true}, {"state_dir", config_.stateDir}};
      },
      true);

  auto reloadReply = [](const ReloadResult& r) {
    if (!r.ok) {
      throw ControlError(control::kErrInvalidPolicy,
                         r.errors.empty() ? "policy rejected" : r.errors.front(), r.errors);
    }
    return json{{"generation", r.generation}, {"entries", r.entries}};
  };

  control_->registerCommand(
      "policy.reload", [this, reloadReply](const Request& req) {
        std::lock_guard<std::mutex> lock(mu_);
        auto paths = config_.policyPaths;
        auto r = reloadLocked(paths, "control (uid " + std::to_string(req.peer.uid) + ")");
        return reloadReply(r);
      },
      true);

  control_->registerCommand(
      "policy.apply", [this, reloadReply](const Request& req) {
        std::vector<std::string> paths;
        if (req.body.contains("paths")) {
          if (!req.body["paths"].is_array()) {
            throw ControlError(control::kErrBadRequest, "field 'paths' must be an array of strings", {});
          }
          for (const auto& p : req.body["paths"]) {
            if (!p.is_string() || p.get<std::string>().empty() || p.get<std::string>()[0] != '/') {
              throw ControlError(control::kErrBadRequest,
                                 "field 'paths' must hold absolute paths", {});
            }
            paths.push_back(p.get<std::string>());
          }
        }
        std::lock_guard<std::mutex> lock(mu_);
        if (paths.empty()) paths = config_.policyPaths;
        auto r = reloadLocked(paths, "apply (uid " + std::to_string(req.peer.uid) + ")");
        return reloadReply(r);
      },
      true);
}

}  // namespace microseg::daemon
