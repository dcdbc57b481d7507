// Address prefixes in the datapath's 128-bit address space (bpf/abi.h: IPv4 is
// stored mapped, ::ffff:a.b.c.d). Pure logic; shared by the parser, the
// identity allocator (ipcache) and the daemon.
//
// Families: a prefix is IPv4 when it lies inside ::ffff:0:0/96 (the parser
// refuses IPv4-mapped IPv6 text, so only IPv4 text produces one). An IPv6
// prefix never contains an IPv4 address even when its bits cover the mapped
// range (`::/0` does not contain 10.1.2.3): contains() is family-aware,
// covers() is the raw bit match an LPM trie does.
#pragma once

#include <compare>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "bpf/abi.h"

namespace microseg::policy {

// IPv4 prefix lengths are offset by this in the 128-bit space (/8 -> 104).
inline constexpr uint32_t kIpv4PrefixOffset = 96;

struct Cidr {
  ms_addr addr{};          // network address: bits beyond prefixlen are zero
  uint32_t prefixlen = 0;  // 0..128 in the mapped space (IPv4 /n = 96+n)

  bool isV4() const;
  // The length as written: n of "10.0.0.0/n" or "fd00::/n".
  uint32_t familyPrefixLen() const { return isV4() ? prefixlen - kIpv4PrefixOffset : prefixlen; }
  // "10.0.0.0/8", "fd00::/8" (RFC 5952 for IPv6).
  std::string str() const;
  // Family-aware: an IPv6 prefix never contains an IPv4 (mapped) address.
  bool contains(const ms_addr& a) const;
  // Family-aware, non-strict (a prefix contains itself).
  bool contains(const Cidr& inner) const;
  // Raw bit match on the first prefixlen bits, as the kernel's LPM trie does.
  bool covers(const ms_addr& a) const;

  friend bool operator==(const Cidr& a, const Cidr& b);
  // By address bytes, then prefix length: a prefix sorts before the prefixes
  // inside it.
  friend std::strong_ordering operator<=>(const Cidr& a, const Cidr& b);
};

// Why parseCidr refused a text: a complete sentence for a diagnostic, e.g.
// "10.1.2.3/8 has host bits set; did you mean 10.0.0.0/8?".
struct CidrError {
  std::string message;
};

// Parse "10.0.0.0/8" or "fd00::/8". Refuses: a missing "/n", a bad address, a
// prefix length out of range or not a plain decimal, set host bits (naming the
// canonical form), IPv4-mapped IPv6 (suggesting the IPv4 form).
std::optional<Cidr> parseCidr(std::string_view text, CidrError* error = nullptr);

// Parse one address ("10.1.2.3", "fd00::1"); IPv4 and IPv4-mapped IPv6 both
// come back mapped. nullopt if it is neither.
std::optional<ms_addr> parseAddress(std::string_view text);

// IPv4 (mapped) addresses as dotted quads, others as RFC 5952 IPv6.
std::string formatAddress(const ms_addr& a);

// True for ::ffff:a.b.c.d, i.e. an IPv4 address in the datapath's form.
bool isMapped(const ms_addr& a);
// 127.0.0.0/8 (mapped) or ::1: per netns, never in the ipcache.
bool isLoopback(const ms_addr& a);
// 0.0.0.0 (mapped) or ::: a wildcard bind, an unconnected socket's peer.
bool isUnspecified(const ms_addr& a);

// `a` with every bit beyond the first prefixlen bits cleared.
Cidr networkOf(const ms_addr& a, uint32_t prefixlen);

}  // namespace microseg::policy
