// Least privilege from observed traffic (`microseg suggest`): Policy
// documents that allow what the flow records saw a workload do, and nothing
// else. For each workload asked for, one Policy selecting it (`identity:`),
// with an egress rule per peer it called and an ingress rule per peer that
// called it, the ports as observed (runs of consecutive ports merged into a
// range from `rangeThreshold` ports on), and a comment saying how often and
// when each rule was seen.
//
// Peers: local workloads by identity (never by address), this host's own
// processes as `host`, processes outside every workload under the managed
// root as `unmanaged`, an External by its name when the address range is
// exactly one External, and any other remote address as a cidr (/32 or
// /128) of the address the records saw. Flows the policy in force denied
// are listed in a comment (not allowed by the suggestion): a human decides
// whether they were wanted.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "bpf/abi.h"

namespace microseg::suggest {

// One aggregated flow record as the suggestion needs it.
struct Flow {
  uint8_t direction = MS_DIR_EGRESS;
  uint32_t src = 0, dst = 0;     // identities
  uint8_t protocol = 0;
  uint16_t port = 0;             // destination port
  uint8_t verdict = 0;           // allow | audit | deny
  uint64_t count = 0;
  int64_t firstSeenNs = 0, lastSeenNs = 0;
  ms_addr srcAddr{}, dstAddr{};
};

// How the suggestion names an identity.
struct Naming {
  std::function<std::string(uint32_t)> workload;  // a local workload's name, "" if none
  std::function<std::string(uint32_t)> external;  // the External of exactly this identity, "" if none
};

struct Options {
  std::set<std::string> workloads;  // empty: every workload seen as a subject
  int64_t sinceNs = 0;              // flows last seen before this are left out
  size_t rangeThreshold = 4;        // consecutive ports merged into a range from this many
  bool staged = false;              // documents carry `staged: true` (judged, not enforced, until promoted)
};

// The documents, as YAML text ("" when nothing was observed for them).
std::string suggest(const std::vector<Flow>& flows, const Naming& naming, const Options& options);

}  // namespace microseg::suggest
