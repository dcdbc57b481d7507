#include <gtest/gtest.h>

#include <sstream>

#include "cli/views.h"

namespace microseg::cli {
namespace {

using nlohmann::json;

TEST(CliViews, Durations) {
  EXPECT_EQ(parseDuration("90s"), 90);
  EXPECT_EQ(parseDuration("10m"), 600);
  EXPECT_EQ(parseDuration("2h"), 7200);
  EXPECT_EQ(parseDuration("1d"), 86400);
  for (const char* bad : {"", "m", "10", "10x", "-5m", "1.5h", "9999999999s"}) {
    EXPECT_FALSE(parseDuration(bad).has_value()) << bad;
  }
}

TEST(CliViews, PortSpecs) {
  EXPECT_EQ(parsePortSpec("5432/tcp"), std::make_pair(uint16_t{5432}, std::string("tcp")));
  EXPECT_EQ(parsePortSpec("53/UDP"), std::make_pair(uint16_t{53}, std::string("udp")));
  EXPECT_EQ(parsePortSpec("8080"), std::make_pair(uint16_t{8080}, std::string("tcp")));
  for (const char* bad : {"", "0", "65536", "80/sctp", "x/tcp", "/tcp", "-1"}) {
    EXPECT_FALSE(parsePortSpec(bad).has_value()) << bad;
  }
}

TEST(CliViews, GraphDotStylesEdgesByKind) {
  json g = {{"nodes", {{{"id", 256}, {"name", "web"}, {"kind", "workload"}},
                       {{"id", 257}, {"name", "db"}, {"kind", "workload"}},
                       {{"id", 2}, {"name", "world"}, {"kind", "reserved"}}}},
            {"edges", {{{"from", 256}, {"to", 257}, {"kind", "policy"}, {"ports", {"5432/tcp"}}},
                       {{"from", 256}, {"to", 2}, {"kind", "observed"}, {"verdict", "deny"}, {"count", 3},
                        {"ports", {"443/tcp"}}}}}};
  const std::string dot = graphDot(g);
  EXPECT_NE(dot.find("digraph microseg {"), std::string::npos);
  EXPECT_NE(dot.find("\"web\" -> \"db\" [color=grey50, label=\"5432/tcp\"]"), std::string::npos) << dot;
  EXPECT_NE(dot.find("\"web\" -> \"world\" [color=red"), std::string::npos) << dot;
  EXPECT_NE(dot.find("deny x3 443/tcp"), std::string::npos) << dot;
  EXPECT_NE(dot.find("\"world\" [shape=ellipse"), std::string::npos) << dot;
}

TEST(CliViews, GraphDotNamesAreTerminalSafe) {
  json g = {{"nodes", {{{"id", 256}, {"name", "we\x1b[2Jb\xc2\x9b\"q"}, {"kind", "workload"}}}}, {"edges", json::array()}};
  const std::string dot = graphDot(g);
  EXPECT_NE(dot.find("\"we\\\\x1b[2Jb\\\\x9b\\\"q\";"), std::string::npos) << dot;
  EXPECT_EQ(dot.find('\x1b'), std::string::npos) << dot;
}

TEST(CliViews, ExplainTextShowsEachSideWithItsRuleOrMisses) {
  json egress = {{"direction", "egress"}, {"judged_by", {{"workload", "web"}}}, {"verdict", "allow"},
                 {"outcome", "allow"}, {"mode", "monitor"}, {"reason", "rule"},
                 {"decided_by", {{"rule", "web-out/0"}, {"text", "allow to [identity: db] ports any"},
                                 {"location", "p.yaml:3"}}},
                 {"selecting_policies", {"web-out"}}, {"rules_checked", json::array()}};
  json ingress = {{"direction", "ingress"}, {"judged_by", {{"workload", "db"}}}, {"verdict", "deny"},
                  {"outcome", "audit"}, {"mode", "monitor"}, {"reason", "default-deny"}, {"decided_by", nullptr},
                  {"selecting_policies", {"db-in"}},
                  {"rules_checked", {{{"rule", "db-in/0"}, {"text", "allow from [identity: api] ports [5432/TCP]"},
                                      {"matches", false}, {"why", "wrong peer: web is not among the rule's peers"}}}}};
  json r = {{"from", {{"workload", "web"}}}, {"to", {{"workload", "db"}}}, {"port", 5432},
            {"protocol", "tcp"}, {"verdict", "deny"}, {"outcome", "audit"}, {"sides", {egress, ingress}}};
  std::ostringstream out;
  printExplain(r, out);
  const std::string s = out.str();
  EXPECT_NE(s.find("web -> db 5432/tcp: deny, audit (monitor mode)"), std::string::npos) << s;
  EXPECT_NE(s.find("egress of web: allow, decided by web-out/0"), std::string::npos) << s;
  EXPECT_NE(s.find("ingress of db: deny (audit in monitor mode) (default-deny)"), std::string::npos) << s;
  EXPECT_NE(s.find("wrong peer: web is not among"), std::string::npos) << s;

  std::ostringstream none;
  printExplain({{"from", {{"workload", "host"}}}, {"to", {{"workload", "world"}}}, {"port", 1}, {"protocol", "udp"},
                {"verdict", "allow"}, {"outcome", "allow"}, {"sides", json::array()}},
               none);
  EXPECT_NE(none.str().find("neither end is a workload"), std::string::npos) << none.str();
}

}  // namespace
}  // namespace microseg::cli
