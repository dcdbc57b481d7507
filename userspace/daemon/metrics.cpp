// Prometheus metrics of the daemon (--metrics-listen). Everything here is
// O(workloads) per scrape: no per-flow or per-cgroup series.
#include <spdlog/spdlog.h>

#include "common/names.h"
#include "control/metrics_http.h"
#include "control/metrics_text.h"
#include "control/server.h"
#include "daemon/daemon.h"

namespace microseg::daemon {

using metrics::Family;
using metrics::Sample;
using metrics::Type;

std::string Daemon::renderMetricsLocked() {
  std::vector<Family> out;
  auto counter = [&](std::string name, std::string help, std::vector<Sample> samples) {
    out.push_back(Family{std::move(name), std::move(help), Type::Counter, std::move(samples)});
  };
  auto gauge = [&](std::string name, std::string help, std::vector<Sample> samples) {
    out.push_back(Family{std::move(name), std::move(help), Type::Gauge, std::move(samples)});
  };
  auto one = [](double v) { return std::vector<Sample>{Sample{{}, v}}; };

  if (auto c = datapath_->counters(); c) {
    counter("microseg_verdicts_total", "New flows judged by the datapath, by verdict (kernel counters).",
            {Sample{{{"verdict", verdictName(MS_VERDICT_ALLOW)}}, double(c->allowed())},
             Sample{{{"verdict", verdictName(MS_VERDICT_DENY)}}, double(c->denied())},
             Sample{{{"verdict", verdictName(MS_VERDICT_AUDIT)}}, double(c->audited())}});
    counter("microseg_events_lost_total",
            "Verdict events dropped because the kernel's ring buffer or the daemon's spool behind it was full.",
            one(double(eventsLostLocked(*c))));
    counter("microseg_udp_answers_total",
            "UDP datagrams passed as answers or replies to a recent exchange of their socket.",
            one(double(c->udpAnswers())));
    counter("microseg_udp_exchanges_expired_total",
            "UDP exchange entries removed by the daemon after the answer TTL (sockets gone silent or closed).",
            one(double(udpExchangesExpired_)));
    counter("microseg_unparsed_packets_total",
            "Inbound packets to governed sockets without a TCP/UDP header that could be found (dropped in enforce).",
            one(double(c->values[MS_CTR_UNPARSED])));
    counter("microseg_failed_closed_total",
            "Flows the datapath cannot judge as usual, refused (passed in monitor) or given an identity no rule "
            "names, by reason: a protocol it does not police (UDP-Lite, SCTP), a cgroup nested deeper than it "
            "resolves, a local sender it cannot find (a socket bound to another device).",
            {Sample{{{"reason", "unsupported_protocol"}}, double(c->values[MS_CTR_UNSUPPORTED_PROTO])},
             Sample{{{"reason", "deep_cgroup"}}, double(c->values[MS_CTR_DEEP_CGROUP])},
             Sample{{{"reason", "unattributed"}}, double(c->values[MS_CTR_UNATTRIBUTED])}});
    counter("microseg_multicast_flows_total",
            "Flows to a broadcast or multicast destination judged (peer `multicast`).",
            one(double(c->values[MS_CTR_MULTICAST])));
    counter("microseg_wire_identity_syns_total",
            "SYNs of connections between nodes by what their wire identity did (cluster mode): sent (signed "
            "here), unsent (no room in the SYN: judged there by address), verified (judged here by it), invalid "
            "(did not verify: dropped, passed in monitor), absent (from another node without one: judged by "
            "address; a middlebox that strips TCP options shows here).",
            {Sample{{{"result", "sent"}}, double(c->values[MS_CTR_WIRE_SENT])},
             Sample{{{"result", "unsent"}}, double(c->values[MS_CTR_WIRE_UNSENT])},
             Sample{{{"result", "verified"}}, double(c->values[MS_CTR_WIRE_VERIFIED])},
             Sample{{{"result", "invalid"}}, double(c->values[MS_CTR_WIRE_INVALID])},
             Sample{{{"result", "absent"}}, double(c->values[MS_CTR_WIRE_ABSENT])}});
    counter("microseg_edges_full_total",
            "Judged flows of a new edge the kernel's edge map (MS_MAX_EDGES) had no room for: each was logged "
            "as an event of its own and counted from it.",
            one(double(c->values[MS_CTR_EDGES_FULL])));
    counter("microseg_grant_allowed_total",
            "Flows no policy rule allowed that an unexpired grant (`microseg grant`) let through.",
            one(double(c->values[MS_CTR_GRANT_ALLOWED])));
    counter("microseg_fqdn_addresses_bound_total",
            "Addresses DNS answers bound to an fqdn peer for the workload that resolved them (a binding "
            "renewed counts again).",
            one(double(c->values[MS_CTR_FQDN_BOUND])));
    if (auto t = datapath_->fqdnTable()) {
      gauge("microseg_fqdn_binding_entries",
            "(workload, address) entries of the kernel's bindings table (MS_MAX_FQDN_BINDINGS), expired ones "
            "included until they are reused or evicted.",
            one(double(t->entries)));
      // Entries leave the LRU table only by the daemon's removes and by
      // eviction: what is missing from the ones the kernel inserted was
      // evicted. (The kernel's count outlives a restart, the daemon's
      // removes do not: after one, an earlier run's removes count here.)
      const uint64_t inserted = c->values[MS_CTR_FQDN_ENTRIES];
      const uint64_t accounted = t->entries + t->removed;
      counter("microseg_fqdn_binding_evictions_total",
              "Entries of the bindings table its LRU evicted to make room (inserted - held - removed by the "
              "daemon): a binding lost before its TTL if it was not expired.",
              one(double(inserted > accounted ? inserted - accounted : 0)));
    }
    counter("microseg_fqdn_answers_total",
            "DNS answers to workloads whose policies name fqdn peers that bound nothing: unnamed (no policy "
            "names the question), malformed (refused by the parser: malformed, truncated, over 1232 bytes, "
            "not one question), untrusted (not from a --fqdn-resolvers address).",
            {Sample{{{"result", "unnamed"}}, double(c->values[MS_CTR_FQDN_UNNAMED])},
             Sample{{{"result", "malformed"}}, double(c->values[MS_CTR_FQDN_MALFORMED])},
             Sample{{{"result", "untrusted"}}, double(c->values[MS_CTR_FQDN_UNTRUSTED])}});
    counter("microseg_fqdn_dns_unseen_total",
            "TCP connects of workloads whose policies name fqdn peers to port 53 (DNS over TCP) or 853 (DNS over "
            "TLS): the kernel cannot read those answers, so they bind no name (policies/README.md, FQDN peers).",
            one(double(c->values[MS_CTR_FQDN_DNS_UNSEEN])));
    counter("microseg_fqdn_judged_total",
            "Egress flows to an address a name bound for the caller, judged as the fqdn peer too.",
            one(double(c->values[MS_CTR_FQDN_JUDGED])));
  }
  gauge("microseg_grants_active", "Temporary access grants in force (`microseg grants`).",
        one(double(grants_.activeCount())));
  counter("microseg_grant_sync_failures_total",
          "Writes of the grants to the kernel that failed (the kernel keeps the entries it had; expired ones "
          "still lapse there).",
          one(double(grantSyncFailures_)));
  gauge("microseg_revocation_available",
        "1 if established connections can be revoked (socket iterators and bpf_sock_destroy, Linux >= 6.5; "
        "`microseg status` says why not).",
        one(sockets_ ? 1.0 : 0.0));
  counter("microseg_revoked_connections_total",
          "Established connections a change no longer allowed, by outcome: revoked (destroyed), would_revoke "
          "(its side in monitor mode: left alone), failed (the kernel did not destroy it).",
          {Sample{{{"outcome", "revoked"}}, double(revocations_.revoked)},
           Sample{{{"outcome", "would_revoke"}}, double(revocations_.wouldRevoke)},
           Sample{{{"outcome", "failed"}}, double(revocations_.failed)}});
  std::vector<Sample> byWorkload;
  for (const auto& [k, n] : flowEventCounts_) {
    byWorkload.push_back(Sample{{{"direction", std::get<0>(k)}, {"verdict", std::get<1>(k)}, {"workload", std::get<2>(k)}},
                                double(n)});
  }
  counter("microseg_flow_events_total",
          "Judged flows (the kernel's edge counts; an event where it is the flow's only count), by direction, verdict "
          "and the workload whose policy judged.",
          byWorkload);
  std::vector<Sample> stagedDeny;
  for (const auto& [w, n] : stagedWouldDeny_) stagedDeny.push_back(Sample{{{"workload", w}}, double(n)});
  counter("microseg_staged_would_deny_total",
          "Verdict events the staged policies (spec.staged) would deny, judged against in force + staged, by the "
          "workload whose policy judged (names past 1024 and unknown ones as \"other\").",
          stagedDeny);
  gauge("microseg_policy_generation", "Policy generation in force.", one(double(gen().number)));
  gauge("microseg_policy_apply_duration_seconds", "Time to compile and apply the last policy generation.",
        one(lastApplyMs_ / 1000.0));
  counter("microseg_policy_reload_failures_total", "Policy loads rejected (invalid policy or apply error).",
          one(double(reloadFailures_)));
  gauge("microseg_map_entries", "Entries in the active generation's maps.",
        {Sample{{{"map", "policy"}}, double(gen().compiled.entries.size())},
         Sample{{{"map", "cgroups"}}, double(cgroups_.size())},
         Sample{{{"map", "ipcache"}}, double(gen().compiled.ipcache.size() + addresses_.size())}});
  gauge("microseg_map_capacity", "Capacity of the maps.",
        {Sample{{{"map", "policy"}}, double(MS_MAX_POLICY_ENTRIES)},
         Sample{{{"map", "cgroups"}}, double(MS_MAX_CGROUPS)},
         Sample{{{"map", "ipcache"}}, double(MS_MAX_IPCACHE)}});
  gauge("microseg_edges", "Observed edges in the kernel's edge map (ms_edges), as last read.",
        one(double(edgeLedger_.size())));
  counter("microseg_edges_pruned_total",
          "Idle edges removed from the kernel's edge map with their last counts (a quarter of --edge-retention "
          "idle, at most 10 minutes); their flow records stay.",
          one(double(edgesPruned_)));
  counter("microseg_edge_read_failures_total", "Reads of the kernel's edge map that failed (the next one folds its counts).",
          one(double(edgeReadFailures_)));
  counter("microseg_edge_history_save_failures_total", "Saves of the flow records' history (edges.json) that failed.",
          one(double(edgeSaveFailures_)));
  counter("microseg_flow_records_expired_total", "Flow records dropped after --edge-retention.",
          one(double(edgeRecordsExpired_)));
  gauge("microseg_flow_records", "Aggregated flow records held in memory.", one(double(flowStore_.size())));
  gauge("microseg_flow_records_capacity", "Capacity of the flow record store.", one(double(flowStore_.capacity())));
  counter("microseg_flow_records_evicted_total", "Flow records evicted from the full store (counts were logged).",
          one(double(flowStore_.evicted())));
  gauge("microseg_enforce", "1 when the global mode is enforce, 0 in monitor.",
        one(datapath_->mode() == MS_MODE_ENFORCE ? 1.0 : 0.0));
  gauge("microseg_workloads", "Workloads defined by the policy in force.", one(double(gen().bundle.workloads.size())));
  if (control_) {
    const auto st = control_->stats();
    counter("microseg_control_refused_total",
            "Control-socket connections turned away at once: all slots taken (full) or the caller's uid at its limit.",
            {Sample{{{"reason", "full"}}, double(st.refusedFull)}, Sample{{{"reason", "uid_limit"}}, double(st.refusedPerUid)}});
    counter("microseg_control_dropped_total",
            "Control-socket connections cut: no whole request in time (request), reply not read in time (reply).",
            {Sample{{{"phase", "request"}}, double(st.requestTimeouts)}, Sample{{{"phase", "reply"}}, double(st.replyTimeouts)}});
  }
  return metrics::render(out);
}

Result<void> Daemon::startMetricsLocked() {
  if (config_.metricsListen.empty()) return {};
  metrics_ = std::make_unique<metrics::HttpEndpoint>(config_.metricsListen, [this] {
    std::lock_guard<std::mutex> lock(mu_);
    return renderMetricsLocked();
  });
  if (auto r = metrics_->start(); !r) return r;
  spdlog::info("metrics: serving Prometheus text on http://{}/metrics", config_.metricsListen);
  return {};
}

}  // namespace microseg::daemon
