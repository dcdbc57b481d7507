// `policy.diff` on the control socket (microseg policy diff): a candidate
// policy set, read with the caller's rights and compiled beside the
// generation in force (Reloader::candidate: nothing applied, no cache
// touched), judged over the observed flow records of a window
// (diff/diff.h). An invalid candidate is an invalid_policy error with its
// located diagnostics, as `policy apply` answers.
#include <ctime>

#include "common/names.h"
#include "control/server.h"
#include "daemon/caller_files.h"
#include "daemon/daemon.h"
#include "daemon/request_fields.h"
#include "diff/diff.h"
#include "flows/flow_record.h"
#include "policy/progress.h"

namespace microseg::daemon {
namespace {

using nlohmann::json;

json portsJson(const std::vector<reach::PortRange>& ports) {
  json out = json::array();
  for (const auto& r : ports) out.push_back(reach::formatPorts(r));
  return out;
}

json edgeJson(const diff::EdgeDiff& e) {
  return json{{"direction", directionName(e.direction)},
              {"src", e.srcName},
              {"dst", e.dstName},
              {"src_identity", e.src},
              {"dst_identity", e.dst},
              {"candidate_src_identity", e.candSrc},
              {"candidate_dst_identity", e.candDst},
              {"protocol", protocolName(e.protocol)},
              {"port", e.port},
              {"passed", e.passed},
              {"denied", e.denied},
              {"first_seen", flows::isoTime(e.firstSeenNs)},
              {"last_seen", flows::isoTime(e.lastSeenNs)},
              {"verdict_now", verdictName(e.now)},
              {"verdict_candidate", verdictName(e.candidate)},
              {"candidate_rule", e.candidateRule}};
}

json reachJson(const std::vector<diff::ReachChange>& v) {
  json out = json::array();
  for (const auto& c : v) out.push_back(json{{"from", c.from}, {"to", c.to}, {"ports", portsJson(c.ports)}});
  return out;
}

std::vector<std::string> pathsField(const json& body) {
  std::vector<std::string> paths;
  if (!body.contains("paths")) return paths;
  if (!body["paths"].is_array()) {
    throw control::ControlError(control::kErrBadRequest, "field 'paths' must be an array of strings", {});
  }
  for (const auto& p : body["paths"]) {
    if (!p.is_string() || p.get<std::string>().empty() || p.get<std::string>()[0] != '/') {
      throw control::ControlError(control::kErrBadRequest, "field 'paths' must hold absolute paths", {});
    }
    paths.push_back(p.get<std::string>());
  }
  return paths;
}

}  // namespace

void Daemon::registerDiff() {
  control_->registerCommand(
      command::kPolicyDiff, [this](const control::Request& req) {
        std::vector<std::string> paths = pathsField(req.body);
        const int64_t since = optInt(req.body, "since_seconds", 0, INT64_MAX / 1000000000, 0);
        diff::Options o;
        if (since > 0) {
          timespec now{};
          clock_gettime(CLOCK_REALTIME, &now);
          o.sinceNs = (static_cast<int64_t>(now.tv_sec) - since) * 1000000000;
        }
        // The caller's paths are read with the caller's rights; without
        // paths, the daemon's own as they are on disk now, read as whoever
        // named them.
        const FsIdentity caller = callerIdentity(req.peer);
        std::lock_guard<std::mutex> lock(mu_);
        const bool own = paths.empty();
        if (own) paths = policyPathsLocked();
        if (paths.empty()) {
          throw control::ControlError(control::kErrBadRequest, "no policy paths given, and the daemon has none", {});
        }
        const CallerFileAccess files(own ? pathsOwner_ : caller);
        ReloadRequest rr;
        rr.paths = paths;
        rr.files = &files;
        rr.fleet = agent_ ? &fleet_ : nullptr;
        // Events are rendered while it compiles, as during a reload.
        const policy::ProgressScope progress([this] { drainEventsLocked(); });
        drainEventsLocked();
        const Candidate cand = reloader_->candidate(rr);
        if (!cand.ok) {
          throw control::ControlError(control::kErrInvalidPolicy,
                                      cand.errors.empty() ? "policy rejected" : cand.errors.front(), cand.errors);
        }
        std::vector<diff::Record> records;
        for (const auto& r : flowStore_.all()) {
          diff::Record d;
          d.direction = r.key.direction;
          d.src = r.key.srcIdentity;
          d.dst = r.key.dstIdentity;
          d.protocol = r.key.protocol;
          d.port = r.key.dstPort;
          d.verdict = r.key.verdict;
          d.reason = r.key.reason;
          d.count = r.count;
          d.firstSeenNs = r.firstSeenNs;
          d.lastSeenNs = r.lastSeenNs;
          d.srcAddr = r.srcAddr;
          d.dstAddr = r.dstAddr;
          records.push_back(d);
        }
        const diff::Side inForce{&gen().ids, &gen().compiled, &reloader_->rules()};
        const diff::Side candidate{&cand.gen.ids, &cand.gen.compiled, &cand.rules};
        const diff::Result d = diff::diff(records, inForce, candidate, o);
        json out{{"generation", gen().number},
                 {"candidate",
                  json{{"paths", paths},
                       {"workloads", cand.gen.bundle.workloads.size()},
                       {"externals", cand.gen.bundle.externals.size()},
                       {"policies", cand.gen.bundle.policies.size()},
                       // Staged there too: neither judged as in force nor counted above.
                       {"staged", cand.gen.staged ? cand.gen.staged->policies.size() : 0},
                       {"entries", cand.gen.compiled.entries.size()}}},
                 {"since_seconds", since},
                 {"records", d.records},
                 {"udp_answers", d.answers},
                 {"breaks", d.breaks()}};
        const std::pair<diff::Change, const std::vector<diff::EdgeDiff>*> lists[] = {
            {diff::Change::WouldBreak, &d.wouldBreak},
            {diff::Change::Widening, &d.widening},
            {diff::Change::Unchanged, &d.unchanged}};
        for (const auto& [change, list] : lists) {
          json items = json::array();
          for (const auto& e : *list) items.push_back(edgeJson(e));
          out[diff::changeName(change)] = std::move(items);
        }
        out["reach"] = json{{"gained", reachJson(d.gained)}, {"lost", reachJson(d.lost)}};
        return out;
      },
      false);
}

}  // namespace microseg::daemon
