// What `microseg import k8s` cannot translate is a located error naming
// the object and the field, never dropped: one test per kind of problem,
// with the exact message. And JSON input (kubectl get -o json), escapes
// included.
#include <gtest/gtest.h>

#include <fstream>
#include <iostream>
#include <iterator>
#include <random>

#include "k8s_import/importer.h"
#include "policy/parser.h"

namespace microseg::k8s {
namespace {

std::string errorsOf(const ImportResult& r) {
  std::string s;
  for (const auto& d : r.errors) s += d.str() + "\n";
  return s;
}

ImportResult run(const std::string& text, TranslateOptions opts = {}) {
  if (!opts.cgroupPattern) opts.cgroupPattern = "{namespace}/{name}";
  return importTexts({{"in.yaml", text}}, opts);
}

const char* kNp = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: np, namespace: shop}\n";

struct Case {
  const char* name;
  std::string text;
  std::string errors;
};

class K8sImportErrors : public ::testing::TestWithParam<Case> {};

TEST_P(K8sImportErrors, AreLocatedAndNamed) {
  const Case& c = GetParam();
  auto r = run(c.text);
  EXPECT_FALSE(r.ok());
  EXPECT_EQ(r.yaml, "") << "nothing is printed when something failed";
  EXPECT_EQ(errorsOf(r), c.errors) << c.text;
}

INSTANTIATE_TEST_SUITE_P(
    All, K8sImportErrors,
    ::testing::Values(
        Case{"Sctp",
             std::string(kNp) + "spec:\n  podSelector: {}\n  ingress:\n  - ports:\n    - {protocol: SCTP, port: 80}\n",
             "in.yaml:8:18: error: NetworkPolicy shop/np: spec.ingress[0].ports[0].protocol: SCTP is not supported "
             "(microseg polices TCP and UDP only)\n"},
        Case{"UnknownSpecField", std::string(kNp) + "spec:\n  podSelectr: {}\n",
             "in.yaml:5:3: error: NetworkPolicy shop/np: spec: unknown field 'podSelectr' (allowed: podSelector, "
             "policyTypes, ingress, egress)\n"},
        Case{"MissingPodSelector", std::string(kNp) + "spec:\n  policyTypes: [Ingress]\n",
             "in.yaml:5:3: error: NetworkPolicy shop/np: spec.podSelector: required (write {} for every pod of the "
             "namespace)\n"},
        Case{"UnknownKind", "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: shop}\nspec: {}\n",
             "in.yaml:2:7: error: Service shop/web: kind: 'Service' is not supported (supported: Namespace, Pod, "
             "NetworkPolicy, AdminNetworkPolicy, BaselineAdminNetworkPolicy, and Lists of them)\n"},
        Case{"OldApiVersion",
             "apiVersion: networking.k8s.io/v1beta1\nkind: NetworkPolicy\nmetadata: {name: np}\nspec: {podSelector: {}}\n",
             "in.yaml:1:13: error: NetworkPolicy np: apiVersion: 'networking.k8s.io/v1beta1' is not supported for "
             "NetworkPolicy (expected networking.k8s.io/v1)\n"},
        Case{"NamedEndPort",
             std::string(kNp) + "spec:\n  podSelector: {}\n  ingress:\n  - ports:\n    - {port: http, endPort: 90}\n",
             "in.yaml:8:29: error: NetworkPolicy shop/np: spec.ingress[0].ports[0].endPort: needs a numeric port, not "
             "a named one\n"},
        Case{"QuotedPort",
             std::string(kNp) + "spec:\n  podSelector: {}\n  ingress:\n  - ports:\n    - {port: \"80\"}\n",
             "in.yaml:8:14: error: NetworkPolicy shop/np: spec.ingress[0].ports[0].port: '80' is not a port number or "
             "a valid port name (a quoted number is a name: write the number unquoted)\n"},
        Case{"ExceptOutside",
             std::string(kNp) +
                 "spec:\n  podSelector: {}\n  egress:\n  - to:\n    - ipBlock: {cidr: 10.0.0.0/8, except: [11.0.0.0/8]}\n",
             "in.yaml:8:44: error: NetworkPolicy shop/np: spec.egress[0].to[0].ipBlock.except[0]: 11.0.0.0/8 is not "
             "inside 10.0.0.0/8\n"},
        Case{"IpBlockWithSelector",
             std::string(kNp) +
                 "spec:\n  podSelector: {}\n  egress:\n  - to:\n    - {ipBlock: {cidr: 10.0.0.0/8}, podSelector: {}}\n",
             "in.yaml:8:7: error: NetworkPolicy shop/np: spec.egress[0].to[0]: ipBlock cannot be combined with "
             "podSelector or namespaceSelector\n"},
        Case{"ReservedSelectorKey",
             std::string(kNp) + "spec:\n  podSelector: {matchLabels: {k8s.microseg.dev/pod: x}}\n",
             "in.yaml:5:16: error: NetworkPolicy shop/np: spec.podSelector: label key 'k8s.microseg.dev/pod' is "
             "reserved for microseg (pods cannot carry it)\n"},
        Case{"BadOperator",
             std::string(kNp) + "spec:\n  podSelector:\n    matchExpressions: [{key: a, operator: Has}]\n",
             "in.yaml:6:43: error: NetworkPolicy shop/np: spec.podSelector.matchExpressions[0].operator: 'Has' is not "
             "an operator (In, NotIn, Exists, DoesNotExist)\n"},
        Case{"AnpNodes",
             "apiVersion: policy.networking.k8s.io/v1alpha1\nkind: AdminNetworkPolicy\nmetadata: {name: a}\n"
             "spec:\n  priority: 5\n  subject: {namespaces: {}}\n  egress:\n  - action: Allow\n    to:\n"
             "    - nodes: {matchLabels: {role: control-plane}}\n",
             "in.yaml:10:7: error: AdminNetworkPolicy a: spec.egress[0].to[0].nodes: cannot be translated: microseg "
             "knows no nodes (name their addresses with networks instead)\n"},
        Case{"AnpPriority",
             "apiVersion: policy.networking.k8s.io/v1alpha1\nkind: AdminNetworkPolicy\nmetadata: {name: a}\n"
             "spec:\n  priority: 1001\n  subject: {namespaces: {}}\n  ingress: []\n",
             "in.yaml:5:13: error: AdminNetworkPolicy a: spec.priority: 1001 is not an integer in 0-1000\n"},
        Case{"AnpNoPriority",
             "apiVersion: policy.networking.k8s.io/v1alpha1\nkind: AdminNetworkPolicy\nmetadata: {name: a}\n"
             "spec:\n  subject: {namespaces: {}}\n  ingress: []\n",
             "in.yaml:5:3: error: AdminNetworkPolicy a: spec.priority: required\n"},
        Case{"AnpTwoSubjects",
             "apiVersion: policy.networking.k8s.io/v1alpha1\nkind: AdminNetworkPolicy\nmetadata: {name: a}\n"
             "spec:\n  priority: 1\n  subject: {namespaces: {}, pods: {namespaceSelector: {}, podSelector: {}}}\n",
             "in.yaml:6:12: error: AdminNetworkPolicy a: spec.subject: exactly one of namespaces, pods is required\n"},
        Case{"AnpOldNamespacesPeer",
             "apiVersion: policy.networking.k8s.io/v1alpha1\nkind: AdminNetworkPolicy\nmetadata: {name: a}\n"
             "spec:\n  priority: 1\n  subject: {namespaces: {}}\n  ingress:\n  - action: Deny\n    from:\n"
             "    - namespaces: {sameLabels: [tenant]}\n",
             "in.yaml:10:20: error: AdminNetworkPolicy a: spec.ingress[0].from[0].namespaces: unknown field "
             "'sameLabels' (allowed: matchLabels, matchExpressions)\n"},
        Case{"BanpPass",
             "apiVersion: policy.networking.k8s.io/v1alpha1\nkind: BaselineAdminNetworkPolicy\n"
             "metadata: {name: default}\nspec:\n  subject: {namespaces: {}}\n  ingress:\n  - action: Pass\n"
             "    from: [{namespaces: {}}]\n",
             "in.yaml:7:13: error: BaselineAdminNetworkPolicy default: spec.ingress[0].action: 'Pass' is not an "
             "action (Allow, Deny)\n"},
        Case{"BanpName",
             "apiVersion: policy.networking.k8s.io/v1alpha1\nkind: BaselineAdminNetworkPolicy\n"
             "metadata: {name: other}\nspec:\n  subject: {namespaces: {}}\n",
             "in.yaml:3:18: error: BaselineAdminNetworkPolicy other: metadata.name: a BaselineAdminNetworkPolicy must "
             "be named 'default'\n"},
        Case{"PodReservedLabel",
             "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n  namespace: shop\n"
             "  labels: {kubernetes.io.ns.k8s.microseg.dev/metadata.name: prod}\n",
             "in.yaml:6:12: error: Pod shop/p: metadata.labels: label keys under microseg.dev are reserved for the "
             "import (they name namespaces and pods): 'kubernetes.io.ns.k8s.microseg.dev/metadata.name'\n"},
        Case{"DuplicatePolicy", std::string(kNp) + "spec: {podSelector: {}}\n---\n" + kNp + "spec: {podSelector: {}}\n",
             "in.yaml:6:1: error: NetworkPolicy shop/np: defined twice (also at in.yaml:1:1)\n"},
        Case{"DuplicateKey", std::string(kNp) + "spec: {podSelector: {}, podSelector: {}}\n",
             "in.yaml:4:25: error: NetworkPolicy shop/np: spec: duplicate field 'podSelector'\n"},
        Case{"Syntax", std::string(kNp) + "spec: {podSelector: {}\n",
             "in.yaml:5:1: error: YAML/JSON syntax: did not find expected ',' or '}' while parsing a flow mapping (line 4)\n"},
        Case{"ScalarContainer", "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [web]}\n",
             "in.yaml:4:21: error: Pod default/p: spec.containers[0]: expected a mapping\n"},
        Case{"ListItem",
             "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Pod\n  metadata: {name: Bad_Name}\n",
             "in.yaml:6:20: error: Pod default/Bad_Name: metadata.name: 'Bad_Name' is not a valid object name\n"}),
    [](const ::testing::TestParamInfo<Case>& i) { return std::string(i.param.name); });

TEST(K8sImportErrorsMore, PodWithoutQosClassNeedsAPattern) {
  auto r = importTexts({{"in.yaml", "apiVersion: v1\nkind: Pod\nmetadata: {name: p, uid: 1-2}\n"}}, {});
  EXPECT_EQ(errorsOf(r),
            "in.yaml:1:1: error: Pod default/p: status.qosClass: required for the kubelet's cgroup path (or give "
            "--cgroup-pattern)\n");
}

TEST(K8sImportErrorsMore, PolicyTypesLeavingOutRulesIsAWarning) {
  auto r = run(std::string(kNp) + "spec:\n  podSelector: {}\n  policyTypes: [Egress]\n  ingress:\n  - {}\n");
  ASSERT_TRUE(r.ok()) << errorsOf(r);
  ASSERT_EQ(r.warnings.size(), 1u);
  EXPECT_EQ(r.warnings[0].str(),
            "in.yaml:8:3: error: NetworkPolicy shop/np: spec.ingress: ignored: policyTypes does not list Ingress (as "
            "in Kubernetes)");
  ASSERT_EQ(r.documents.policies.size(), 1u);
  EXPECT_FALSE(r.documents.policies[0].ingress.has_value());
  EXPECT_TRUE(r.documents.policies[0].egress.has_value() && r.documents.policies[0].egress->empty());
}

// kubectl get -o json: the same objects, read by the same reader; Go's
// encoder writes <, > and & as \u003c, \u003e, \u0026.
TEST(K8sImportJson, KubectlJsonListWithEscapes) {
  const std::string json = R"({
    "apiVersion": "v1",
    "kind": "List",
    "items": [
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": "web",
                "namespace": "shop",
                "uid": "4c2b8a0e-aaaa-4b7a-9c1e-2f3a4b5c6d01",
                "labels": {"app": "web"},
                "annotations": {"note": "a \"quoted\" \u003cb\u003e \\ \/ caf\u00e9"}
            },
            "spec": {"containers": [{"name": "c", "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]}]},
            "status": {"phase": "Running", "qosClass": "Burstable", "podIP": "10.1.0.5", "podIPs": [{"ip": "10.1.0.5"}]}
        },
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {"name": "web-in", "namespace": "shop"},
            "spec": {
                "podSelector": {"matchLabels": {"app": "web"}},
                "ingress": [{"ports": [{"port": "http", "protocol": "TCP"}]}],
                "policyTypes": ["Ingress"]
            }
        }
    ]
})";
  auto r = importTexts({{"in.json", json}}, {});
  ASSERT_TRUE(r.ok()) << errorsOf(r);
  ASSERT_EQ(r.documents.workloads.size(), 1u);
  EXPECT_EQ(r.documents.workloads[0].cgroups.at(0),
            "kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod4c2b8a0e_aaaa_4b7a_9c1e_2f3a4b5c6d01.slice");
  ASSERT_EQ(r.documents.policies.size(), 1u);
  const auto& in = *r.documents.policies[0].ingress;
  ASSERT_EQ(in.size(), 1u);
  EXPECT_EQ(in[0].ports, (std::vector<OutPort>{{8080, 0, Protocol::TCP}}));
  // A bad escape is a located syntax error (libyaml refuses surrogate
  // escapes, which Go's encoder never writes).
  auto bad = importTexts({{"in.json", R"({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "\ud83d"}})"}}, {});
  EXPECT_EQ(errorsOf(bad), "in.json:1:61: error: YAML/JSON syntax: found invalid Unicode character escape code while parsing a quoted scalar\n");
}

TEST(K8sImportErrorsMore, AdminPoliciesOfOnePriorityAreAWarning) {
  const std::string anp = "apiVersion: policy.networking.k8s.io/v1alpha1\nkind: AdminNetworkPolicy\n";
  auto r = run("---\n" + anp + "metadata: {name: a}\nspec: {priority: 7, subject: {namespaces: {}}, ingress: []}\n---\n" +
               anp + "metadata: {name: b}\nspec: {priority: 7, subject: {namespaces: {}}, ingress: []}\n");
  ASSERT_TRUE(r.ok()) << errorsOf(r);
  ASSERT_EQ(r.warnings.size(), 1u);
  EXPECT_EQ(r.warnings[0].str(),
            "in.yaml:7:1: error: AdminNetworkPolicy b: spec.priority: 7 is also the priority of AdminNetworkPolicy a "
            "(Kubernetes leaves their order undefined)");
}

// Mutated inputs (characters dropped, doubled, swapped, replaced by YAML
// punctuation) never crash or throw: each is imported or refused with
// errors. 3000 mutants of the test data, a fixed seed.
TEST(K8sImportFuzz, MutatedInputsAreImportedOrRefused) {
  std::vector<std::string> seeds;
  for (const char* f : {"cluster.yaml", "anp-banp.yaml", "docs-ports.yaml", "docs-test-network-policy.yaml",
                        "kubectl-get.yaml"}) {
    std::ifstream in(std::string(MS_SOURCE_DIR) + "/tests/data/k8s/" + f);
    seeds.emplace_back((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  }
  std::mt19937 rng(12345);
  const std::string punct = ":-[]{},'\"#&*!|>%@ \n0aZ";
  size_t refused = 0, imported = 0;
  for (int i = 0; i < 3000; i++) {
    std::string t = seeds[i % seeds.size()];
    const int edits = 1 + static_cast<int>(rng() % 4);
    for (int e = 0; e < edits && !t.empty(); e++) {
      const size_t at = rng() % t.size();
      switch (rng() % 4) {
        case 0: t.erase(at, 1 + rng() % 8); break;
        case 1: t.insert(at, t.substr(at, 1 + rng() % 16)); break;
        case 2: t[at] = punct[rng() % punct.size()]; break;
        case 3: std::swap(t[at], t[rng() % t.size()]); break;
      }
    }
    TranslateOptions o;
    if (i % 2 == 0) o.cgroupPattern = "{namespace}/{name}";
    ImportResult r;
    ASSERT_NO_THROW(r = importTexts({{"fuzz.yaml", t}}, o)) << t;
    if (r.ok()) {
      imported++;
      // What is printed parses back as microseg documents (tiers aside).
      auto p = policy::parseText(r.yaml, "out.yaml");
      for (const auto& d : p.errors) {
        const bool tierField = d.message.find("'tier'") != std::string::npos ||
                               d.message.find("'priority'") != std::string::npos ||
                               d.message.find("pass") != std::string::npos;
        EXPECT_TRUE(tierField) << d.str() << "\n--- input:\n" << t << "\n--- output:\n" << r.yaml;
      }
    } else {
      refused++;
      EXPECT_EQ(r.yaml, "");
    }
  }
  EXPECT_GT(imported, 100u);
  EXPECT_GT(refused, 100u);
  std::cout << imported << " mutants imported, " << refused << " refused\n";
}

// The API's typed lists (kubectl get --raw) leave out their items' kind
// and apiVersion.
TEST(K8sImportJson, TypedListsGiveTheirItemsKind) {
  const std::string json = R"({"kind": "NetworkPolicyList", "apiVersion": "networking.k8s.io/v1", "metadata": {},
    "items": [{"metadata": {"name": "deny", "namespace": "shop"}, "spec": {"podSelector": {}}}]})";
  auto r = importTexts({{"in.json", json}}, {});
  ASSERT_TRUE(r.ok()) << errorsOf(r);
  ASSERT_EQ(r.documents.policies.size(), 1u);
  EXPECT_EQ(r.documents.policies[0].name, "shop-deny");
  auto bad = importTexts({{"in.json", R"({"kind": "ServiceList", "apiVersion": "v1", "items": []})"}}, {});
  EXPECT_EQ(errorsOf(bad),
            "in.json:1:10: error: ServiceList (unnamed): kind: 'ServiceList' is not supported (supported: Namespace, "
            "Pod, NetworkPolicy, AdminNetworkPolicy, BaselineAdminNetworkPolicy, and Lists of them)\n");
}

}  // namespace
}  // namespace microseg::k8s
