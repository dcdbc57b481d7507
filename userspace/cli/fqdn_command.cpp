#include "cli/fqdn_command.h"

#include <iostream>

#include "cli/exit_codes.h"
#include "cli/format.h"
#include "cli/request.h"
#include "cli/table.h"
#include "common/names.h"

namespace microseg::cli {

using nlohmann::json;

namespace {

constexpr int kTimeoutMs = 5000;

std::string str(const json& j, const char* key) {
  return j.contains(key) && j[key].is_string() ? j[key].get<std::string>() : std::string();
}

}  // namespace

void printFqdn(const json& r, std::ostream& out) {
  Table t({"WORKLOAD", "NAME", "ADDRESS", "PEER", "TTL", "REMAINING"});
  if (r.contains("bindings") && r["bindings"].is_array()) {
    for (const auto& b : r["bindings"]) {
      const std::string name = str(b, "name");
      t.add({sanitize(str(b, "workload")), name.empty() ? "?" : sanitize(name), sanitize(str(b, "address")),
             sanitize(str(b, "peer")), field(b, "ttl_s") + " s", field(b, "remaining_s") + " s"});
    }
  }
  if (t.empty()) {
    out << "no names bound\n";
    return;
  }
  t.print(out);
}

int cmdFqdn(const std::string& socket, bool asJson, const std::string& workload) {
  json req = {{"command", command::kFqdn}};
  if (!workload.empty()) req["workload"] = workload;
  json r;
  if (int rc = request(socket, req, r, kTimeoutMs); rc != kOk) return rc;
  if (asJson) {
    printJson(r);
  } else {
    printFqdn(r, std::cout);
  }
  return kOk;
}

}  // namespace microseg::cli
