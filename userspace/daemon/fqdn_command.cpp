// `fqdn` on the control socket (microseg fqdn): the addresses DNS answers
// bound to names, per workload, with the fqdn peer and the time left
// (bpf/abi.h: ms_fqdn_bindings). Expired bindings the kernel has not
// reused yet are left out.
#include <algorithm>

#include "common/kernel_clock.h"
#include "common/names.h"
#include "control/server.h"
#include "daemon/daemon.h"
#include "daemon/request_fields.h"
#include "policy/cidr.h"

namespace microseg::daemon {
namespace {

using nlohmann::json;

}  // namespace

void Daemon::registerFqdn() {
  control_->registerCommand(command::kFqdn, [this](const control::Request& req) {
    const std::string workload = optString(req.body, "workload");
    std::lock_guard<std::mutex> lock(mu_);
    const auto& ids = gen().ids;
    uint32_t only = 0;
    if (!workload.empty()) {
      auto it = ids.byWorkload.find(workload);
      if (it == ids.byWorkload.end()) {
        throw control::ControlError(control::kErrBadRequest, "no workload '" + workload + "'", {});
      }
      only = it->second;
    }
    auto bindings = datapath_->fqdnBindings();
    if (!bindings) throw control::ControlError(control::kErrInternal, bindings.error().str(), {});
    const uint64_t now = kernelCoarseNs();  // the bindings' clock (lib/fqdn.bpf.h)
    std::vector<json> rows;
    for (const auto& b : *bindings) {
      if (b.value.expires_ns <= now) continue;
      if (only != 0 && b.key.subject != only) continue;
      rows.push_back(json{{"workload", ids.nameOf(b.key.subject)},
                          {"identity", b.key.subject},
                          {"name", b.name},
                          {"peer", ids.nameOf(b.value.peer)},
                          {"address", policy::formatAddress(b.key.addr)},
                          {"ttl_s", b.value.ttl_s},
                          {"remaining_s", (b.value.expires_ns - now) / 1000000000ull}});
    }
    std::sort(rows.begin(), rows.end(), [](const json& a, const json& b) {
      return std::tie(a["workload"], a["name"], a["address"]) < std::tie(b["workload"], b["name"], b["address"]);
    });
    return json{{"bindings", rows}};
  }, false);
}

}  // namespace microseg::daemon
