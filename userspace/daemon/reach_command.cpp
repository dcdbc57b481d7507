// `reach` on the control socket (microseg reach): what a workload can open
// under the policy in force, directly and in up to N hops, or who can
// reach it (reverse), each path marked observed when the flow records saw
// every edge of it used; with `all`, every workload ranked by blast radius.
// The graph is computed by reach/reach.h from the compiled policy.
#include "common/names.h"
#include "control/server.h"
#include "daemon/daemon.h"
#include "daemon/request_fields.h"
#include "reach/reach.h"

namespace microseg::daemon {
namespace {

using nlohmann::json;

json portsJson(const std::vector<reach::PortRange>& ports) {
  json out = json::array();
  for (const auto& r : ports) out.push_back(reach::formatPorts(r));
  return out;
}

}  // namespace

void Daemon::registerReach() {
  control_->registerCommand(
      command::kReach, [this](const control::Request& req) {
        const std::string name = optString(req.body, "workload");
        const bool all = optBool(req.body, "all");
        const bool reverse = optBool(req.body, "reverse");
        const int hops = static_cast<int>(optInt(req.body, "hops", 1, 16, 3));
        if (all == !name.empty()) {
          throw control::ControlError(control::kErrBadRequest, "name one 'workload', or ask for 'all'", {});
        }
        std::lock_guard<std::mutex> lock(mu_);
        drainEventsLocked();
        const auto& ids = gen().ids;
        std::vector<uint32_t> workloads;
        for (const auto& [w, id] : ids.byWorkload) workloads.push_back(id);
        // Used: allowed or audited flows of the records (a flow that
        // happened), by caller, callee, protocol and port.
        reach::Observed observed;
        for (const auto& r : flowStore_.all()) {
          if (r.key.verdict == MS_VERDICT_DENY) continue;
          observed.insert({r.key.srcIdentity, r.key.dstIdentity, r.key.protocol, r.key.dstPort});
        }
        const reach::Graph graph(gen().compiled, workloads, observed);
        json out{{"generation", gen().number}};
        if (all) {
          json ranking = json::array();
          for (const auto& r : reach::blastRadius(graph)) {
            ranking.push_back(json{{"workload", ids.nameOf(r.workload)},
                                   {"identity", r.workload},
                                   {"direct", r.direct},
                                   {"reachable", r.reachable}});
          }
          out["ranking"] = std::move(ranking);
          return out;
        }
        auto it = ids.byWorkload.find(name);
        if (it == ids.byWorkload.end()) {
          throw control::ControlError(control::kErrBadRequest, "no workload '" + name + "' in the policy in force",
                                      {});
        }
        const uint32_t x = it->second;
        json direct = json::array();
        for (const auto& e : reverse ? graph.to(x) : graph.from(x)) {
          direct.push_back(json{{"peer", ids.nameOf(reverse ? e.from : e.to)},
                                {"ports", portsJson(e.ports)},
                                {"observed", e.observed}});
        }
        json paths = json::array();
        for (const auto& p : reach::paths(graph, x, hops, reverse)) {
          json chain = json::array();
          for (const auto& e : p.edges) {
            chain.push_back(json{{"from", ids.nameOf(e.from)},
                                 {"to", ids.nameOf(e.to)},
                                 {"ports", portsJson(e.ports)},
                                 {"observed", e.observed}});
          }
          paths.push_back(json{{"workload", ids.nameOf(p.target)},
                               {"hops", p.edges.size()},
                               {"observed", p.observed},
                               {"chain", std::move(chain)}});
        }
        out["workload"] = name;
        out["reverse"] = reverse;
        out["hops"] = hops;
        out["direct"] = std::move(direct);
        out["paths"] = std::move(paths);
        return out;
      },
      false);
}

}  // namespace microseg::daemon
