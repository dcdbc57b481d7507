// Temporary access: `microseg grant`, `grants`, `revoke` on the control
// socket, the grants' expiry on the daemon's tick, and their kernel entries
// (ms_grants) kept in step with the identities in force. The kernel checks
// every entry's expiry itself; the daemon only tidies (README "Temporary
// access").
#include <spdlog/spdlog.h>

#include <algorithm>
#include <filesystem>

#include "common/text.h"
#include "control/protocol.h"
#include "control/server.h"
#include "daemon/daemon.h"
#include "daemon/request_fields.h"
#include "policy/value_checks.h"

namespace microseg::daemon {
namespace {

using nlohmann::json;

std::string grantsPath(const DaemonConfig& c) { return c.dataDir + "/grants.json"; }

Result<void> saveBook(const grants::GrantBook& book, const DaemonConfig& c, const std::string& bootId) {
  std::error_code ec;
  std::filesystem::create_directories(c.dataDir, ec);
  if (ec) return Error{"create data dir", c.dataDir, ec.value(), {}};
  return book.save(grantsPath(c), bootId);
}

// Free text for the logs: printable, bounded.
std::string checkedReason(const std::string& r) {
  if (r.size() > grants::kMaxReasonBytes) {
    throw control::ControlError(control::kErrBadRequest,
                                "reason is longer than " + std::to_string(grants::kMaxReasonBytes) + " bytes", {});
  }
  for (unsigned char c : r) {
    if (c < 0x20 || c == 0x7f) {
      throw control::ControlError(control::kErrBadRequest, "reason contains a control character", {});
    }
  }
  if (text::toUtf8(r) != r) throw control::ControlError(control::kErrBadRequest, "reason is not UTF-8", {});
  return r;
}

}  // namespace

grants::Resolve Daemon::grantResolverLocked() const {
  return [this](const std::string& name) -> std::optional<grants::Side> {
    if (auto it = gen().ids.byWorkload.find(name); it != gen().ids.byWorkload.end()) {
      return grants::Side{it->second, true};
    }
    // Cluster mode: a workload only another node runs is a peer here.
    for (const auto& [id, names] : fleet_.names) {
      if (std::find(names.begin(), names.end(), name) != names.end()) return grants::Side{id, false};
    }
    return std::nullopt;
  };
}

bool Daemon::syncGrantsLocked() {
  // The datapath writes only the difference from what the map holds.
  auto want = grants_.entries(grantResolverLocked());
  if (auto r = datapath_->setGrants(want); !r) {
    grantSyncFailures_++;
    spdlog::error("grants: writing {} kernel entries: {}", want.size(), r.error().str());
    return false;
  }
  grantEntries_ = std::move(want);
  return true;
}

void Daemon::loadGrantsLocked() {
  bootId_ = grants::bootId();
  auto book = grants::GrantBook::load(grantsPath(config_), bootId_, grants::Now::read());
  if (!book) {
    // Not fatal: the kernel's entries (adopted) still lapse on time; the
    // file is left as it is for the operator.
    spdlog::error("grants: {} (starting without saved grants; the file is left untouched)", book.error().str());
  } else {
    grants_ = std::move(*book);
  }
  grantsTickLocked();
  // Whatever the adopted map holds becomes what the book says (grants of a
  // lost file are removed: fail closed).
  grantEntries_.clear();
  if (auto r = datapath_->setGrants(grants_.entries(grantResolverLocked())); !r) {
    grantSyncFailures_++;
    spdlog::error("grants: {}", r.error().str());
  } else {
    grantEntries_ = grants_.entries(grantResolverLocked());
  }
  grantsLoaded_ = true;
  if (size_t n = grants_.activeCount(); n > 0) spdlog::info("grants: {} active grants re-adopted", n);
}

void Daemon::grantRecordLocked(const std::string& event, const grants::Grant& g, uint32_t uid, int32_t pid) {
  const auto now = grants::Now::read();
  // An expiry has nobody behind it: no "by".
  const bool expiry = event == "expired";
  const std::string by = expiry ? "" : fmt::format("by uid={} pid={}; ", uid, pid);
  spdlog::info("grant {} {}: {} -> {} {} until {} ({}created by uid={} pid={}: {})", g.id, event, g.from, g.to,
               g.ports.text(), flows::isoTime(g.expiresNs), by, g.uid, g.pid, text::jsonText(g.reason));
  if (!flowLog_.enabled()) return;
  json line = grants::grantToJson(g, now);
  line["record"] = "grant";
  line["event"] = event;
  line["time"] = flows::isoTime(now.realNs);
  line["by_uid"] = expiry ? json(nullptr) : json(uid);
  line["by_pid"] = expiry ? json(nullptr) : json(pid);
  flowLog_.write(line.dump() + "\n");
  flowLog_.flush();
}

void Daemon::grantsTickLocked() {
  // O(grants) a tick: there are few (each is someone's explicit request).
  const auto now = grants::Now::read();
  const size_t listed = grants_.all().size();
  const auto ended = grants_.expire(now);
  for (const auto& g : ended) grantRecordLocked("expired", g, 0, 0);
  if (ended.empty() && grants_.all().size() == listed) return;
  syncGrantsLocked();
  syncConnectionAgesLocked();
  if (auto r = saveBook(grants_, config_, bootId_); !r) spdlog::error("grants: {}", r.error().str());
  if (!ended.empty()) {
    std::string ids;
    for (const auto& g : ended) ids += (ids.empty() ? "" : ",") + std::to_string(g.id);
    revokeEstablishedLocked({"grant " + ids + " expired", false, ended});
  }
}

void Daemon::registerGrants() {
  using control::ControlError;
  using control::Request;

  control_->registerCommand(
      grants::kCommandCreate, [this](const Request& req) {
        const std::string from = optString(req.body, "from"), to = optString(req.body, "to");
        const std::string portText = optString(req.body, "port"), forText = optString(req.body, "for");
        const std::string reason = checkedReason(optString(req.body, "reason"));
        if (from.empty() || to.empty() || portText.empty()) {
          throw ControlError(control::kErrBadRequest, "'from', 'to' and 'port' are required", {});
        }
        std::string err;
        auto ports = grants::parsePorts(portText, err);
        if (!ports) throw ControlError(control::kErrBadRequest, err, {});
        std::optional<int64_t> asked;
        if (!forText.empty()) {
          asked = grants::parseDuration(forText, err);
          if (!asked) throw ControlError(control::kErrBadRequest, err, {});
        }
        std::lock_guard<std::mutex> lock(mu_);
        const auto resolve = grantResolverLocked();
        for (const auto& [what, name] : {std::pair{"from", from}, std::pair{"to", to}}) {
          if (!resolve(name)) {
            throw ControlError(control::kErrBadRequest,
                               std::string("'") + what + "': no workload named '" + policy::shown(name) + "' is known to this daemon",
                               {});
          }
        }
        if (!resolve(from)->local && !resolve(to)->local) {
          throw ControlError(control::kErrBadRequest,
                             "neither '" + from + "' nor '" + to + "' is a workload of this node: grant it on theirs",
                             {});
        }
        // Without --for: 30 minutes, or the cap if that is shorter.
        const int64_t seconds = asked ? *asked : std::min(grants::kDefaultDurationS, config_.maxGrantSeconds);
        if (seconds > config_.maxGrantSeconds) {
          throw ControlError(control::kErrBadRequest,
                             "duration " + grants::formatDuration(seconds) + " is longer than this daemon's cap of " +
                                 grants::formatDuration(config_.maxGrantSeconds) + " (--max-grant, config maxGrant)",
                             {});
        }
        // On a copy: nothing changes unless the kernel and the file both took it.
        grants::GrantBook next = grants_;
        grants::Grant g;
        g.from = from;
        g.to = to;
        g.ports = *ports;
        g.reason = reason;
        g.uid = req.peer.uid;
        g.pid = req.peer.pid;
        const auto now = grants::Now::read();
        const grants::Grant made = next.add(std::move(g), seconds, now);
        auto want = next.entries(resolve);
        if (want.size() > MS_MAX_GRANT_ENTRIES) {
          throw ControlError(control::kErrBadRequest,
                             "the grants in force would need " + std::to_string(want.size()) +
                                 " kernel entries, more than the map's " + std::to_string(MS_MAX_GRANT_ENTRIES) +
                                 " (one per port per side): revoke some or grant fewer ports",
                             {});
        }
        // Its connections are stamped from the first (their age, if it ends them).
        syncConnectionAgesLocked(true);
        if (auto r = datapath_->setGrants(want); !r) {
          grantSyncFailures_++;
          syncConnectionAgesLocked();
          throw ControlError(control::kErrInternal, r.error().str(), {});
        }
        if (auto r = saveBook(next, config_, bootId_); !r) {
          syncConnectionAgesLocked();
          // Back to what was in force: a grant nobody can see or revoke
          // after a restart is not made.
          if (auto back = datapath_->setGrants(grantEntries_); !back) grantSyncFailures_++;
          throw ControlError(control::kErrInternal, r.error().str(), {});
        }
        grants_ = std::move(next);
        grantEntries_ = std::move(want);
        grantRecordLocked("created", made, req.peer.uid, req.peer.pid);
        return grants::grantToJson(made, now);
      },
      true);

  control_->registerCommand(
      grants::kCommandList, [this](const Request&) {
        std::lock_guard<std::mutex> lock(mu_);
        const auto now = grants::Now::read();
        const auto resolve = grantResolverLocked();
        json list = json::array();
        for (const auto& g : grants_.all()) {
          json j = grants::grantToJson(g, now);
          // A grant whose workload is gone has no kernel entries until it
          // comes back (or the grant expires).
          if (g.active() && (!resolve(g.from) || !resolve(g.to))) j["unresolved"] = true;
          list.push_back(std::move(j));
        }
        return json{{"grants", list}, {"max_grant_seconds", config_.maxGrantSeconds}};
      },
      false);

  control_->registerCommand(
      grants::kCommandRevoke, [this](const Request& req) {
        const int64_t id = optInt(req.body, "id", 1, UINT32_MAX, 0);
        if (id == 0) throw ControlError(control::kErrBadRequest, "'id' is required", {});
        std::lock_guard<std::mutex> lock(mu_);
        grants::GrantBook next = grants_;
        const auto now = grants::Now::read();
        if (!next.revoke(static_cast<uint32_t>(id), req.peer.uid, now)) {
          const grants::Grant* g = grants_.find(static_cast<uint32_t>(id));
          throw ControlError(control::kErrBadRequest,
                             "grant " + std::to_string(id) + (g ? " was already " + g->ended : " does not exist"), {});
        }
        auto want = next.entries(grantResolverLocked());
        if (auto r = datapath_->setGrants(want); !r) {
          grantSyncFailures_++;
          throw ControlError(control::kErrInternal, r.error().str(), {});
        }
        // The kernel no longer has it: a failed save is logged, and the
        // revocation stands (a restart would bring the grant back until its
        // expiry: say so).
        if (auto r = saveBook(next, config_, bootId_); !r) {
          spdlog::error("grants: revoked grant {} is not saved ({}): a restart would re-adopt it", id,
                        r.error().str());
        }
        grants_ = std::move(next);
        grantEntries_ = std::move(want);
        syncConnectionAgesLocked();
        const grants::Grant& g = *grants_.find(static_cast<uint32_t>(id));
        grantRecordLocked("revoked", g, req.peer.uid, req.peer.pid);
        json out = grants::grantToJson(g, now);
        const uint64_t before = revocations_.revoked;
        revokeEstablishedLocked({"grant " + std::to_string(id) + " revoked", false, {g}});
        out["connections_revoked"] = revocations_.revoked - before;
        return out;
      },
      true);
}

}  // namespace microseg::daemon
