#include "cli/cluster_views.h"

#include <cstdint>
#include <cstdio>
#include <ctime>
#include <string>

#include "cli/format.h"
#include "cli/table.h"

namespace microseg::cli {
namespace {

using nlohmann::json;

const json& member(const json& object, const char* key) {
  static const json kNull;
  if (!object.is_object()) return kNull;
  auto it = object.find(key);
  return it == object.end() ? kNull : *it;
}

// A cell: "-" for an empty string too (an unhealthy endpoint has no version).
std::string cell(const json& object, const char* key) {
  std::string v = field(object, key);
  return v.empty() ? "-" : v;
}

bool flag(const json& object, const char* key) {
  const json& v = member(object, key);
  return v.is_boolean() && v.get<bool>();
}

// A revision: 0 (or absent) is "none".
bool hasRevision(const json& object, const char* key) {
  const json& v = member(object, key);
  return v.is_number_integer() && v.get<int64_t>() != 0;
}

// "etcd@42", "etcd (none yet)", "files".
std::string policyCell(const json& o) {
  const std::string source = field(o, "policy_source");
  if (source != "etcd") return source;
  return hasRevision(o, "policy_revision") ? "etcd@" + field(o, "policy_revision") : "etcd (none yet)";
}

std::string latency(const json& e) {
  const json& v = member(e, "latency_ms");
  if (!v.is_number()) return "-";
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.1fms", v.get<double>());
  return buf;
}

// Unix seconds as UTC; "-" for 0 or absent.
std::string utcCell(const json& object, const char* key) {
  const json& v = member(object, key);
  if (!v.is_number_integer() || v.get<int64_t>() <= 0) return "-";
  const time_t t = static_cast<time_t>(v.get<int64_t>());
  struct tm tm {};
  gmtime_r(&t, &tm);
  char buf[32];
  strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

// "signing with key 3, accepting 2,3 (next change 2026-...)".
std::string wireLine(const json& w) {
  if (!w.is_object()) return "-";
  if (!flag(w, "known")) return "cluster keys not known yet (the kernel keeps the ones it has)";
  std::string s;
  const json& sign = member(w, "signing_key_id");
  const bool signing = sign.is_number_integer() && sign.get<int64_t>() != 0;
  if (!flag(w, "enabled")) {
    s = "off (signs nothing)";
  } else {
    s = signing ? "signing with key " + field(w, "signing_key_id") : "signing with no key (none active yet)";
  }
  s += ", accepting " + formatList(member(w, "accepted_key_ids"));
  if (utcCell(w, "next_change_at") != "-") s += " (next change " + utcCell(w, "next_change_at") + ")";
  if (!field(w, "error").empty()) s += "; ERROR: " + field(w, "error");
  return s;
}

void printWireKeys(const json& w, std::ostream& out) {
  Table t({"KEY", "STATE", "CREATED", "ACTIVATE AT", "RETIRE AT"});
  t.align(0, Table::Align::Right);
  const json& keys = member(w, "keys");
  if (keys.is_array()) {
    for (const auto& k : keys) {
      t.add({field(k, "id"), cell(k, "state"), utcCell(k, "created"), utcCell(k, "activate_at"),
             utcCell(k, "retire_at")});
    }
  }
  if (!t.empty()) {
    out << "\n";
    t.print(out);
  }
}

void printEtcd(const json& etcd, std::ostream& out) {
  Table t({"ETCD ENDPOINT", "HEALTH", "VERSION", "LEADER", "REVISION", "LATENCY", "ERROR"});
  t.align(4, Table::Align::Right);
  t.align(5, Table::Align::Right);
  if (etcd.is_array()) {
    for (const auto& e : etcd) {
      const bool healthy = flag(e, "healthy");
      t.add({cell(e, "endpoint"), healthy ? "healthy" : "UNHEALTHY", cell(e, "version"),
             flag(e, "leader") ? "leader" : "-", healthy ? cell(e, "revision") : "-", healthy ? latency(e) : "-",
             cell(e, "error")});
    }
  }
  t.print(out);
}

void printThisNode(const json& n, std::ostream& out) {
  if (!n.is_object()) {
    out << "this node:    - (the daemon did not say)\n";
    return;
  }
  const bool connected = flag(n, "connected"), synced = flag(n, "synced");
  out << "this node:    " << field(n, "node") << " (identity " << field(n, "node_identity") << "), "
      << (connected ? "connected" : "NOT CONNECTED") << ", " << (synced ? "synced" : "NOT SYNCED")
      << " at revision " << field(n, "revision") << ", lease " << field(n, "lease") << "\n"
      << "etcd:         " << formatList(member(n, "etcd_endpoints")) << " (prefix " << field(n, "prefix") << ")\n"
      << "policy:       " << policyCell(n);
  if (hasRevision(n, "policy_rejected_revision")) {
    out << "; REJECTED revision " << field(n, "policy_rejected_revision") << ": " << field(n, "policy_error")
        << " (the previous set stays in force)";
  }
  out << "\n"
      << "known:        " << field(n, "nodes") << " nodes, " << field(n, "identities") << " identities, "
      << field(n, "remote_addresses") << " remote addresses, " << field(n, "remote_listeners")
      << " remote listeners\n";
  const json& pending = member(n, "pending_workloads");
  out << "pending:      " << field(n, "pending_label_sets") << " label sets without an identity; workloads "
      << formatList(pending) << (pending.is_array() && !pending.empty() ? " (fail closed until allocated)" : "")
      << "\n"
      << "counters:     allocation failures " << field(n, "allocation_failures") << ", reconnects "
      << field(n, "reconnects") << ", ignored records " << field(n, "ignored_records") << "\n";
  out << "wire identity: " << wireLine(member(n, "wire_identity")) << "\n";
  out << "last error:   " << cell(n, "last_error") << "\n";
}

void printNodes(const json& nodes, std::ostream& out) {
  Table t({"NODE", "ADDRESSES", "LAST SEEN", "VERSION", "POLICY", "REJECTED", "WORKLOADS", "IDENTITY", "MISMATCH"});
  t.align(6, Table::Align::Right);
  std::string rejections;
  if (nodes.is_array()) {
    for (const auto& n : nodes) {
      const bool rejected = hasRevision(n, "policy_rejected_revision");
      t.add({cell(n, "name"), formatList(member(n, "addresses"), 3), cell(n, "last_seen"), cell(n, "version"),
             policyCell(n), rejected ? field(n, "policy_rejected_revision") : "-", field(n, "workloads"),
             field(n, "identity"), mismatchWords(member(n, "mismatch"))});
      if (rejected) {
        rejections += "  " + field(n, "name") + " rejected revision " + field(n, "policy_rejected_revision") +
                      ": " + field(n, "policy_error") + "\n";
      }
    }
  }
  t.print(out);
  if (!rejections.empty()) out << "rejected pushes (those nodes keep their previous policy):\n" << rejections;
}

void printIdentities(const json& identities, std::ostream& out) {
  Table t({"IDENTITY", "LABELS", "NODES"});
  t.align(0, Table::Align::Right);
  if (identities.is_array()) {
    for (const auto& i : identities) {
      t.add({field(i, "id"), formatLabels(member(i, "labels")), formatList(member(i, "nodes"))});
    }
  }
  t.print(out);
}

}  // namespace

std::string mismatchWords(const json& mismatch) {
  std::string s;
  auto add = [&](const char* key, const char* word) {
    if (flag(mismatch, key)) s += (s.empty() ? "" : ",") + std::string(word);
  };
  add("policy_revision", "policy-behind");
  add("policy_rejected", "rejected");
  add("version", "version");
  return s.empty() ? "-" : s;
}

void printClusterStatus(const json& report, std::ostream& out) {
  printEtcd(member(report, "etcd"), out);
  out << "\n";
  printThisNode(member(report, "this_node"), out);
  out << "\n";
  printNodes(member(report, "nodes"), out);
  out << "\n";
  printIdentities(member(report, "identities"), out);
  printWireKeys(member(member(report, "this_node"), "wire_identity"), out);
}

void printRemoteWorkloads(const json& remote, std::ostream& out) {
  if (!remote.is_array() || remote.empty()) return;
  Table t({"REMOTE WORKLOAD", "NODE", "IDENTITY", "ADDRESSES", "LISTENERS"});
  t.align(2, Table::Align::Right);
  for (const auto& w : remote) {
    t.add({field(w, "workload"), field(w, "node"), field(w, "identity"), formatList(member(w, "addresses"), 3),
           formatList(member(w, "listeners"), 3)});
  }
  out << "\n";
  t.print(out);
}

}  // namespace microseg::cli
