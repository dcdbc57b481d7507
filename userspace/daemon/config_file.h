// microsegd's configuration file (--config, YAML). Every key is also a flag;
// flags override the file. Unknown keys and bad values are located errors
// ("FILE:LINE:COL: error: ..."). Read with the policy files' YAML reader
// (policy/yaml_reader.h) under the same bounds (policy::LoadLimits: size,
// nesting, aliases): a regular file of one YAML document.
#pragma once

#include <string>
#include <vector>

#include "daemon/config.h"
#include "policy/loader.h"
#include "policy/model.h"

namespace microseg::daemon {

// Keys (camelCase, as in the example in packaging/microseg.yaml):
//   cgroupRoot, policy (string or list), mode, socket, socketGroup (gid or
//   group name), stateDir, flowLog, logAllowed, answerTtlSeconds,
//   defaultEnforcement, logLevel, rescanIntervalMs, metricsListen,
//   flowStoreSize, dataDir; cluster mode: etcdEndpoints, nodeName,
//   nodeAddresses, clusterPrefix, etcdCacert, etcdCert, etcdKey, nodeTtl,
//   wireIdentity (on | off)
// Integers are decimal digits (no sign, no leading zero). `logLevel` is
// returned separately (it configures the logger, not the daemon).
std::vector<policy::Diagnostic> loadConfigFile(const std::string& path, DaemonConfig& cfg, std::string& logLevel,
                                               const policy::LoadLimits& limits = {});

}  // namespace microseg::daemon
