#include "policy/cidr.h"

#include <arpa/inet.h>

#include <cstring>

namespace microseg::policy {
namespace {

constexpr uint8_t kMappedPrefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

bool bitsEqual(const ms_addr& a, const ms_addr& b, uint32_t bits) {
  const uint32_t whole = bits / 8;
  if (std::memcmp(a.a, b.a, whole) != 0) return false;
  const uint32_t rest = bits % 8;
  if (rest == 0) return true;
  const uint8_t mask = static_cast<uint8_t>(0xff << (8 - rest));
  return (a.a[whole] & mask) == (b.a[whole] & mask);
}

// Plain decimal without sign or leading zero, so "/08" or "/+8" are not
// silently read as /8.
std::optional<uint32_t> prefixLength(const std::string& s) {
  if (s.empty() || s.size() > 3 || (s.size() > 1 && s[0] == '0')) return std::nullopt;
  uint32_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + static_cast<uint32_t>(c - '0');
  }
  return v;
}

}  // namespace

bool isMapped(const ms_addr& a) { return std::memcmp(a.a, kMappedPrefix, sizeof(kMappedPrefix)) == 0; }

bool isLoopback(const ms_addr& a) {
  static const uint8_t kLoop6[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
  return (isMapped(a) && a.a[12] == 127) || std::memcmp(a.a, kLoop6, 16) == 0;
}

bool isUnspecified(const ms_addr& a) {
  static const uint8_t kZero[16] = {};
  return std::memcmp(a.a, kZero, 16) == 0 || (isMapped(a) && std::memcmp(a.a + 12, kZero, 4) == 0);
}

bool Cidr::isV4() const { return prefixlen >= kIpv4PrefixOffset && isMapped(addr); }

std::string Cidr::str() const { return formatAddress(addr) + "/" + std::to_string(familyPrefixLen()); }

bool Cidr::covers(const ms_addr& a) const { return bitsEqual(addr, a, prefixlen); }

bool Cidr::contains(const ms_addr& a) const { return covers(a) && (isV4() || !isMapped(a)); }

bool Cidr::contains(const Cidr& inner) const {
  return inner.prefixlen >= prefixlen && isV4() == inner.isV4() && covers(inner.addr);
}

bool operator==(const Cidr& a, const Cidr& b) {
  return a.prefixlen == b.prefixlen && std::memcmp(a.addr.a, b.addr.a, sizeof(a.addr.a)) == 0;
}

std::strong_ordering operator<=>(const Cidr& a, const Cidr& b) {
  const int c = std::memcmp(a.addr.a, b.addr.a, sizeof(a.addr.a));
  if (c != 0) return c < 0 ? std::strong_ordering::less : std::strong_ordering::greater;
  return a.prefixlen <=> b.prefixlen;
}

Cidr networkOf(const ms_addr& a, uint32_t prefixlen) {
  Cidr c;
  c.prefixlen = prefixlen > 128 ? 128 : prefixlen;
  const uint32_t whole = c.prefixlen / 8;
  std::memcpy(c.addr.a, a.a, whole);
  if (const uint32_t rest = c.prefixlen % 8; rest != 0) {
    c.addr.a[whole] = static_cast<uint8_t>(a.a[whole] & (0xff << (8 - rest)));
  }
  return c;
}

std::optional<ms_addr> parseAddress(std::string_view text) {
  // inet_pton() reads a C string: a NUL inside the text would end it there
  // ("10.0.0.1\0x" read as 10.0.0.1), and the text is all of its bytes.
  if (text.find('\0') != std::string_view::npos) return std::nullopt;
  const std::string s(text);
  ms_addr a{};
  if (s.find(':') == std::string::npos) {
    in_addr v4{};
    if (inet_pton(AF_INET, s.c_str(), &v4) != 1) return std::nullopt;
    std::memcpy(a.a, kMappedPrefix, sizeof(kMappedPrefix));
    std::memcpy(a.a + 12, &v4, 4);
    return a;
  }
  in6_addr v6{};
  if (inet_pton(AF_INET6, s.c_str(), &v6) != 1) return std::nullopt;
  std::memcpy(a.a, &v6, 16);
  return a;
}

std::string formatAddress(const ms_addr& a) {
  char buf[INET6_ADDRSTRLEN] = {};
  if (isMapped(a)) {
    inet_ntop(AF_INET, a.a + 12, buf, sizeof(buf));
  } else {
    inet_ntop(AF_INET6, a.a, buf, sizeof(buf));
  }
  return buf;
}

std::optional<Cidr> parseCidr(std::string_view text, CidrError* error) {
  auto fail = [&](std::string msg) -> std::optional<Cidr> {
    if (error != nullptr) error->message = std::move(msg);
    return std::nullopt;
  };
  const std::string s(text);
  if (s.empty()) return fail("empty CIDR (want ADDRESS/LENGTH, e.g. 10.0.0.0/8)");
  const size_t slash = s.find('/');
  const std::string addrText = s.substr(0, slash);
  const bool v6Text = addrText.find(':') != std::string::npos;
  const auto addr = parseAddress(addrText);
  if (!addr) {
    return fail("'" + s + "' is not a CIDR: '" + addrText + "' is not an " + (v6Text ? "IPv6" : "IPv4") +
                " address (want ADDRESS/LENGTH, e.g. 10.0.0.0/8 or fd00::/8)");
  }
  const bool mappedText = v6Text && isMapped(*addr);
  if (slash == std::string::npos) {
    // One address is the commonest slip; say what the full form is.
    const std::string one = mappedText ? formatAddress(*addr) + "/32"
                                       : addrText + (v6Text ? "/128" : "/32");
    return fail("'" + s + "' has no prefix length (/n); write " + one + " for this one address");
  }
  const std::string lenText = s.substr(slash + 1);
  const auto len = prefixLength(lenText);
  if (!len) return fail("'" + s + "': prefix length '" + lenText + "' is not a decimal number");
  const uint32_t maxLen = v6Text ? 128 : 32;
  if (*len > maxLen) {
    return fail("'" + s + "': prefix length " + std::to_string(*len) + " is out of range for " +
                (v6Text ? "IPv6 (0-128)" : "IPv4 (0-32)"));
  }
  const uint32_t len128 = v6Text ? *len : *len + kIpv4PrefixOffset;
  const Cidr net = networkOf(*addr, len128);
  if (mappedText && len128 >= kIpv4PrefixOffset) {
    // The datapath judges ::ffff:a.b.c.d exactly as IPv4, so there is one
    // spelling for it, not two that could drift apart.
    return fail("'" + s + "' is IPv4-mapped IPv6; write the IPv4 form " + net.str());
  }
  if (std::memcmp(net.addr.a, addr->a, sizeof(net.addr.a)) != 0) {
    return fail(s + " has host bits set; did you mean " + net.str() + "?");
  }
  return net;
}

}  // namespace microseg::policy
