// The datapath as the daemon sees it: where compiled policy generations,
// cgroup identities and the mode go, and where verdict events come from.
// BpfDatapath (bpf_datapath.h) is the kernel implementation.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "bpf/abi.h"
#include "common/result.h"
#include "compiler/compiler.h"

namespace microseg::datapath {

struct CgroupEntry {
  uint64_t cgroupId = 0;
  uint32_t identity = 0;  // workload, or MS_IDENTITY_UNMANAGED
  uint32_t flags = 0;     // MS_CGROUP_F_*
};

// An ipcache entry the daemon learns at run time, not from policy: an
// address of this host (MS_IPCACHE_F_HOST) or of a workload's own network
// namespace (MS_IPCACHE_F_NETNS). Overrides a compiled entry of the same
// prefix.
struct AddressEntry {
  ms_ipcache_key key{};  // prefixlen 128 (a single address)
  ms_ipcache_value value{};
};

// A listener of a host-netns workload of another node (cluster mode).
struct RemoteListenerEntry {
  ms_remote_listener_key key{};
  ms_remote_listener_value value{};
};

// A cluster key of the wire identity (bpf/abi.h: ms_wire_opt).
struct WireKey {
  uint8_t id = 0;  // 1..255
  uint64_t k0 = 0, k1 = 0;  // common/siphash.h: sipKeyFromBytes()
};

// The temporary-access entries (ms_grants), sorted by key bytes, unique
// keys (grants/grants.h makes them).
using GrantEntries = std::vector<std::pair<ms_grant_key, ms_grant_value>>;

struct Counters {
  uint64_t values[MS_CTR_MAX] = {};
  uint64_t allowed() const { return values[MS_CTR_ALLOWED]; }
  uint64_t denied() const { return values[MS_CTR_DENIED]; }
  uint64_t audited() const { return values[MS_CTR_AUDITED]; }
  uint64_t eventsLost() const { return values[MS_CTR_EVENTS_LOST]; }
  uint64_t udpAnswers() const { return values[MS_CTR_UDP_ANSWERS]; }
};

// One policy generation: everything that must flip at once.
struct Generation {
  uint64_t number = 0;
  const compiler::CompiledPolicy* policy = nullptr;
  // The policy of the generation in force, if the caller has it: the
  // datapath writes the difference from its entries (it keeps no copy).
  // Without it, or if it is not the one in force, every entry is written.
  const compiler::CompiledPolicy* inForce = nullptr;
  std::vector<CgroupEntry> cgroups;
  // Runtime per-identity mode overrides (CLI), applied on top of the
  // policy-declared modes.
  std::map<uint32_t, uint32_t> modeOverrides;
  // Addresses of this host and of workloads' netns (see AddressEntry).
  std::vector<AddressEntry> addresses;
  // The names its fqdn peers bind (fqdn/name_entries.h), sorted by key.
  std::vector<std::pair<ms_fqdn_name_key, ms_fqdn_name_value>> fqdnNames;
};

// An address a DNS answer bound to a name for a workload: one slot of an
// entry of ms_fqdn_bindings.
struct FqdnBinding {
  ms_fqdn_binding_key key{};
  ms_fqdn_bound value{};
  std::string name;  // the question as resolved ("" if ms_fqdn_texts lost it)
};

using EventHandler = std::function<void(const ms_event&)>;

// What ms_edges holds (bpf/abi.h): every edge with its count and times.
using EdgeEntries = std::vector<std::pair<ms_edge_key, ms_edge_value>>;

// Is a UDP exchange entry (ms_udp_flows) of no more use to the kernel at
// `nowNs` (coarse CLOCK_MONOTONIC, the clock the entries are written with)?
// Every use of an entry needs one of its times within the answer TTL; a
// second of slack covers the 100 ms refresh and the tick of the coarse clock.
inline bool udpExchangeExpired(const ms_udp_flow_value& v, uint64_t nowNs, uint64_t ttlNs) {
  constexpr uint64_t kSlackNs = 1000000000ull;
  const uint64_t last = v.sent_ns > v.heard_ns ? v.sent_ns : v.heard_ns;
  return last <= nowNs && nowNs - last > ttlNs + kSlackNs;
}

class Datapath {
 public:
  virtual ~Datapath() = default;

  // Lifecycle (bpf_datapath.h says what each does in the kernel).
  // True if the state in force was adopted from an earlier run's pins.
  virtual bool adopted() const = 0;
  // The generation in force (of the adopted state, or the last applied).
  virtual uint64_t generation() const = 0;
  // Programs attached (or swapped into adopted links): after the first
  // applyGeneration(), never before (programs never run on empty maps).
  virtual Result<void> activate() = 0;
  // Daemon exit: the pinned state keeps enforcing.
  virtual void release() = 0;
  // `microseg uninstall`: detach and remove every pin.
  virtual void uninstall() = 0;
  virtual const std::string& pinDir() const = 0;
  // Cgroup ids in the active slot.
  virtual std::vector<uint64_t> activeCgroupIds() const = 0;
  // Map writes the last applyGeneration() made.
  virtual size_t lastApplyWrites() const = 0;

  // Writes the whole generation into the inactive slot, then flips the
  // active slot with one write. On error the active generation is untouched.
  virtual Result<void> applyGeneration(const Generation& gen) = 0;
  // Cgroup churn between generations: edits the ACTIVE slot in place.
  virtual Result<void> upsertCgroups(const std::vector<CgroupEntry>& entries) = 0;
  virtual Result<void> removeCgroups(const std::vector<uint64_t>& cgroupIds) = 0;
  virtual Result<void> setIdentityMode(uint32_t identity, uint32_t mode,
                                       const compiler::CompiledPolicy& policy) = 0;
  virtual Result<void> setMode(uint32_t mode) = 0;
  virtual uint32_t mode() const = 0;
  // Replaces the run-time address entries of the ACTIVE slot (the next
  // generation takes them from Generation::addresses).
  virtual Result<void> setAddresses(const std::vector<AddressEntry>& addresses) = 0;
  // Replaces the other nodes' listeners (cluster mode): the difference from
  // what the map holds is written, entry by entry.
  virtual Result<void> setRemoteListeners(const std::vector<RemoteListenerEntry>& listeners) = 0;
  // Replaces the cluster keys SYNs are verified with (every other id is
  // refused) and the one this node signs its SYNs with (0: it sends no wire
  // identity; it still verifies). Written key by key, then the signing id:
  // a SYN is never signed with a key this node does not accept itself.
  virtual Result<void> setWireKeys(const std::vector<WireKey>& accepted, uint8_t signKeyId) = 0;
  // Whether the kernel stamps each TCP connection's establishment (both
  // ends; the age a revocation record gives): a socket-storage write per
  // end, ~0.5 us each (scripts/bench.sh 1e), so only while revocation may
  // end connections. Connections established meanwhile have no age.
  virtual Result<void> setConnectionAges(bool on) = 0;
  // The kernel tells the wire identity's time (CLOCK_TAI) from its coarse
  // monotonic clock and an offset (ms_config.tai_offset_ns): written again
  // when the clock was stepped (by more than 10 ms). Called every tick.
  virtual Result<void> refreshClock() = 0;
  // Replaces what ms_grants holds with `entries` (GrantEntries order): the
  // difference from the map is written, entry by entry (each is one atomic
  // write). Not per slot: a new generation keeps them.
  virtual Result<void> setGrants(const GrantEntries& entries) = 0;
  virtual Result<Counters> counters() const = 0;
  // Verdicts per rule id since this daemon started (index 0 = default deny).
  virtual Result<std::map<uint32_t, uint64_t>> ruleHits(uint32_t maxRuleId) const = 0;
  // One bounded step (a few thousand entries) of a sweep that removes the
  // UDP exchange entries the kernel can no longer use (sockets silent for
  // longer than the answer TTL, closed ones included), so the LRU map is not
  // full in the steady state (a full one evicts on every insert). Each call
  // goes on where the last one stopped; `done` once it reached the end (the
  // next call starts over).
  struct SweepStep {
    size_t expired = 0;
    bool done = false;
  };
  virtual Result<SweepStep> expireUdpExchanges() = 0;
  // Every observed edge (ms_edges) as the kernel holds it now; counts only
  // grow (nothing deletes an entry while the map lives).
  virtual Result<EdgeEntries> edges() const = 0;
  // Removes these edges from the kernel's map, each returned with its last
  // value (lookup-and-delete: a flow counted up to the removal is in it, one
  // after starts the edge anew). A key no longer there is skipped.
  virtual Result<EdgeEntries> removeEdges(const std::vector<ms_edge_key>& keys) = 0;
  // Every binding of ms_fqdn_bindings, expired ones included (the caller
  // compares expires_ns with the coarse monotonic clock).
  virtual Result<std::vector<FqdnBinding>> fqdnBindings() const = 0;
  // The name as resolved whose FNV-1a hash is `hash` (ms_fqdn_texts); ""
  // if the map no longer has it.
  virtual Result<std::string> fqdnText(uint64_t hash) const = 0;
  // The entries ms_fqdn_bindings holds now, and how many this run removed
  // (their peer's pattern went): with MS_CTR_FQDN_ENTRIES, what its LRU
  // evicted.
  struct FqdnTable {
    uint64_t entries = 0;
    uint64_t removed = 0;
  };
  virtual Result<FqdnTable> fqdnTable() const = 0;
  // Drains pending events into the handler; returns how many.
  virtual Result<int> drainEvents(const EventHandler& handler) = 0;
  // fd that becomes readable when the kernel forces a wakeup (ring > 1/4 full).
  virtual int eventFd() const = 0;
};

}  // namespace microseg::datapath
