// `suggest` on the control socket (microseg suggest): least-privilege
// Policy documents from the flow records (suggest/suggest.h), for one
// workload or all, over a window of time.
#include <ctime>

#include "common/names.h"
#include "control/server.h"
#include "daemon/daemon.h"
#include "daemon/request_fields.h"
#include "suggest/suggest.h"

namespace microseg::daemon {

void Daemon::registerSuggest() {
  control_->registerCommand(
      command::kSuggest, [this](const control::Request& req) {
        suggest::Options o;
        const std::string workload = optString(req.body, "workload");
        if (!workload.empty()) o.workloads.insert(workload);
        o.staged = optBool(req.body, "staged");
        // The window: flows last seen in the last `since_seconds` (0: all
        // the records hold).
        const int64_t since = optInt(req.body, "since_seconds", 0, INT64_MAX / 1000000000, 0);
        if (since > 0) {
          timespec now{};
          clock_gettime(CLOCK_REALTIME, &now);
          o.sinceNs = (static_cast<int64_t>(now.tv_sec) - since) * 1000000000;
        }
        std::lock_guard<std::mutex> lock(mu_);
        drainEventsLocked();
        const auto& ids = gen().ids;
        if (!workload.empty() && !ids.byWorkload.count(workload)) {
          throw control::ControlError(control::kErrBadRequest,
                                      "no workload '" + workload + "' in the policy in force", {});
        }
        suggest::Naming naming;
        naming.workload = [&](uint32_t id) -> std::string {
          auto it = ids.workloads.find(id);
          if (it == ids.workloads.end() || it->second.empty() || ids.remoteOnly.count(id)) return {};
          return it->second.front();
        };
        naming.external = [&](uint32_t id) -> std::string {
          auto it = ids.externals.find(id);
          // Exactly one External and no inline cidr peer: that External.
          if (it == ids.externals.end() || it->second.externals.size() != 1 || !it->second.cidrPeers.empty()) return {};
          return it->second.externals.front();
        };
        std::vector<suggest::Flow> flows;
        for (const auto& r : flowStore_.all()) {
          suggest::Flow f;
          f.direction = r.key.direction;
          f.src = r.key.srcIdentity;
          f.dst = r.key.dstIdentity;
          f.protocol = r.key.protocol;
          f.port = r.key.dstPort;
          f.verdict = r.key.verdict;
          f.count = r.count;
          f.firstSeenNs = r.firstSeenNs;
          f.lastSeenNs = r.lastSeenNs;
          f.srcAddr = r.srcAddr;
          f.dstAddr = r.dstAddr;
          flows.push_back(f);
        }
        return nlohmann::json{{"generation", gen().number},
                              {"records", flows.size()},
                              {"yaml", suggest::suggest(flows, naming, o)}};
      },
      false);
}

}  // namespace microseg::daemon
