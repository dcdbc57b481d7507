#include "fqdn/dns_response.h"

#include <algorithm>
#include <cstring>
#include <optional>

#include "fqdn/dns_names.h"

namespace microseg::fqdn {
namespace {

constexpr size_t kHeaderBytes = 12;
constexpr uint16_t kTypeA = 1, kTypeCname = 5, kTypeAaaa = 28, kClassIn = 1;

uint16_t be16(std::span<const uint8_t> m, size_t at) { return uint16_t(m[at] << 8 | m[at + 1]); }
uint32_t be32(std::span<const uint8_t> m, size_t at) {
  return uint32_t(m[at]) << 24 | uint32_t(m[at + 1]) << 16 | uint32_t(m[at + 2]) << 8 | m[at + 3];
}

// A name at `at`: its text (labels joined by '.', as written) and where the
// record goes on after it. Pointers (0xc0) are followed backwards only and
// at most kMaxPointerHops times; `allowPointers` false refuses any.
struct ReadName {
  std::string text;
  size_t next = 0;
};

std::optional<ReadName> readName(std::span<const uint8_t> m, size_t at, bool allowPointers) {
  ReadName out;
  size_t pos = at, hops = 0;
  bool jumped = false;
  for (;;) {
    if (pos >= m.size()) return std::nullopt;
    const uint8_t len = m[pos];
    if ((len & 0xc0) == 0xc0) {
      if (!allowPointers || pos + 1 >= m.size() || ++hops > kMaxPointerHops) return std::nullopt;
      const size_t target = size_t(len & 0x3f) << 8 | m[pos + 1];
      if (target >= pos) return std::nullopt;  // forward or self: a loop waiting to happen
      if (!jumped) out.next = pos + 2;
      jumped = true;
      pos = target;
      continue;
    }
    if (len & 0xc0) return std::nullopt;  // 0x40/0x80: extended label types, not used
    if (len == 0) {
      if (!jumped) out.next = pos + 1;
      return out;
    }
    if (pos + 1 + len > m.size()) return std::nullopt;
    if (!out.text.empty()) out.text += '.';
    out.text.append(reinterpret_cast<const char*>(m.data() + pos + 1), len);
    if (out.text.size() > kMaxNameChars + 1) return std::nullopt;
    pos += 1 + len;
  }
}

}  // namespace

const char* outcomeName(DnsOutcome o) {
  switch (o) {
    case DnsOutcome::Bound: return "bound";
    case DnsOutcome::NotResponse: return "not-response";
    case DnsOutcome::Truncated: return "truncated";
    case DnsOutcome::Refused: return "refused";
    case DnsOutcome::NotOneQuestion: return "not-one-question";
    case DnsOutcome::BadQuestion: return "bad-question";
    case DnsOutcome::Malformed: return "malformed";
    case DnsOutcome::Oversized: return "oversized";
  }
  return "unknown";
}

DnsResponse parseResponse(std::span<const uint8_t> m, size_t maxAddresses) {
  DnsResponse r;
  if (m.size() > kMaxMessageBytes) {
    r.outcome = DnsOutcome::Oversized;
    return r;
  }
  if (m.size() < kHeaderBytes) return r;  // Malformed
  r.id = be16(m, 0);
  const uint16_t flags = be16(m, 2);
  const bool qr = flags & 0x8000, tc = flags & 0x0200;
  const unsigned opcode = (flags >> 11) & 0xf, rcode = flags & 0xf;
  if (!qr || opcode != 0) {
    r.outcome = DnsOutcome::NotResponse;
    return r;
  }
  if (tc) {
    r.outcome = DnsOutcome::Truncated;
    return r;
  }
  if (rcode != 0) {
    r.outcome = DnsOutcome::Refused;
    return r;
  }
  if (be16(m, 4) != 1) {
    r.outcome = DnsOutcome::NotOneQuestion;
    return r;
  }
  const uint16_t ancount = be16(m, 6);

  // The question: no compression (it is the first name of the message).
  auto q = readName(m, kHeaderBytes, /*allowPointers=*/false);
  if (!q) return r;  // Malformed
  auto qname = normalName(q->text);
  if (!qname) {
    r.outcome = DnsOutcome::BadQuestion;
    return r;
  }
  if (q->next + 4 > m.size()) return r;
  r.qtype = be16(m, q->next);
  r.question = *qname;
  r.chain.push_back(*qname);
  size_t pos = q->next + 4;

  std::vector<DnsAddress> bound;
  const size_t records = std::min<size_t>(ancount, kMaxAnswerRecords);
  for (size_t i = 0; i < records; i++) {
    auto owner = readName(m, pos, true);
    if (!owner || owner->next + 10 > m.size()) return r;  // Malformed
    const size_t at = owner->next;
    const uint16_t type = be16(m, at), cls = be16(m, at + 2);
    // RFC 2181 8: a TTL with the top bit set is 0.
    const uint32_t ttl = (be32(m, at + 4) & 0x80000000u) ? 0 : be32(m, at + 4);
    const uint16_t rdlen = be16(m, at + 8);
    const size_t rdata = at + 10;
    if (rdata + rdlen > m.size()) return r;  // Malformed
    r.recordsSeen++;
    pos = rdata + rdlen;
    const auto ownerName = normalName(owner->text);
    const bool onChain =
        ownerName && std::find(r.chain.begin(), r.chain.end(), *ownerName) != r.chain.end();
    if (!onChain || cls != kClassIn) continue;
    if (type == kTypeCname) {
      auto target = readName(m, rdata, true);
      if (!target || target->next > rdata + rdlen) return r;  // Malformed
      if (auto t = normalName(target->text); t && std::find(r.chain.begin(), r.chain.end(), *t) == r.chain.end()) {
        r.chain.push_back(*t);
      }
      continue;
    }
    if ((type == kTypeA && rdlen != 4) || (type == kTypeAaaa && rdlen != 16)) return r;  // Malformed
    if (type != kTypeA && type != kTypeAaaa) continue;
    if (bound.size() >= maxAddresses) {
      r.addressesDropped++;
      continue;
    }
    DnsAddress a;
    if (type == kTypeA) {
      a.addr.a[10] = a.addr.a[11] = 0xff;
      std::memcpy(a.addr.a + 12, m.data() + rdata, 4);
    } else {
      std::memcpy(a.addr.a, m.data() + rdata, 16);
    }
    a.ttl = ttl;
    a.owner = *ownerName;
    bound.push_back(std::move(a));
  }
  r.addresses = std::move(bound);
  r.outcome = DnsOutcome::Bound;
  return r;
}

}  // namespace microseg::fqdn
