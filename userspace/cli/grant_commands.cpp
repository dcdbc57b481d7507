#include "cli/grant_commands.h"

#include <iostream>

#include "cli/exit_codes.h"
#include "cli/format.h"
#include "cli/request.h"
#include "cli/table.h"
#include "grants/grants.h"

namespace microseg::cli {
namespace {

using nlohmann::json;
constexpr int kTimeoutMs = 5000;

std::string str(const json& j, const char* key) {
  return j.contains(key) && j[key].is_string() ? j[key].get<std::string>() : std::string();
}

}  // namespace

int cmdGrant(const std::string& socket, bool asJson, const GrantArgs& a) {
  // Checked here too, so a typo is a usage error before anything is asked.
  std::string err;
  if (!grants::parsePorts(a.port, err)) return fail("--port: " + err, kUsage);
  if (!a.duration.empty() && !grants::parseDuration(a.duration, err)) return fail("--for: " + err, kUsage);
  json req = {{"command", grants::kCommandCreate}, {"from", a.from}, {"to", a.to}, {"port", a.port}};
  if (!a.duration.empty()) req["for"] = a.duration;
  if (!a.reason.empty()) req["reason"] = a.reason;
  json r;
  if (int rc = request(socket, req, r, kTimeoutMs); rc != kOk) return rc;
  if (asJson) {
    printJson(r);
  } else {
    std::cout << "grant " << field(r, "id") << ": " << sanitize(str(r, "from")) << " -> " << sanitize(str(r, "to"))
              << " " << field(r, "ports") << " until " << field(r, "expires") << "\n";
  }
  return kOk;
}

void printGrants(const json& r, std::ostream& out) {
  Table t({"ID", "FROM", "TO", "PORTS", "STATE", "CREATED", "EXPIRES", "REMAINING", "BY", "REASON"});
  t.align(0, Table::Align::Right);
  if (r.contains("grants") && r["grants"].is_array()) {
    for (const auto& g : r["grants"]) {
      std::string state = str(g, "state");
      if (g.value("unresolved", false)) state += " (workload gone)";
      const int64_t left = g.contains("remaining_seconds") && g["remaining_seconds"].is_number_integer()
                               ? g["remaining_seconds"].get<int64_t>()
                               : 0;
      t.add({field(g, "id"), sanitize(str(g, "from")), sanitize(str(g, "to")), field(g, "ports"), state,
             field(g, "created"), field(g, "expires"), state == "active" ? grants::formatDuration(left) : "-",
             "uid " + field(g, "uid") + " pid " + field(g, "pid"), sanitize(str(g, "reason"))});
    }
  }
  if (t.empty()) {
    out << "no grants\n";
    return;
  }
  t.print(out);
}

int cmdGrants(const std::string& socket, bool asJson) {
  json r;
  if (int rc = request(socket, {{"command", grants::kCommandList}}, r, kTimeoutMs); rc != kOk) return rc;
  if (asJson) {
    printJson(r);
  } else {
    printGrants(r, std::cout);
  }
  return kOk;
}

int cmdRevoke(const std::string& socket, bool asJson, const std::string& grant) {
  std::string digits = grant.rfind("grant:", 0) == 0 ? grant.substr(6) : grant;
  if (digits.empty() || digits.size() > 10 || digits.find_first_not_of("0123456789") != std::string::npos ||
      std::stoull(digits) == 0 || std::stoull(digits) > UINT32_MAX) {
    return fail("'" + sanitize(grant) + "' is not a grant id (a number, or grant:N)", kUsage);
  }
  json r;
  json req = {{"command", grants::kCommandRevoke}, {"id", std::stoull(digits)}};
  if (int rc = request(socket, req, r, kTimeoutMs); rc != kOk) return rc;
  if (asJson) {
    printJson(r);
  } else {
    std::cout << "grant " << field(r, "id") << " revoked: " << sanitize(str(r, "from")) << " -> "
              << sanitize(str(r, "to")) << " " << field(r, "ports");
    if (r.contains("connections_revoked")) std::cout << "; " << field(r, "connections_revoked") << " connections reset";
    std::cout << "\n";
  }
  return kOk;
}

}  // namespace microseg::cli
