// microseg: the operator CLI. Talks to microsegd over its control socket,
// except `policy validate`, which works offline.
//
// Exit codes:
//   0  success (policy validate: the files are valid)
//   1  the command failed (invalid policy, the daemon answered with an error)
//   2  usage error (bad arguments)
//   3  the daemon is not reachable (not running, wrong --socket)
//   4  permission denied (socket permissions or a mutation by a non-root user)
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <climits>
#include <cstdlib>
#include <iostream>

#include "cli/table.h"
#include "control/client.h"
#include "control/protocol.h"
#include "policy/parser.h"

namespace {

using nlohmann::json;
using microseg::cli::Table;

enum Exit { kOk = 0, kFailed = 1, kUsage = 2, kUnreachable = 3, kDenied = 4 };

struct Globals {
  std::string socket;
  std::string output = "table";
  bool json() const { return output == "json"; }
};

int fail(const std::string& msg, int code) {
  std::cerr << "microseg: " << msg << "\n";
  return code;
}

// Sends a request; on success stores the result. Prints errors itself.
int request(const Globals& g, json req, json& result) {
  auto reply = microseg::control::call(g.socket, std::move(req));
  if (!reply) {
    const auto& e = reply.error();
    if (e.err == EACCES || e.err == EPERM) {
      return fail(e.str() + " (needs root or the socket group)", kDenied);
    }
    return fail(e.str(), kUnreachable);
  }
  const json& r = *reply;
  if (r.value("ok", false)) {
    result = r.value("result", json::object());
    return kOk;
  }
  const json err = r.value("error", json::object());
  const std::string code = err.value("code", "");
  for (const auto& d : err.value("details", json::array())) {
    if (d.is_string()) std::cerr << d.get<std::string>() << "\n";
  }
  const auto details = err.value("details", json::array());
  if (details.empty() || code != microseg::control::kErrInvalidPolicy) {
    std::cerr << "microseg: " << err.value("message", "request failed") << "\n";
  } else {
    std::cerr << "microseg: policy rejected (" << details.size()
              << " errors); the daemon keeps the previous policy\n";
  }
  return code == microseg::control::kErrPermissionDenied ? kDenied : kFailed;
}

std::string joinLabels(const json& labels) {
  std::string s;
  for (const auto& [k, v] : labels.items()) {
    s += (s.empty() ? "" : ",") + k + "=" + (v.is_string() ? v.get<std::string>() : v.dump());
  }
  return s;
}

std::string joinStrings(const json& arr) {
  std::string s;
  for (const auto& v : arr) s += (s.empty() ? "" : ",") + (v.is_string() ? v.get<std::string>() : v.dump());
  return s;
}

std::string num(const json& j, const char* key) {
  return j.contains(key) ? j[key].dump() : "-";
}

int cmdStatus(const Globals& g) {
  json r;
  if (int rc = request(g, {{"command", "status"}}, r); rc != kOk) return rc;
  if (g.json()) {
    std::cout << r.dump(2) << "\n";
    return kOk;
  }
  const json c = r.value("counters", json::object());
  const json p = r.value("policy", json::object());
  std::cout << "mode:        " << r.value("mode", "?") << "\n"
            << "generation:  " << num(r, "policy_generation") << " (" << num(p, "rules")
            << " rules, " << num(p, "entries") << " map entries, applied "
            << p.value("applied_at", "?") << ")\n"
            << "cgroup root: " << r.value("cgroup_root", "?") << "\n"
            << "policy:      " << joinStrings(r.value("policy_paths", json::array())) << "\n"
            << "counters:    allowed " << num(c, "allowed") << ", denied " << num(c, "denied")
            << ", audited " << num(c, "audited") << ", events lost " << num(c, "events_lost")
            << ", udp answers " << num(c, "udp_answers") << "\n";
  const json lr = r.value("last_reload", json::object());
  if (!lr.empty() && !lr.value("ok", true)) {
    std::cout << "last reload: REJECTED at " << lr.value("time", "?") << " ("
              << lr.value("error_count", 0) << " errors; previous policy in force)\n";
    for (const auto& e : lr.value("errors", json::array())) std::cout << "  " << e.get<std::string>() << "\n";
  }
  std::cout << "\n";
  Table t({"WORKLOAD", "IDENTITY", "MODE", "CGROUPS", "LABELS"});
  for (const auto& w : r.value("workloads", json::array())) {
    t.add({w.value("name", ""), num(w, "identity"), w.value("mode", ""),
           joinStrings(w.value("cgroups", json::array())), joinLabels(w.value("labels", json::object()))});
  }
  t.print(std::cout);
  return kOk;
}

int cmdMode(const Globals& g, const std::string& value, const std::string& workload) {
  json r;
  if (value.empty()) {
    if (!workload.empty()) return fail("--workload needs a mode to set", kUsage);
    if (int rc = request(g, {{"command", "mode.get"}}, r); rc != kOk) return rc;
    if (g.json()) {
      std::cout << r.dump(2) << "\n";
    } else {
      std::cout << r.value("mode", "?") << "\n";
    }
    return kOk;
  }
  json req = {{"command", "mode.set"}, {"mode", value}};
  if (!workload.empty()) req["workload"] = workload;
  if (int rc = request(g, req, r); rc != kOk) return rc;
  if (g.json()) {
    std::cout << r.dump(2) << "\n";
  } else if (!workload.empty()) {
    std::cout << "workload " << workload << " mode: " << r.value("mode", "?") << " (was "
              << r.value("previous", "?") << ")\n";
  } else {
    std::cout << "mode: " << r.value("mode", "?") << " (was " << r.value("previous", "?") << ")\n";
  }
  return kOk;
}

int cmdValidate(const Globals& g, const std::vector<std::string>& paths) {
  auto res = microseg::policy::loadPaths(paths);
  if (g.json()) {
    json errs = json::array();
    for (const auto& d : res.errors) errs.push_back(d.str());
    std::cout << json{{"valid", res.ok()},
                      {"errors", errs},
                      {"workloads", res.bundle.workloads.size()},
                      {"policies", res.bundle.policies.size()}}
                     .dump(2)
              << "\n";
    return res.ok() ? kOk : kFailed;
  }
  for (const auto& d : res.errors) std::cerr << d.str() << "\n";
  if (!res.ok()) {
    std::cerr << "microseg: " << res.errors.size() << " error(s): invalid\n";
    return kFailed;
  }
  std::cout << res.bundle.workloads.size() << " workloads, " << res.bundle.policies.size()
            << " policies: valid\n";
  return kOk;
}

int cmdReload(const Globals& g, const std::vector<std::string>& paths) {
  json req = {{"command", paths.empty() ? "policy.reload" : "policy.apply"}};
  if (!paths.empty()) {
    json abs = json::array();
    for (const auto& p : paths) {
      char buf[PATH_MAX];
      if (realpath(p.c_str(), buf) == nullptr) return fail("cannot resolve path '" + p + "'", kFailed);
      abs.push_back(std::string(buf));
    }
    req["paths"] = abs;
  }
  json r;
  if (int rc = request(g, req, r); rc != kOk) return rc;
  if (g.json()) {
    std::cout << r.dump(2) << "\n";
  } else {
    std::cout << "policy generation " << num(r, "generation") << " applied (" << num(r, "entries")
              << " map entries)\n";
  }
  return kOk;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"microseg: inspect and control the microseg daemon"};
  app.require_subcommand(1);
  Globals g;
  const char* env = getenv("MICROSEG_SOCKET");
  g.socket = env != nullptr && *env != '\0' ? env : microseg::control::kDefaultSocket;
  app.add_option("--socket", g.socket, "control socket (env MICROSEG_SOCKET)")->capture_default_str();
  auto addOutput = [&](CLI::App* sub) {
    sub->add_option("-o,--output", g.output, "table or json")->check(CLI::IsMember({"table", "json"}));
  };

  auto* status = app.add_subcommand("status", "daemon state, counters and workloads");
  addOutput(status);

  auto* mode = app.add_subcommand("mode", "print the mode, or set it: monitor | enforce");
  std::string modeValue, workload;
  mode->add_option("mode", modeValue, "monitor or enforce (inherit with --workload)")
      ->check(CLI::IsMember({"monitor", "enforce", "inherit"}));
  mode->add_option("--workload", workload, "set the mode of one workload only");
  addOutput(mode);

  auto* pol = app.add_subcommand("policy", "validate, reload or apply policies");
  pol->require_subcommand(1);
  auto* validate = pol->add_subcommand("validate", "check policy files offline (no daemon)");
  std::vector<std::string> validatePaths;
  validate->add_option("paths", validatePaths, "FILE or DIR")->required();
  addOutput(validate);
  auto* reload = pol->add_subcommand("reload", "make the daemon re-read its policy paths");
  addOutput(reload);
  auto* apply = pol->add_subcommand("apply", "make the daemon load these paths instead");
  std::vector<std::string> applyPaths;
  apply->add_option("paths", applyPaths, "FILE or DIR")->required();
  addOutput(apply);

  auto* uninstall = app.add_subcommand(
      "uninstall", "detach every program and remove all pinned state; the daemon exits");
  addOutput(uninstall);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? kOk : kUsage;
  }

  if (status->parsed()) return cmdStatus(g);
  if (mode->parsed()) {
    if (modeValue == "inherit" && workload.empty()) {
      return fail("'inherit' is only valid with --workload", kUsage);
    }
    return cmdMode(g, modeValue, workload);
  }
  if (validate->parsed()) return cmdValidate(g, validatePaths);
  if (uninstall->parsed()) {
    json r;
    if (int rc = request(g, {{"command", "uninstall"}}, r); rc != kOk) return rc;
    if (g.json()) {
      std::cout << r.dump(2) << "\n";
    } else {
      std::cout << "uninstalling: programs detached and pinned state under "
                << r.value("state_dir", "?") << " removed; microsegd exits\n";
    }
    return kOk;
  }
  if (reload->parsed()) return cmdReload(g, {});
  if (apply->parsed()) return cmdReload(g, applyPaths);
  return kUsage;
}
