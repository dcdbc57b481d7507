// microsegd: the microseg daemon. See README.md "Running the daemon".
#include <spdlog/sinks/stdout_sinks.h>
#include <malloc.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include "common/version.h"
#include <iostream>

#include "common/durations.h"
#include "daemon/config_file.h"
#include "daemon/daemon.h"
#include "datapath/bpf_datapath.h"
#include "datapath/socket_iterator.h"
#include "grants/grants.h"

int main(int argc, char** argv) {
  // One malloc arena. Reloads run on the main loop (file changes, SIGHUP)
  // and on the control socket's thread (`policy apply`), always under the
  // daemon's one lock, so an arena per thread buys no concurrency: it only
  // keeps a second set of free lists, each big enough for a whole policy
  // model (through the bench's policy sets: VmHWM 74-75 -> 68 MB).
  // Set before any thread exists.
  mallopt(M_ARENA_MAX, 1);
  using microseg::daemon::DaemonConfig;
  CLI::App app{"microsegd: zero-trust microsegmentation enforcer (cgroup BPF)"};
  app.set_version_flag("--version", std::string("microsegd ") + microseg::kVersion);
  DaemonConfig cfg;
  std::string configPath, mode, logLevel = "info", defaultEnforcement, cgroupRoot, socketPath,
                          stateDir, flowLog;
  std::vector<std::string> policies;
  unsigned socketGroup = 0;
  uint32_t answerTtl = 0;
  bool logAllowed = false, cleanup = false;

  app.add_option("--config", configPath, "YAML configuration file (flags override it)");
  auto* oRoot = app.add_option("--cgroup-root", cgroupRoot,
                               "cgroup v2 directory whose subtree is managed (absolute path)");
  auto* oPolicy = app.add_option("--policy", policies,
                                 "policy FILE or DIR (repeatable), or `etcd`: the set pushed to the cluster");
  auto* oMode = app.add_option("--mode", mode, "monitor (log would-deny) or enforce (refuse); "
                                               "a restart keeps the mode of the pinned state")
                    ->check(CLI::IsMember({"monitor", "enforce"}));
  auto* oSocket = app.add_option("--socket", socketPath, "control socket path [/run/microseg/microseg.sock]");
  auto* oGroup = app.add_option("--socket-group", socketGroup,
                                "gid allowed to use the control socket (socket becomes 0660)");
  auto* oState = app.add_option("--state-dir", stateDir, "bpffs directory for pinned state [/sys/fs/bpf/microseg]");
  auto* oFlow = app.add_option("--flow-log", flowLog, "flow log file (JSON lines), '-' for stdout");
  auto* oAllowed = app.add_flag("--log-allowed", logAllowed, "also log allowed flows");
  auto* oTtl = app.add_option("--answer-ttl", answerTtl, "seconds a UDP socket may answer a peer it heard from [30]")
                   ->check(CLI::Range(1, 3600));
  auto* oDefault = app.add_option("--default-enforcement", defaultEnforcement,
                                  "always (zero trust) or selected (Kubernetes semantics)")
                       ->check(CLI::IsMember({"always", "selected"}));
  auto* oLevel = app.add_option("--log-level", logLevel, "trace|debug|info|warn|error")
                     ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error"}));
  std::string metricsListen;
  size_t flowStoreSize = 0;
  auto* oMetrics = app.add_option("--metrics-listen", metricsListen,
                                  "serve Prometheus metrics on HOST:PORT, e.g. 127.0.0.1:9464 (off by default)");
  auto* oStore = app.add_option("--flow-store-size", flowStoreSize, "aggregated flow records kept in memory [10000]")
                     ->check(CLI::Range(1, 10000000));
  std::string dataDir, nodeName, clusterPrefix, etcdCaCert, etcdCert, etcdKey;
  std::vector<std::string> etcdEndpoints, nodeAddresses;
  uint32_t nodeTtl = 0;
  auto* oData = app.add_option("--data-dir", dataDir, "where the cluster lease and last known cluster view are kept "
                                                      "[/var/lib/microseg]");
  auto* oEtcd = app.add_option("--etcd-endpoints", etcdEndpoints,
                               "cluster mode: etcd URL(s) (http://h:p, https://h:p, unix:///path), comma-separated")
                    ->delimiter(',');
  auto* oNode = app.add_option("--node-name", nodeName, "this node's name in the cluster [host name]");
  auto* oAddrs = app.add_option("--node-address", nodeAddresses, "this node's address(es) [every address of the host]")
                     ->delimiter(',');
  auto* oPrefix = app.add_option("--cluster-prefix", clusterPrefix, "etcd key prefix [/microseg]");
  auto* oCa = app.add_option("--etcd-cacert", etcdCaCert, "CA of the etcd members' certificates (TLS)");
  auto* oCert = app.add_option("--etcd-cert", etcdCert, "client certificate for etcd's client auth");
  auto* oKey = app.add_option("--etcd-key", etcdKey, "key of --etcd-cert");
  auto* oNodeTtl = app.add_option("--node-ttl", nodeTtl, "seconds a dead node's keys outlive it [30]")->check(CLI::Range(5, 3600));
  std::string wireIdentity;
  auto* oWire = app.add_option("--wire-identity", wireIdentity,
                               "cluster mode: sign this node's SYNs to other nodes with the cluster key (off: "
                               "sign none, still verify) [on]")
                    ->check(CLI::IsMember({"on", "off"}));
  std::string maxGrant;
  auto* oMaxGrant = app.add_option("--max-grant", maxGrant,
                                   "longest temporary access `microseg grant --for` may give (30s, 15m, 8h) [8h]");
  std::string revokeEstablished;
  auto* oRevoke = app.add_option("--revoke-established", revokeEstablished,
                                 "when a new generation no longer allows an established connection: on-change "
                                 "destroys it, never leaves it (policies may still ask with "
                                 "spec.revokeEstablished) [never]")
                      ->check(CLI::IsMember({"never", "on-change"}));
  std::string edgeRetention;
  auto* oEdgeRetention = app.add_option("--edge-retention", edgeRetention,
                                        "how long observed edges (flow records) are kept across restarts, in "
                                        "<data-dir>/edges.json (30m, 8h, 7d) [7d]");
  std::string fqdnMinTtl, fqdnMaxTtl;
  auto* oFqdnMin = app.add_option("--fqdn-min-ttl", fqdnMinTtl,
                                  "shortest time a DNS answer binds an address to an fqdn peer, whatever its TTL "
                                  "(1s, 5s, 1m) [5s]");
  auto* oFqdnMax = app.add_option("--fqdn-max-ttl", fqdnMaxTtl,
                                  "longest time a DNS answer binds an address to an fqdn peer (1m, 1h) [1h]");
  std::vector<std::string> fqdnResolvers;
  auto* oFqdnResolvers =
      app.add_option("--fqdn-resolvers", fqdnResolvers,
                     "addresses of the DNS resolvers whose answers bind names to fqdn peers, comma-separated "
                     "[the nameservers of /etc/resolv.conf]")
          ->delimiter(',');
  app.add_flag("--cleanup", cleanup,
               "detach and remove all pinned state under --state-dir, then exit (like `microseg uninstall`)");
  CLI11_PARSE(app, argc, argv);

  // journald-friendly: no colours; syslog priority prefix under systemd.
  auto logger = spdlog::stderr_logger_mt("microsegd");
  logger->set_pattern(getenv("JOURNAL_STREAM") != nullptr ? "<%l> %v" : "%Y-%m-%dT%H:%M:%S.%e %l %v");
  spdlog::set_default_logger(logger);

  std::string fileLevel;
  if (!configPath.empty()) {
    auto errs = microseg::daemon::loadConfigFile(configPath, cfg, fileLevel);
    if (!errs.empty()) {
      for (const auto& e : errs) std::cerr << e.str() << "\n";
      std::cerr << "microsegd: invalid configuration file, not starting\n";
      return 2;
    }
  }
  if (*oRoot) cfg.cgroupRoot = cgroupRoot;
  if (*oPolicy) cfg.policyPaths = policies;
  if (*oMode) cfg.mode = mode == "enforce" ? MS_MODE_ENFORCE : MS_MODE_MONITOR;
  if (*oSocket) cfg.socketPath = socketPath;
  if (*oGroup) cfg.socketGroup = socketGroup;
  if (*oState) cfg.stateDir = stateDir;
  if (*oFlow) cfg.flowLog = flowLog;
  if (*oAllowed) cfg.logAllowed = logAllowed;
  if (*oMetrics) cfg.metricsListen = metricsListen;
  if (*oStore) cfg.flowStoreSize = flowStoreSize;
  if (*oTtl) cfg.answerTtlSeconds = answerTtl;
  if (*oData) cfg.dataDir = dataDir;
  if (*oEtcd) cfg.cluster.etcdEndpoints = etcdEndpoints;
  if (*oNode) cfg.cluster.nodeName = nodeName;
  if (*oAddrs) cfg.cluster.nodeAddresses = nodeAddresses;
  if (*oPrefix) cfg.cluster.prefix = clusterPrefix;
  if (*oCa) cfg.cluster.etcdCaCert = etcdCaCert;
  if (*oCert) cfg.cluster.etcdCert = etcdCert;
  if (*oKey) cfg.cluster.etcdKey = etcdKey;
  if (*oNodeTtl) cfg.cluster.nodeTtlSeconds = nodeTtl;
  if (*oWire) cfg.cluster.wireIdentity = wireIdentity == "on";
  if (*oRevoke) cfg.revokeOnChange = revokeEstablished == "on-change";
  if (*oMaxGrant) {
    std::string err;
    auto d = microseg::grants::parseDuration(maxGrant, err);
    if (!d) {
      std::cerr << "microsegd: --max-grant: " << err << "\n";
      return 2;
    }
    cfg.maxGrantSeconds = *d;
  }
  if (*oEdgeRetention) {
    std::string err;
    auto d = microseg::parseLongDuration(edgeRetention, err);
    if (!d) {
      std::cerr << "microsegd: --edge-retention: " << err << "\n";
      return 2;
    }
    cfg.edgeRetentionSeconds = *d;
  }
  for (auto [opt, text, out, flag] : {std::tuple{oFqdnMin, &fqdnMinTtl, &cfg.fqdnMinTtlSeconds, "--fqdn-min-ttl"},
                                      std::tuple{oFqdnMax, &fqdnMaxTtl, &cfg.fqdnMaxTtlSeconds, "--fqdn-max-ttl"}}) {
    if (!*opt) continue;
    std::string err;
    auto d = microseg::grants::parseDuration(*text, err);
    if (!d) {
      std::cerr << "microsegd: " << flag << ": " << err << "\n";
      return 2;
    }
    *out = *d;
  }
  if (*oFqdnResolvers) cfg.fqdnResolvers = fqdnResolvers;
  if (cfg.fqdnMinTtlSeconds > cfg.fqdnMaxTtlSeconds) {
    std::cerr << "microsegd: --fqdn-min-ttl (" << cfg.fqdnMinTtlSeconds << " s) is longer than --fqdn-max-ttl ("
              << cfg.fqdnMaxTtlSeconds << " s)\n";
    return 2;
  }
  if (*oDefault) {
    cfg.defaultEnforcement = defaultEnforcement == "selected"
                                 ? microseg::compiler::DefaultEnforcement::Selected
                                 : microseg::compiler::DefaultEnforcement::Always;
  }
  cfg.modeFromFlagOrFile = *oMode || !configPath.empty();
  if (!*oLevel && !fileLevel.empty()) logLevel = fileLevel;
  spdlog::set_level(spdlog::level::from_str(logLevel));
  spdlog::flush_on(spdlog::level::info);

  if (geteuid() != 0) {
    spdlog::error("microsegd must run as root (it loads BPF programs and attaches them to cgroups)");
    return 1;
  }
  if (cleanup) {
    auto n = microseg::datapath::BpfDatapath::cleanupStateDir(cfg.stateDir);
    if (!n) {
      spdlog::error("cleanup: {}", n.error().str());
      return 1;
    }
    spdlog::info("cleanup: removed {} pinned objects under {}", *n, cfg.stateDir);
    return 0;
  }
  if (cfg.policyFromEtcd() && !cfg.cluster.enabled()) {
    std::cerr << "microsegd: --policy etcd needs --etcd-endpoints (cluster mode)\n";
    return 2;
  }
  if (cfg.cgroupRoot.empty() || cfg.policyPaths.empty()) {
    std::cerr << "microsegd: --cgroup-root and --policy are required (as flags or in --config)\n";
    return 2;
  }
  auto kernelDatapath = [](const DaemonConfig& c, uint64_t hostNetnsCookie)
      -> microseg::Result<std::unique_ptr<microseg::datapath::Datapath>> {
    microseg::datapath::BpfOptions opts;
    opts.cgroupRoot = c.cgroupRoot;
    opts.hostNetnsCookie = hostNetnsCookie;
    opts.stateDir = c.stateDir;
    opts.mode = c.mode;
    opts.logAllowed = c.logAllowed;
    opts.answerTtlNs = uint64_t(c.answerTtlSeconds) * 1000000000ull;
    opts.fqdnMinTtlSeconds = static_cast<uint32_t>(c.fqdnMinTtlSeconds);
    opts.fqdnMaxTtlSeconds = static_cast<uint32_t>(c.fqdnMaxTtlSeconds);
    opts.fqdnResolvers = c.fqdnResolvers;
    auto dp = microseg::datapath::BpfDatapath::load(opts);
    if (!dp) return dp.error();
    return std::unique_ptr<microseg::datapath::Datapath>(std::move(dp.value()));
  };
  auto kernelSockets = [](const std::string& pinDir) -> microseg::Result<std::unique_ptr<microseg::datapath::Sockets>> {
    auto it = microseg::datapath::SocketIterator::open(pinDir);
    if (!it) return it.error();
    return std::unique_ptr<microseg::datapath::Sockets>(std::move(it.value()));
  };
  microseg::daemon::Daemon daemon(cfg, kernelDatapath, kernelSockets);
  return daemon.run();
}
