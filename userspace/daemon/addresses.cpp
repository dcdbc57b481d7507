// The ipcache's run-time part: this host's addresses and those of the
// workloads' own network namespaces (identity/address_watcher.h reads them
// on a thread of its own; this writes a new snapshot into the kernel).
#include "daemon/daemon.h"

#include <spdlog/spdlog.h>

#include <cstring>
#include <unordered_set>
#include <utility>

namespace microseg::daemon {

void Daemon::watchWorkloadNetnsLocked(bool wait) {
  std::vector<identity::AddressWatcher::WorkloadCgroup> cgroups;
  for (const auto& [id, c] : cgroups_) {
    if (c.workload.empty()) continue;
    cgroups.push_back({c.path == "/" ? config_.cgroupRoot : config_.cgroupRoot + c.path, c.workload, c.identity});
  }
  addressWatcher_->setWorkloads(std::move(cgroups), wait);
}

std::vector<datapath::AddressEntry> Daemon::addressEntriesLocked() const {
  std::vector<datapath::AddressEntry> next;
  auto add = [&](const ms_addr& a, uint32_t identity, uint32_t flags, uint64_t netns) {
    datapath::AddressEntry e;
    e.key.prefixlen = 128;
    e.key.addr = a;
    e.value.identity = identity;
    e.value.flags = flags;
    e.value.netns_cookie = netns;
    next.push_back(e);
  };
  // Which addresses have an entry already (the first one wins): a hash set
  // of the 16 bytes, without an allocation per key (with 10k remote
  // endpoints, a set of strings was half of what a change cost).
  struct AddrHash {
    size_t operator()(const std::pair<uint64_t, uint64_t>& k) const {
      return std::hash<uint64_t>()(k.first * 0x9e3779b97f4a7c15ull ^ k.second);
    }
  };
  std::unordered_set<std::pair<uint64_t, uint64_t>, AddrHash> taken;
  auto keyOf = [](const ms_addr& a) {
    std::pair<uint64_t, uint64_t> k;
    std::memcpy(&k.first, a.a, 8);
    std::memcpy(&k.second, a.a + 8, 8);
    return k;
  };
  if (!addrSnapshot_) return next;
  taken.reserve(addrSnapshot_->host.size() + (agentSnap_ ? agentSnap_->addresses.size() : 0) + 64);
  for (const auto& a : addrSnapshot_->host) {
    if (taken.insert(keyOf(a)).second) add(a, MS_IDENTITY_HOST, MS_IPCACHE_F_HOST, hostNetnsCookie_);
  }
  for (const auto& n : addrSnapshot_->netns) {
    // Only a trusted netns names a workload (identity/address_watcher.h);
    // an address the host also has stays the host's.
    if (!n.trusted) continue;
    for (const auto& a : n.addrs) {
      if (taken.insert(keyOf(a)).second) add(a, n.identity, MS_IPCACHE_F_NETNS, n.cookie);
    }
  }
  // Subnet broadcast addresses, in the netns they are broadcasts of (the
  // kernel checks the netns): a datagram to one is not to a unicast peer.
  // Last: an address that is some netns's unicast address stays that.
  for (const auto& b : addrSnapshot_->hostBroadcasts) {
    if (taken.insert(keyOf(b)).second) add(b, MS_IDENTITY_MULTICAST, MS_IPCACHE_F_BROADCAST, hostNetnsCookie_);
  }
  for (const auto& n : addrSnapshot_->netns) {
    if (!n.trusted) continue;
    for (const auto& b : n.broadcasts) {
      if (taken.insert(keyOf(b)).second) add(b, MS_IDENTITY_MULTICAST, MS_IPCACHE_F_BROADCAST, n.cookie);
    }
  }
  // Cluster mode: the other nodes' addresses and their workloads' (an
  // address this node has itself stays its own).
  for (const auto& e : remoteAddressEntriesLocked()) {
    if (taken.insert(keyOf(e.key.addr)).second) next.push_back(e);
  }
  return next;
}

void Daemon::refreshAddressesLocked() {
  auto snapshot = addressWatcher_->snapshot();
  if (snapshot == addrSnapshot_) return;  // (cluster.cpp resets it when the other nodes' change)
  auto previous = std::exchange(addrSnapshot_, std::move(snapshot));
  auto next = addressEntriesLocked();
  auto same = [](const datapath::AddressEntry& x, const datapath::AddressEntry& y) {
    return std::memcmp(&x.key, &y.key, sizeof(x.key)) == 0 && std::memcmp(&x.value, &y.value, sizeof(x.value)) == 0;
  };
  if (next.size() == addresses_.size() && std::equal(next.begin(), next.end(), addresses_.begin(), same)) return;
  if (auto r = datapath_->setAddresses(next); !r) {
    spdlog::warn("datapath: {}", r.error().str());
    addrSnapshot_ = std::move(previous);  // tried again with the next snapshot or tick
    return;
  }
  spdlog::debug("identity: {} addresses of the host and workload netns in the ipcache", next.size());
  addresses_ = std::move(next);
}

}  // namespace microseg::daemon
