// Table renderings of cluster mode (`microseg cluster status`, and the other
// nodes' workloads in `status` / `workloads`). Pure: the daemon's JSON in,
// text out; tolerant of missing fields like format.h.
#pragma once

#include <ostream>
#include <string>

#include <nlohmann/json.hpp>

namespace microseg::cli {

// The reply of `cluster.status`: etcd endpoints and their health, this
// node, every node (with what differs from this node flagged), the
// identities in use and the nodes using each.
void printClusterStatus(const nlohmann::json& report, std::ostream& out);

// status's `remote_workloads` ([{node, workload, identity, addresses,
// listeners}]): nothing when there are none (single-host mode).
void printRemoteWorkloads(const nlohmann::json& remote, std::ostream& out);

// The mismatch flags of one node ({policy_revision, policy_rejected,
// version}) as words: "policy-behind,rejected" or "-".
std::string mismatchWords(const nlohmann::json& mismatch);

}  // namespace microseg::cli
