// microsegd's configuration file (--config, YAML). Every key is also a flag;
// flags override the file. Unknown keys and bad values are located errors.
#pragma once

#include <string>
#include <vector>

#include "daemon/daemon.h"
#include "policy/model.h"

namespace microseg::daemon {

// Keys (camelCase, as in the example in packaging/microseg.yaml):
//   cgroupRoot, policy (string or list), mode, socket, socketGroup (gid or
//   group name), stateDir, flowLog, logAllowed, answerTtlSeconds,
//   defaultEnforcement, logLevel, rescanIntervalMs
// `logLevel` is returned separately (it configures the logger, not the daemon).
std::vector<policy::Diagnostic> loadConfigFile(const std::string& path, DaemonConfig& cfg,
                                               std::string& logLevel);

}  // namespace microseg::daemon
