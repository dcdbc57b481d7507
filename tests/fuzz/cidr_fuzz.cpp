// policy::parseCidr(), parseAddress() and formatAddress() on any text:
// what is accepted is an address text and nothing else, is canonical once
// printed (reads back as the same prefix), has no host bits set; the
// printed form of any address reads back as that address.
#include <string>

#include "fuzz_util.h"
#include "policy/cidr.h"

using namespace microseg;

namespace {

bool addressChars(std::string_view s, bool slash) {
  for (char c : s) {
    const bool ok = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') || c == '.' ||
                    c == ':' || (slash && c == '/');
    if (!ok) return false;
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const std::string shown = "'" + std::string(text) + "' (" + std::to_string(size) + " bytes)";

  policy::CidrError err;
  if (const auto c = policy::parseCidr(text, &err)) {
    fuzz::check(addressChars(text, true), "parseCidr accepted a text that is not a prefix", shown);
    fuzz::check(c->prefixlen <= 128 && (!c->isV4() || c->prefixlen >= policy::kIpv4PrefixOffset),
                "parseCidr gave a prefix length out of range", shown);
    fuzz::check(policy::networkOf(c->addr, c->prefixlen) == *c, "parseCidr gave a prefix with host bits", shown);
    const std::string printed = c->str();
    const auto again = policy::parseCidr(printed);
    fuzz::check(again && *again == *c && again->str() == printed, "a parsed prefix does not read back",
                shown + " -> " + printed);
  } else {
    fuzz::check(!err.message.empty(), "parseCidr refused without a message", shown);
  }

  if (const auto a = policy::parseAddress(text)) {
    fuzz::check(addressChars(text, false), "parseAddress accepted a text that is not an address", shown);
    const std::string printed = policy::formatAddress(*a);
    const auto again = policy::parseAddress(printed);
    fuzz::check(again && std::memcmp(again->a, a->a, sizeof(a->a)) == 0, "a parsed address does not read back",
                shown + " -> " + printed);
  }
  // Any 16 bytes print as an address that reads back as them.
  if (size >= 16) {
    ms_addr raw{};
    std::memcpy(raw.a, data, 16);
    const std::string printed = policy::formatAddress(raw);
    const auto back = policy::parseAddress(printed);
    fuzz::check(back && std::memcmp(back->a, raw.a, 16) == 0, "formatAddress does not read back", printed);
  }
  return 0;
}
