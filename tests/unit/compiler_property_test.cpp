// The compiled maps, read the way the kernel reads them (evaluate()),
// against the rules themselves: for random policy sets and every flow
// between their identities on the ports where rules begin and end, the
// verdict is what the rules say (a matching deny wins, else a matching
// allow; else default deny where the subject is isolated), and so is the
// rule named for it (see below for allows). This checks what the compiler folds and
// resolves (port ranges, deny over allow, rules for any peer, world over
// remote ranges, the lookup order), not how a single peer is matched.
#include <gtest/gtest.h>

#include <iostream>
#include <random>
#include <set>
#include <string>

#include "compiler/compiler.h"
#include "identity/identities.h"
#include "policy/parser.h"

namespace microseg::compiler {
namespace {

using policy::Direction;

std::string randomSet(std::mt19937& rng, std::set<uint16_t>& ports) {
  auto pick = [&](int n) { return static_cast<int>(rng() % static_cast<unsigned>(n)); };
  std::string y;
  for (int i = 0; i < 6; i++) {
    y += "apiVersion: microseg.dev/v1\nkind: Workload\nmetadata: {name: w" + std::to_string(i) +
         "}\nspec:\n  cgroups: [\"w" + std::to_string(i) + "\"]\n  labels: {app: a" + std::to_string(i % 3) +
         ", tier: t" + std::to_string(i % 2) + "}\n---\n";
  }
  y += "apiVersion: microseg.dev/v1\nkind: External\nmetadata: {name: e0}\nspec:\n  labels: {zone: z0}\n"
       "  cidrs: [10.0.0.0/8]\n  except: [10.1.0.0/16]\n---\n"
       "apiVersion: microseg.dev/v1\nkind: External\nmetadata: {name: e1}\nspec:\n  labels: {zone: z1}\n"
       "  cidrs: [10.1.0.0/16, \"fd00::/16\"]\n---\n";
  auto peer = [&]() -> std::string {
    switch (pick(8)) {
      case 0: return "{identity: w" + std::to_string(pick(6)) + "}";
      case 1: return "{identity: e" + std::to_string(pick(2)) + "}";
      case 2: return "{matchLabels: {app: a" + std::to_string(pick(3)) + "}}";
      case 3: return pick(2) ? "{reserved: world}" : (pick(2) ? "{reserved: host}" : "{reserved: unmanaged}");
      case 4: return pick(2) ? "{cidr: 10.1.2.0/24}" : "{cidr: 10.0.0.0/8, except: [10.1.0.0/16]}";
      case 5: return "{matchExpressions: [{key: tier, operator: In, values: [t1]}]}";
      case 6: return "{matchLabels: {zone: z1}}";
      default: return "{identity: w" + std::to_string(pick(6)) + "}";
    }
  };
  auto portList = [&]() -> std::string {
    std::string s = "[";
    for (int k = 0, n = 1 + pick(2); k < n; k++) {
      const int p = 1 + pick(120);
      const char* proto = pick(3) == 0 ? "" : (pick(2) ? ", protocol: TCP" : ", protocol: UDP");
      if (k) s += ", ";
      if (pick(5) < 2) {
        const int e = p + 1 + pick(60);
        s += "{port: " + std::to_string(p) + ", endPort: " + std::to_string(e) + proto + "}";
        ports.insert(uint16_t(e));
        ports.insert(uint16_t(e + 1));
      } else {
        s += "{port: " + std::to_string(p) + proto + "}";
        ports.insert(uint16_t(p + 1));
      }
      ports.insert(uint16_t(p));
      ports.insert(uint16_t(p - 1 > 0 ? p - 1 : 1));
    }
    return s + "]";
  };
  for (int i = 0; i < 8; i++) {
    const int s = pick(3);
    y += "apiVersion: microseg.dev/v1\nkind: Policy\nmetadata: {name: p" + std::to_string(i) + "}\nspec:\n  selector: " +
         (s == 0 ? "{identity: w" + std::to_string(pick(6)) + "}"
                 : s == 1 ? "{matchLabels: {app: a" + std::to_string(pick(3)) + "}}" : "{matchLabels: {tier: t0}}") +
         "\n";
    bool any = false;
    for (const char* dir : {"egress", "ingress"}) {
      const int r = pick(10);
      if (r < 2 && (any || dir[0] == 'e')) continue;
      any = true;
      if (r < 3) {
        y += std::string("  ") + dir + ": []\n";
        continue;
      }
      y += std::string("  ") + dir + ":\n";
      for (int k = 0, n = 1 + pick(4); k < n; k++) {
        y += "    - action: " + std::string(pick(10) < 3 ? "deny" : "allow") + "\n";
        if (pick(10) < 8) {
          y += std::string("      ") + (dir[0] == 'e' ? "to" : "from") + ": [" + peer();
          if (pick(3) == 0) y += ", " + peer();
          y += "]\n";
        }
        if (pick(5) != 0) y += "      ports: " + portList() + "\n";
      }
    }
    y += "---\n";
  }
  return y;
}

TEST(CompilerProperty, CompiledMapsDecideAsTheRulesSay) {
  std::mt19937 rng(20261201);
  size_t flows = 0, sets = 0, allowsNotFirst = 0;
  for (int round = 0; round < 8; round++) {
    std::set<uint16_t> ports{1, 80, 65535};
    const std::string text = randomSet(rng, ports);
    auto parsed = policy::parseText(text, "random.yaml");
    policy::validateBundle(parsed.bundle, parsed.errors);
    ASSERT_TRUE(parsed.ok()) << parsed.errors[0].str() << "\n" << text;
    const auto ids = identity::assignIdentities(parsed.bundle);
    std::vector<uint32_t> peers = {MS_IDENTITY_HOST, MS_IDENTITY_WORLD, MS_IDENTITY_UNMANAGED};
    for (const auto& [id, labels] : ids.labels) peers.push_back(id);
    for (const auto& [id, e] : ids.externals) peers.push_back(id);
    for (const auto mode : {DefaultEnforcement::Always, DefaultEnforcement::Selected}) {
      sets++;
      RuleRegistry registry;
      Options opts;
      opts.defaultEnforcement = mode;
      const CompiledPolicy c = compile(parsed.bundle, ids, registry, opts);
      for (const auto& [subject, labels] : ids.labels) {
        for (uint32_t peer : peers) {
          for (const Direction dir : {Direction::Egress, Direction::Ingress}) {
            for (const uint8_t proto : {uint8_t(MS_PROTO_TCP), uint8_t(MS_PROTO_UDP)}) {
              for (const uint16_t port : ports) {
                const Explanation ex = explain(parsed.bundle, ids, c, subject, peer, dir, proto, port);
                // What the rules say.
                uint32_t firstDeny = MS_RULE_NONE, firstAllow = MS_RULE_NONE;
                for (const auto& r : ex.rules) {
                  if (!r.matches) continue;
                  const bool deny = c.rules.at(r.ruleId).action == policy::Action::Deny;
                  uint32_t& first = deny ? firstDeny : firstAllow;
                  if (first == MS_RULE_NONE) first = r.ruleId;
                }
                bool isolated = mode == DefaultEnforcement::Always;
                for (const auto& name : ex.selectingPolicies) {
                  for (const auto& p : parsed.bundle.policies) {
                    if (p.name == name) isolated |= dir == Direction::Egress ? p.hasEgress : p.hasIngress;
                  }
                }
                uint8_t verdict = MS_VERDICT_ALLOW;
                uint32_t rule = MS_RULE_NONE;
                if (firstDeny != MS_RULE_NONE) {
                  verdict = MS_VERDICT_DENY;
                  rule = firstDeny;
                } else if (firstAllow != MS_RULE_NONE) {
                  rule = firstAllow;
                } else if (isolated) {
                  verdict = MS_VERDICT_DENY;
                }
                const Decision& d = ex.decision;
                flows++;
                ASSERT_EQ(int(d.verdict), int(verdict))
                    << "subject " << ids.nameOf(subject) << " peer " << ids.nameOf(peer) << " dir " << int(dir)
                    << " proto " << int(proto) << " port " << port << " mode " << int(mode) << "\n" << text;
                // A deny names the first matching deny. An allow names a
                // matching allow, not always the first: allows for any
                // peer are not folded into a peer's own entries (denies
                // are), so the peer's entry answers first.
                if (verdict == MS_VERDICT_DENY || rule == MS_RULE_NONE) {
                  ASSERT_EQ(d.ruleId, rule) << "subject " << ids.nameOf(subject) << " peer " << ids.nameOf(peer)
                                            << " dir " << int(dir) << " proto " << int(proto) << " port " << port
                                            << "\n" << text;
                } else {
                  bool matching = false;
                  for (const auto& r : ex.rules) {
                    matching |= r.matches && r.ruleId == d.ruleId &&
                                c.rules.at(r.ruleId).action == policy::Action::Allow;
                  }
                  ASSERT_TRUE(matching) << "rule " << d.ruleId << " is not a matching allow";
                  allowsNotFirst += d.ruleId != rule;
                }
              }
            }
          }
        }
      }
    }
  }
  EXPECT_EQ(sets, 16u);
  EXPECT_GT(flows, 100000u);
  std::cout << "[          ] " << flows << " flows, " << allowsNotFirst << " allowed by a later matching rule\n";
}

}  // namespace
}  // namespace microseg::compiler
