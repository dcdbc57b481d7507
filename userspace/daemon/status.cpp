// `microseg status`: the daemon's state, counters and workloads. Built under
// the daemon's lock and kept: while a reload holds the lock, status answers
// from the last one built, with fresh kernel counters.
#include "daemon/daemon.h"

#include <spdlog/spdlog.h>

#include <chrono>

#include "common/names.h"
#include "common/version.h"

namespace microseg::daemon {
namespace {

using nlohmann::json;

int64_t nowRealtimeNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

json Daemon::statusLocked() {
  json workloads = json::array();
  std::map<std::string, std::vector<std::string>> cgroupsByWorkload;
  for (const auto& [id, c] : cgroups_) {
    if (!c.workload.empty() && !c.inherited) cgroupsByWorkload[c.workload].push_back(c.path);
  }
  for (const auto& w : gen().bundle.workloads) {
    auto it = gen().ids.byWorkload.find(w.name);
    uint32_t ident = it == gen().ids.byWorkload.end() ? 0 : it->second;
    const uint32_t mode = workloadModeLocked(w.name, ident);
    // Its own network namespaces (containers) and their addresses, as the
    // ipcache has them.
    json netns = json::array();
    for (const auto& n : addrSnapshot_->netns) {
      if (n.workload != w.name) continue;
      json addrs = json::array();
      for (const auto& a : n.addrs) addrs.push_back(flows::formatAddr(a));
      json entry{{"inode", n.inode}, {"cookie", n.cookie}, {"trusted", n.trusted}, {"addresses", addrs}};
      if (!n.trusted) entry["distrust"] = n.distrust;
      if (n.dropped > 0) entry["addresses_dropped"] = n.dropped;
      netns.push_back(std::move(entry));
    }
    workloads.push_back(json{{"name", w.name},
                             {"identity", ident},
                             {"labels", w.labels},
                             {"cgroups", cgroupsByWorkload[w.name]},
                             {"netns", netns},
                             {"mode", modeName(mode)}});
  }
  json counters = json::object();
  if (auto c = datapath_->counters(); c) {
    counters = json{{"allowed", c->allowed()},
                    {"denied", c->denied()},
                    {"audited", c->audited()},
                    {"events_lost", eventsLostLocked(*c)},
                    {"udp_answers", c->udpAnswers()},
                    {"udp_exchanges_expired", udpExchangesExpired_},
                    {"no_policy", c->values[MS_CTR_NO_POLICY]},
                    {"unparsed", c->values[MS_CTR_UNPARSED]},
                    {"unsupported_protocol", c->values[MS_CTR_UNSUPPORTED_PROTO]},
                    {"deep_cgroup", c->values[MS_CTR_DEEP_CGROUP]},
                    {"unattributed", c->values[MS_CTR_UNATTRIBUTED]},
                    {"multicast", c->values[MS_CTR_MULTICAST]},
                    {"wire_identity_sent", c->values[MS_CTR_WIRE_SENT]},
                    {"wire_identity_unsent", c->values[MS_CTR_WIRE_UNSENT]},
                    {"wire_identity_verified", c->values[MS_CTR_WIRE_VERIFIED]},
                    {"wire_identity_invalid", c->values[MS_CTR_WIRE_INVALID]},
                    {"wire_identity_absent", c->values[MS_CTR_WIRE_ABSENT]},
                    {"fqdn_addresses_bound", c->values[MS_CTR_FQDN_BOUND]},
                    {"fqdn_answers_unnamed", c->values[MS_CTR_FQDN_UNNAMED]},
                    {"fqdn_answers_malformed", c->values[MS_CTR_FQDN_MALFORMED]},
                    {"fqdn_answers_untrusted", c->values[MS_CTR_FQDN_UNTRUSTED]},
                    {"fqdn_judged", c->values[MS_CTR_FQDN_JUDGED]},
                    {"fqdn_dns_unseen", c->values[MS_CTR_FQDN_DNS_UNSEEN]}};
  }
  return json{{"version_string", kVersion},
              {"mode", modeName(datapath_->mode())},
              {"policy_generation", gen().number},
              {"policy_paths", config_.policyPaths},
              {"cgroup_root", config_.cgroupRoot},
              {"state_dir", config_.stateDir},
              {"uptime_seconds", (nowRealtimeNs() - startedAt_) / 1000000000},
              {"workloads", workloads},
              {"counters", counters},
              {"flow_log_write_errors", flowLog_.writeErrors()},
              {"datapath",
               {{"adopted", datapath_->adopted()},
                {"pin_dir", datapath_->pinDir()},
                {"cgroup_entries", datapath_->activeCgroupIds().size()},
                {"cgroups_known", cgroups_.size()},
                {"addresses", addresses_.size()},
                {"host_netns_cookie", hostNetnsCookie_}}},
              {"policy",
               {{"entries", gen().compiled.entries.size()},
                {"rules", gen().compiled.rules.size()},
                {"identities", gen().ids.labels.size()},
                {"applied_at", gen().appliedAtNs != 0 ? flows::isoTime(gen().appliedAtNs) : std::string()}}},
              {"last_reload", lastReload_},
              {"revocation", revocationStatusLocked()},
              {"config", config_.toJson()},
              {"cluster", clusterStatusLocked()},
              {"remote_workloads", remoteWorkloadsLocked()}};
}

json Daemon::remoteWorkloadsLocked() const {
  json out = json::array();
  if (!agentSnap_) return out;
  // By (node, workload): its identity, its own-netns addresses, its listeners.
  std::map<std::pair<std::string, std::string>, json> by;
  auto entry = [&](const std::string& node, const std::string& workload, uint32_t identity) -> json& {
    json& e = by[{node, workload}];
    if (e.is_null()) {
      e = json{{"node", node}, {"workload", workload}, {"identity", identity}, {"addresses", json::array()},
               {"listeners", json::array()}};
    }
    return e;
  };
  for (const auto& a : agentSnap_->addresses) {
    if (a.workload.empty()) continue;  // a node's own address
    entry(a.node, a.workload, a.identity)["addresses"].push_back(flows::formatAddr(a.addr));
  }
  for (const auto& l : agentSnap_->listeners) {
    entry(l.node, l.workload, l.identity)["listeners"].push_back(flows::formatAddr(l.addr) + ":" +
                                                                  std::to_string(l.port) + "/" +
                                                                  protocolName(l.proto));
  }
  for (auto& [k, e] : by) out.push_back(std::move(e));
  return out;
}

void Daemon::publishStatusLocked() {
  auto s = std::make_shared<const json>(statusLocked());
  std::lock_guard<std::mutex> lock(statusMu_);
  statusSnapshot_ = std::move(s);
}

json Daemon::statusWithoutLock() {
  std::shared_ptr<const json> snapshot;
  {
    std::lock_guard<std::mutex> lock(statusMu_);
    snapshot = statusSnapshot_;
  }
  json out = snapshot ? *snapshot : json::object();
  // The kernel's counters need no lock of ours (their map is read, never
  // replaced; the spool's loss count is atomic).
  if (auto c = datapath_->counters(); c && out.contains("counters") && out["counters"].is_object()) {
    auto& counters = out["counters"];
    counters["allowed"] = c->allowed();
    counters["denied"] = c->denied();
    counters["audited"] = c->audited();
    counters["events_lost"] = eventsLostLocked(*c);
    counters["udp_answers"] = c->udpAnswers();
  }
  out["uptime_seconds"] = (nowRealtimeNs() - startedAt_) / 1000000000;
  out["reload_in_progress"] = true;  // why this is the last status built, not a new one
  return out;
}

}  // namespace microseg::daemon
