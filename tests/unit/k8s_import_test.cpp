// `microseg import k8s` on the examples of the Kubernetes NetworkPolicy
// documentation and of network-policy-api (tests/data/k8s/*.yaml against
// the small cluster in cluster.yaml): the exact documents produced (golden
// files, reviewed; MS_UPDATE_GOLDEN=1 rewrites them), that they validate,
// and the located errors.
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "k8s_import/importer.h"
#include "policy/parser.h"

namespace microseg::k8s {
namespace {

const std::string kData = std::string(MS_SOURCE_DIR) + "/tests/data/k8s/";

std::string readFile(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::string errorsOf(const std::vector<policy::Diagnostic>& ds) {
  std::string s;
  for (const auto& d : ds) s += d.str() + "\n";
  return s;
}

// The parser of the policy language on the imported text (tiers included).
std::vector<policy::Diagnostic> validate(const std::string& yaml) {
  auto r = policy::parseText(yaml, "imported.yaml");
  if (r.ok()) policy::validateBundle(r.bundle, r.errors);
  return r.errors;
}

void expectGolden(const ImportResult& r, const std::string& golden) {
  ASSERT_TRUE(r.ok()) << errorsOf(r.errors);
  const std::string path = kData + golden;
  if (std::getenv("MS_UPDATE_GOLDEN") != nullptr) {
    std::ofstream(path) << r.yaml;
  }
  EXPECT_EQ(r.yaml, readFile(path)) << "golden " << golden << "; the output was:\n" << r.yaml;
}

ImportResult importData(const std::vector<std::string>& files, TranslateOptions opts = {}) {
  std::vector<std::string> paths;
  for (const auto& f : files) paths.push_back(kData + f);
  return importFiles(paths, opts);
}

TEST(K8sImport, DocsDefaultPolicies) {
  auto r = importData({"cluster.yaml", "docs-deny-allow.yaml"});
  expectGolden(r, "docs-deny-allow.expected.yaml");
  EXPECT_EQ(errorsOf(validate(r.yaml)), "");
  EXPECT_EQ(r.documents.workloads.size(), 4u);
  EXPECT_EQ(r.documents.policies.size(), 5u);
}

TEST(K8sImport, DocsTestNetworkPolicy) {
  auto r = importData({"cluster.yaml", "docs-test-network-policy.yaml"});
  expectGolden(r, "docs-test-network-policy.expected.yaml");
  EXPECT_EQ(errorsOf(validate(r.yaml)), "");
  ASSERT_EQ(r.documents.policies.size(), 1u);
  const OutPolicy& p = r.documents.policies[0];
  // ipBlock 172.17.0.0/16 except 172.17.1.0/24: the cidr, and the one pod
  // whose IP is in it (myproject/client, 172.17.0.9; default/db's
  // 172.17.1.5 is in the hole).
  ASSERT_TRUE(p.ingress && p.ingress->size() == 1 && (*p.ingress)[0].peers);
  const auto& peers = *(*p.ingress)[0].peers;
  ASSERT_EQ(peers.size(), 4u);
  EXPECT_EQ(peers[0].cidr.str(), "172.17.0.0/16");
  EXPECT_EQ(peers[3].identity, "myproject-client");
}

TEST(K8sImport, DocsSelectorForms) {
  auto r = importData({"cluster.yaml", "docs-selectors.yaml"});
  expectGolden(r, "docs-selectors.expected.yaml");
  EXPECT_EQ(errorsOf(validate(r.yaml)), "");
}

TEST(K8sImport, DocsPortsNamedPortsAndDefaultTypes) {
  auto r = importData({"cluster.yaml", "docs-ports.yaml"});
  expectGolden(r, "docs-ports.expected.yaml");
  EXPECT_EQ(errorsOf(validate(r.yaml)), "");
  // named-ingress selects db (no port 'http'), frontend (http 8080, dns
  // 5353/UDP): split in two policies, one per pod group.
  std::vector<std::string> names;
  for (const auto& p : r.documents.policies) names.push_back(p.name);
  EXPECT_EQ(names, (std::vector<std::string>{"default-multi-port-egress", "default-named-egress",
                                             "default-named-ingress-1", "default-named-ingress-2",
                                             "myproject-ingress-only-no-types"}));
}

TEST(K8sImport, AdminAndBaseline) {
  auto r = importData({"cluster.yaml", "anp-banp.yaml"});
  expectGolden(r, "anp-banp.expected.yaml");
  EXPECT_EQ(errorsOf(validate(r.yaml)), "");
}

TEST(K8sImport, KubectlOutputAsItIs) {
  auto r = importData({"kubectl-get.yaml"});
  ASSERT_TRUE(r.ok()) << errorsOf(r.errors);
  ASSERT_EQ(r.documents.workloads.size(), 1u);
  ASSERT_EQ(r.documents.policies.size(), 1u);
  const auto& in = *r.documents.policies[0].ingress;
  ASSERT_EQ(in.size(), 1u);
  EXPECT_EQ(in[0].ports, (std::vector<OutPort>{{80, 0, Protocol::TCP}}));
  EXPECT_EQ(errorsOf(validate(r.yaml)), "");
}

TEST(K8sImport, DefaultCgroupsAreTheKubeletsSystemdSlices) {
  auto r = importData({"cluster.yaml"});
  ASSERT_TRUE(r.ok()) << errorsOf(r.errors);
  std::map<std::string, std::string> cg;
  for (const auto& w : r.documents.workloads) cg[w.name] = w.cgroups.at(0);
  EXPECT_EQ(cg["default-db"], "kubepods.slice/kubepods-pod0d4a6e2c_1111_4b7a_9c1e_2f3a4b5c6d01.slice");
  EXPECT_EQ(cg["default-frontend"],
            "kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod0d4a6e2c_2222_4b7a_9c1e_2f3a4b5c6d02.slice");
  EXPECT_EQ(cg["myproject-client"],
            "kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod0d4a6e2c_3333_4b7a_9c1e_2f3a4b5c6d03.slice");
  TranslateOptions o;
  o.cgroupPattern = "pods/{namespace}/{name}/{uid}/{uid_}";
  r = importData({"cluster.yaml"}, o);
  ASSERT_TRUE(r.ok()) << errorsOf(r.errors);
  EXPECT_EQ(r.documents.workloads[0].cgroups.at(0),
            "pods/default/db/0d4a6e2c-1111-4b7a-9c1e-2f3a4b5c6d01/0d4a6e2c_1111_4b7a_9c1e_2f3a4b5c6d01");
  EXPECT_EQ(checkCgroupPattern("/abs/{name}"), "'/abs/{name}' must be relative to microsegd's --cgroup-root (no leading '/')");
  EXPECT_EQ(checkCgroupPattern("pods/{pod}"), "unknown placeholder '{pod}' (allowed: {namespace}, {name}, {uid}, {uid_})");
  EXPECT_EQ(checkCgroupPattern("pods//{name}"), "'pods//{name}' has an empty, '.' or '..' path component");
}

TEST(K8sImport, OutputIsTheSameWhateverTheOrderOfObjects) {
  auto a = importData({"cluster.yaml", "docs-ports.yaml", "docs-selectors.yaml"});
  auto b = importData({"docs-selectors.yaml", "docs-ports.yaml", "cluster.yaml"});
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a.yaml, b.yaml);
}

TEST(K8sImport, NamesAreDnsLabelsAndCollisionsAreHashedForAll) {
  std::string objects;
  const std::string longName(80, 'n');
  for (const std::string& name : std::vector<std::string>{"a.b", "a-b", "c", longName}) {
    objects += "---\napiVersion: v1\nkind: Pod\nmetadata: {name: " + name + ", namespace: shop}\n";
  }
  // Policies have names of their own (shop/c does not collide with the
  // Workload shop-c), but a/b-c and a-b/c both want a-b-c.
  objects += "---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: c, namespace: shop}\n"
             "spec: {podSelector: {}}\n---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\n"
             "metadata: {name: b-c, namespace: a}\nspec: {podSelector: {}}\n---\napiVersion: networking.k8s.io/v1\n"
             "kind: NetworkPolicy\nmetadata: {name: c, namespace: a-b}\nspec: {podSelector: {}}\n";
  TranslateOptions o;
  o.cgroupPattern = "{namespace}/{name}";
  auto r = importTexts({{"in.yaml", objects}}, o);
  ASSERT_TRUE(r.ok()) << errorsOf(r.errors);
  std::vector<std::string> names;
  for (const auto& w : r.documents.workloads) names.push_back(w.name);
  for (const auto& p : r.documents.policies) names.push_back(p.name);
  // a.b and a-b both wanted shop-a-b; the long one is cut; each then ends
  // in 8 hex digits of its key's hash.
  ASSERT_EQ(names.size(), 7u);
  EXPECT_EQ(names[0].substr(0, 9), "shop-a-b-");
  EXPECT_EQ(names[1].substr(0, 9), "shop-a-b-");
  EXPECT_NE(names[0], names[1]);
  EXPECT_EQ(names[2], "shop-c");
  EXPECT_EQ(names[3].size(), 63u);
  EXPECT_EQ(names[3].substr(0, 10), "shop-nnnnn");
  EXPECT_EQ(names[4].substr(0, 6), "a-b-c-");
  EXPECT_EQ(names[5].substr(0, 6), "a-b-c-");
  EXPECT_NE(names[4], names[5]);
  EXPECT_EQ(names[6], "shop-c");
  for (const auto& n : names) {
    EXPECT_LE(n.size(), 63u);
    EXPECT_EQ(n.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789-"), std::string::npos) << n;
  }
  EXPECT_EQ(errorsOf(validate(r.yaml)), "");
  // The same names from the objects in another order.
  auto again = importTexts({{"b.yaml", objects.substr(objects.find("---", 10))}, {"a.yaml", objects.substr(0, objects.find("---", 10))}}, o);
  EXPECT_EQ(again.yaml, r.yaml);
}

// An ipBlock matches pods by any of their addresses, IPv6 too, not those
// in an except, nor a hostNetwork or finished pod's.
TEST(K8sImport, IpBlocksMatchPodsByEveryAddress) {
  const std::string objects = R"(
apiVersion: v1
kind: List
items:
- {apiVersion: v1, kind: Pod, metadata: {name: dual, namespace: s}, status: {podIPs: [{ip: 10.0.0.1}, {ip: "fd00::1"}]}}
- {apiVersion: v1, kind: Pod, metadata: {name: holed, namespace: s}, status: {podIP: "fd00::2:1"}}
- {apiVersion: v1, kind: Pod, metadata: {name: host, namespace: s}, spec: {hostNetwork: true}, status: {podIP: "fd00::3"}}
- {apiVersion: v1, kind: Pod, metadata: {name: done, namespace: s}, status: {phase: Succeeded, podIP: "fd00::4"}}
- apiVersion: networking.k8s.io/v1
  kind: NetworkPolicy
  metadata: {name: v6, namespace: s}
  spec:
    podSelector: {}
    ingress:
    - from: [{ipBlock: {cidr: "fd00::/64", except: ["fd00::2:0/112"]}}]
)";
  TranslateOptions o;
  o.cgroupPattern = "{namespace}/{name}";
  auto r = importTexts({{"in.yaml", objects}}, o);
  ASSERT_TRUE(r.ok()) << errorsOf(r.errors);
  ASSERT_EQ(r.documents.policies.size(), 1u);
  const auto& peers = *(*r.documents.policies[0].ingress)[0].peers;
  ASSERT_EQ(peers.size(), 2u);
  EXPECT_EQ(peers[0].cidr.str(), "fd00::/64");
  ASSERT_EQ(peers[0].except.size(), 1u);
  EXPECT_EQ(peers[0].except[0].str(), "fd00::2:0/112");
  EXPECT_EQ(peers[1].identity, "s-dual");
  EXPECT_EQ(errorsOf(validate(r.yaml)), "");
}

// A rule whose peers are all excepted away is left out, not written
// without peers (which would mean any peer); the section stays.
TEST(K8sImport, ARuleThatMatchesNothingIsLeftOutNotWidened) {
  const std::string objects =
      "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: n, namespace: s}\n"
      "spec:\n  podSelector: {}\n  ingress:\n  - from: [{ipBlock: {cidr: 10.0.0.0/8, except: [10.0.0.0/8]}}]\n";
  auto r = importTexts({{"in.yaml", objects}}, {});
  ASSERT_TRUE(r.ok()) << errorsOf(r.errors);
  ASSERT_EQ(r.documents.policies.size(), 1u);
  ASSERT_TRUE(r.documents.policies[0].ingress.has_value());
  EXPECT_TRUE(r.documents.policies[0].ingress->empty());
  ASSERT_EQ(r.warnings.size(), 1u);
  EXPECT_NE(r.warnings[0].message.find("matches no peer"), std::string::npos) << r.warnings[0].message;
  EXPECT_NE(r.yaml.find("ingress: []"), std::string::npos) << r.yaml;
}

}  // namespace
}  // namespace microseg::k8s
