// FQDN peers' pure parts (#27): the names a policy may write and what they
// match (fqdn/dns_names.h), and what a DNS response binds, by the
// reference parser the kernel's is to be held to (fqdn/dns_response.h).
#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "fqdn/dns_names.h"
#include "fqdn/dns_response.h"

namespace microseg::fqdn {
namespace {

TEST(FqdnNames, PatternsAreNormalisedAndBadOnesSayWhy) {
  std::string err;
  auto p = parsePattern("API.Example.COM.", err);
  ASSERT_TRUE(p) << err;
  EXPECT_EQ(p->name, "api.example.com");
  EXPECT_FALSE(p->wildcard);
  auto w = parsePattern("*.example.com", err);
  ASSERT_TRUE(w) << err;
  EXPECT_TRUE(w->wildcard);
  EXPECT_EQ(w->name, "example.com");
  EXPECT_EQ(w->text(), "*.example.com");

  auto bad = [](const std::string& t) {
    std::string e;
    EXPECT_FALSE(parsePattern(t, e)) << t;
    return e;
  };
  EXPECT_EQ(bad("api.*.com"), "not a DNS name: it has a '*' that is not the whole first label");
  EXPECT_EQ(bad("*example.com"), "not a DNS name: it has a '*' that is not the whole first label");
  EXPECT_EQ(bad("*.com"), "not a DNS name: it leaves a single label under '*' (a wildcard of a whole "
                          "top-level domain)");
  EXPECT_EQ(bad("localhost"),
            "not a DNS name: it has a single label (write the full name, e.g. api.example.com)");
  EXPECT_EQ(bad("a..b"), "not a DNS name: it has an empty label");
  EXPECT_EQ(bad(""), "not a DNS name: it is empty");
  EXPECT_EQ(bad("-a.b"), "not a DNS name: it has a label that starts or ends with '-'");
  EXPECT_EQ(bad("a b.c"), "not a DNS name: it has a character that is not a letter, digit, '-' or '_' (' '; a "
                         "name in another script is written in its xn-- form)");
  EXPECT_EQ(bad("b\xc3\xbc" "cher.de"), "not a DNS name: it has a character that is not a letter, digit, '-' or '_' "
                                     "('\\xc3'; a name in another script is written in its xn-- form)");
  EXPECT_EQ(bad("*"), "not a DNS name: it is a '*' without a suffix (write *.example.com)");
  EXPECT_EQ(bad("*."), "not a DNS name: it is a '*' without a suffix (write *.example.com)");
  EXPECT_NE(bad("10.0.0.1").find("an address is a cidr peer"), std::string::npos);
  EXPECT_NE(bad("*.10.0.0").find("ends in a number"), std::string::npos);
  std::string ok;
  EXPECT_TRUE(parsePattern("x.2d.example.com", ok)) << ok;  // a number is fine elsewhere
  std::string suffix252;
  while (suffix252.size() < 252) suffix252 += "abcdefgh.";
  suffix252.resize(252);
  suffix252.back() = 'x';
  EXPECT_NE(bad("*." + suffix252).find("its suffix is 252 characters long (at most 251"), std::string::npos);
  EXPECT_EQ(bad(std::string(64, 'a') + ".com"),
            "not a DNS name: it has a label of 64 characters (at most 63)");
  std::string long254;
  while (long254.size() < 254) long254 += "abcdefghi.";
  long254.resize(254);
  long254.back() = 'x';
  EXPECT_NE(bad(long254).find("is 254 characters long (at most 253)"), std::string::npos);
}

TEST(FqdnNames, AWildcardMatchesOneOrMoreLabelsNeverTheSuffixItself) {
  std::string err;
  const auto w = *parsePattern("*.example.com", err);
  EXPECT_TRUE(matches(w, "a.example.com"));
  EXPECT_TRUE(matches(w, "a.b.example.com"));
  EXPECT_FALSE(matches(w, "example.com"));
  EXPECT_FALSE(matches(w, "badexample.com"));
  EXPECT_FALSE(matches(w, "a.example.com.evil"));
  const auto e = *parsePattern("api.example.com", err);
  EXPECT_TRUE(matches(e, "api.example.com"));
  EXPECT_FALSE(matches(e, "x.api.example.com"));
  EXPECT_EQ(normalName("API.example.com."), "api.example.com");
  EXPECT_EQ(normalName("a..b"), std::nullopt);
}

// A DNS message, written byte by byte.
struct Msg {
  std::vector<uint8_t> b;
  Msg& u8(uint8_t v) { b.push_back(v); return *this; }
  Msg& u16(uint16_t v) { return u8(uint8_t(v >> 8)).u8(uint8_t(v)); }
  Msg& u32(uint32_t v) { return u16(uint16_t(v >> 16)).u16(uint16_t(v)); }
  Msg& name(const std::string& dotted) {
    size_t s = 0;
    while (s < dotted.size()) {
      size_t d = dotted.find('.', s);
      if (d == std::string::npos) d = dotted.size();
      u8(uint8_t(d - s));
      for (size_t i = s; i < d; i++) u8(uint8_t(dotted[i]));
      s = d + 1;
    }
    return u8(0);
  }
  Msg& ptr(uint16_t at) { return u16(uint16_t(0xc000 | at)); }
  Msg& header(uint16_t flags, uint16_t qd, uint16_t an) { return u16(0x1234).u16(flags).u16(qd).u16(an).u16(0).u16(0); }
  Msg& question(const std::string& n, uint16_t type = 1) { return name(n).u16(type).u16(1); }
  // A record owned by the name at `ownerAt` (a pointer).
  Msg& a(uint16_t ownerAt, uint32_t ttl, uint8_t x) { return ptr(ownerAt).u16(1).u16(1).u32(ttl).u16(4).u8(192).u8(0).u8(2).u8(x); }
};
constexpr uint16_t kResponse = 0x8180;  // QR, RD, RA, NOERROR
constexpr uint16_t kQname = 12;          // the question name's offset

DnsResponse parse(const Msg& m, size_t max = 8) { return parseResponse(m.b, max); }

TEST(DnsResponse, TheQuestionsAddressesAreBoundWithTheirTtl) {
  Msg m;
  m.header(kResponse, 1, 2).question("API.example.test").a(kQname, 30, 7).a(kQname, 0x80000001u, 8);
  const auto r = parse(m);
  ASSERT_EQ(r.outcome, DnsOutcome::Bound);
  EXPECT_EQ(r.question, "api.example.test");
  EXPECT_EQ(r.qtype, 1);
  ASSERT_EQ(r.addresses.size(), 2u);
  EXPECT_EQ(r.addresses[0].addr.a[10], 0xff);
  EXPECT_EQ(r.addresses[0].addr.a[15], 7);
  EXPECT_EQ(r.addresses[0].ttl, 30u);
  EXPECT_EQ(r.addresses[1].ttl, 0u) << "RFC 2181: a TTL with the top bit set is 0";
  EXPECT_EQ(r.recordsSeen, 2u);
}

TEST(DnsResponse, ACnameChainsAddressesBelongToTheQuestion) {
  Msg m;
  m.header(kResponse, 1, 4).question("www.example.test");
  // www.example.test CNAME edge.cdn.test; edge.cdn.test A; other.test A (not on the chain)
  m.ptr(kQname).u16(5).u16(1).u32(60);
  const size_t rdlenAt = m.b.size();
  m.u16(0);
  const size_t target = m.b.size();
  m.name("edge.cdn.test");
  m.b[rdlenAt + 1] = uint8_t(m.b.size() - target);
  m.a(uint16_t(target), 20, 1);
  const size_t other = m.b.size();
  m.name("other.test").u16(1).u16(1).u32(20).u16(4).u8(10).u8(0).u8(0).u8(9);
  m.a(uint16_t(other), 20, 2);
  const auto r = parse(m);
  ASSERT_EQ(r.outcome, DnsOutcome::Bound);
  EXPECT_EQ(r.chain, (std::vector<std::string>{"www.example.test", "edge.cdn.test"}));
  ASSERT_EQ(r.addresses.size(), 1u) << "only the chain's addresses";
  EXPECT_EQ(r.addresses[0].owner, "edge.cdn.test");
  EXPECT_EQ(r.addresses[0].addr.a[15], 1);
}

TEST(DnsResponse, AaaaRecordsAreBoundAsIpv6) {
  Msg m;
  m.header(kResponse, 1, 1).question("v6.example.test", 28);
  m.ptr(kQname).u16(28).u16(1).u32(5).u16(16);
  for (int i = 0; i < 16; i++) m.u8(uint8_t(i == 0 ? 0xfd : i));
  const auto r = parse(m);
  ASSERT_EQ(r.outcome, DnsOutcome::Bound);
  ASSERT_EQ(r.addresses.size(), 1u);
  EXPECT_EQ(r.addresses[0].addr.a[0], 0xfd);
  EXPECT_EQ(r.addresses[0].addr.a[15], 15);
}

TEST(DnsResponse, WhatBindsNothingSaysWhy) {
  auto outcome = [](uint16_t flags, uint16_t qd) {
    Msg m;
    m.header(flags, qd, 1).question("a.example.test").a(kQname, 30, 1);
    return parse(m).outcome;
  };
  EXPECT_EQ(outcome(0x0100, 1), DnsOutcome::NotResponse) << "a query";
  EXPECT_EQ(outcome(0x8380, 1), DnsOutcome::Truncated);
  EXPECT_EQ(outcome(0x8183, 1), DnsOutcome::Refused) << "NXDOMAIN";
  EXPECT_EQ(outcome(0x8180, 2), DnsOutcome::NotOneQuestion);
  EXPECT_EQ(outcome(0xa180, 1), DnsOutcome::NotResponse) << "opcode 4 (NOTIFY)";
  EXPECT_EQ(parse(Msg{}.header(kResponse, 1, 0)).outcome, DnsOutcome::Malformed) << "no question bytes";
  Msg bad;
  bad.header(kResponse, 1, 0).question("a b.example.test");
  EXPECT_EQ(parse(bad).outcome, DnsOutcome::BadQuestion);
  Msg compressedQuestion;
  compressedQuestion.header(kResponse, 1, 0).ptr(12).u16(1).u16(1);
  EXPECT_EQ(parse(compressedQuestion).outcome, DnsOutcome::Malformed);
  Msg big;
  big.header(kResponse, 1, 0).question("a.example.test");
  big.b.resize(kMaxMessageBytes);
  EXPECT_EQ(parse(big).outcome, DnsOutcome::Bound) << "trailing bytes are not looked at";
  big.b.push_back(0);
  EXPECT_EQ(parse(big).outcome, DnsOutcome::Oversized);
}

TEST(DnsResponse, LoopsOverrunsAndTheCapAreHandled) {
  Msg loop;
  loop.header(kResponse, 1, 1).question("a.example.test");
  const uint16_t self = uint16_t(loop.b.size());
  loop.ptr(self).u16(1).u16(1).u32(1).u16(4).u32(0);
  EXPECT_EQ(parse(loop).outcome, DnsOutcome::Malformed) << "a pointer to itself";
  Msg overrun;
  overrun.header(kResponse, 1, 1).question("a.example.test").ptr(kQname).u16(1).u16(1).u32(1).u16(40).u32(0);
  EXPECT_EQ(parse(overrun).outcome, DnsOutcome::Malformed);
  Msg many;
  many.header(kResponse, 1, 10).question("a.example.test");
  for (int i = 0; i < 10; i++) many.a(kQname, 1, uint8_t(i));
  const auto r = parse(many, 3);
  ASSERT_EQ(r.outcome, DnsOutcome::Bound);
  EXPECT_EQ(r.addresses.size(), 3u);
  EXPECT_EQ(r.addressesDropped, 7u);
  Msg past;
  past.header(kResponse, 1, 40).question("a.example.test");
  for (int i = 0; i < 40; i++) past.a(kQname, 1, uint8_t(i));
  EXPECT_EQ(parse(past, 64).recordsSeen, kMaxAnswerRecords) << "the loop bound";
}

// Random and mutated messages: never past the bounds (ASan/UBSan builds
// check it), and a Bound outcome never holds more than it may.
TEST(DnsResponse, RandomAndMutatedMessages) {
  std::mt19937 rng(7);
  Msg base;
  base.header(kResponse, 1, 3).question("www.example.test").a(kQname, 30, 1).a(kQname, 30, 2).a(kQname, 30, 3);
  size_t bound = 0;
  for (int i = 0; i < 200000; i++) {
    std::vector<uint8_t> m = base.b;
    if (i % 2 == 0) {
      const int flips = 1 + int(rng() % 4);
      for (int f = 0; f < flips; f++) m[rng() % m.size()] = uint8_t(rng());
      if (rng() % 4 == 0) m.resize(rng() % m.size());
    } else {
      m.resize(rng() % 96);
      for (auto& x : m) x = uint8_t(rng());
    }
    const auto r = parseResponse(m, 2);
    if (r.outcome == DnsOutcome::Bound) {
      bound++;
      EXPECT_LE(r.addresses.size(), 2u);
      EXPECT_FALSE(r.question.empty());
    } else {
      EXPECT_TRUE(r.addresses.empty());
    }
  }
  EXPECT_GT(bound, 0u);
}

}  // namespace
}  // namespace microseg::fqdn
