// Network namespaces of workloads (containers): which netns a workload's
// processes live in and which addresses that netns has.
//
// The datapath identifies a peer in another netns by address (ipcache,
// MS_IPCACHE_F_NETNS), so the daemon has to look inside each workload netns. It does so from a
// short-lived thread that setns()es into it: sockets keep the netns they
// were created in, so a NETLINK_ROUTE socket made there reports that netns's
// address changes for as long as it stays open.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "bpf/abi.h"
#include "common/fd.h"
#include "common/result.h"

namespace microseg::identity {

// The cookie of the calling thread's netns (SO_NETNS_COOKIE, Linux >= 5.14):
// what bpf_get_netns_cookie() returns for sockets there.
Result<uint64_t> currentNetnsCookie();

// Inode of /proc/<pid>/ns/net (identifies a netns while it exists); 0 if the
// process is gone.
uint64_t netnsInodeOf(pid_t pid);
uint64_t ownNetnsInode();

// Up to `max` pids from <cgroupDir>/cgroup.procs.
std::vector<pid_t> cgroupPids(const std::string& cgroupDir, size_t max);

struct NetnsView {
  uint64_t cookie = 0;
  std::vector<ms_addr> addrs;  // every interface address (IPv4 mapped), sorted, unique
  std::vector<ms_addr> broadcasts;  // interfaceBroadcasts() there
};

// /proc/<pid>/ns/net, opened (holding it keeps the netns alive).
Result<UniqueFd> openNetnsOf(pid_t pid);

// Looks into the netns `nsFd`. With `subscribe`, also returns a
// NETLINK_ROUTE socket of that netns subscribed to address changes
// (readable when they change).
Result<NetnsView> inspectNetns(int nsFd, UniqueFd* subscribe = nullptr);

// The same for the caller's own netns.
Result<NetnsView> inspectOwnNetns(UniqueFd* subscribe = nullptr);

// Every address of the calling thread's netns.
std::vector<ms_addr> interfaceAddrs();

// The subnet broadcast addresses of the calling thread's netns (IPv4,
// mapped, sorted, unique): a datagram to one reaches every local socket on
// its port, so the datapath must not take it for a unicast peer.
std::vector<ms_addr> interfaceBroadcasts();

// Drains a subscription socket; true if it reported anything.
bool drainSubscription(int fd);

}  // namespace microseg::identity
