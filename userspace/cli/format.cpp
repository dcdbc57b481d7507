#include "cli/format.h"

#include <array>
#include <cstdio>

#include "cli/cluster_views.h"
#include "cli/table.h"
#include "common/text.h"

namespace microseg::cli {
namespace {

using nlohmann::json;

std::string scalar(const json& v) {
  if (v.is_string()) return sanitize(v.get<std::string>());
  if (v.is_null()) return "-";
  return sanitize(text::jsonText(v));
}

const json& member(const json& object, const char* key) {
  static const json kNull;
  if (!object.is_object()) return kNull;
  auto it = object.find(key);
  return it == object.end() ? kNull : *it;
}

// Counters the operator reads first, in this order; any others follow.
constexpr std::array<const char*, 5> kCounterOrder = {"allowed", "denied", "audited", "events_lost",
                                                      "udp_answers"};
constexpr size_t kMaxCgroupsShown = 3;
constexpr size_t kMaxReloadErrorsShown = 10;

std::string counterName(std::string key) {
  for (auto& c : key) {
    if (c == '_') c = ' ';
  }
  return key;
}

void printCounters(const json& counters, std::ostream& out) {
  std::string s;
  auto add = [&](const std::string& key, const json& v) {
    s += (s.empty() ? "" : ", ") + sanitize(counterName(key)) + " " + scalar(v);
  };
  for (const char* key : kCounterOrder) {
    if (counters.is_object() && counters.contains(key)) add(key, counters[key]);
  }
  if (counters.is_object()) {
    for (const auto& [key, v] : counters.items()) {
      bool known = false;
      for (const char* k : kCounterOrder) known = known || key == k;
      if (!known) add(key, v);
    }
  }
  out << "counters:     " << (s.empty() ? "-" : s) << "\n";
}

void printLastReload(const json& lr, std::ostream& out) {
  if (!lr.is_object() || lr.empty()) {
    out << "last reload:  -\n";
    return;
  }
  const json& trigger = member(lr, "trigger");
  const std::string by = trigger.is_string() ? " by " + scalar(trigger) : "";
  const json& okField = member(lr, "ok");
  if (!okField.is_boolean() || okField.get<bool>()) {
    out << "last reload:  ok at " << field(lr, "time") << by << "\n";
    return;
  }
  const json& errors = member(lr, "errors");
  const size_t shown = errors.is_array() ? errors.size() : 0;
  const json& count = member(lr, "error_count");
  const size_t total = count.is_number_unsigned() ? count.get<size_t>() : shown;
  out << "last reload:  REJECTED at " << field(lr, "time") << by << " (" << total
      << (total == 1 ? " error" : " errors") << "; the previous policy stays in force)\n";
  for (size_t i = 0; i < shown && i < kMaxReloadErrorsShown; i++) out << "  " << scalar(errors[i]) << "\n";
  if (total > std::min(shown, kMaxReloadErrorsShown)) {
    out << "  ... " << total - std::min(shown, kMaxReloadErrorsShown) << " more\n";
  }
}

// One line in cluster mode (`microseg cluster status` has the rest).
void printCluster(const json& c, std::ostream& out) {
  if (!c.is_object()) return;
  const json& connected = member(c, "connected");
  const json& synced = member(c, "synced");
  const json& pending = member(c, "pending_workloads");
  out << "cluster:      node " << field(c, "node") << ", "
      << (connected.is_boolean() && connected.get<bool>() ? "connected" : "NOT CONNECTED") << ", "
      << (synced.is_boolean() && synced.get<bool>() ? "synced" : "NOT SYNCED") << " at revision "
      << field(c, "revision") << ", " << field(c, "nodes") << " nodes, policy from " << field(c, "policy_source");
  if (field(c, "policy_source") == "etcd") out << " (revision " << field(c, "policy_revision") << ")";
  if (pending.is_array() && !pending.empty()) out << ", PENDING: " << formatList(pending, 5);
  out << "\n";
}

}  // namespace

std::string formatLabels(const json& labels) {
  if (!labels.is_object() || labels.empty()) return "-";
  std::string s;
  for (const auto& [k, v] : labels.items()) s += (s.empty() ? "" : ",") + sanitize(k) + "=" + scalar(v);
  return s;
}

std::string formatList(const json& items, size_t max) {
  if (!items.is_array() || items.empty()) return "-";
  std::string s;
  size_t i = 0;
  for (; i < items.size() && (max == 0 || i < max); i++) s += (i == 0 ? "" : ",") + scalar(items[i]);
  if (i < items.size()) s += " (+" + std::to_string(items.size() - i) + " more)";
  return s;
}

std::string formatDuration(int64_t seconds) {
  if (seconds < 0) return "-";
  char buf[64];
  const int64_t d = seconds / 86400, h = seconds / 3600 % 24, m = seconds / 60 % 60, s = seconds % 60;
  if (d > 0) {
    std::snprintf(buf, sizeof(buf), "%lldd%02lldh%02lldm", static_cast<long long>(d),
                  static_cast<long long>(h), static_cast<long long>(m));
  } else if (h > 0) {
    std::snprintf(buf, sizeof(buf), "%lldh%02lldm%02llds", static_cast<long long>(h),
                  static_cast<long long>(m), static_cast<long long>(s));
  } else if (m > 0) {
    std::snprintf(buf, sizeof(buf), "%lldm%02llds", static_cast<long long>(m), static_cast<long long>(s));
  } else {
    std::snprintf(buf, sizeof(buf), "%llds", static_cast<long long>(s));
  }
  return buf;
}

std::string field(const json& object, const char* key) { return scalar(member(object, key)); }

void printStatus(const json& status, std::ostream& out) {
  const json& policy = member(status, "policy");
  const json& uptime = member(status, "uptime_seconds");
  out << "mode:         " << field(status, "mode") << "\n"
      << "generation:   " << field(status, "policy_generation");
  if (policy.is_object()) {
    out << " (" << field(policy, "rules") << " rules, " << field(policy, "entries") << " map entries, applied "
        << field(policy, "applied_at") << ")";
  }
  out << "\n"
      << "policy paths: " << formatList(member(status, "policy_paths")) << "\n"
      << "cgroup root:  " << field(status, "cgroup_root") << "\n"
      << "uptime:       " << (uptime.is_number_integer() ? formatDuration(uptime.get<int64_t>()) : "-")
      << "\n";
  printCounters(member(status, "counters"), out);
  printLastReload(member(status, "last_reload"), out);
  if (const json& rv = member(status, "revocation"); rv.is_object()) {
    out << "revocation:   ";
    if (member(rv, "available") == true) {
      out << field(rv, "revoke_established") << " (" << field(rv, "revoked") << " revoked, "
          << field(rv, "would_revoke") << " would be, " << field(rv, "failed") << " failed; connection ages "
          << (member(rv, "connection_ages") == true ? "stamped" : "not stamped") << ")\n";
    } else {
      out << "UNAVAILABLE: " << field(rv, "unavailable_reason") << "\n";
    }
  }
  printCluster(member(status, "cluster"), out);
  out << "\n";

  const json& workloads = member(status, "workloads");
  if (!workloads.is_array() || workloads.empty()) {
    out << "no workloads defined\n";
  } else {
    Table t({"NAME", "IDENTITY", "MODE", "CGROUPS", "LABELS"});
    t.align(1, Table::Align::Right);
    for (const auto& w : workloads) {
      t.add({field(w, "name"), field(w, "identity"), field(w, "mode"),
             formatList(member(w, "cgroups"), kMaxCgroupsShown), formatLabels(member(w, "labels"))});
    }
    t.print(out);
  }
  printRemoteWorkloads(member(status, "remote_workloads"), out);
}

}  // namespace microseg::cli
