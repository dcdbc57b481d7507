// microsegd: the microseg daemon. See README.md "Running the daemon".
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <CLI/CLI.hpp>

#include "daemon/daemon.h"

int main(int argc, char** argv) {
  using microseg::daemon::DaemonConfig;
  CLI::App app{"microsegd: zero-trust microsegmentation enforcer (cgroup BPF)"};
  DaemonConfig cfg;
  std::string mode = "monitor";
  std::string logLevel = "info";
  std::string defaultEnforcement = "always";
  app.add_option("--cgroup-root", cfg.cgroupRoot,
                 "cgroup v2 directory whose subtree is managed (absolute path)")
      ->required();
  app.add_option("--policy", cfg.policyPaths, "policy FILE or DIR (repeatable)")->required();
  app.add_option("--mode", mode, "monitor (log would-deny) or enforce (refuse)")
      ->check(CLI::IsMember({"monitor", "enforce"}));
  app.add_option("--socket", cfg.socketPath, "control socket path")->capture_default_str();
  app.add_option("--socket-group", cfg.socketGroup, "gid allowed to use the control socket");
  app.add_option("--state-dir", cfg.stateDir, "bpffs directory for pinned state")
      ->capture_default_str();
  app.add_option("--flow-log", cfg.flowLog, "flow log file (JSON lines), '-' for stdout");
  app.add_flag("--log-allowed", cfg.logAllowed, "also log allowed flows");
  app.add_option("--answer-ttl", cfg.answerTtlSeconds,
                 "seconds a UDP socket may answer a peer it heard from")
      ->capture_default_str()
      ->check(CLI::Range(1, 3600));
  app.add_option("--default-enforcement", defaultEnforcement,
                 "always (zero trust) or selected (Kubernetes semantics)")
      ->check(CLI::IsMember({"always", "selected"}));
  app.add_option("--log-level", logLevel, "trace|debug|info|warn|error")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error"}));
  CLI11_PARSE(app, argc, argv);

  // journald-friendly: no colours, no timestamps when stderr is the journal.
  auto logger = spdlog::stderr_logger_mt("microsegd");
  logger->set_pattern(getenv("JOURNAL_STREAM") != nullptr ? "<%l> %v" : "%Y-%m-%dT%H:%M:%S.%e %l %v");
  spdlog::set_default_logger(logger);
  spdlog::set_level(spdlog::level::from_str(logLevel));
  spdlog::flush_on(spdlog::level::info);

  if (geteuid() != 0) {
    spdlog::error("microsegd must run as root (it loads BPF programs and attaches them to cgroups)");
    return 1;
  }
  cfg.mode = mode == "enforce" ? MS_MODE_ENFORCE : MS_MODE_MONITOR;
  cfg.defaultEnforcement = defaultEnforcement == "selected"
                               ? microseg::compiler::DefaultEnforcement::Selected
                               : microseg::compiler::DefaultEnforcement::Always;
  microseg::daemon::Daemon daemon(cfg);
  return daemon.run();
}
