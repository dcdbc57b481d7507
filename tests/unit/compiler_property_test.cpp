// The compiled maps, read the way the kernel reads them (evaluate()),
// against the rules themselves: for random policy sets and every flow
// between their identities on the ports where rules begin and end, the
// verdict is what the rules say (a matching deny wins, else a matching
// allow; else default deny where the subject is isolated), and so is the
// rule named for it (see below for allows). This checks what the compiler folds and
// resolves (port ranges, deny over allow, rules for any peer, world over
// remote ranges, the lookup order), not how a single peer is matched.
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <random>
#include <set>
#include <string>

#include "compiler/compiler.h"
#include "compiler/explain.h"
#include "compiler/rule_text.h"
#include "datapath/slot_state.h"
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

// Documents of a random set: workloads and Externals first, then p0..p7.
std::vector<std::string> documentsOf(const std::string& text) {
  std::vector<std::string> docs;
  size_t start = 0;
  for (size_t at; (at = text.find("---\n", start)) != std::string::npos; start = at + 4) {
    docs.push_back(text.substr(start, at + 4 - start));
  }
  return docs;
}

std::string entryText(const PolicyEntry& e) {
  return std::to_string(e.key.prefixlen) + " " + std::to_string(e.key.subject) + ">" + std::to_string(e.key.peer) +
         " d" + std::to_string(e.key.direction) + " p" + std::to_string(e.key.protocol) + ":" +
         std::to_string(ntohs(e.key.port)) + " = " + std::to_string(e.value.verdict) + "/" +
         std::to_string(e.value.rule_id) + "\n";
}

std::string entriesText(const CompiledPolicy& c) {
  std::string out;
  for (const auto& e : c.entries) out += entryText(e);
  for (const auto& [id, v] : c.identities) {
    out += "identity " + std::to_string(id) + " " + std::to_string(v.flags) + "/" + std::to_string(v.mode) + "\n";
  }
  for (const auto& [id, r] : c.rules) {
    out += "rule " + std::to_string(id) + " " + r.name() + " " + r.loc().file.str() + ":" + std::to_string(r.loc().line) +
           " " + std::to_string(int(r.action)) + "\n";
  }
  for (const auto& e : c.ipcache) {
    out += "ip " + std::to_string(e.prefixlen) + " " + std::to_string(e.identity) + "\n";
  }
  return out;
}

// The Compiler, fed one edited policy set after another through the policy
// loader (so unchanged documents are the same objects), gives exactly what a
// fresh compile gives: policies replaced, added, removed and reordered,
// locations moved, workload labels changed (new identities).
TEST(CompilerProperty, RememberingCompilerGivesWhatAFreshCompileGives) {
  std::mt19937 rng(20261202);
  auto pick = [&](int n) { return static_cast<int>(rng() % static_cast<unsigned>(n)); };
  const std::string dir = ::testing::TempDir() + "incremental-" + std::to_string(getpid());
  std::filesystem::create_directories(dir);
  const std::string file = dir + "/policy.yaml";
  size_t incremental = 0, lent = 0, steps = 0;
  for (int round = 0; round < 6; round++) {
    std::set<uint16_t> ports;
    std::vector<std::vector<std::string>> variants;  // 3 random sets: same names, other rules
    for (int v = 0; v < 3; v++) variants.push_back(documentsOf(randomSet(rng, ports)));
    const size_t fixed = variants[0].size() - 8;  // workloads and Externals
    for (const auto mode : {DefaultEnforcement::Always, DefaultEnforcement::Selected}) {
      Options opts;
      opts.defaultEnforcement = mode;
      RuleRegistry registry;
      Compiler compiler;
      policy::PolicyLoader loader(std::chrono::seconds(0));
      identity::IdentityTable ids;
      CompiledPolicy last;
      std::vector<int> choice(8, 0);  // per policy: variant, or -1 absent
      for (int step = 0; step < 25; step++) {
        for (int n = 1 + pick(2); n > 0; n--) choice[pick(8)] = pick(4) - 1;
        std::string text;
        if (pick(6) == 0) text += "# a comment that moves every line\n";
        for (size_t i = 0; i < fixed; i++) {
          std::string d = variants[0][i];
          // Now and then workload w5 gets another label: other identities.
          if (i == 5 && pick(5) == 0) d.insert(d.find("labels: {") + 9, "extra: x, ");
          text += d;
        }
        std::vector<int> order = {0, 1, 2, 3, 4, 5, 6, 7};
        if (pick(4) == 0) std::shuffle(order.begin(), order.end(), rng);
        for (int i : order) {
          if (choice[i] >= 0) text += variants[choice[i]][fixed + i];
        }
        {
          std::ofstream out(file, std::ios::trunc);
          out << text;
        }
        auto loaded = loader.load({file});
        ASSERT_TRUE(loaded.ok()) << loaded.errors[0].str() << "\n" << text;
        ids = identity::assignIdentities(loaded.bundle, ids);
        // Every other step the last result lends its entries (the daemon's
        // way): a copy of it, which must come back whole.
        CompiledPolicy lender = last;
        const bool lend = step % 2 == 1;
        CompiledPolicy kept = lend ? compiler.compileInPlace(loaded.bundle, ids, registry, opts, lender)
                                   : compiler.compile(loaded.bundle, ids, registry, opts, step ? &last : nullptr);
        incremental += !compiler.lastStats().full;
        lent += kept.lent;
        steps++;
        if (kept.lent) {
          ASSERT_TRUE(lender.entries.empty()) << "taken, not copied";
          CompiledPolicy handed = kept;
          Compiler::giveBack(handed, lender);
          ASSERT_FALSE(handed.lent);
          ASSERT_EQ(lender.entries.size(), last.entries.size());
          ASSERT_EQ(0, std::memcmp(lender.entries.data(), last.entries.data(), last.entries.size() * sizeof(PolicyEntry)))
              << "handed back as they were";
        } else {
          ASSERT_EQ(lender.entries.size(), last.entries.size()) << "nothing taken";
        }
        const CompiledPolicy fresh = compile(loaded.bundle, ids, registry, opts);
        ASSERT_EQ(entriesText(kept), entriesText(fresh)) << "round " << round << " step " << step << "\n" << text;
        ASSERT_EQ(kept.entries.size(), fresh.entries.size());
        ASSERT_EQ(0, std::memcmp(kept.entries.data(), fresh.entries.data(), kept.entries.size() * sizeof(PolicyEntry)));
        if (compiler.lastStats().full) {
          ASSERT_EQ(kept.base, 0u);
        } else {
          // Built on `last`: every subject whose entries differ from its
          // entries there was recomputed, and the datapath's mirror patched
          // with those subjects is the mirror made whole, the difference
          // the one a pass over every entry finds.
          ASSERT_EQ(kept.base, last.stamp);
          ASSERT_TRUE(std::is_sorted(kept.recomputed.begin(), kept.recomputed.end()));
          std::map<uint32_t, std::string> before, after;
          for (const auto& e : last.entries) before[e.key.subject] += entryText(e);
          for (const auto& e : kept.entries) after[e.key.subject] += entryText(e);
          for (const auto* m : {&before, &after}) {
            for (const auto& [subject, text] : *m) {
              const auto& other = m == &before ? after : before;
              const bool same = other.count(subject) && other.at(subject) == text;
              if (!same) {
                ASSERT_TRUE(std::binary_search(kept.recomputed.begin(), kept.recomputed.end(), subject))
                    << "subject " << subject << " changed but was not recomputed";
              }
            }
          }
          // The exact-port map's states (exactBlock() is checked in
          // slot_state_test): the group-wise difference must be the whole one.
          auto exactState = [](const CompiledPolicy& p) {
            datapath::Entries<ms_policy_exact_key, ms_policy_value> out;
            const auto [begin, end] = datapath::exactBlock(&p);
            for (auto e = begin; e != end; ++e) out.push_back(compiler::exactEntry(*e));
            return out;
          };
          const auto mirror = exactState(last);
          const auto whole = exactState(kept);
          datapath::Diff<ms_policy_exact_key, ms_policy_value> d;
          datapath::exactPatch(last, kept, d);
          auto patched = mirror;
          datapath::patch(patched, d.upserts, d.removes);
          ASSERT_EQ(patched.size(), whole.size());
          ASSERT_EQ(0, std::memcmp(patched.data(), whole.data(), whole.size() * sizeof(whole[0])));
          const auto want = datapath::diff(mirror, whole);
          ASSERT_EQ(d.removes.size(), want.removes.size());
          ASSERT_EQ(d.upserts.size(), want.upserts.size());
          auto sortedKeys = [](std::vector<ms_policy_exact_key> k) {
            std::sort(k.begin(), k.end(), datapath::keyLess<ms_policy_exact_key>);
            return k;
          };
          const auto gotRemoves = sortedKeys(d.removes), wantRemoves = sortedKeys(want.removes);
          ASSERT_EQ(0, std::memcmp(gotRemoves.data(), wantRemoves.data(), wantRemoves.size() * sizeof(wantRemoves[0])));
          auto gotUpserts = d.upserts;
          datapath::normalize(gotUpserts);
          ASSERT_EQ(0, std::memcmp(gotUpserts.data(), want.upserts.data(), want.upserts.size() * sizeof(want.upserts[0])));
        }
        last = std::move(kept);
      }
    }
  }
  std::filesystem::remove_all(dir);
  EXPECT_GT(incremental, steps / 2) << "most steps reuse the last compile";
  EXPECT_GE(lent, 10u) << "in place often enough to be tested (the seed is fixed)";
  std::cout << "[          ] " << steps << " edits, " << incremental << " compiled incrementally, " << lent
            << " of them in place\n";
}

}  // namespace
}  // namespace microseg::compiler
