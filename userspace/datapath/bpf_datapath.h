// Kernel datapath: loads the embedded BPF object (microseg.skel.h), keeps
// its maps filled and its programs attached to the managed cgroup root.
#pragma once

#include <memory>
#include <string>

#include "common/fd.h"
#include "datapath/bpf_object.h"
#include "datapath/datapath.h"
#include "datapath/pin_dir.h"
#include "datapath/slot_state.h"

struct microseg_bpf;  // generated skeleton (microseg.skel.h)
struct bpf_link;
struct ring_buffer;

namespace microseg::datapath {

// Inner maps of one slot (cgroups, policy, ranges, ipcache).
struct SlotMaps {
  UniqueFd cgroups, policy, ranges, ipcache;
};
// How each is made (read from the object: bpf_object.h).
struct SlotSpecs {
  InnerSpec cgroups, policy, ranges, ipcache;
};

// CLOCK_TAI - CLOCK_MONOTONIC now, ns (ms_config.tai_offset_ns).
int64_t taiOffsetNs();

struct BpfOptions {
  std::string cgroupRoot;      // absolute path of the managed cgroup v2 dir
  std::string stateDir;        // bpffs dir for pins
  uint32_t mode = MS_MODE_MONITOR;
  bool logAllowed = false;
  uint64_t answerTtlNs = 30ull * 1000 * 1000 * 1000;
  uint32_t fqdnMinTtlSeconds = 5;     // ms_config.fqdn_min_ttl_s
  uint32_t fqdnMaxTtlSeconds = 3600;  // ms_config.fqdn_max_ttl_s
  std::vector<std::string> fqdnResolvers;  // ms_fqdn_resolvers; empty: /etc/resolv.conf's nameservers
  uint32_t ringbufBytes = MS_RINGBUF_BYTES;
  uint64_t hostNetnsCookie = 0;  // netns of the daemon (SO_NETNS_COOKIE)
};

class BpfDatapath final : public Datapath {
 public:
  // probe -> open -> configure -> load. If compatible pinned state of an
  // earlier run exists under <stateDir>/abi-<MS_ABI_VERSION> (same ABI, same
  // cgroup root), its maps are reused ("adopted"): the policy, identities,
  // listeners, per-socket state, counters and mode in force stay in force.
  // Nothing is attached or detached yet.
  static Result<std::unique_ptr<BpfDatapath>> load(const BpfOptions& options);
  ~BpfDatapath() override;

  bool adopted() const override { return adopted_; }

  // Fresh state: attach every program to the cgroup root (the wire
  // identity's sender only while this node signs), pin links and maps,
  // then retire pinned state of older/incompatible runs (new attached before
  // old detached: no enforcement gap). Adopted state: atomically swap the
  // programs inside the pinned links (BPF_LINK_UPDATE): never detached.
  // Call only after the first applyGeneration(): programs never run against
  // empty maps.
  Result<void> activate() override;
  // Daemon exit (SIGTERM, crash): close our fds, keep the pins. The pinned
  // links go on enforcing the last generation and mode.
  void release() override;
  // `microseg uninstall`: detach, unpin, remove the state dir.
  void uninstall() override;
  // Offline `microsegd --cleanup`: detach every pinned link and remove every
  // pin under stateDir. Returns how many pinned objects were removed.
  static Result<int> cleanupStateDir(const std::string& stateDir);

  Result<void> applyGeneration(const Generation& gen) override;
  Result<void> upsertCgroups(const std::vector<CgroupEntry>& entries) override;
  Result<void> removeCgroups(const std::vector<uint64_t>& cgroupIds) override;
  Result<void> setIdentityMode(uint32_t identity, uint32_t mode,
                               const compiler::CompiledPolicy& policy) override;
  Result<void> setMode(uint32_t mode) override;
  uint32_t mode() const override { return config_.mode; }
  Result<void> setAddresses(const std::vector<AddressEntry>& addresses) override;
  Result<void> setRemoteListeners(const std::vector<RemoteListenerEntry>& listeners) override;
  Result<void> setWireKeys(const std::vector<WireKey>& accepted, uint8_t signKeyId) override;
  Result<void> refreshClock() override;
  Result<void> setGrants(const GrantEntries& entries) override;  // bpf_datapath_grants.cpp
  Result<void> setConnectionAges(bool on) override;              // bpf_datapath_links.cpp
  Result<Counters> counters() const override;
  Result<std::map<uint32_t, uint64_t>> ruleHits(uint32_t maxRuleId) const override;
  Result<SweepStep> expireUdpExchanges() override;
  Result<EdgeEntries> edges() const override;  // bpf_datapath_readback.cpp
  Result<EdgeEntries> removeEdges(const std::vector<ms_edge_key>& keys) override;  // bpf_datapath_readback.cpp
  Result<std::vector<FqdnBinding>> fqdnBindings() const override;                  // bpf_datapath_fqdn.cpp
  Result<std::string> fqdnText(uint64_t hash) const override;                      // bpf_datapath_fqdn.cpp
  Result<FqdnTable> fqdnTable() const override;                                    // bpf_datapath_fqdn.cpp
  Result<int> drainEvents(const EventHandler& handler) override;
  int eventFd() const override;

  uint64_t generation() const override { return config_.generation; }
  const std::string& pinDir() const override { return pinDir_; }
  // Cgroup ids in the active slot (to garbage-collect after adoption).
  std::vector<uint64_t> activeCgroupIds() const override;
  // Map writes the last applyGeneration made (a difference once both slots
  // hold the same generation; everything twice for the first).
  size_t lastApplyWrites() const override { return lastWrites_; }

 private:
  BpfDatapath() = default;
  Result<void> writeConfig();
  // New maps holding `want` and the exact-port entries of `policy`.
  Result<SlotMaps> freshSlot(const SlotState& want, const compiler::CompiledPolicy* policy);
  Result<void> installSlot(uint32_t slot, SlotMaps maps);
  // Writes into `m`, which holds `from` and the exact-port entries of `was`,
  // what turns it into `to` and those of `now`; the exact-port entries'
  // difference is `exact` if given.
  Result<void> writeSlotChanges(const SlotMaps& m, const SlotState& from, const SlotState& to,
                                const compiler::CompiledPolicy* was, const compiler::CompiledPolicy* now,
                                const Diff<ms_policy_exact_key, ms_policy_value>* exact);
  Result<void> flip(uint32_t slot, uint64_t generation);
  template <typename K, typename V>
  Result<void> editBoth(UniqueFd SlotMaps::*map, const InnerSpec& spec, Entries<K, V>& current,
                        const Entries<K, V>& changes, const std::vector<K>& removes);
  // Pins the links of `progs` (links_, in that order) and the maps.
  Result<void> pin(const std::vector<bpf_program*>& progs);
  // ms_sockops while ms_config.wire_key_id says this node signs.
  Result<void> syncSigner();
  // What a complete pin dir of this object holds.
  PinnedSet pinnedSet() const;
  Result<void> adoptSlots();
  void retireLegacy();

  struct SkelDeleter { void operator()(::microseg_bpf* s) const; };
  struct LinkDeleter { void operator()(bpf_link* l) const; };
  using LinkPtr = std::unique_ptr<bpf_link, LinkDeleter>;
  // An on-demand program (bpf_object.h: attachedOnDemand): attached to the
  // root and pinned while `want`, detached and unpinned otherwise; `what`
  // names it in the log.
  Result<void> syncOnDemand(bpf_program* p, LinkPtr& link, bool want, const char* what);
  // The adopted path: the on-demand program's link the last run pinned, if
  // any, with this run's program in it (kept until a sync says otherwise).
  Result<void> adoptOnDemand(bpf_program* p, LinkPtr& link);
  struct RingDeleter { void operator()(ring_buffer* r) const; };

  BpfOptions options_;
  std::unique_ptr<::microseg_bpf, SkelDeleter> skel_;
  std::vector<std::unique_ptr<bpf_link, LinkDeleter>> links_;  // the enforcing programs
  LinkPtr signerLink_;  // ms_sockops, while signing
  LinkPtr agesLink_;    // ms_established, while connection ages are asked for
  bool agesWanted_ = false;
  bool activated_ = false;
  std::unique_ptr<ring_buffer, RingDeleter> ring_;
  UniqueFd cgroupFd_;
  ms_config config_{};
  // Inner maps per slot: [slot] -> fds. The active slot's fds are edited by
  // churn updates; the inactive slot is rebuilt whole by applyGeneration.
  SlotMaps slots_[2];
  SlotSpecs specs_;
  // What the active slot holds, and (synced_) the inactive one too, but
  // for the exact-port entries: those are the compiled policy's stamped
  // mirrored_ (0: none), read from it.
  SlotState state_;
  uint64_t mirrored_ = 0;
  bool synced_ = false;
  // Where the sweep of ms_udp_flows goes on (expireUdpExchanges).
  uint32_t udpSweepCursor_ = 0;  // a hash map's batch cursor: a bucket index
  bool udpSweepStarted_ = false;
  // The compiled ranges of the generation in force (addresses go over them).
  Entries<ms_ipcache_key, ms_ipcache_value> compiled_;
  size_t lastWrites_ = 0;
  // What ms_remote_listeners holds (read from the pinned map at adoption).
  Entries<ms_remote_listener_key, ms_remote_listener_value> remoteListeners_;
  // What ms_grants holds: read from the (possibly adopted) map by the
  // first setGrants(), then kept.
  GrantEntries grants_;
  bool grantsRead_ = false;
  uint64_t fqdnRemoved_ = 0;  // ms_fqdn_bindings entries this run deleted
  // Writes a generation's names into ms_fqdn_names, before it is in force
  // (bpf_datapath_fqdn.cpp).
  Result<void> writeFqdnResolvers(const std::vector<std::string>& addresses);
  Result<void> writeFqdnNames(const std::vector<std::pair<ms_fqdn_name_key, ms_fqdn_name_value>>& want);
  const EventHandler* handler_ = nullptr;
  std::string pinDir_;
  std::vector<std::string> legacyDirs_;  // pinned state to retire after attach
  bool adopted_ = false;
  bool released_ = false;
};


}  // namespace microseg::datapath
