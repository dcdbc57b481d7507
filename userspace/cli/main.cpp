// microseg: the operator CLI. Talks to microsegd over its control socket,
// except `policy validate` and `import`, which work offline, and `policy
// push` and `cluster rotate-key`, which talk to etcd.
//
// Exit codes (scripts may rely on them; --help says them too, kExitCodes):
//   0  success (policy validate: the files are valid; policy push: the set is
//      stored, or was already; cluster rotate-key: the new key is stored)
//   1  the command failed: invalid policy, the daemon answered with an error,
//      a path that does not exist, a garbled reply, etcd refused the push,
//      a concurrent rotate-key
//   2  usage error (bad arguments, unknown command or value; policy push,
//      cluster rotate-key: no etcd endpoint given or known to the local daemon)
//   3  the daemon is not reachable (not running, wrong --socket, no reply in
//      time); policy push, cluster rotate-key: etcd is not reachable
//   4  permission denied (socket permissions, or a mutation by a caller that is
//      neither root nor in the socket's group)
//   5  cluster status: the daemon is not in cluster mode
//   6  policy diff: observed traffic would break (the candidate set denies
//      flows of the window that passed); 0 there means nothing observed would
//      break (CI gates a policy change on it)
// Errors go to stderr as one line "microseg: <message>"; policy diagnostics
// ("FILE:LINE:COL: error: ...") precede it, one per line.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include "common/version.h"
#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <chrono>
#include <csignal>
#include <iostream>
#include <optional>
#include <thread>

#include "bpf/abi.h"
#include "cli/cluster_views.h"
#include "cli/exit_codes.h"
#include "cli/format.h"
#include "cli/grant_commands.h"
#include "cli/fqdn_command.h"
#include "cli/promote_command.h"
#include "cli/push.h"
#include "cli/request.h"
#include "cli/rotate_key.h"
#include "cli/rollout_commands.h"
#include "cli/stdin_files.h"
#include "cli/table.h"
#include "cli/views.h"
#include "common/names.h"
#include "common/text.h"
#include "control/client.h"
#include "control/protocol.h"
#include "k8s_import/importer.h"
#include "policy/parser.h"

namespace {

using nlohmann::json;
namespace control = microseg::control;
namespace cli = microseg::cli;
namespace command = microseg::command;
using cli::fail;
using cli::printJson;
using enum cli::Exit;

// Policy loads compile the whole set; give them longer than a status query.
constexpr int kQueryTimeoutMs = 5000;
constexpr int kPolicyTimeoutMs = 30000;
// cluster.status asks every etcd endpoint (up to 1 s each) before it answers.
constexpr int kClusterTimeoutMs = 20000;

struct Globals {
  std::string socket = control::kDefaultSocket;
  std::string output = "table";
  bool json() const { return output == "json"; }
};

int request(const Globals& g, const json& req, json& result, int timeoutMs = kQueryTimeoutMs) {
  return cli::request(g.socket, req, result, timeoutMs);
}



int cmdStatus(const Globals& g) {
  json r;
  if (int rc = request(g, {{"command", command::kStatus}}, r); rc != kOk) return rc;
  if (g.json()) {
    printJson(r);
  } else {
    cli::printStatus(r, std::cout);
  }
  return kOk;
}

int cmdMode(const Globals& g, const std::string& value, const std::string& workload) {
  json r;
  if (value.empty()) {
    if (!workload.empty()) return fail("--workload needs a mode to set", kUsage);
    if (int rc = request(g, {{"command", command::kModeGet}}, r); rc != kOk) return rc;
    if (g.json()) {
      printJson(r);
    } else {
      std::cout << cli::field(r, "mode") << "\n";
    }
    return kOk;
  }
  if (value == microseg::modeName(MS_MODE_INHERIT) && workload.empty()) {
    return fail("mode 'inherit' is only valid with --workload (allowed: monitor, enforce)", kUsage);
  }
  json req = {{"command", command::kModeSet}, {"mode", value}};
  if (!workload.empty()) req["workload"] = workload;
  if (int rc = request(g, req, r); rc != kOk) return rc;
  if (g.json()) {
    printJson(r);
  } else if (!workload.empty()) {
    std::cout << "workload " << cli::sanitize(workload) << " mode: " << cli::field(r, "mode") << " (was "
              << cli::field(r, "previous") << ")\n";
  } else {
    std::cout << "mode: " << cli::field(r, "mode") << " (was " << cli::field(r, "previous") << ")\n";
  }
  return kOk;
}

int cmdValidate(const Globals& g, const std::vector<std::string>& paths) {
  // "-": the text piped in.
  microseg::policy::ParseResult res;
  if (std::find(paths.begin(), paths.end(), "-") != paths.end()) {
    microseg::policy::PolicyLoader loader;
    auto in = cli::StdinFiles::read(loader.limits().maxFileBytes);
    if (!in) return fail(in.error().str(), kFailed);
    res = loader.load(paths, *in);
  } else {
    res = microseg::policy::loadPaths(paths);
  }
  // Valid, but applied it would leave every workload unmanaged.
  json warnings = json::array();
  if (res.ok() && res.empty()) {
    warnings.push_back("the set is empty (no Workload, External or Policy): applied, it would leave every "
                       "workload unmanaged");
  } else if (res.ok() && !res.hasWorkloads()) {
    warnings.push_back("the set has no Workload: applied, it would leave every workload unmanaged");
  }
  if (res.ok()) {
    for (const auto& w : microseg::policy::tierWarnings(res.bundle)) {
      warnings.push_back(w.loc.file.str() + ":" + std::to_string(w.loc.line) + ":" + std::to_string(w.loc.column) +
                         ": " + w.message);
    }
  }
  if (g.json()) {
    json errs = json::array();
    for (const auto& d : res.errors) errs.push_back(d.str());
    printJson({{"valid", res.ok()},
               {"errors", errs},
               {"warnings", warnings},
               {"workloads", res.bundle.workloads.size()},
               {"externals", res.bundle.externals.size()},
               {"policies", res.bundle.policies.size()},
               {"staged", res.bundle.stagedPolicies()}});
    return res.ok() ? kOk : kFailed;
  }
  for (const auto& d : res.errors) std::cerr << cli::sanitize(d.str()) << "\n";
  for (const auto& w : warnings) std::cerr << "warning: " << w.get<std::string>() << "\n";
  if (!res.ok()) {
    const size_t n = res.errors.size();
    return fail(std::to_string(n) + (n == 1 ? " error" : " errors") + ": invalid", kFailed);
  }
  std::cout << res.bundle.workloads.size() << " workloads, ";
  if (!res.bundle.externals.empty()) std::cout << res.bundle.externals.size() << " externals, ";
  std::cout << res.bundle.policies.size() << " policies";
  if (const size_t staged = res.bundle.stagedPolicies(); staged != 0) {
    std::cout << " (" << staged << " staged, not enforced:";
    for (const auto& p : res.bundle.policies) {
      if (p.staged) std::cout << " " << cli::sanitize(p.name);
    }
    std::cout << ")";
  }
  std::cout << ": valid\n";
  return kOk;
}

// paths empty: policy.reload (the daemon's own paths); else policy.apply,
// which refuses a set without a Workload unless `allowEmpty`.
int cmdLoad(const Globals& g, const std::vector<std::string>& paths, bool allowEmpty = false) {
  json req = {{"command", paths.empty() ? command::kPolicyReload : command::kPolicyApply}};
  if (allowEmpty) req["allow_empty"] = true;
  if (!paths.empty()) {
    // The daemon resolves paths in its own working directory; send absolute ones.
    json abs = json::array();
    for (const auto& p : paths) {
      char buf[PATH_MAX];
      if (realpath(p.c_str(), buf) == nullptr) {
        return fail("cannot resolve '" + p + "': " + std::strerror(errno), kFailed);
      }
      abs.push_back(std::string(buf));
    }
    req["paths"] = abs;
  }
  json r;
  if (int rc = request(g, req, r, kPolicyTimeoutMs); rc != kOk) return rc;
  if (g.json()) {
    printJson(r);
  } else {
    std::cout << "policy generation " << cli::field(r, "generation") << " applied (" << cli::field(r, "entries")
              << " map entries)\n";
  }
  return kOk;
}

int cmdClusterStatus(const Globals& g) {
  // Asked first (and cheap): a daemon not in cluster mode gets its own exit
  // code, not the generic "the daemon answered with an error".
  json st;
  if (int rc = request(g, {{"command", command::kStatus}}, st); rc != kOk) return rc;
  if (!st.contains("cluster") || !st["cluster"].is_object()) {
    return fail("the daemon at " + g.socket +
                    " is not in cluster mode (started without --etcd-endpoints): there is no cluster to show",
                kNotCluster);
  }
  json r;
  if (int rc = request(g, {{"command", command::kClusterStatus}}, r, kClusterTimeoutMs); rc != kOk) return rc;
  if (g.json()) {
    printJson(r);
  } else {
    cli::printClusterStatus(r, std::cout);
  }
  return kOk;
}

// `workloads`: the daemon's reply; in a table, the other nodes' workloads
// (from status) follow.
int cmdWorkloads(const Globals& g) {
  json r;
  if (int rc = request(g, {{"command", command::kWorkloads}}, r); rc != kOk) return rc;
  if (g.json()) {
    printJson(r);
    return kOk;
  }
  cli::printWorkloads(r, std::cout);
  auto st = control::call(g.socket, {{"command", command::kStatus}}, kQueryTimeoutMs);
  if (st && st->value("ok", false)) {
    cli::printRemoteWorkloads(st->value("result", json::object()).value("remote_workloads", json::array()),
                              std::cout);
  } else {
    std::cerr << "microseg: the other nodes' workloads are not shown: status did not answer\n";
  }
  return kOk;
}

int cmdUninstall(const Globals& g) {
  json r;
  if (int rc = request(g, {{"command", command::kUninstall}}, r, kPolicyTimeoutMs); rc != kOk) return rc;
  if (g.json()) {
    printJson(r);
  } else {
    std::cout << "uninstalling: programs detached and pinned state under " << cli::field(r, "state_dir")
              << " removed; microsegd exits\n";
  }
  return kOk;
}

struct FlowFilter {
  std::string verdict, from, to, since;
  int port = 0;
  int limit = 1000;
  bool staged = false;  // show the staged verdict beside the real one
};

volatile std::sig_atomic_t gStop = 0;

int cmdFlows(const Globals& g, const FlowFilter& f, bool follow) {
  json req = {{"command", command::kFlows}, {"limit", f.limit}};
  if (!f.verdict.empty()) req["verdict"] = f.verdict;
  if (!f.from.empty()) req["from"] = f.from;
  if (!f.to.empty()) req["to"] = f.to;
  if (f.port != 0) req["port"] = f.port;
  if (!f.since.empty()) {
    auto secs = cli::parseDuration(f.since);
    if (!secs) return fail("--since '" + f.since + "' is not a duration like 90s, 10m, 2h, 1d", kUsage);
    req["since_seconds"] = *secs;
  }
  json r;
  if (int rc = request(g, req, r); rc != kOk) return rc;
  auto emit = [&](const json& records, bool header) {
    if (g.json()) {
      if (follow) {
        for (const auto& rec : records) std::cout << control::encodeMessage(rec) << "\n";
      } else {
        printJson(r);
      }
    } else {
      cli::printFlows(records, std::cout, header, f.staged);
    }
    std::cout.flush();
  };
  json records = r.value("records", json::array());
  if (f.staged && !r.value("staged", false)) {
    std::cerr << "microseg: the policy in force has no staged policy (spec.staged: true): nothing to compare\n";
  }
  if (!follow) {
    emit(records, true);
    if (!g.json() && r.value("events_lost", 0) > 0) {
      std::cerr << "microseg: " << r.value("events_lost", 0) << " events were lost (the event ring or the daemon's spool was full)\n";
    }
    return kOk;
  }
  // Oldest first when following, like a log.
  std::reverse(records.begin(), records.end());
  emit(records, false);
  uint64_t seq = r.value("seq", 0);
  std::signal(SIGINT, [](int) { gStop = 1; });
  std::signal(SIGTERM, [](int) { gStop = 1; });
  req.erase("since_seconds");
  while (!gStop) {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    req["after_seq"] = seq;
    json next;
    if (int rc = request(g, req, next); rc != kOk) return rc;
    emit(next.value("records", json::array()), false);
    seq = next.value("seq", seq);
  }
  return kOk;
}

int cmdExplain(const Globals& g, const std::string& from, const std::string& to, const std::string& portSpec,
               const std::string& direction, int64_t flow) {
  json req = {{"command", command::kExplain}};
  if (flow > 0) {
    if (!from.empty() || !to.empty() || !portSpec.empty()) {
      return fail("--flow excludes --from/--to/--port", kUsage);
    }
    req["flow"] = flow;
  } else {
    if (from.empty() || to.empty() || portSpec.empty()) {
      return fail("explain needs --from, --to and --port (or --flow ID)", kUsage);
    }
    auto p = cli::parsePortSpec(portSpec);
    if (!p) return fail("--port '" + portSpec + "' is not PORT[/tcp|/udp] with PORT in 1-65535", kUsage);
    req["from"] = from;
    req["to"] = to;
    req["port"] = p->first;
    req["protocol"] = p->second;
    if (!direction.empty()) req["direction"] = direction;
  }
  json r;
  if (int rc = request(g, req, r); rc != kOk) return rc;
  if (g.json()) {
    printJson(r);
  } else {
    cli::printExplain(r, std::cout);
  }
  return kOk;
}

int cmdSimple(const Globals& g, const char* command, void (*print)(const json&, std::ostream&)) {
  json r;
  if (int rc = request(g, {{"command", command}}, r); rc != kOk) return rc;
  if (g.json()) {
    printJson(r);
  } else {
    print(r, std::cout);
  }
  return kOk;
}

int cmdGraph(const Globals& g, const std::string& format) {
  json r;
  if (int rc = request(g, {{"command", command::kGraph}}, r); rc != kOk) return rc;
  if (format == "json") {
    printJson(r);
  } else {
    std::cout << cli::graphDot(r);
  }
  return kOk;
}

// `import k8s`: offline, like `policy validate`. Warnings (what Kubernetes
// ignores too) and errors go to stderr; the documents to stdout only when
// everything translated.
int cmdImportK8s(const std::vector<std::string>& files, const std::string& pattern, bool patternGiven) {
  microseg::k8s::TranslateOptions opts;
  if (patternGiven) {
    if (std::string why = microseg::k8s::checkCgroupPattern(pattern); !why.empty()) {
      return fail("--cgroup-pattern: " + why, kUsage);
    }
    opts.cgroupPattern = pattern;
  }
  const auto res = microseg::k8s::importFiles(files.empty() ? std::vector<std::string>{"-"} : files, opts);
  for (const auto& w : res.warnings) {
    const std::string e = w.str();  // "<where>: error: <message>"
    const std::string where = e.substr(0, e.size() - w.message.size() - std::strlen(": error: "));
    std::cerr << cli::sanitize(where + ": warning: " + w.message) << "\n";
  }
  for (const auto& d : res.errors) std::cerr << cli::sanitize(d.str()) << "\n";
  if (!res.ok()) {
    const size_t n = res.errors.size();
    return fail(std::to_string(n) + (n == 1 ? " error" : " errors") + ": nothing imported", kFailed);
  }
  std::cout << res.yaml;
  return kOk;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"microseg: inspect and control the microseg daemon (microsegd)", "microseg"};
  app.set_version_flag("--version", std::string("microseg ") + microseg::kVersion);
  // Global options may also follow the subcommand: `microseg status --socket X`.
  app.fallthrough();
  app.require_subcommand(1);
  Globals g;
  app.add_option("--socket", g.socket, "control socket of microsegd")
      ->envname("MICROSEG_SOCKET")
      ->capture_default_str();
  const auto outputCheck = CLI::IsMember({"table", "json"});
  app.add_option("-o,--output", g.output, "output format: table or json")->check(outputCheck);
  auto addOutput = [&](CLI::App* sub) {
    sub->add_option("-o,--output", g.output, "output format: table or json")->check(outputCheck);
  };

  auto* status = app.add_subcommand("status", "daemon state, counters and workloads");
  addOutput(status);

  auto* mode = app.add_subcommand("mode", "print the enforcement mode, or set it: monitor | enforce");
  std::string modeValue, workload;
  mode->add_option("mode", modeValue, "monitor or enforce (inherit: only with --workload)")
      ->check(CLI::Validator(
          [](std::string& v) -> std::string {
            if (microseg::parseMode(v)) return {};
            return "'" + v + "' is not a mode (allowed: monitor, enforce)";
          },
          "monitor|enforce", "mode"));
  mode->add_option("--workload", workload, "set the mode of this workload only");
  addOutput(mode);

  auto* pol = app.add_subcommand("policy", "validate, reload, apply, show, diff or push (cluster) policies");
  pol->require_subcommand(1);
  auto* validate = pol->add_subcommand("validate", "check policy files offline (no daemon needed)");
  std::vector<std::string> validatePaths;
  validate->add_option("paths", validatePaths, "policy FILE or DIR (- reads stdin)")->required();
  addOutput(validate);
  auto* reload = pol->add_subcommand("reload", "make the daemon re-read its policy paths");
  addOutput(reload);
  auto* apply = pol->add_subcommand("apply", "make the daemon load these paths from now on");
  std::vector<std::string> applyPaths;
  bool allowEmpty = false;
  apply->add_option("paths", applyPaths, "policy FILE or DIR")->required();
  apply->add_flag("--allow-empty", allowEmpty,
                  "apply it even if it defines no Workload (every workload becomes unmanaged)");
  addOutput(apply);
  auto* push = pol->add_subcommand(
      "push", "validate policy files, then store them in etcd as the fleet's policy (one revision)");
  cli::PushArgs pushArgs;
  std::string pushPrefix, pushCa, pushCert, pushKey;
  push->add_option("paths", pushArgs.paths, "policy FILE or DIR (a DIR's *.yaml and *.yml)")->required();
  push->add_option("--etcd-endpoints", pushArgs.flags.endpoints,
                   "etcd URL(s), comma-separated [the local daemon's]")
      ->delimiter(',')
      ->allow_extra_args(false);  // one word per use: the paths that follow are not endpoints
  auto* pushPrefixOpt = push->add_option("--cluster-prefix", pushPrefix, "etcd key prefix [the daemon's, or /microseg]");
  auto* pushCaOpt = push->add_option("--etcd-cacert", pushCa, "CA of the etcd members' certificates (TLS)");
  auto* pushCertOpt = push->add_option("--etcd-cert", pushCert, "client certificate for etcd's client auth");
  auto* pushKeyOpt = push->add_option("--etcd-key", pushKey, "key of --etcd-cert");
  push->add_flag("--dry-run", pushArgs.dryRun, "validate and compare with the stored set; write nothing");
  addOutput(push);
  cli::DiffArgs diffArgs;
  std::string promoteName;
  auto* promote = pol->add_subcommand(
      "promote", "put a staged policy in force: remove its `staged: true` line from its file, and reload");
  promote->add_option("NAME", promoteName, "the staged policy")->required();
  addOutput(promote);
  auto* diffCmd = pol->add_subcommand(
      "diff", "a candidate set against the one in force, over the observed flows: what would break, what "
              "widens, which workload pairs gain or lose a path (exit 6 if observed traffic would break)");
  diffCmd->add_option("paths", diffArgs.paths, "candidate policy FILE or DIR")->required();
  diffCmd->add_option("--since", diffArgs.since, "only flows seen in this window: 30m, 24h, 7d");
  diffCmd->add_option("-o,--output", diffArgs.output, "table or json")->check(CLI::IsMember({"table", "json"}));

  auto* flows = app.add_subcommand("flows", "aggregated flow records: who talked to whom, with which verdict");
  FlowFilter ff;
  bool follow = false;
  flows->add_option("--verdict", ff.verdict, "allow, deny, audit, revoked or would-revoke")
      ->check(CLI::IsMember({microseg::verdictName(MS_VERDICT_ALLOW), microseg::verdictName(MS_VERDICT_DENY),
                             microseg::verdictName(MS_VERDICT_AUDIT), microseg::verdictName(MS_VERDICT_REVOKED),
                             microseg::verdictName(MS_VERDICT_WOULD_REVOKE)}));
  flows->add_option("--from", ff.from, "source: workload name, host/world/unmanaged, or labels k=v[,k=v]");
  flows->add_option("--to", ff.to, "destination: workload name, reserved name, or labels k=v[,k=v]");
  flows->add_option("--port", ff.port, "destination port")->check(CLI::Range(1, 65535));
  flows->add_option("--since", ff.since, "only records seen in the last 90s, 10m, 2h, 1d");
  flows->add_option("--limit", ff.limit, "at most this many records")->check(CLI::Range(1, 100000));
  flows->add_flag("-f,--follow", follow, "stream new and updated records until interrupted");
  flows->add_flag("--staged", ff.staged,
                  "beside each verdict, the one the staged policies would give (in force + staged)");
  addOutput(flows);

  auto* explainCmd = app.add_subcommand("explain", "the verdict the policy gives a flow, and why");
  std::string exFrom, exTo, exPort, exDir;
  int64_t exFlow = 0;
  explainCmd->add_option("--from", exFrom, "source workload (or host/world/unmanaged)");
  explainCmd->add_option("--to", exTo, "destination workload (or host/world/unmanaged)");
  explainCmd->add_option("--port", exPort, "PORT[/tcp|/udp], e.g. 5432/tcp");
  explainCmd->add_option("--direction", exDir, "only this side: egress (the caller's policy) or ingress (the callee's); default both")->check(CLI::IsMember({microseg::directionName(MS_DIR_EGRESS), microseg::directionName(MS_DIR_INGRESS)}));
  explainCmd->add_option("--flow", exFlow, "explain an observed flow record (its ID from `microseg flows`)");
  addOutput(explainCmd);

  auto* workloads = app.add_subcommand("workloads", "workloads with identity, cgroups, processes, mode, peers");
  addOutput(workloads);
  auto* show = pol->add_subcommand("show", "the active rules with their ids and hit counts");
  addOutput(show);

  auto* graph = app.add_subcommand("graph", "workloads and their allowed/observed edges (dot or json)");
  std::string graphFormat = "dot";
  graph->add_option("-o,--output", graphFormat, "dot (Graphviz) or json")->check(CLI::IsMember({"dot", "json"}));

  cli::ReachArgs reachArgs;
  auto* reachCmd = app.add_subcommand(
      "reach", "what WORKLOAD can open under the policy in force, directly and in up to N hops (both sides' "
               "consent); --reverse: who can reach it; --all: every workload by blast radius");
  reachCmd->add_option("workload", reachArgs.workload, "the workload");
  reachCmd->add_option("--hops", reachArgs.hops, "longest path, 1-16 (default 3)")->check(CLI::Range(1, 16));
  reachCmd->add_flag("--reverse", reachArgs.reverse, "who can reach WORKLOAD");
  reachCmd->add_flag("--all", reachArgs.all, "every workload ranked by how many others it can reach");
  reachCmd->add_option("-o,--output", reachArgs.output, "table, json or dot")
      ->check(CLI::IsMember({"table", "json", "dot"}));

  std::string fqdnWorkload;
  auto* fqdnCmd = app.add_subcommand(
      "fqdn", "addresses DNS answers bound to names (fqdn peers), per workload, with the time left");
  fqdnCmd->add_option("--workload", fqdnWorkload, "only this workload's");
  addOutput(fqdnCmd);

  cli::SuggestArgs suggestArgs;
  auto* suggestCmd = app.add_subcommand(
      "suggest", "least-privilege Policy documents from the observed flows (review, validate, apply)");
  suggestCmd->add_option("--workload", suggestArgs.workload, "the workload to suggest a policy for");
  suggestCmd->add_flag("--all", suggestArgs.all, "every workload seen in the flow records");
  suggestCmd->add_option("--since", suggestArgs.since, "only flows seen in this window: 30m, 24h, 7d");
  suggestCmd->add_flag("--staged", suggestArgs.staged,
                       "emit staged policies (spec.staged: true): judged, not enforced, until `policy promote`");
  suggestCmd->add_option("-o,--output", suggestArgs.output, "yaml or json")->check(CLI::IsMember({"yaml", "json"}));

  auto* clusterCmd = app.add_subcommand("cluster", "cluster mode (etcd): the fleet as this node's daemon sees it");
  clusterCmd->require_subcommand(1);
  auto* clusterStatus = clusterCmd->add_subcommand(
      "status", "etcd endpoints and health, this node, every node, the identities in use");
  addOutput(clusterStatus);
  auto* rotateCmd = clusterCmd->add_subcommand(
      "rotate-key", "write a new cluster key for identity on the wire; the keys in use retire after a grace");
  cli::RotateArgs rotateArgs;
  std::string rotatePrefix, rotateCa, rotateCert, rotateKey;
  rotateCmd->add_option("--grace", rotateArgs.grace,
                        "how long the keys in use stay accepted after the new key activates [10m]");
  rotateCmd->add_option("--activate-after", rotateArgs.activateAfter,
                        "when the new key starts signing: long enough for every node to load it [10s]");
  rotateCmd->add_option("--etcd-endpoints", rotateArgs.flags.endpoints, "etcd URL(s), comma-separated [the local daemon's]")
      ->delimiter(',');
  auto* rotatePrefixOpt = rotateCmd->add_option("--cluster-prefix", rotatePrefix, "etcd key prefix [the daemon's, or /microseg]");
  auto* rotateCaOpt = rotateCmd->add_option("--etcd-cacert", rotateCa, "CA of the etcd members' certificates (TLS)");
  auto* rotateCertOpt = rotateCmd->add_option("--etcd-cert", rotateCert, "client certificate for etcd's client auth");
  auto* rotateKeyOpt = rotateCmd->add_option("--etcd-key", rotateKey, "key of --etcd-cert");
  addOutput(rotateCmd);

  cli::GrantArgs grantArgs;
  auto* grantCmd = app.add_subcommand(
      "grant", "temporary access: let FROM open TO's PORT for a while where the policy has no rule for it (both "
               "sides; an explicit deny still wins; the kernel ends it on time)");
  grantCmd->add_option("--from", grantArgs.from, "the workload that opens the flow")->required();
  grantCmd->add_option("--to", grantArgs.to, "the workload it opens it to")->required();
  grantCmd->add_option("--port", grantArgs.port, "N/tcp, N/udp or N-M/tcp (at most 256 ports)")->required();
  grantCmd->add_option("--for", grantArgs.duration, "how long: 30s, 15m, 8h [30m; at most the daemon's --max-grant]");
  grantCmd->add_option("--reason", grantArgs.reason, "why (logged and listed)");
  addOutput(grantCmd);
  auto* grantsCmd = app.add_subcommand("grants", "temporary access grants: active and recently ended");
  addOutput(grantsCmd);
  auto* revokeCmd = app.add_subcommand("revoke", "end a grant now");
  std::string revokeId;
  revokeCmd->add_option("grant", revokeId, "the grant's id (N or grant:N)")->required();
  addOutput(revokeCmd);

  auto* uninstall = app.add_subcommand(
      "uninstall", "detach every program and remove all pinned state; the daemon exits");
  addOutput(uninstall);

  auto* import = app.add_subcommand("import", "translate other systems' policies into microseg documents (offline)");
  import->require_subcommand(1);
  auto* importK8s = import->add_subcommand(
      "k8s", "Kubernetes Namespaces, Pods, NetworkPolicies and (Baseline)AdminNetworkPolicies -> microseg documents");
  std::vector<std::string> k8sFiles;
  std::string k8sPattern, k8sOutput = "yaml";
  importK8s->add_option("-f,--filename", k8sFiles, "YAML or JSON objects (kubectl get -o yaml|json); - or none: stdin");
  auto* k8sPatternOpt = importK8s->add_option(
      "--cgroup-pattern", k8sPattern,
      "each pod's cgroup glob under microsegd's --cgroup-root, with {namespace} {name} {uid} {uid_}; "
      "default: the kubelet's systemd slice by QoS class");
  importK8s->add_option("-o,--output", k8sOutput, "output format: yaml")->check(CLI::IsMember({"yaml"}));

  app.footer(cli::kExitCodes);
  if (argc <= 1) {
    std::cerr << app.help();
    return kUsage;
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == static_cast<int>(CLI::ExitCodes::Success)) return app.exit(e);  // --help
    return fail(std::string(e.what()) + " (see 'microseg --help')", kUsage);
  }

  if (status->parsed()) return cmdStatus(g);
  if (mode->parsed()) return cmdMode(g, modeValue, workload);
  if (validate->parsed()) return cmdValidate(g, validatePaths);
  if (reload->parsed()) return cmdLoad(g, {});
  if (apply->parsed()) return cmdLoad(g, applyPaths, allowEmpty);
  if (push->parsed()) {
    if (*pushPrefixOpt) pushArgs.flags.prefix = pushPrefix;
    if (*pushCaOpt) pushArgs.flags.caFile = pushCa;
    if (*pushCertOpt) pushArgs.flags.certFile = pushCert;
    if (*pushKeyOpt) pushArgs.flags.keyFile = pushKey;
    return cli::cmdPush(g.socket, g.json(), pushArgs);
  }
  if (diffCmd->parsed()) return cli::cmdDiff(g.socket, diffArgs);
  if (promote->parsed()) return cli::cmdPromote(g.socket, g.json(), promoteName);
  if (clusterStatus->parsed()) return cmdClusterStatus(g);
  if (rotateCmd->parsed()) {
    if (*rotatePrefixOpt) rotateArgs.flags.prefix = rotatePrefix;
    if (*rotateCaOpt) rotateArgs.flags.caFile = rotateCa;
    if (*rotateCertOpt) rotateArgs.flags.certFile = rotateCert;
    if (*rotateKeyOpt) rotateArgs.flags.keyFile = rotateKey;
    return cli::cmdRotateKey(g.socket, g.json(), rotateArgs);
  }
  if (uninstall->parsed()) return cmdUninstall(g);
  if (grantCmd->parsed()) return cli::cmdGrant(g.socket, g.json(), grantArgs);
  if (grantsCmd->parsed()) return cli::cmdGrants(g.socket, g.json());
  if (revokeCmd->parsed()) return cli::cmdRevoke(g.socket, g.json(), revokeId);
  if (flows->parsed()) return cmdFlows(g, ff, follow);
  if (explainCmd->parsed()) return cmdExplain(g, exFrom, exTo, exPort, exDir, exFlow);
  if (workloads->parsed()) return cmdWorkloads(g);
  if (show->parsed()) return cmdSimple(g, command::kPolicyShow, cli::printPolicyShow);
  if (graph->parsed()) return cmdGraph(g, graphFormat);
  if (reachCmd->parsed()) return cli::cmdReach(g.socket, reachArgs);
  if (fqdnCmd->parsed()) return cli::cmdFqdn(g.socket, g.json(), fqdnWorkload);
  if (suggestCmd->parsed()) return cli::cmdSuggest(g.socket, suggestArgs);
  if (importK8s->parsed()) return cmdImportK8s(k8sFiles, k8sPattern, k8sPatternOpt->count() > 0);
  return fail("no command given (see 'microseg --help')", kUsage);
}
