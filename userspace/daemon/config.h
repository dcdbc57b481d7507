// microsegd's settings: flags (main.cpp) over the configuration file
// (config_file.h) over these defaults.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "bpf/abi.h"
#include "compiler/compiler.h"

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
  // Where microsegd keeps what is not kernel state (the cluster lease,
  // the last known cluster view and pushed policy).
  std::string dataDir = "/var/lib/microseg";
  // The longest `microseg grant --for` (README "Temporary access"); the
  // grants themselves are kept in <dataDir>/grants.json.
  int64_t maxGrantSeconds = 8 * 3600;
  // --revoke-established on-change: a new generation destroys every
  // established connection it no longer allows (README "Revocation");
  // false (never): only those of workloads selected by a policy with
  // spec.revokeEstablished: on-change, and those a grant alone allowed.
  bool revokeOnChange = false;
  // How long an observed edge (a flow record) is kept after it was last
  // seen, across restarts (<dataDir>/edges.json): --edge-retention.
  int64_t edgeRetentionSeconds = 7 * 86400;
  // How long a DNS answer binds its addresses to a name (fqdn peers): its
  // TTL raised to the minimum, lowered to the maximum (--fqdn-min-ttl,
  // --fqdn-max-ttl).
  int64_t fqdnMinTtlSeconds = 5;
  int64_t fqdnMaxTtlSeconds = 3600;
  // Resolvers whose answers bind names (--fqdn-resolvers); empty: the
  // nameservers of /etc/resolv.conf.
  std::vector<std::string> fqdnResolvers;

  // Cluster mode (README "Cluster"): on when etcd endpoints are given.
  struct Cluster {
    std::vector<std::string> etcdEndpoints;  // http(s)://host:port, host:port, unix:///path
    std::string nodeName;                    // default: the host name
    std::vector<std::string> nodeAddresses;  // default: the host netns's addresses
    std::string prefix = "/microseg";
    std::string etcdCaCert, etcdCert, etcdKey;
    uint32_t nodeTtlSeconds = 30;            // rides out a daemon restart
    // Identity on the wire (cluster/wire_keys.h): sign this node's SYNs to
    // other nodes with the cluster key. Off: sign none, still verify.
    bool wireIdentity = true;
    bool enabled() const { return !etcdEndpoints.empty(); }
  } cluster;
  // `--policy etcd`: the fleet's pushed policy set, not files.
  bool policyFromEtcd() const { return policyPaths.size() == 1 && policyPaths[0] == "etcd"; }

  // As status (`config`) and the start-up log show it.
  nlohmann::json toJson() const;
};

}  // namespace microseg::daemon
