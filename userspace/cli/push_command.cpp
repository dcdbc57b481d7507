// `microseg policy push` (push.h): the command, from paths to the stored set.
#include <algorithm>
#include <chrono>
#include <iostream>
#include <optional>

#include "cli/exit_codes.h"
#include "cli/push.h"
#include "common/names.h"
#include "common/text.h"
#include "control/client.h"
#include "policy/loader.h"

namespace microseg::cli {

using nlohmann::json;

namespace {
constexpr int kStatusTimeoutMs = 5000;
}  // namespace

int cmdPush(const std::string& socket, bool jsonOutput, const PushArgs& a) {
  // Read first, validated next, read again last: what is pushed is what was
  // validated, even if a file is being edited meanwhile.
  const auto before = collectPushFiles(a.paths);
  const auto res = policy::loadPaths(a.paths);
  // A path that cannot be read is said by both readers: once here.
  std::vector<std::string> errors = before.errors;
  for (const auto& d : res.errors) {
    if (std::find(errors.begin(), errors.end(), d.str()) == errors.end()) errors.push_back(d.str());
  }
  if (errors.empty() && !res.hasWorkloads()) {
    errors.push_back("the set has no Workload: every node that manages workloads would reject it (and one "
                     "that took it would leave every workload unmanaged)");
  }
  for (const auto& e : errors) std::cerr << sanitize(e) << "\n";
  if (!errors.empty()) {
    const size_t n = errors.size();
    return fail(std::to_string(n) + (n == 1 ? " error" : " errors") + ": invalid; nothing pushed", kFailed);
  }
  const auto files = collectPushFiles(a.paths);
  bool same = files.ok() && files.files.size() == before.files.size();
  for (size_t i = 0; same && i < files.files.size(); i++) {
    same = files.files[i].name == before.files[i].name && files.files[i].text == before.files[i].text;
  }
  if (!same) return fail("the files changed while they were validated; nothing pushed (run it again)", kFailed);

  std::optional<json> daemonStatus;
  std::string daemonError;
  if (a.flags.endpoints.empty()) {
    auto st = control::call(socket, {{"command", command::kStatus}}, kStatusTimeoutMs);
    if (!st) {
      daemonError = st.error().str();
    } else if (!st->value("ok", false)) {
      daemonError = st->value("error", json::object()).value("message", "status refused");
    } else {
      daemonStatus = st->value("result", json::object());
    }
  }
  auto target = resolvePushTarget(a.flags, daemonStatus, daemonError, socket);
  if (!target) return fail(target.error().detail + "; give --etcd-endpoints URL[,URL...]", kUsage);
  auto etcd = cluster::EtcdClient::connect(target->etcd);
  if (!etcd) return fail(etcd.error().str(), kUsage);
  const std::string by = pushedByName();
  const int64_t now = std::chrono::duration_cast<std::chrono::seconds>(
                          std::chrono::system_clock::now().time_since_epoch()).count();
  auto o = pushSet(**etcd, target->prefix, files.files, by, now, a.dryRun);
  if (!o) {
    return fail(o.error().str() + " (etcd from " + target->from + "); nothing pushed",
                etcdUnreachable(o.error()) ? kUnreachable : kFailed);
  }
  if (jsonOutput) {
    std::cout << text::jsonText(pushJson(*o, *target, files.files, by, a.dryRun), 2) << "\n";
  } else {
    const std::string what = std::to_string(files.files.size()) + (files.files.size() == 1 ? " file, " : " files, ") +
                             std::to_string(o->bytes) + " bytes";
    if (a.dryRun) {
      std::cout << "dry run: policy set " << o->manifestId << " (" << what << ") is valid; "
                << (o->unchanged ? "etcd holds it already (revision " + std::to_string(o->storedRevision) + ")"
                                 : "a push would replace " +
                                       (o->storedRevision == 0 ? std::string("nothing (no set stored)")
                                                               : "revision " + std::to_string(o->storedRevision)))
                << "; nothing written\n";
    } else if (o->unchanged) {
      std::cout << "policy set " << o->manifestId << " (" << what << ") is stored already at revision "
                << o->revision << ": nothing written\n";
    } else {
      std::cout << "pushed policy set " << o->manifestId << " (" << what << ") at revision " << o->revision
                << " under " << target->prefix << " by " << by << "\n";
    }
    if (!a.dryRun && o->collected > 0) std::cout << "removed " << o->collected << " chunks of older sets\n";
  }
  if (!o->collectError.empty()) {
    std::cerr << "microseg: warning: old chunks not removed: " << sanitize(o->collectError) << "\n";
  }
  return kOk;
}

}  // namespace microseg::cli
