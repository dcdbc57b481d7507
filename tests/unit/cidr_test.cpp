// policy::Cidr: parsing into the datapath's mapped 128-bit space, canonical
// formatting, family-aware containment.
#include <gtest/gtest.h>

#include <cstring>

#include "policy/cidr.h"

namespace microseg::policy {
namespace {

Cidr cidr(const char* text) {
  CidrError err;
  auto c = parseCidr(text, &err);
  EXPECT_TRUE(c.has_value()) << text << ": " << err.message;
  return c.value_or(Cidr{});
}

ms_addr addr(const char* text) {
  auto a = parseAddress(text);
  EXPECT_TRUE(a.has_value()) << text;
  return a.value_or(ms_addr{});
}

std::string parseError(const char* text) {
  CidrError err;
  auto c = parseCidr(text, &err);
  EXPECT_FALSE(c.has_value()) << text << " parsed as " << (c ? c->str() : "");
  return err.message;
}

TEST(Cidr, Ipv4IsStoredMappedWithOffsetPrefix) {
  const Cidr c = cidr("10.0.0.0/8");
  EXPECT_EQ(c.prefixlen, 104u);
  EXPECT_EQ(c.familyPrefixLen(), 8u);
  EXPECT_TRUE(c.isV4());
  const uint8_t want[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 0, 0};
  EXPECT_EQ(0, std::memcmp(c.addr.a, want, 16));
  EXPECT_EQ(c.str(), "10.0.0.0/8");
  EXPECT_EQ(cidr("0.0.0.0/0").prefixlen, 96u);
  EXPECT_EQ(cidr("0.0.0.0/0").str(), "0.0.0.0/0");
  EXPECT_EQ(cidr("192.168.1.7/32").prefixlen, 128u);
}

TEST(Cidr, Ipv6CanonicalForm) {
  const Cidr c = cidr("FD00:0000::/8");
  EXPECT_FALSE(c.isV4());
  EXPECT_EQ(c.prefixlen, 8u);
  EXPECT_EQ(c.str(), "fd00::/8");
  EXPECT_EQ(cidr("::/0").str(), "::/0");
  EXPECT_EQ(cidr("2001:db8:0:0:1::/80").str(), "2001:db8:0:0:1::/80");
  EXPECT_EQ(cidr("2001:db8::1/128").str(), "2001:db8::1/128");
  EXPECT_EQ(cidr("::/0"), cidr("0::0/0"));
}

TEST(Cidr, Errors) {
  EXPECT_EQ(parseError("10.0.0.0"), "'10.0.0.0' has no prefix length (/n); write 10.0.0.0/32 for this one address");
  EXPECT_EQ(parseError("fd00::1"), "'fd00::1' has no prefix length (/n); write fd00::1/128 for this one address");
  EXPECT_EQ(parseError("10.1.2.3/8"), "10.1.2.3/8 has host bits set; did you mean 10.0.0.0/8?");
  EXPECT_EQ(parseError("fd00::1/8"), "fd00::1/8 has host bits set; did you mean fd00::/8?");
  EXPECT_EQ(parseError("::ffff:1.2.3.4/120"), "'::ffff:1.2.3.4/120' is IPv4-mapped IPv6; write the IPv4 form 1.2.3.0/24");
  EXPECT_EQ(parseError("::ffff:10.0.0.0/104"), "'::ffff:10.0.0.0/104' is IPv4-mapped IPv6; write the IPv4 form 10.0.0.0/8");
  EXPECT_EQ(parseError("::ffff:0:0/96"), "'::ffff:0:0/96' is IPv4-mapped IPv6; write the IPv4 form 0.0.0.0/0");
  EXPECT_EQ(parseError("10.0.0.0/33"), "'10.0.0.0/33': prefix length 33 is out of range for IPv4 (0-32)");
  EXPECT_EQ(parseError("fd00::/129"), "'fd00::/129': prefix length 129 is out of range for IPv6 (0-128)");
  EXPECT_EQ(parseError("10.0.0.0/08"), "'10.0.0.0/08': prefix length '08' is not a decimal number");
  EXPECT_EQ(parseError("10.0.0.0/"), "'10.0.0.0/': prefix length '' is not a decimal number");
  EXPECT_EQ(parseError("10.0.0.0/-1"), "'10.0.0.0/-1': prefix length '-1' is not a decimal number");
  EXPECT_NE(parseError("10.0.0.256/8").find("'10.0.0.256' is not an IPv4 address"), std::string::npos);
  EXPECT_NE(parseError("010.0.0.0/8").find("is not an IPv4 address"), std::string::npos);
  EXPECT_NE(parseError("fd00:::/8").find("'fd00:::' is not an IPv6 address"), std::string::npos);
  EXPECT_NE(parseError("corp/8").find("is not an IPv4 address"), std::string::npos);
  EXPECT_NE(parseError("").find("empty CIDR"), std::string::npos);
}

TEST(Cidr, MappedSpaceBoundariesAreIpv6WhenShorterThan96) {
  // ::/80 covers ::ffff:0:0/96 bit-wise but is an IPv6 prefix.
  const Cidr c = cidr("::/80");
  EXPECT_FALSE(c.isV4());
  EXPECT_TRUE(c.covers(addr("10.1.2.3")));
  EXPECT_FALSE(c.contains(addr("10.1.2.3")));
  EXPECT_TRUE(c.contains(addr("::1")));
}

TEST(Cidr, ContainsIsFamilyAware) {
  const Cidr all6 = cidr("::/0"), all4 = cidr("0.0.0.0/0"), ten = cidr("10.0.0.0/8");
  EXPECT_FALSE(all6.contains(addr("10.1.2.3")));
  EXPECT_FALSE(all6.contains(addr("::ffff:10.1.2.3")));
  EXPECT_TRUE(all6.contains(addr("fd00::1")));
  EXPECT_TRUE(all6.covers(addr("10.1.2.3")));  // the raw bits do match
  EXPECT_TRUE(all4.contains(addr("10.1.2.3")));
  EXPECT_FALSE(all4.contains(addr("fd00::1")));
  EXPECT_TRUE(ten.contains(addr("10.255.255.255")));
  EXPECT_FALSE(ten.contains(addr("11.0.0.0")));
  EXPECT_FALSE(ten.contains(addr("9.255.255.255")));

  EXPECT_TRUE(ten.contains(cidr("10.1.0.0/16")));
  EXPECT_TRUE(ten.contains(ten));
  EXPECT_FALSE(cidr("10.1.0.0/16").contains(ten));
  EXPECT_FALSE(all6.contains(ten));
  EXPECT_TRUE(all4.contains(ten));
  EXPECT_FALSE(all4.contains(cidr("fd00::/8")));
  EXPECT_FALSE(cidr("::/80").contains(all4));
}

TEST(Cidr, Addresses) {
  EXPECT_EQ(formatAddress(addr("10.1.2.3")), "10.1.2.3");
  EXPECT_EQ(formatAddress(addr("::ffff:10.1.2.3")), "10.1.2.3");
  EXPECT_EQ(formatAddress(addr("FD00::1")), "fd00::1");
  EXPECT_TRUE(isMapped(addr("1.2.3.4")));
  EXPECT_FALSE(isMapped(addr("::1")));
  EXPECT_FALSE(parseAddress("1.2.3").has_value());
  EXPECT_FALSE(parseAddress("10.0.0.0/8").has_value());
  EXPECT_EQ(networkOf(addr("10.1.2.3"), 104).str(), "10.0.0.0/8");
  EXPECT_EQ(networkOf(addr("fd00::ff"), 121).str(), "fd00::80/121");
}

// The text is the whole string_view: a NUL inside it is not its end (found
// by the cidr fuzzer: inet_pton() read the text as a C string, so
// "0005::\0D" was the address 5::, and an etcd key ".../addr/10.0.0.1\0x",
// a second key for 10.0.0.1, or a `flows --peer` filter "10.0.0.1\0..."
// were taken as that address).
TEST(Cidr, AnAddressTextIsAllOfItsBytes) {
  using namespace std::string_view_literals;
  EXPECT_FALSE(parseAddress("0005::\0D"sv).has_value());
  EXPECT_FALSE(parseAddress("10.0.0.1\0"sv).has_value());
  EXPECT_FALSE(parseAddress("10.0.0.1\0x"sv).has_value());
  EXPECT_FALSE(parseAddress("\0"sv).has_value());
  EXPECT_FALSE(parseCidr("10.0.0.0\0x/8"sv).has_value());
  EXPECT_FALSE(parseCidr("fd00::\0/8"sv).has_value());
  EXPECT_FALSE(parseCidr("10.0.0.0/8\0"sv).has_value());
  // A view of part of a longer text is just that part.
  const std::string_view longer = "10.0.0.1junk";
  EXPECT_TRUE(parseAddress(longer.substr(0, 8)).has_value());
}

TEST(Cidr, OrderPutsAPrefixBeforeWhatItHolds) {
  EXPECT_LT(cidr("10.0.0.0/8"), cidr("10.0.0.0/16"));
  EXPECT_LT(cidr("10.0.0.0/16"), cidr("10.1.0.0/16"));
  EXPECT_LT(cidr("::/0"), cidr("0.0.0.0/0"));
}

TEST(Cidr, LoopbackAndUnspecifiedAddresses) {
  auto addr = [](const char* t) { return *parseAddress(t); };
  for (const char* t : {"127.0.0.1", "127.255.0.9", "::1", "::ffff:127.0.0.1"}) EXPECT_TRUE(isLoopback(addr(t))) << t;
  for (const char* t : {"128.0.0.1", "::2", "0.0.0.0", "::", "::127.0.0.1", "10.0.0.1"}) {
    EXPECT_FALSE(isLoopback(addr(t))) << t;
  }
  for (const char* t : {"0.0.0.0", "::", "::ffff:0.0.0.0"}) EXPECT_TRUE(isUnspecified(addr(t))) << t;
  for (const char* t : {"0.0.0.1", "::1", "::ffff:0.0.0.1", "127.0.0.1"}) EXPECT_FALSE(isUnspecified(addr(t))) << t;
}

}  // namespace
}  // namespace microseg::policy
