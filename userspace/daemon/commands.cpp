// Control commands that change the daemon's state: the mode (global or per
// workload), policy reload and apply, uninstall. Each needs root or the
// socket group (control/server.h checks) and is logged with its caller.
#include "daemon/daemon.h"

#include <spdlog/spdlog.h>

#include "common/names.h"
#include "daemon/caller_files.h"
#include "control/protocol.h"
#include "control/server.h"

namespace microseg::daemon {
namespace {

using nlohmann::json;

}  // namespace

void Daemon::registerCommands() {
  using control::ControlError;
  using control::Request;

  // Read-only, but asks every etcd endpoint (up to 1 s each): outside the lock.
  control_->registerCommand(
      command::kClusterStatus, [this](const Request&) {
        if (!agent_) {
          throw ControlError(control::kErrBadRequest, "this daemon is not in cluster mode (no --etcd-endpoints)", {});
        }
        json etcd = json::array();
        for (const auto& e : agent_->health()) {
          etcd.push_back(json{{"endpoint", e.endpoint},
                              {"healthy", e.healthy},
                              {"version", e.version},
                              {"leader", e.leader},
                              {"revision", e.revision},
                              {"latency_ms", e.latencyMs},
                              {"error", e.error}});
        }
        std::lock_guard<std::mutex> lock(mu_);
        return clusterReportLocked(std::move(etcd));
      },
      false);

  control_->registerCommand(
      command::kStatus, [this](const Request&) {
        // A reload (up to ~1 s at 100k rules) holds the lock: answer from
        // the last status built rather than wait for it.
        std::unique_lock<std::mutex> lock(mu_, std::try_to_lock);
        if (!lock.owns_lock()) return statusWithoutLock();
        publishStatusLocked();
        std::lock_guard<std::mutex> snap(statusMu_);
        return *statusSnapshot_;
      },
      false);

  control_->registerCommand(
      command::kModeGet, [this](const Request&) {
        std::lock_guard<std::mutex> lock(mu_);
        return json{{"mode", modeName(datapath_->mode())}};
      },
      false);

  control_->registerCommand(
      command::kModeSet, [this](const Request& req) {
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
          auto it = gen().ids.byWorkload.find(w);
          if (it == gen().ids.byWorkload.end()) {
            throw ControlError(control::kErrBadRequest, "no workload named '" + w + "'", {});
          }
          if (auto r = datapath_->setIdentityMode(it->second, *mode, gen().compiled); !r) {
            throw ControlError(control::kErrInternal, r.error().str(), {});
          }
          std::string previous = modeName(MS_MODE_INHERIT);
          if (auto m = workloadModes_.find(w); m != workloadModes_.end()) previous = modeName(m->second);
          if (*mode == MS_MODE_INHERIT) {
            workloadModes_.erase(w);
          } else {
            workloadModes_[w] = *mode;
          }
          spdlog::info("control: workload {} mode {} -> {} (uid={} pid={})", w, previous, want,
                       req.peer.uid, req.peer.pid);
          // Monitor refuses nothing more: nothing to revoke.
          if (*mode != MS_MODE_MONITOR) revokeEstablishedLocked({"workload " + w + " mode " + want, true, {}});
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
        if (*mode == MS_MODE_ENFORCE) revokeEstablishedLocked({"mode " + want, true, {}});
        return json{{"mode", want}, {"previous", previous}};
      },
      true);

  control_->registerCommand(
      command::kUninstall, [this](const Request& req) {
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
      command::kPolicyReload, [this, reloadReply](const Request& req) {
        std::lock_guard<std::mutex> lock(mu_);
        auto paths = config_.policyPaths;
        auto r = reloadLocked(paths, "control (uid " + std::to_string(req.peer.uid) + ")");
        return reloadReply(r);
      },
      true);

  control_->registerCommand(
      command::kPolicyApply, [this, reloadReply](const Request& req) {
        if (config_.policyFromEtcd()) {
          throw ControlError(control::kErrBadRequest,
                             "this node follows the policy pushed to the cluster (--policy etcd): "
                             "change it with `microseg policy push`",
                             {});
        }
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
        bool allowEmpty = false;
        if (req.body.contains("allow_empty")) {
          if (!req.body["allow_empty"].is_boolean()) {
            throw ControlError(control::kErrBadRequest, "field 'allow_empty' must be a boolean", {});
          }
          allowEmpty = req.body["allow_empty"].get<bool>();
        }
        // The caller's paths are read with the caller's credentials.
        const FsIdentity caller = callerIdentity(req.peer);
        std::lock_guard<std::mutex> lock(mu_);
        if (paths.empty()) paths = config_.policyPaths;
        auto r = reloadLocked(paths, "apply (uid " + std::to_string(req.peer.uid) + ")", allowEmpty, &caller);
        return reloadReply(r);
      },
      true);
}

}  // namespace microseg::daemon
