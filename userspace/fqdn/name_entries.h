// What the kernel looks the names of DNS answers up in (bpf/abi.h:
// ms_fqdn_names): one entry per pattern a policy names, keyed by the hash
// the kernel computes for a question (the exact name's FNV-1a 64, a
// wildcard suffix's polynomial hash), holding the pattern's identity and
// text (the kernel compares the text: the hash only finds the entry).
// Pure logic.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string_view>
#include <utility>
#include <vector>

#include "bpf/abi.h"
#include "identity/identities.h"

namespace microseg::fqdn {

using NameEntries = std::vector<std::pair<ms_fqdn_name_key, ms_fqdn_name_value>>;

// FNV-1a 64 of a normal-form name (lib/dns.bpf.h hashes names so).
uint64_t nameHash(std::string_view name);
// The polynomial hash of a wildcard's suffix (MS_FQDN_POLY, from 0).
uint64_t suffixHash(std::string_view suffix);

// The identity an answer for `text` binds: `text` a pattern as a policy
// writes it ("*.example.com": that pattern's), or a name (the identity of
// its exact pattern, else of the longest wildcard matching it).
std::optional<uint32_t> identityOfName(const std::map<uint32_t, identity::FqdnIdentity>& fqdns,
                                       std::string_view text);

// The entries of every name identity, sorted by key bytes.
NameEntries nameEntries(const std::map<uint32_t, identity::FqdnIdentity>& fqdns);

}  // namespace microseg::fqdn
