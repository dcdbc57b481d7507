// Tiers: the compiled maps, read the way the kernel reads them (evaluate()),
// against the reference evaluator that reads the tier semantics from the
// documents (DocumentEvaluator: admin first match with pass, application
// deny-wins, baseline where no application policy selects, the default),
// on random tiered policy sets, every flow between their identities on the
// ports where rules begin and end, in both default-enforcement modes. And
// the remembering compiler on edited tiered sets gives what a fresh compile
// gives.
#include <gtest/gtest.h>

#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <random>
#include <set>
#include <string>

#include "compiler/compiler.h"
#include "compiler/explain.h"
#include "identity/identities.h"
#include "policy/parser.h"

namespace microseg::compiler {
namespace {

using policy::Direction;

std::string workloadsAndExternals() {
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
  return y;
}

// One policy document p<i> of a random tier.
std::string randomPolicy(std::mt19937& rng, int i, std::set<uint16_t>& ports) {
  auto pick = [&](int n) { return static_cast<int>(rng() % static_cast<unsigned>(n)); };
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
      const int p = 1 + pick(60);
      const char* proto = pick(3) == 0 ? "" : (pick(2) ? ", protocol: TCP" : ", protocol: UDP");
      if (k) s += ", ";
      if (pick(5) < 2) {
        const int e = p + 1 + pick(30);
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
  const int t = pick(3);  // 0 admin, 1 application, 2 baseline
  const int s = pick(3);
  std::string y = "apiVersion: microseg.dev/v1\nkind: Policy\nmetadata: {name: p" + std::to_string(i) +
                  "}\nspec:\n  selector: " +
                  (s == 0 ? "{identity: w" + std::to_string(pick(6)) + "}"
                          : s == 1 ? "{matchLabels: {app: a" + std::to_string(pick(3)) + "}}"
                                   : "{matchLabels: {tier: t0}}") +
                  "\n";
  if (t == 0) y += "  tier: admin\n  priority: " + std::to_string(pick(3) * 10) + "\n";
  if (t == 2) y += "  tier: baseline\n";
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
      const int a = pick(10);
      y += "    - action: " + std::string(t == 0 && a < 3 ? "pass" : a < 6 ? "deny" : "allow") + "\n";
      if (pick(10) < 7) {
        y += std::string("      ") + (dir[0] == 'e' ? "to" : "from") + ": [" + peer();
        if (pick(3) == 0) y += ", " + peer();
        y += "]\n";
      }
      if (pick(5) != 0) y += "      ports: " + portList() + "\n";
    }
  }
  return y + "---\n";
}

struct Counts {
  size_t flows = 0, byTier[3] = {0, 0, 0}, defaults = 0, passed = 0, disagreements = 0;
};

// Every flow of the set, compiled against the documents' verdict.
void compareAll(const std::string& text, const std::set<uint16_t>& ports, Counts& n, bool stopAtFirst) {
  auto parsed = policy::parseText(text, "random.yaml");
  policy::validateBundle(parsed.bundle, parsed.errors);
  ASSERT_TRUE(parsed.ok()) << parsed.errors[0].str() << "\n" << text;
  const auto ids = identity::assignIdentities(parsed.bundle);
  std::vector<uint32_t> peers = {MS_IDENTITY_HOST, MS_IDENTITY_WORLD, MS_IDENTITY_UNMANAGED};
  for (const auto& [id, labels] : ids.labels) peers.push_back(id);
  for (const auto& [id, e] : ids.externals) peers.push_back(id);
  for (const auto mode : {DefaultEnforcement::Always, DefaultEnforcement::Selected}) {
    RuleRegistry registry;
    Options opts;
    opts.defaultEnforcement = mode;
    const CompiledPolicy c = compile(parsed.bundle, ids, registry, opts);
    const DocumentEvaluator docs(parsed.bundle, ids, mode);
    for (const auto& [subject, labels] : ids.labels) {
      if (ids.remoteOnly.count(subject)) continue;
      for (uint32_t peer : peers) {
        for (const Direction dir : {Direction::Egress, Direction::Ingress}) {
          for (const uint8_t proto : {uint8_t(MS_PROTO_TCP), uint8_t(MS_PROTO_UDP)}) {
            for (const uint16_t port : ports) {
              const Decision d = evaluate(c, subject, peer, dir, proto, port);
              const DocumentVerdict want = docs(subject, peer, dir, proto, port);
              n.flows++;
              std::string got = std::to_string(d.verdict);
              std::string expect = std::to_string(want.verdict);
              const RuleInfo* r = d.reason == MS_REASON_RULE ? c.rules.find(d.ruleId) : nullptr;
              if (want.isDefault) {
                n.defaults++;
                n.passed += want.passedBy != nullptr;
                // A pass that ends at the default is an entry of the pass rule
                // where a lower class's entry would answer otherwise.
                if (r != nullptr) {
                  got += " " + r->name();
                  if (want.passedBy != nullptr) expect += " " + want.passedBy->name + "/" + std::to_string(want.passIndex);
                }
              } else {
                n.byTier[static_cast<int>(want.tier)]++;
                got += " " + (r ? r->name() : std::string("-"));
                const std::string name = want.policy->name + "/" + std::to_string(want.index);
                // An application allow names a matching allow, not always the
                // first (compiler_property_test): any allow of the tier will do.
                if (want.tier == policy::Tier::Application && want.verdict == MS_VERDICT_ALLOW && r != nullptr &&
                    r->action == policy::Action::Allow && r->owner->tier == policy::Tier::Application &&
                    docs.mismatch((dir == Direction::Egress ? r->owner->egress : r->owner->ingress)[r->index], peer,
                                  proto, port)
                        .empty()) {
                  expect += " " + r->name();
                } else {
                  expect += " " + name;
                }
              }
              if (got != expect) {
                n.disagreements++;
                if (stopAtFirst) {
                  ADD_FAILURE() << "subject " << ids.nameOf(subject) << " peer " << ids.nameOf(peer) << " dir "
                                << int(dir) << " proto " << int(proto) << " port " << port << " mode " << int(mode)
                                << ": compiled " << got << ", documents " << expect << "\n"
                                << text;
                  return;
                }
              }
            }
          }
        }
      }
    }
  }
}

TEST(CompilerTiersProperty, CompiledMapsDecideAsTheTiersSay) {
  std::mt19937 rng(20261207);
  Counts n;
  size_t sets = 0;
  for (int round = 0; round < 40; round++) {
    std::set<uint16_t> ports{1, 80, 65535};
    std::string text = workloadsAndExternals();
    for (int i = 0; i < 8; i++) text += randomPolicy(rng, i, ports);
    compareAll(text, ports, n, true);
    if (HasFailure()) return;
    sets++;
  }
  EXPECT_EQ(n.disagreements, 0u);
  EXPECT_GT(n.flows, 100000u);
  // Every tier decided a good share, and pass was exercised.
  for (size_t t : n.byTier) EXPECT_GT(t, 1000u);
  EXPECT_GT(n.passed, 1000u);
  std::cout << "[          ] " << sets << " sets, " << n.flows << " flows: admin " << n.byTier[0] << ", application "
            << n.byTier[1] << ", baseline " << n.byTier[2] << ", default " << n.defaults << " (after a pass "
            << n.passed << "), disagreements " << n.disagreements << "\n";
}

// Without admin or baseline policies nothing changes: the compiled entries
// of an application-only set are those the documents give, read before
// tiers (deny wins, allows add up), which compiler_property_test checks
// in detail; here: the document evaluator agrees with them too.
TEST(CompilerTiersProperty, ApplicationOnlySetsAgreeWithTheDocuments) {
  std::mt19937 rng(7);
  Counts n;
  for (int round = 0; round < 6; round++) {
    std::set<uint16_t> ports{1, 80, 65535};
    std::string text = workloadsAndExternals();
    for (int i = 0; i < 8; i++) {
      std::string p = randomPolicy(rng, i, ports);
      for (const char* cut : {"  tier: baseline\n"}) {
        if (auto at = p.find(cut); at != std::string::npos) p.erase(at, std::string(cut).size());
      }
      if (auto at = p.find("  tier: admin\n"); at != std::string::npos) p.erase(at, p.find('\n', p.find("priority", at)) + 1 - at);
      for (size_t at; (at = p.find("action: pass")) != std::string::npos;) p.replace(at, 12, "action: deny");
      text += p;
    }
    compareAll(text, ports, n, true);
    if (HasFailure()) return;
  }
  EXPECT_EQ(n.byTier[0] + n.byTier[2], 0u);
  EXPECT_EQ(n.disagreements, 0u);
}

// The remembering compiler on tiered sets edited one policy or two at a
// time (through the loader: unchanged documents are the same objects, so
// most compiles are incremental) gives exactly what a fresh compile gives:
// a new admin or baseline policy, or an application policy that starts or
// stops selecting a workload, changes the tier chain of its subjects only.
TEST(CompilerTiersProperty, RememberingCompilerGivesWhatAFreshCompileGives) {
  std::mt19937 rng(20261208);
  auto pick = [&](int n) { return static_cast<int>(rng() % static_cast<unsigned>(n)); };
  const std::string dir = ::testing::TempDir() + "tiers-incremental-" + std::to_string(getpid());
  std::filesystem::create_directories(dir);
  const std::string file = dir + "/policy.yaml";
  size_t incremental = 0, steps = 0;
  for (int round = 0; round < 4; round++) {
    std::set<uint16_t> ports;
    std::vector<std::vector<std::string>> variants(3);  // per policy p<i>: 3 versions
    for (auto& v : variants) {
      for (int i = 0; i < 8; i++) v.push_back(randomPolicy(rng, i, ports));
    }
    for (const auto mode : {DefaultEnforcement::Always, DefaultEnforcement::Selected}) {
      Options opts;
      opts.defaultEnforcement = mode;
      RuleRegistry registry;
      Compiler compiler;
      policy::PolicyLoader loader(std::chrono::seconds(0));
      CompiledPolicy last;
      identity::IdentityTable ids;
      std::vector<int> choice(8, 0);
      for (int step = 0; step < 20; step++) {
        for (int n = 1 + pick(2); n > 0; n--) choice[pick(8)] = pick(4) - 1;
        std::string text = workloadsAndExternals();
        for (int i = 0; i < 8; i++) {
          if (choice[i] >= 0) text += variants[choice[i]][i];
        }
        {
          std::ofstream out(file, std::ios::trunc);
          out << text;
        }
        auto loaded = loader.load({file});
        ASSERT_TRUE(loaded.ok()) << loaded.errors[0].str() << "\n" << text;
        ids = identity::assignIdentities(loaded.bundle, ids);
        CompiledPolicy kept = compiler.compile(loaded.bundle, ids, registry, opts, step ? &last : nullptr);
        incremental += !compiler.lastStats().full;
        steps++;
        const CompiledPolicy fresh = compile(loaded.bundle, ids, registry, opts);
        ASSERT_EQ(kept.entries.size(), fresh.entries.size()) << "round " << round << " step " << step << "\n" << text;
        ASSERT_EQ(0, std::memcmp(kept.entries.data(), fresh.entries.data(), kept.entries.size() * sizeof(PolicyEntry)))
            << "round " << round << " step " << step << "\n" << text;
        ASSERT_EQ(kept.identities.size(), fresh.identities.size());
        for (size_t i = 0; i < kept.identities.size(); i++) {
          ASSERT_EQ(kept.identities[i].first, fresh.identities[i].first);
          ASSERT_EQ(kept.identities[i].second.flags, fresh.identities[i].second.flags);
        }
        last = std::move(kept);
      }
    }
  }
  std::filesystem::remove_all(dir);
  EXPECT_GT(incremental, steps / 2) << "most steps compile incrementally";
  std::cout << "[          ] " << steps << " steps, " << incremental << " incremental\n";
}

}  // namespace
}  // namespace microseg::compiler
