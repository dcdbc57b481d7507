// `reach` against the daemon (README "Reach and blast radius"): a chain
// a -> b -> c -> d of workloads each allowed to call the next one, in the
// policy in force; the paths follow the policy after a reload, and an edge
// a flow really used is marked observed.
#include <gtest/gtest.h>

#include "harness.h"

namespace microseg::e2e {
namespace {

using nlohmann::json;

std::string chainPolicy(int port, bool middle) {
  std::string y;
  for (const char* w : {"a", "b", "c", "d"}) {
    y += std::string("apiVersion: microseg.dev/v1\nkind: Workload\nmetadata: {name: ") + w + "}\nspec:\n  cgroups: [\"" +
         w + "\"]\n  labels: {app: " + w + "}\n---\n";
  }
  auto link = [&](const std::string& from, const std::string& to) {
    const std::string p = std::to_string(port);
    return "apiVersion: microseg.dev/v1\nkind: Policy\nmetadata: {name: " + from + "-out}\nspec:\n"
           "  selector: {identity: " + from + "}\n  egress:\n    - to: [{identity: " + to + "}]\n"
           "      ports: [{port: " + p + ", protocol: TCP}]\n---\n"
           "apiVersion: microseg.dev/v1\nkind: Policy\nmetadata: {name: " + to + "-in}\nspec:\n"
           "  selector: {identity: " + to + "}\n  ingress:\n    - from: [{identity: " + from + "}]\n"
           "      ports: [{port: " + p + ", protocol: TCP}]\n---\n";
  };
  y += link("a", "b");
  if (middle) y += link("b", "c");
  y += link("c", "d");
  return y;
}

TEST(Reach, AThreeHopPathAndNoneWithoutTheMiddleLink) {
  CgroupTree tree;
  const std::string a = tree.create("a"), b = tree.create("b");
  for (const char* w : {"c", "d"}) tree.create(w);
  const int port = freePortBase();
  Daemon d(tree, chainPolicy(port, true), "enforce", std::vector<std::string>{"--log-allowed"});
  ASSERT_TRUE(d.started()) << d.log();

  Child srv = tcpServer(b, AF_INET, "127.0.0.1", port);
  ASSERT_TRUE(srv.ready());

  auto r = d.request("reach", {{"workload", "a"}, {"hops", 3}});
  ASSERT_TRUE(r) << d.log();
  ASSERT_EQ((*r)["paths"].size(), 3u) << r->dump();
  const json& far = (*r)["paths"][2];
  EXPECT_EQ(far["workload"], "d");
  EXPECT_EQ(far["hops"], 3);
  ASSERT_EQ(far["chain"].size(), 3u);
  EXPECT_EQ(far["chain"][1]["from"], "b");
  EXPECT_EQ(far["chain"][1]["to"], "c");
  EXPECT_EQ(far["chain"][1]["ports"], json::array({std::to_string(port) + "/tcp"}));
  EXPECT_EQ(far["observed"], false);
  auto two = d.request("reach", {{"workload", "a"}, {"hops", 2}});
  ASSERT_TRUE(two);
  EXPECT_EQ((*two)["paths"].size(), 2u) << "d is three hops away";
  auto rev = d.request("reach", {{"workload", "d"}, {"reverse", true}});
  ASSERT_TRUE(rev);
  ASSERT_EQ((*rev)["paths"].size(), 3u) << rev->dump();
  EXPECT_EQ((*rev)["paths"][2]["workload"], "a");

  auto all = d.request("reach", {{"all", true}});
  ASSERT_TRUE(all);
  EXPECT_EQ((*all)["ranking"][0]["workload"], "a");
  EXPECT_EQ((*all)["ranking"][0]["reachable"], 3);

  // The first edge, used for real: observed; the paths through it beyond
  // b are not (their other edges were never used).
  EXPECT_EQ(runIn(a, [&] { return tcpConnect(AF_INET, "127.0.0.1", port); }), 0);
  ASSERT_TRUE(d.waitFlow([](const json& f) {
    return f["verdict"] == "allow" && f["src"]["workload"] == "a" && f["dst"]["workload"] == "b";
  }));
  auto after = d.request("reach", {{"workload", "a"}, {"hops", 3}});
  ASSERT_TRUE(after);
  EXPECT_EQ((*after)["direct"][0]["observed"], true) << after->dump();
  EXPECT_EQ((*after)["paths"][0]["observed"], true);
  EXPECT_EQ((*after)["paths"][2]["observed"], false);

  d.writePolicy("policy.yaml", chainPolicy(port, false));
  ASSERT_EQ(d.cli({"policy", "reload"}).rc, 0);
  auto cut = d.request("reach", {{"workload", "a"}, {"hops", 3}});
  ASSERT_TRUE(cut);
  ASSERT_EQ((*cut)["paths"].size(), 1u) << cut->dump();
  EXPECT_EQ((*cut)["paths"][0]["workload"], "b");

  auto bad = d.request("reach", {{"workload", "nobody"}});
  EXPECT_FALSE(bad) << "an unknown workload is a bad request";
}

}  // namespace
}  // namespace microseg::e2e
