// `microseg cluster status` and the remote workloads of `status`, rendered
// from replies shaped like the daemon's (userspace/daemon/cluster.cpp,
// status.cpp).
#include <gtest/gtest.h>

#include <sstream>

#include "cli/cluster_views.h"
#include "cli/format.h"

namespace microseg::cli {
namespace {

using nlohmann::json;

json sampleReport() {
  return json::parse(R"({
    "etcd": [
      {"endpoint": "http://127.0.0.1:2379", "healthy": true, "version": "3.4.23", "leader": true,
       "revision": 57, "latency_ms": 0.84, "error": ""},
      {"endpoint": "http://127.0.0.1:2380", "healthy": false, "version": "", "leader": false,
       "revision": 0, "latency_ms": 0, "error": "unavailable: connection refused"}
    ],
    "this_node": {"node": "n1", "etcd_endpoints": ["http://127.0.0.1:2379", "http://127.0.0.1:2380"],
      "prefix": "/microseg", "connected": true, "synced": true, "last_error": "", "revision": 57,
      "lease": 7587868, "node_identity": 65538, "nodes": 2, "identities": 3, "pending_label_sets": 1,
      "pending_workloads": ["batch"], "remote_addresses": 4, "remote_listeners": 1,
      "allocation_failures": 0, "reconnects": 2, "ignored_records": 0, "policy_source": "etcd",
      "policy_revision": 50, "policy_rejected_revision": 0, "policy_error": ""},
    "nodes": [
      {"name": "n1", "addresses": ["10.0.0.1"], "version": "0.1.0", "last_seen": "2026-12-07T04:00:00Z",
       "policy_source": "etcd", "policy_revision": 50, "policy_rejected_revision": 0, "policy_error": "",
       "workloads": 3, "identity": 65538,
       "mismatch": {"policy_revision": false, "policy_rejected": false, "version": false}},
      {"name": "n2", "addresses": ["10.0.0.2", "fd00::2"], "version": "0.0.9",
       "last_seen": "2026-12-07T03:59:58Z", "policy_source": "etcd", "policy_revision": 44,
       "policy_rejected_revision": 50, "policy_error": "p.yaml:3:5: error: unknown field 'form'",
       "workloads": 12, "identity": 65539,
       "mismatch": {"policy_revision": true, "policy_rejected": true, "version": true}},
      {"name": "n3", "addresses": [], "version": "0.1.0", "last_seen": "2026-12-07T04:00:01Z",
       "policy_source": "files", "policy_revision": 0, "policy_rejected_revision": 0, "policy_error": "",
       "workloads": 0, "identity": 65540,
       "mismatch": {"policy_revision": false, "policy_rejected": false, "version": false}}
    ],
    "identities": [
      {"id": 65538, "labels": {"microseg.dev/node": "n1"}, "nodes": ["n1"]},
      {"id": 65600, "labels": {"app": "payments", "env": "prod"}, "nodes": ["n1", "n2"]}
    ]
  })");
}

std::string render(const json& report) {
  std::ostringstream out;
  printClusterStatus(report, out);
  return out.str();
}

bool has(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

TEST(CliClusterViews, EtcdEndpointsWithTheirHealth) {
  const std::string t = render(sampleReport());
  EXPECT_TRUE(has(t, "ETCD ENDPOINT          HEALTH     VERSION  LEADER  REVISION  LATENCY  ERROR\n")) << t;
  EXPECT_TRUE(has(t, "http://127.0.0.1:2379  healthy    3.4.23   leader        57    0.8ms  -\n")) << t;
  EXPECT_TRUE(has(t, "http://127.0.0.1:2380  UNHEALTHY  -        -              -        -  unavailable: connection refused\n"))
      << t;
}

TEST(CliClusterViews, ThisNodeSaysItsStateAndWhatIsPending) {
  const std::string t = render(sampleReport());
  EXPECT_TRUE(has(t, "this node:    n1 (identity 65538), connected, synced at revision 57, lease 7587868\n")) << t;
  EXPECT_TRUE(has(t, "policy:       etcd@50\n")) << t;
  EXPECT_TRUE(has(t, "pending:      1 label sets without an identity; workloads batch (fail closed until allocated)\n"))
      << t;
  EXPECT_TRUE(has(t, "counters:     allocation failures 0, reconnects 2, ignored records 0\n")) << t;
  EXPECT_TRUE(has(t, "last error:   -\n")) << t;
}

TEST(CliClusterViews, EveryNodeWithPolicyRejectionAndMismatchFlags) {
  const std::string t = render(sampleReport());
  EXPECT_TRUE(has(t,
                  "NODE  ADDRESSES         LAST SEEN             VERSION  POLICY   REJECTED  WORKLOADS  IDENTITY  MISMATCH\n"
                  "n1    10.0.0.1          2026-12-07T04:00:00Z  0.1.0    etcd@50  -                 3  65538     -\n"
                  "n2    10.0.0.2,fd00::2  2026-12-07T03:59:58Z  0.0.9    etcd@44  50               12  65539     "
                  "policy-behind,rejected,version\n"
                  "n3    -                 2026-12-07T04:00:01Z  0.1.0    files    -                 0  65540     -\n"))
      << t;
  EXPECT_TRUE(has(t, "rejected pushes (those nodes keep their previous policy):\n"
                     "  n2 rejected revision 50: p.yaml:3:5: error: unknown field 'form'\n"))
      << t;
}

TEST(CliClusterViews, IdentitiesWithLabelsAndTheNodesUsingThem) {
  const std::string t = render(sampleReport());
  EXPECT_TRUE(has(t, "IDENTITY  LABELS                 NODES\n")) << t;
  EXPECT_TRUE(has(t, "   65538  microseg.dev/node=n1   n1\n")) << t;
  EXPECT_TRUE(has(t, "   65600  app=payments,env=prod  n1,n2\n")) << t;
}

TEST(CliClusterViews, ARejectionOnThisNodeIsSaid) {
  json r = sampleReport();
  r["this_node"]["policy_rejected_revision"] = 51;
  r["this_node"]["policy_error"] = "x.yaml:1: error: bad";
  r["this_node"]["connected"] = false;
  r["this_node"]["last_error"] = "unavailable";
  const std::string t = render(r);
  EXPECT_TRUE(has(t, "NOT CONNECTED")) << t;
  EXPECT_TRUE(has(t, "policy:       etcd@50; REJECTED revision 51: x.yaml:1: error: bad (the previous set stays in force)\n"))
      << t;
  EXPECT_TRUE(has(t, "last error:   unavailable\n")) << t;
}

TEST(CliClusterViews, MissingFieldsAndHostileTextStayReadable) {
  const std::string t = render(json::parse(R"({"nodes": [{"name": "evil\u001b[2J"}], "identities": null})"));
  EXPECT_TRUE(has(t, "this node:    - (the daemon did not say)\n")) << t;
  EXPECT_TRUE(has(t, "evil\\x1b[2J")) << t;
  EXPECT_EQ(t.find('\x1b'), std::string::npos) << t;
  EXPECT_EQ(mismatchWords(json()), "-");
}

TEST(CliClusterViews, StatusShowsTheClusterLineAndRemoteWorkloadsWithTheirNode) {
  json st = json::parse(R"({
    "mode": "enforce", "policy_generation": 4, "workloads": [],
    "cluster": {"node": "n1", "connected": true, "synced": true, "revision": 57, "nodes": 2,
                "policy_source": "etcd", "policy_revision": 50, "pending_workloads": []},
    "remote_workloads": [
      {"node": "n2", "workload": "payments", "identity": 65600, "addresses": ["10.1.0.5"],
       "listeners": ["10.0.0.2:8443/tcp"]}
    ]
  })");
  std::ostringstream out;
  printStatus(st, out);
  const std::string t = out.str();
  EXPECT_TRUE(has(t, "cluster:      node n1, connected, synced at revision 57, 2 nodes, policy from etcd (revision 50)\n"))
      << t;
  EXPECT_TRUE(has(t, "no workloads defined\n\nREMOTE WORKLOAD  NODE  IDENTITY  ADDRESSES  LISTENERS\n"
                     "payments         n2       65600  10.1.0.5   10.0.0.2:8443/tcp\n"))
      << t;
}

TEST(CliClusterViews, SingleHostStatusHasNoClusterLines) {
  std::ostringstream out;
  printStatus(json::parse(R"({"mode": "monitor", "workloads": [], "cluster": null, "remote_workloads": []})"), out);
  EXPECT_FALSE(has(out.str(), "cluster:")) << out.str();
  EXPECT_FALSE(has(out.str(), "REMOTE")) << out.str();
}

}  // namespace
}  // namespace microseg::cli
