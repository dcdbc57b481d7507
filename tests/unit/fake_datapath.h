// A datapath in memory, for unit tests of what drives one (the reload, the
// event spool): it keeps what a generation asks for (datapath/slot_state.h,
// the kernel backend's own mirror) and can be told to fail. The kernel
// backend itself is covered by the e2e tests.
#pragma once

#include <cstring>

#include <arpa/inet.h>

#include <chrono>
#include <map>
#include <thread>
#include <string>
#include <vector>

#include "datapath/datapath.h"
#include "datapath/slot_state.h"

namespace microseg::datapath {

class FakeDatapath : public Datapath {
 public:
  // What the last applied generation asked for.
  SlotState state;
  std::vector<std::pair<ms_policy_exact_key, ms_policy_value>> exact;
  uint64_t applied = 0;         // generations applied
  int failApplies = 0;          // the next N applyGeneration() calls fail
  int applyDelayMs = 0;         // each applyGeneration() takes this long (a big reload)
  bool adoptedState = false;
  uint64_t adoptedGeneration = 0;

  bool adopted() const override { return adoptedState; }
  uint64_t generation() const override { return generation_; }
  Result<void> activate() override { return {}; }
  void release() override {}
  void uninstall() override {}
  const std::string& pinDir() const override { return pinDir_; }
  std::vector<uint64_t> activeCgroupIds() const override {
    std::vector<uint64_t> out;
    for (const auto& [id, v] : state.cgroups) out.push_back(id);
    return out;
  }
  size_t lastApplyWrites() const override { return writes_; }

  Result<void> applyGeneration(const Generation& gen) override {
    if (applyDelayMs > 0) std::this_thread::sleep_for(std::chrono::milliseconds(applyDelayMs));
    if (failApplies > 0) {
      failApplies--;
      return Error{"update of map", "ms_policy_1", ENOSPC, "fake: told to fail"};
    }
    state = slotStateOf(gen);
    exact.clear();
    if (gen.policy != nullptr) {
      auto [b, e] = gen.policy->exact();
      for (auto it = b; it != e; ++it) exact.push_back(compiler::exactEntry(*it));
    }
    generation_ = gen.number;
    writes_ = state.size() + exact.size();
    applied++;
    return {};
  }
  Result<void> upsertCgroups(const std::vector<CgroupEntry>& entries) override {
    for (const auto& c : entries) state.cgroups.emplace_back(c.cgroupId, cgroupValue(c.identity, c.flags, state.identities));
    normalize(state.cgroups);
    return {};
  }
  Result<void> removeCgroups(const std::vector<uint64_t>& ids) override {
    patch(state.cgroups, {}, ids);
    return {};
  }
  Result<void> setIdentityMode(uint32_t, uint32_t, const compiler::CompiledPolicy&) override { return {}; }
  Result<void> setMode(uint32_t mode) override {
    mode_ = mode;
    return {};
  }
  uint32_t mode() const override { return mode_; }
  Result<void> setAddresses(const std::vector<AddressEntry>& a) override {
    addresses = a;
    return {};
  }
  Result<void> setRemoteListeners(const std::vector<RemoteListenerEntry>& l) override {
    remoteListeners = l;
    return {};
  }
  Result<void> refreshClock() override {
    clockRefreshes++;
    return {};
  }
  Result<void> setWireKeys(const std::vector<WireKey>& accepted, uint8_t signKeyId) override {
    wireKeys = accepted;
    wireSignKeyId = signKeyId;
    return {};
  }
  Result<void> setConnectionAges(bool on) override {
    connectionAges = on;
    return {};
  }
  bool connectionAges = false;
  Result<void> setGrants(const GrantEntries& g) override {
    grants = g;
    grantWrites++;
    return {};
  }
  GrantEntries grants;
  uint64_t grantWrites = 0;
  std::vector<AddressEntry> addresses;
  std::vector<RemoteListenerEntry> remoteListeners;
  std::vector<WireKey> wireKeys;
  uint8_t wireSignKeyId = 0;
  uint64_t clockRefreshes = 0;
  Result<Counters> counters() const override { return Counters{}; }
  Result<std::map<uint32_t, uint64_t>> ruleHits(uint32_t) const override { return std::map<uint32_t, uint64_t>{}; }
  Result<SweepStep> expireUdpExchanges() override { return SweepStep{0, true}; }
  // What a test put in ms_edges.
  EdgeEntries edgeEntries;
  Result<EdgeEntries> edges() const override { return edgeEntries; }
  // What a test put in ms_fqdn_bindings.
  std::vector<FqdnBinding> fqdnBindingEntries;
  Result<std::vector<FqdnBinding>> fqdnBindings() const override { return fqdnBindingEntries; }
  Result<std::string> fqdnText(uint64_t) const override { return std::string(); }
  Result<FqdnTable> fqdnTable() const override { return FqdnTable{fqdnBindingEntries.size(), 0}; }
  Result<EdgeEntries> removeEdges(const std::vector<ms_edge_key>& keys) override {
    EdgeEntries out;
    for (const auto& k : keys) {
      for (auto it = edgeEntries.begin(); it != edgeEntries.end(); ++it) {
        if (std::memcmp(&it->first, &k, sizeof(k)) == 0) {
          out.push_back(*it);
          edgeEntries.erase(it);
          break;
        }
      }
    }
    return out;
  }
  Result<int> drainEvents(const EventHandler&) override { return 0; }
  int eventFd() const override { return -1; }

  // The entry of the exact-port map for (subject, peer, direction, proto, port), if any.
  const ms_policy_value* exactEntry(uint32_t subject, uint32_t peer, uint8_t dir, uint8_t proto, uint16_t port) const {
    for (const auto& [k, v] : exact) {
      if (k.subject == subject && k.peer == peer && k.direction == dir && k.protocol == proto &&
          k.port == htons(port)) {
        return &v;
      }
    }
    return nullptr;
  }

 private:
  uint64_t generation_ = 0;
  uint32_t mode_ = MS_MODE_MONITOR;
  size_t writes_ = 0;
  std::string pinDir_ = "/fake";
};

}  // namespace microseg::datapath
