// What a DNS response binds (#27): the question's name and the A/AAAA
// addresses of the answer section that belong to it, directly or through a
// CNAME chain, with their TTLs; or why it binds nothing. The reference the
// kernel's parser (in the ingress program, to come) is to be held to on
// random and mutated packets: the same single pass in answer order, the
// same bounds, the same refusals.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "bpf/abi.h"

namespace microseg::fqdn {

// How many answer records one response may carry before the rest are not
// looked at (the kernel's loop bound).
inline constexpr size_t kMaxAnswerRecords = 32;
// Compression pointers followed in one name at most (a loop is malformed).
inline constexpr size_t kMaxPointerHops = 16;
// A longer message is not looked at (the kernel copies it whole to parse
// it): the EDNS buffer size DNS flag day 2020 settled on.
inline constexpr size_t kMaxMessageBytes = 1232;

enum class DnsOutcome : uint8_t {
  Bound = 0,      // a response with a question; `addresses` may be empty (no A/AAAA for it)
  NotResponse,    // QR clear, or an opcode other than QUERY
  Truncated,      // TC set: the full answer comes over TCP, which is not parsed
  Refused,        // RCODE not 0 (NXDOMAIN, SERVFAIL, ...): nothing to bind
  NotOneQuestion, // QDCOUNT != 1
  BadQuestion,    // the question name is not a host name this binds, or compressed
  Malformed,      // a length, pointer or record runs past the message, or loops
  Oversized,      // longer than kMaxMessageBytes
};

const char* outcomeName(DnsOutcome o);

struct DnsAddress {
  ms_addr addr{};  // IPv4 mapped, as everywhere in the datapath
  uint32_t ttl = 0;
  std::string owner;  // the record's owner name (the question's, or a CNAME's on the chain)
};

struct DnsResponse {
  DnsOutcome outcome = DnsOutcome::Malformed;
  uint16_t id = 0;
  std::string question;  // normal form (fqdn/dns_names.h)
  uint16_t qtype = 0;
  std::vector<std::string> chain;  // the question's name, then each CNAME target taken, in order
  std::vector<DnsAddress> addresses;
  size_t recordsSeen = 0;      // answer records looked at (at most kMaxAnswerRecords)
  size_t addressesDropped = 0; // A/AAAA on the chain past `maxAddresses`
};

// Parses one DNS message (the UDP payload). Answer records are read in
// order: a CNAME whose owner is on the chain adds its target to it; an A or
// AAAA (class IN) whose owner is on the chain is bound, up to
// `maxAddresses`; records of other owners, types or classes are skipped.
// A malformed record ends the parse as Malformed (nothing binds: a packet
// is all or nothing).
DnsResponse parseResponse(std::span<const uint8_t> message, size_t maxAddresses);

}  // namespace microseg::fqdn
