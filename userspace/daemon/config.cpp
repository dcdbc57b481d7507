#include "daemon/config.h"

#include "common/names.h"

namespace microseg::daemon {

nlohmann::json DaemonConfig::toJson() const {
  using nlohmann::json;
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
              {"data_dir", dataDir},
              {"max_grant_seconds", maxGrantSeconds},
              {"revoke_established", revokeOnChange ? "on-change" : "never"},
              {"edge_retention_seconds", edgeRetentionSeconds},
              {"fqdn_min_ttl_seconds", fqdnMinTtlSeconds},
              {"fqdn_max_ttl_seconds", fqdnMaxTtlSeconds},
              {"fqdn_resolvers", fqdnResolvers},
              {"cluster",
               cluster.enabled() ? json{{"etcd_endpoints", cluster.etcdEndpoints},
                                        {"node_name", cluster.nodeName},
                                        {"node_addresses", cluster.nodeAddresses},
                                        {"prefix", cluster.prefix},
                                        {"etcd_cacert", cluster.etcdCaCert},
                                        {"etcd_cert", cluster.etcdCert},
                                        {"etcd_key", cluster.etcdKey},
                                        {"node_ttl_seconds", cluster.nodeTtlSeconds},
                                        {"wire_identity", cluster.wireIdentity ? "on" : "off"}}
                                 : json(nullptr)},
              {"default_enforcement",
               defaultEnforcement == compiler::DefaultEnforcement::Always ? "always" : "selected"}};
}

}  // namespace microseg::daemon
