// The addresses that name something on this host: those of the host's own
// network namespace (identity `host`) and those of the workloads' own network
// namespaces (containers: the workload's identity). A thread of its own
// keeps them current, so that reading a namespace with many addresses, or a
// storm of address changes, never holds up the daemon's main loop (where new
// cgroups are classified).
//
// Which namespaces may give an address to a workload (README "Workload
// network namespaces"): only one owned by the daemon's own user namespace.
// Any unprivileged process can make a network namespace of its own
// (`unshare -Urn`, owned by a new user namespace) and put any address in it:
// such a namespace is listed as untrusted and none of its addresses is
// published. A trusted namespace publishes at most kMaxNetnsAddresses
// addresses (the first in address order); the rest are counted as dropped.
#pragma once

#include <sys/types.h>

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "bpf/abi.h"
#include "common/fd.h"
#include "common/result.h"

namespace microseg::identity {

inline constexpr size_t kMaxNetnsAddresses = 64;

class AddressWatcher {
 public:
  struct Options {
    uint64_t hostNetnsInode = 0;  // the daemon's netns: its processes there are not "in a netns of their own"
    // Called on the watcher's thread each time a new snapshot is published.
    std::function<void()> onChange;
    int rediscoverMs = 1000;  // how often the workloads' processes are looked at again
    int minRereadMs = 200;    // a namespace reporting changes is read at most this often
  };
  // A cgroup of a workload, whose processes may live in a netns of their own.
  struct WorkloadCgroup {
    std::string dir;  // absolute cgroupfs path
    std::string workload;
    uint32_t identity = 0;
    friend bool operator==(const WorkloadCgroup&, const WorkloadCgroup&) = default;
  };
  struct Netns {
    uint64_t inode = 0;
    uint64_t cookie = 0;
    std::string workload;                 // whose addresses they are (the first by name if several share it)
    uint32_t identity = 0;
    std::vector<std::string> workloads;   // every workload with processes in it
    bool trusted = false;
    std::string distrust;                 // why not, if not
    std::vector<ms_addr> addrs;           // published: sorted, unique, at most kMaxNetnsAddresses
    size_t dropped = 0;                   // addresses over the cap
    std::vector<ms_addr> broadcasts;      // its subnet broadcast addresses (trusted only)
  };
  struct Snapshot {
    uint64_t version = 0;
    std::vector<ms_addr> host;   // every address of the host netns
    std::vector<ms_addr> hostBroadcasts;  // its subnet broadcast addresses (netns.h: interfaceBroadcasts())
    std::vector<Netns> netns;    // by inode
  };

  // Reads the host netns's addresses before it returns (the first snapshot).
  static Result<std::unique_ptr<AddressWatcher>> start(Options options);
  ~AddressWatcher();
  AddressWatcher(const AddressWatcher&) = delete;
  AddressWatcher& operator=(const AddressWatcher&) = delete;

  // The workload cgroups to look for network namespaces in (after each
  // classification). With `wait`, returns once a snapshot made with them is
  // published, or after `waitMs`.
  void setWorkloads(std::vector<WorkloadCgroup> cgroups, bool wait = false, int waitMs = 3000);
  std::shared_ptr<const Snapshot> snapshot() const;

 private:
  explicit AddressWatcher(Options options);
  void run();
  struct State;
  Options options_;
  std::unique_ptr<State> state_;
  UniqueFd wakeFd_;
  std::thread thread_;
  mutable std::mutex mu_;  // guards what the callers share with the thread (below)
  std::condition_variable published_;
  std::vector<WorkloadCgroup> workloads_;
  uint64_t workloadsSeq_ = 0;     // bumped by setWorkloads
  uint64_t workloadsDone_ = 0;    // the last seq a published snapshot reflects
  std::shared_ptr<const Snapshot> snapshot_;
  bool stop_ = false;
};

// Is the network namespace `nsFd` owned by the user namespace whose inode
// is `usernsInode`? Error if the kernel cannot tell (NS_GET_USERNS).
Result<bool> netnsOwnedBy(int nsFd, uint64_t usernsInode);
// Inode of the calling thread's user namespace (0 if unknown).
uint64_t ownUsernsInode();

}  // namespace microseg::identity
