// FQDN peers in userspace (#27): one identity per pattern, standing for
// every pattern that covers it; the kernel's name entries (hashes the
// kernel computes for a question, texts it compares); the compiled
// entries and the subject's MS_IDENT_F_FQDN.
#include <gtest/gtest.h>

#include <cstring>
#include <string>

#include "compiler/compiler.h"
#include "compiler/explain.h"
#include "fqdn/name_entries.h"
#include "identity/identities.h"
#include "policy/parser.h"

namespace microseg {
namespace {

const char* kClient =
    "apiVersion: microseg.dev/v1\nkind: Workload\nmetadata: {name: client}\nspec: {cgroups: [client]}\n---\n";

std::string egressTo(const std::string& name, const std::string& peers, const std::string& ports) {
  return "apiVersion: microseg.dev/v1\nkind: Policy\nmetadata: {name: " + name +
         "}\nspec:\n  selector: {identity: client}\n  egress:\n    - to: " + peers + "\n      ports: " + ports +
         "\n---\n";
}

policy::Bundle bundleOf(const std::string& yaml) {
  auto r = policy::parseText(yaml, "t.yaml");
  policy::validateBundle(r.bundle, r.errors);
  for (const auto& e : r.errors) ADD_FAILURE() << e.str();
  return r.bundle;
}

uint32_t idOf(const identity::IdentityTable& ids, const std::string& pattern) {
  for (const auto& [id, f] : ids.fqdns) {
    if (f.pattern == pattern) return id;
  }
  ADD_FAILURE() << "no identity for " << pattern;
  return 0;
}

TEST(FqdnIdentities, OnePerPatternEachCoveredByEveryPatternMatchingIt) {
  const auto ids = identity::assignIdentities(bundleOf(
      std::string(kClient) +
      egressTo("p", "[{fqdn: API.example.com.}, {fqdn: \"*.example.com\"}, {fqdn: \"*.x.example.com\"}]",
               "[{port: 443}]") +
      egressTo("q", "[{fqdn: other.test}]", "[{port: 80}]")));
  ASSERT_EQ(ids.fqdns.size(), 4u);
  const uint32_t api = idOf(ids, "api.example.com"), wild = idOf(ids, "*.example.com"),
                 deep = idOf(ids, "*.x.example.com"), other = idOf(ids, "other.test");
  for (uint32_t id : {api, wild, deep, other}) EXPECT_GE(id, MS_IDENTITY_FIRST_FQDN);
  // Sorted pattern order: "*.example.com" < "*.x.example.com" < "api..." < "other.test".
  EXPECT_EQ(wild, MS_IDENTITY_FIRST_FQDN);
  EXPECT_EQ(ids.byFqdnPeer.at("*.example.com"), (std::vector<uint32_t>{wild, deep, api}));
  EXPECT_EQ(ids.byFqdnPeer.at("*.x.example.com"), (std::vector<uint32_t>{deep}));
  EXPECT_EQ(ids.byFqdnPeer.at("api.example.com"), (std::vector<uint32_t>{api}));
  EXPECT_EQ(ids.fqdns.at(api).coveredBy, (std::vector<std::string>{"*.example.com", "api.example.com"}));
  EXPECT_EQ(ids.nameOf(wild), "fqdn:*.example.com");
}

TEST(FqdnIdentities, APatternKeepsItsNumberAndAGoneOneFreesIt) {
  const auto a = identity::assignIdentities(
      bundleOf(std::string(kClient) + egressTo("p", "[{fqdn: a.test}, {fqdn: b.test}]", "[{port: 443}]")));
  const auto b = identity::assignIdentities(
      bundleOf(std::string(kClient) + egressTo("p", "[{fqdn: b.test}, {fqdn: c.test}]", "[{port: 443}]")), a);
  EXPECT_EQ(idOf(b, "b.test"), idOf(a, "b.test"));
  EXPECT_EQ(idOf(b, "c.test"), idOf(a, "a.test"));  // the smallest free number
  EXPECT_FALSE(identity::sameIdentityInputs(bundleOf(std::string(kClient) + egressTo("p", "[{fqdn: a.test}]", "[{port: 1}]")),
                                            bundleOf(std::string(kClient) + egressTo("p", "[{fqdn: b.test}]", "[{port: 1}]"))));
}

TEST(FqdnNameEntries, HashesAreWhatTheKernelComputesForAQuestion) {
  const auto ids = identity::assignIdentities(bundleOf(
      std::string(kClient) + egressTo("p", "[{fqdn: api.example.com}, {fqdn: \"*.example.com\"}]", "[{port: 443}]")));
  const auto entries = fqdn::nameEntries(ids.fqdns);
  ASSERT_EQ(entries.size(), 2u);
  bool exact = false, wildcard = false;
  for (const auto& [k, v] : entries) {
    const std::string text(v.text, v.len);
    if (k.kind == MS_FQDN_EXACT) {
      exact = true;
      EXPECT_EQ(text, "api.example.com");
      EXPECT_EQ(k.hash, fqdn::nameHash("api.example.com"));
      EXPECT_EQ(v.peer, idOf(ids, "api.example.com"));
    } else {
      wildcard = true;
      EXPECT_EQ(text, "example.com");  // the suffix: the kernel compares it with the question's tail
      EXPECT_EQ(k.hash, fqdn::suffixHash("example.com"));
      EXPECT_EQ(v.peer, idOf(ids, "*.example.com"));
    }
    EXPECT_EQ(v.text[v.len], '\0');
  }
  EXPECT_TRUE(exact && wildcard);
  // The kernel gets a suffix's hash from the whole name's and a prefix's:
  // whole = prefix * B^len(suffix) + suffix (mod 2^64).
  const std::string q = "www.example.com";
  uint64_t pow = 1;
  for (size_t i = 0; i < std::string("example.com").size(); i++) pow *= MS_FQDN_POLY;
  EXPECT_EQ(fqdn::suffixHash(q), fqdn::suffixHash("www.") * pow + fqdn::suffixHash("example.com"));
  EXPECT_EQ(fqdn::nameHash(""), 0xcbf29ce484222325ULL);
}

TEST(FqdnNameEntries, ANameFindsTheIdentityItsAnswersBind) {
  const auto ids = identity::assignIdentities(bundleOf(
      std::string(kClient) +
      egressTo("p", "[{fqdn: api.example.com}, {fqdn: \"*.example.com\"}, {fqdn: \"*.x.example.com\"}]",
               "[{port: 443}]")));
  EXPECT_EQ(fqdn::identityOfName(ids.fqdns, "API.example.com."), idOf(ids, "api.example.com"));
  EXPECT_EQ(fqdn::identityOfName(ids.fqdns, "www.example.com"), idOf(ids, "*.example.com"));
  EXPECT_EQ(fqdn::identityOfName(ids.fqdns, "a.b.x.example.com"), idOf(ids, "*.x.example.com"));
  EXPECT_EQ(fqdn::identityOfName(ids.fqdns, "*.x.example.com"), idOf(ids, "*.x.example.com"));
  EXPECT_EQ(fqdn::identityOfName(ids.fqdns, "example.com"), std::nullopt);  // a wildcard never matches its suffix
  EXPECT_EQ(fqdn::identityOfName(ids.fqdns, "*.y.example.com"), std::nullopt);
  EXPECT_EQ(fqdn::identityOfName(ids.fqdns, "not a name"), std::nullopt);
}

TEST(FqdnCompile, TheSubjectBindsNamesAndEveryCoveredIdentityHasItsRules) {
  const auto bundle = bundleOf(std::string(kClient) +
                               egressTo("p", "[{fqdn: \"*.example.com\"}]", "[{port: 443, protocol: TCP}]") +
                               egressTo("q", "[{fqdn: api.example.com}]", "[{port: 8080, protocol: TCP}]"));
  const auto ids = identity::assignIdentities(bundle);
  compiler::RuleRegistry registry;
  const auto out = compiler::compile(bundle, ids, registry, {});
  const uint32_t client = ids.byWorkload.at("client");
  const uint32_t api = idOf(ids, "api.example.com"), wild = idOf(ids, "*.example.com");
  bool flagged = false;
  for (const auto& [id, v] : out.identities) {
    if (id == client) flagged = (v.flags & MS_IDENT_F_FQDN) != 0;
  }
  EXPECT_TRUE(flagged);
  auto verdict = [&](uint32_t peer, uint16_t port) {
    return compiler::evaluate(out, client, peer, policy::Direction::Egress, MS_PROTO_TCP, port).verdict;
  };
  // api.example.com is matched by both patterns: both rules are its.
  EXPECT_EQ(verdict(api, 443), MS_VERDICT_ALLOW);
  EXPECT_EQ(verdict(api, 8080), MS_VERDICT_ALLOW);
  EXPECT_EQ(verdict(wild, 443), MS_VERDICT_ALLOW);
  EXPECT_EQ(verdict(wild, 8080), MS_VERDICT_DENY);
  EXPECT_EQ(verdict(MS_IDENTITY_WORLD, 443), MS_VERDICT_DENY);
}

TEST(FqdnCompile, ASubjectWithoutNamesDoesNotBind) {
  const auto bundle = bundleOf(std::string(kClient) + egressTo("p", "[{cidr: 10.0.0.0/8}]", "[{port: 443}]"));
  const auto ids = identity::assignIdentities(bundle);
  compiler::RuleRegistry registry;
  const auto out = compiler::compile(bundle, ids, registry, {});
  for (const auto& [id, v] : out.identities) EXPECT_EQ(v.flags & MS_IDENT_F_FQDN, 0u);
  EXPECT_TRUE(ids.fqdns.empty());
}

}  // namespace
}  // namespace microseg
