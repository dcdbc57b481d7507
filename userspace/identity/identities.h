// Numeric identities (pure logic, no kernel), stable across reloads:
//  - workloads: one per distinct label set, as long as the label set exists;
//  - address ranges (Externals and inline cidr peers): one per distinct set of
//    things an address can belong to at once, as long as that set exists. The
//    ipcache maps prefixes to these; the kernel looks a peer's address up in
//    an LPM trie holding it (most specific prefix wins);
//  - names (fqdn peers): one per distinct pattern, as long as a policy names
//    it. A DNS answer binds its addresses to the most specific pattern
//    matching its question (bpf/abi.h: ms_fqdn_names), so each identity
//    stands for every pattern that matches its own.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "bpf/abi.h"
#include "policy/model.h"

namespace microseg::identity {

// The identity of the addresses that belong to exactly these members: each
// External in `externals` (in its cidrs, outside its excepts) and each inline
// cidr peer in `cidrPeers`, and nothing else.
struct ExternalIdentity {
  std::vector<std::string> externals;  // External names, sorted
  std::vector<std::string> cidrPeers;  // inline cidr peers by Peer::cidrText(), sorted
  std::vector<policy::Cidr> prefixes;  // ipcache prefixes with this identity, sorted
  // "corp-net", "corp-net,partner", "cidr:10.0.0.0/8", "corp-net,cidr:10.0.0.0/8".
  std::string name() const;
};

// The identity of the names whose most specific pattern is `pattern`
// (the exact name, else the longest wildcard suffix).
struct FqdnIdentity {
  std::string pattern;                 // fqdn::NamePattern::text()
  std::vector<std::string> coveredBy;  // every pattern matching it (itself included), sorted
};

struct IpcachePrefix {
  policy::Cidr prefix;
  uint32_t identity = MS_IDENTITY_WORLD;  // an external identity, or WORLD for a hole
};

struct IdentityTable {
  // Workload identities: the local ones are the policy subjects.
  std::map<std::string, uint32_t> byWorkload;             // workload name -> identity
  std::map<uint32_t, policy::Labels> labels;              // identity -> label set
  std::map<uint32_t, std::vector<std::string>> workloads; // identity -> workload names (sorted)
  // Cluster mode: label sets the fleet has an identity for that no Workload
  // of this set has (another node's workloads, the nodes themselves).
  // They are peers that selectors match, never subjects here.
  std::set<uint32_t> remoteOnly;
  // Cluster mode: Workloads whose label set has no fleet identity yet (etcd
  // unreachable): no identity, their cgroups are pending (fail closed).
  std::set<std::string> pending;

  // Address-range identities (>= MS_IDENTITY_FIRST_EXTERNAL).
  std::map<uint32_t, ExternalIdentity> externals;
  // Every identity whose members include this External / inline cidr peer
  // (sorted; an External whose range overlaps another's has several).
  std::map<std::string, std::vector<uint32_t>> byExternal;
  std::map<std::string, std::vector<uint32_t>> byCidrPeer;  // key: Peer::cidrText()
  // The LPM entries, sorted by prefix (address bytes, then length). A miss
  // is MS_IDENTITY_WORLD.
  std::vector<IpcachePrefix> ipcache;

  // Name identities (>= MS_IDENTITY_FIRST_FQDN), and per pattern a policy
  // names every identity it covers (sorted).
  std::map<uint32_t, FqdnIdentity> fqdns;
  std::map<std::string, std::vector<uint32_t>> byFqdnPeer;

  // "payments", "a,b" for a shared identity, an ExternalIdentity::name(),
  // "fqdn:api.example.com" for a name identity, or
  // the reserved names host/world/unmanaged/any; "identity-<n>" if unknown.
  std::string nameOf(uint32_t identity) const;

  // Set by assignIdentities(), unique per call: two tables with the same
  // version are copies of one result (the compiler compares versions before
  // it compares contents).
  uint64_t version = 0;
};

// Identities the fleet gave (cluster mode, cluster/agent.h): one per label
// set for every node. `names` name the label sets no local Workload has.
struct FleetIdentities {
  std::map<policy::Labels, uint32_t> byLabels;
  std::map<uint32_t, std::vector<std::string>> names;
  uint64_t version = 0;  // changes whenever the fleet's identities do
};

// Assign identities to every workload and address range of `bundle`. A
// label set (or, for ranges, a member set) that already has an id in
// `previous` keeps it; new ones get the smallest free id >=
// MS_IDENTITY_FIRST_WORKLOAD (MS_IDENTITY_FIRST_EXTERNAL for ranges), in
// sorted order. Deterministic: same inputs, same output. A workload gets
// Workload::effectiveLabels() (implicit microseg.dev/workload=<name> without
// spec.labels, plus its namespace label).
//
// The ipcache holds every prefix of the Externals' cidrs and excepts and of
// the inline cidr peers' cidr and except, plus ::ffff:0:0/96 when an IPv6
// prefix of length <= 96 covers it (so that no IPv6 range matches an IPv4
// address), minus prefixes that would map to WORLD anyway. Every address's
// most specific prefix then stands for exactly the members that contain it.
// With `fleet` (cluster mode), a workload's identity is the fleet's for its
// label set, or none (pending) without one; every other label set of the
// fleet is in the table as remoteOnly.
IdentityTable assignIdentities(const policy::Bundle& bundle, const IdentityTable& previous = {},
                               const FleetIdentities* fleet = nullptr);

// True if `a` and `b` hold the same Workload and External objects and the
// same policies with cidr peers (the only inputs of assignIdentities()):
// the table assigned for one then stands for the other as it is. A reload
// that changed only policies without cidr peers keeps its identities
// without assigning them again (28 ms at 10k workloads).
bool sameIdentityInputs(const policy::Bundle& a, const policy::Bundle& b);

// Identity of a remote address as the kernel's LPM lookup finds it: the
// most specific ipcache prefix covering it, MS_IDENTITY_WORLD on a miss.
uint32_t lookupAddress(const IdentityTable& ids, const ms_addr& addr);

// Reserved identity name for ids < MS_IDENTITY_FIRST_WORKLOAD, or "" if none.
const char* reservedName(uint32_t identity);

}  // namespace microseg::identity
