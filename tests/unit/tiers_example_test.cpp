// policies/examples/tiers/tiers.yaml does what policies/README.md ("Tiers",
// worked examples) says it does: each claim, compiled and read the way the
// kernel reads the maps, and by the documents' reference evaluator.
#include <gtest/gtest.h>

#include "compiler/compiler.h"
#include "compiler/explain.h"
#include "identity/identities.h"
#include "policy/parser.h"

namespace microseg::compiler {
namespace {

using policy::Direction;

struct Example {
  policy::ParseResult parsed;
  identity::IdentityTable ids;
  RuleRegistry reg;
  CompiledPolicy c;
  Example() {
    parsed = policy::loadPaths({std::string(MS_SOURCE_DIR) + "/policies/examples/tiers/tiers.yaml"});
    EXPECT_TRUE(parsed.ok()) << (parsed.errors.empty() ? "" : parsed.errors[0].str());
    ids = identity::assignIdentities(parsed.bundle);
    c = compile(parsed.bundle, ids, reg);
  }
  uint32_t id(const std::string& name) {
    if (auto w = ids.byWorkload.find(name); w != ids.byWorkload.end()) return w->second;
    return ids.byCidrPeer.at(name).at(0);
  }
  // "allow tenancy/0", "deny default", as the kernel would decide it.
  std::string side(const std::string& subject, const std::string& peer, Direction dir, uint8_t proto, uint16_t port) {
    const Decision d = evaluate(c, id(subject), id(peer), dir, proto, port);
    const DocumentVerdict v =
        DocumentEvaluator(parsed.bundle, ids, DefaultEnforcement::Always)(id(subject), id(peer), dir, proto, port);
    EXPECT_EQ(d.verdict, v.verdict) << subject << " " << peer << " " << port;
    const std::string verdict = d.verdict == MS_VERDICT_ALLOW ? "allow " : "deny ";
    return verdict + (d.reason == MS_REASON_RULE ? c.rules.at(d.ruleId).name() : "default");
  }
};

TEST(TiersExample, DoesWhatTheReadmeSays) {
  Example e;
  EXPECT_TRUE(policy::tierWarnings(e.parsed.bundle).empty());
  const uint8_t tcp = MS_PROTO_TCP, udp = MS_PROTO_UDP;
  // The guardrail: nobody in prod reaches the metadata address.
  EXPECT_EQ(e.side("api", "169.254.169.254/32", Direction::Egress, tcp, 80), "deny no-metadata/0");
  // Monitoring may always scrape, both sides.
  EXPECT_EQ(e.side("prometheus", "db", Direction::Egress, tcp, 9090), "allow scrape-out/0");
  EXPECT_EQ(e.side("db", "prometheus", Direction::Ingress, tcp, 9090), "allow scrape/0");
  // Delegation: api -> db 5432 is passed to the application tier, which
  // allows it on both sides; anything else between prod workloads is denied.
  EXPECT_EQ(e.side("api", "db", Direction::Egress, tcp, 5432), "allow api-out/0");
  EXPECT_EQ(e.side("db", "api", Direction::Ingress, tcp, 5432), "allow db-in/0");
  EXPECT_EQ(e.side("api", "db", Direction::Egress, tcp, 5433), "deny tenancy/1");
  EXPECT_EQ(e.side("web", "api", Direction::Egress, tcp, 8080), "deny tenancy/1");
  // web passes on 5432 too, but no application policy selects its egress
  // and the baseline does not name db: the default (no entry: nothing
  // below it would answer otherwise).
  EXPECT_EQ(e.side("web", "db", Direction::Egress, tcp, 5432), "deny default");
  // The baseline DNS default: for web (no application egress policy), not
  // for api (it has one).
  EXPECT_EQ(e.side("web", "10.0.0.53/32", Direction::Egress, udp, 53), "allow dns-default/0");
  EXPECT_EQ(e.side("api", "10.0.0.53/32", Direction::Egress, udp, 53), "deny default");
}

}  // namespace
}  // namespace microseg::compiler
