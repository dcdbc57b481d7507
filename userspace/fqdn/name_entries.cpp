#include "fqdn/name_entries.h"

#include <algorithm>
#include <cstring>

#include "fqdn/dns_names.h"

namespace microseg::fqdn {

uint64_t nameHash(std::string_view name) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (unsigned char c : name) h = (h ^ c) * 0x100000001b3ULL;
  return h;
}

uint64_t suffixHash(std::string_view suffix) {
  uint64_t h = 0;
  for (unsigned char c : suffix) h = h * MS_FQDN_POLY + c;
  return h;
}

std::optional<uint32_t> identityOfName(const std::map<uint32_t, identity::FqdnIdentity>& fqdns,
                                       std::string_view text) {
  std::string err;
  auto want = parsePattern(text, err);
  if (!want) return std::nullopt;
  for (const auto& [id, f] : fqdns) {
    if (f.pattern == want->text()) return id;
  }
  if (want->wildcard) return std::nullopt;
  std::optional<uint32_t> best;
  size_t bestLen = 0;
  for (const auto& [id, f] : fqdns) {
    auto p = parsePattern(f.pattern, err);
    if (p && p->wildcard && matches(*p, want->name) && p->name.size() >= bestLen) {
      best = id;
      bestLen = p->name.size();
    }
  }
  return best;
}

NameEntries nameEntries(const std::map<uint32_t, identity::FqdnIdentity>& fqdns) {
  NameEntries out;
  for (const auto& [id, f] : fqdns) {
    std::string err;
    auto p = parsePattern(f.pattern, err);
    if (!p || p->name.size() >= MS_FQDN_TEXT) continue;  // the parser let none of these through
    ms_fqdn_name_key k{};
    k.kind = p->wildcard ? MS_FQDN_WILDCARD : MS_FQDN_EXACT;
    k.hash = p->wildcard ? suffixHash(p->name) : nameHash(p->name);
    ms_fqdn_name_value v{};
    v.peer = id;
    v.len = static_cast<uint32_t>(p->name.size());
    std::memcpy(v.text, p->name.data(), p->name.size());
    out.emplace_back(k, v);
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) {
    return std::memcmp(&a.first, &b.first, sizeof(a.first)) < 0;
  });
  return out;
}

}  // namespace microseg::fqdn
