#include "cli/promote_command.h"

#include <iostream>

#include <nlohmann/json.hpp>

#include "cli/exit_codes.h"
#include "cli/request.h"
#include "common/names.h"
#include "policy/promote.h"

namespace microseg::cli {

using nlohmann::json;

namespace {

constexpr int kTimeoutMs = 30000;  // a reload of a large set

// "FILE:LINE:COL" -> FILE (a file name may hold ':').
std::string fileOf(const std::string& location) {
  auto col = location.rfind(':');
  if (col == std::string::npos || col == 0) return location;
  auto line = location.rfind(':', col - 1);
  return line == std::string::npos ? location : location.substr(0, line);
}

}  // namespace

int cmdPromote(const std::string& socket, bool asJson, const std::string& name) {
  json shown;
  if (int rc = request(socket, {{"command", command::kPolicyShow}}, shown, kTimeoutMs); rc != kOk) return rc;
  if (shown.value("policy_source", "files") == "etcd") {
    return fail("policy promote: not supported in cluster mode yet (this node's policy set is the one pushed to "
                "etcd): remove `staged: true` from '" + name + "' in the source files and `microseg policy push` "
                "them; nothing was changed",
                kFailed);
  }
  const json staged = shown.value("staged", json::array());
  const json* entry = nullptr;
  std::string names;
  for (const auto& s : staged) {
    if (s.value("policy", "") == name) entry = &s;
    names += (names.empty() ? "" : ", ") + s.value("policy", "");
  }
  if (entry == nullptr) {
    bool inForce = false;
    for (const auto& r : shown.value("rules", json::array())) inForce |= r.value("policy", "") == name;
    if (inForce) return fail("policy promote: policy '" + name + "' is not staged (it is in force); nothing changed", kFailed);
    return fail("policy promote: no staged policy '" + name + "' in the policy in force (staged: " +
                    (names.empty() ? std::string("none") : names) + "); nothing changed",
                kFailed);
  }
  const std::string file = fileOf(entry->value("location", ""));
  auto before = policy::promoteFile(file, name);
  if (!before) return fail("policy promote: " + before.error().str() + "; nothing changed", kFailed);
  json reloaded;
  if (int rc = request(socket, {{"command", command::kPolicyReload}}, reloaded, kTimeoutMs); rc != kOk) {
    // The daemon keeps the generation in force; so does the file.
    if (auto undo = policy::replaceFile(file, before.value()); !undo) {
      return fail("policy promote: the reload was rejected (above) and putting " + file + " back failed: " +
                      undo.error().str() + "; `staged: true` of '" + name + "' is missing from it",
                  rc);
    }
    return fail("policy promote: the reload was rejected (above); " + file + " is back as it was", rc);
  }
  if (asJson) {
    printJson({{"promoted", name}, {"file", file}, {"reload", reloaded}});
  } else {
    std::cout << "promoted " << sanitize(name) << ": removed `staged: true` from " << sanitize(file)
              << "; in force now\n";
  }
  return kOk;
}

}  // namespace microseg::cli
