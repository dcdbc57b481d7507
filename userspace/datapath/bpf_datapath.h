// Kernel datapath: loads the embedded BPF object (microseg.skel.h), keeps
// its maps filled and its programs attached to the managed cgroup root.
#pragma once

#include <memory>
#include <string>

#include "common/fd.h"
#include "datapath/datapath.h"

struct microseg_bpf;  // generated skeleton (microseg.skel.h)
struct bpf_link;
struct ring_buffer;

namespace microseg::datapath {

struct BpfOptions {
  std::string cgroupRoot;      // absolute path of the managed cgroup v2 dir
  std::string stateDir;        // bpffs dir for pins
  uint32_t mode = MS_MODE_MONITOR;
  bool logAllowed = false;
  uint64_t answerTtlNs = 30ull * 1000 * 1000 * 1000;
  uint32_t ringbufBytes = MS_RINGBUF_BYTES;
};

class BpfDatapath final : public Datapath {
 public:
  // probe -> open -> configure -> load. Nothing is attached yet.
  static Result<std::unique_ptr<BpfDatapath>> load(const BpfOptions& options);
  ~BpfDatapath() override;

  // Attach every program to the cgroup root. Call only after the first
  // applyGeneration(): programs never run against empty maps.
  Result<void> attach();
  // Detach, unpin and remove the state dir (clean shutdown).
  void detachAndCleanup();

  Result<void> applyGeneration(const Generation& gen) override;
  Result<void> upsertCgroups(const std::vector<CgroupEntry>& entries) override;
  Result<void> removeCgroups(const std::vector<uint64_t>& cgroupIds) override;
  Result<void> setIdentityMode(uint32_t identity, uint32_t mode,
                               const compiler::CompiledPolicy& policy) override;
  Result<void> setMode(uint32_t mode) override;
  uint32_t mode() const override { return config_.mode; }
  Result<void> setLocalAddrs(const std::vector<ms_addr>& addrs) override;
  Result<void> syncListeners(const std::vector<identity::Listener>& listeners,
                             const std::set<uint64_t>& cgroupsUnderRoot) override;
  Result<Counters> counters() const override;
  Result<int> drainEvents(const EventHandler& handler) override;
  int eventFd() const override;

  uint64_t generation() const { return config_.generation; }

 private:
  BpfDatapath() = default;
  Result<void> writeConfig();
  Result<void> pin();

  struct SkelDeleter { void operator()(::microseg_bpf* s) const; };
  struct LinkDeleter { void operator()(bpf_link* l) const; };
  struct RingDeleter { void operator()(ring_buffer* r) const; };

  BpfOptions options_;
  std::unique_ptr<::microseg_bpf, SkelDeleter> skel_;
  std::vector<std::unique_ptr<bpf_link, LinkDeleter>> links_;
  std::unique_ptr<ring_buffer, RingDeleter> ring_;
  UniqueFd cgroupFd_;
  ms_config config_{};
  // Inner maps per slot: [slot] -> fds. The active slot's fds are edited by
  // churn updates; the inactive slot is rebuilt whole by applyGeneration.
  struct SlotMaps {
    UniqueFd cgroups, identities, policy;
  };
  SlotMaps slots_[2];
  std::vector<ms_addr> localAddrs_;
  std::set<std::string> staleBinds_;  // key bytes + cookie missing from the last dump
  const EventHandler* handler_ = nullptr;
  std::vector<std::string> pins_;
  bool stateDirCreated_ = false;
};


}  // namespace microseg::datapath
