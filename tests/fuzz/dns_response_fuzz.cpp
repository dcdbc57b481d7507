// fqdn::parseResponse() (the reference of what a DNS response binds) on any
// bytes: never reads past the message (ASan), and what it returns holds
// together: only a Bound response has addresses, never more than the cap,
// each owned by a name of the chain that starts at the question; the answer
// loop stops at its bound.
#include <algorithm>
#include <span>

#include "fqdn/dns_names.h"
#include "fqdn/dns_response.h"
#include "fuzz_util.h"

using namespace microseg;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  constexpr size_t kCap = 4;
  const auto r = fqdn::parseResponse(std::span<const uint8_t>(data, size), kCap);
  fuzz::check(r.recordsSeen <= fqdn::kMaxAnswerRecords, "records seen past the loop bound");
  if (r.outcome != fqdn::DnsOutcome::Bound) {
    fuzz::check(r.addresses.empty(), std::string("addresses from a response that binds nothing: ") +
                                         fqdn::outcomeName(r.outcome));
    return 0;
  }
  fuzz::check(r.addresses.size() <= kCap, "more addresses than the cap");
  fuzz::check(!r.chain.empty() && r.chain.front() == r.question, "the chain does not start at the question");
  fuzz::check(fqdn::normalName(r.question) == r.question, "the question is not in normal form", r.question);
  for (const auto& a : r.addresses) {
    fuzz::check(std::find(r.chain.begin(), r.chain.end(), a.owner) != r.chain.end(),
                "an address owned by a name off the chain", a.owner);
    fuzz::check(a.ttl < 0x80000000u, "a TTL with the top bit set");
  }
  return 0;
}
