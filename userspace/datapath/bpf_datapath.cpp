#include "datapath/bpf_datapath.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <algorithm>
#include <cstdarg>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <optional>

#include "common/cgroup.h"
#include "common/names.h"
#include "datapath/bpf_object.h"
#include "datapath/map_writes.h"
#include "datapath/pin_dir.h"
#include "datapath/probe.h"
#include "datapath/slot_state.h"
#include "microseg.skel.h"

#ifndef BPF_FS_MAGIC
#define BPF_FS_MAGIC 0xcafe4a11
#endif

namespace microseg::datapath {
namespace {

int libbpfPrint(enum libbpf_print_level level, const char* fmt, va_list args) {
  // The verifier log comes as one message of many KiB: keep all of it.
  va_list copy;
  va_copy(copy, args);
  const int n = vsnprintf(nullptr, 0, fmt, copy);
  va_end(copy);
  std::string msg(n > 0 ? static_cast<size_t>(n) : 0, '\0');
  if (n > 0) vsnprintf(msg.data(), msg.size() + 1, fmt, args);
  while (!msg.empty() && msg.back() == '\n') msg.pop_back();
  if (level == LIBBPF_WARN) {
    spdlog::warn("libbpf: {}", msg);
  } else {
    spdlog::debug("libbpf: {}", msg);
  }
  return 0;
}

Result<void> ensureBpffs(const std::string& dir) {
  // The state dir must be on bpffs; mount /sys/fs/bpf if it is not.
  struct statfs st {};
  const std::string base = "/sys/fs/bpf";
  if (statfs(base.c_str(), &st) != 0 || st.f_type != BPF_FS_MAGIC) {
    ::mkdir(base.c_str(), 0700);
    if (::mount("bpf", base.c_str(), "bpf", 0, "mode=0700") != 0) {
      return sysError("mount bpffs", base);
    }
    spdlog::info("datapath: mounted bpffs at {}", base);
  }
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return Error{"create state dir", dir, ec.value(), {}};
  if (statfs(dir.c_str(), &st) != 0) return sysError("statfs", dir);
  if (st.f_type != BPF_FS_MAGIC) {
    return Error{"use state dir", dir, 0, "not on a bpf filesystem"};
  }
  return {};
}

// The kernel features of probe.h, each missing one logged on a line of its own.
Result<void> checkKernel() {
  const ProbeReport report = probeKernel();
  if (report.missing.empty()) {
    std::string names;
    for (const auto& f : kernelFeatures()) names += (names.empty() ? "" : ", ") + f.name;
    spdlog::info("datapath: kernel probe: all {} features present: {}", report.checked, names);
    return {};
  }
  for (const auto* f : report.missing) spdlog::error("datapath: {}", missingFeatureLine(*f));
  return kernelMissingError(report);
}

}  // namespace

void BpfDatapath::SkelDeleter::operator()(::microseg_bpf* s) const { microseg_bpf__destroy(s); }
void BpfDatapath::LinkDeleter::operator()(bpf_link* l) const { bpf_link__destroy(l); }
void BpfDatapath::RingDeleter::operator()(ring_buffer* r) const { ring_buffer__free(r); }

Result<std::unique_ptr<BpfDatapath>> BpfDatapath::load(const BpfOptions& options) {
  libbpf_set_print(libbpfPrint);
  std::unique_ptr<BpfDatapath> dp(new BpfDatapath());
  dp->options_ = options;

  dp->cgroupFd_ = UniqueFd(::open(options.cgroupRoot.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!dp->cgroupFd_) return sysError("open cgroup root", options.cgroupRoot);
  auto level = cgroupLevel(options.cgroupRoot);
  if (!level) return level.error();
  if (*level == 0) {
    return Error{"use cgroup root", options.cgroupRoot, 0,
                 "refusing to manage the root of the cgroup hierarchy; point --cgroup-root at a "
                 "subtree"};
  }
  auto rootId = cgroupId(options.cgroupRoot);
  if (!rootId) return rootId.error();

  // Before anything is loaded or attached: a kernel without a feature
  // gets nothing half-enforced.
  if (auto r = checkKernel(); !r) return r.error();
  if (auto r = ensureBpffs(options.stateDir); !r) return r.error();
  dp->pinDir_ = options.stateDir + "/abi-" + std::to_string(MS_ABI_VERSION);

  ::microseg_bpf* skel = microseg_bpf__open();
  if (!skel) return libbpfError("open BPF object", "microseg", -errno);
  dp->skel_.reset(skel);
  // What to pin, adopt, attach and how to make a slot's maps: as the
  // object declares it (bpf_object.h).
  const PinnedSet want = dp->pinnedSet();
  for (auto [outer, spec] : {std::pair{skel->maps.ms_cgroups, &dp->specs_.cgroups},
                             std::pair{skel->maps.ms_policy, &dp->specs_.policy},
                             std::pair{skel->maps.ms_ranges, &dp->specs_.ranges},
                             std::pair{skel->maps.ms_ipcache, &dp->specs_.ipcache}}) {
    auto made = innerSpecOf(outer);
    if (!made) return made.error();
    *spec = std::move(made.value());
  }

  std::optional<ms_config> pinned;
  std::error_code ec;
  if (std::filesystem::exists(dp->pinDir_, ec)) {
    pinned = adoptableConfig(dp->pinDir_, want, *rootId);
    if (pinned) {
      dp->adopted_ = true;
    } else {
      // Incomplete, or for another cgroup root: retire it after our attach.
      std::string aside = options.stateDir + "/retired-" + std::to_string(::getpid());
      if (::rename(dp->pinDir_.c_str(), aside.c_str()) != 0) {
        return sysError("move aside incompatible pinned state", dp->pinDir_);
      }
      spdlog::warn("datapath: pinned state in {} is incomplete or for another cgroup root; "
                   "replacing it (new programs attach before the old ones detach)",
                   dp->pinDir_);
    }
  }
  for (const auto& e : std::filesystem::directory_iterator(options.stateDir, ec)) {
    if (e.path().string() != dp->pinDir_) dp->legacyDirs_.push_back(e.path().string());
  }

  skel->rodata->ms_root_level = *level;
  uint32_t ringBytes = options.ringbufBytes;
  if (dp->adopted_) {
    // The adopted ring keeps its size (an earlier version's default may
    // differ): the programs' wakeup threshold must be a quarter of it.
    if (auto size = pinnedMapSize(dp->pinDir_ + "/" + bpf_map__name(skel->maps.ms_events)); size) ringBytes = *size;
  }
  skel->rodata->ms_ringbuf_bytes = ringBytes;
  if (int rc = bpf_map__set_max_entries(skel->maps.ms_events, ringBytes); rc != 0) {
    return libbpfError("size ring buffer", "ms_events", rc);
  }
  if (dp->adopted_) {
    for (bpf_map* m : pinnedMaps(skel->obj)) {
      const std::string path = dp->pinDir_ + "/" + bpf_map__name(m);
      UniqueFd fd(bpf_obj_get(path.c_str()));
      if (!fd) return libbpfError("open pinned map", path, -errno);
      if (int rc = bpf_map__reuse_fd(m, fd.get()); rc != 0) return libbpfError("reuse pinned map", path, rc);
    }
  }
  if (int rc = microseg_bpf__load(skel); rc != 0) {
    return Error{"load BPF programs", "microseg", rc < 0 ? -rc : errno,
                 "kernel needs cgroup v2, BTF and kfuncs (bpf_rdonly_cast: Linux >= 6.2); run with "
                 "--log-level debug for the verifier log"};
  }

  if (dp->adopted_) {
    dp->config_ = *pinned;
    if (auto r = dp->adoptSlots(); !r) return r.error();
    spdlog::info("datapath: adopted pinned state in {} (generation {}, mode {})", dp->pinDir_,
                 pinned->generation, modeName(pinned->mode));
  } else {
    dp->config_.active_slot = 0;
    dp->config_.mode = options.mode;
    dp->config_.generation = 0;
  }
  // Settings (not state) always come from this run's options.
  dp->config_.flags = options.logAllowed ? MS_CONFIG_F_LOG_ALLOWED : 0;
  dp->config_.answer_ttl_ns = options.answerTtlNs;
  dp->config_.fqdn_min_ttl_s = options.fqdnMinTtlSeconds;
  dp->config_.fqdn_max_ttl_s = options.fqdnMaxTtlSeconds;
  dp->config_.abi_version = MS_ABI_VERSION;
  dp->config_.root_cgroup_id = *rootId;
  dp->config_.host_netns_cookie = options.hostNetnsCookie;
  dp->config_.tai_offset_ns = taiOffsetNs();
  if (auto r = dp->writeConfig(); !r) return r.error();
  if (auto r = dp->writeFqdnResolvers(options.fqdnResolvers); !r) return r.error();

  dp->ring_.reset(ring_buffer__new(
      bpf_map__fd(skel->maps.ms_events),
      [](void* ctx, void* data, size_t size) -> int {
        auto* self = static_cast<BpfDatapath*>(ctx);
        if (size < sizeof(ms_event) || self->handler_ == nullptr) return 0;
        ms_event e;
        std::memcpy(&e, data, sizeof(e));
        (*self->handler_)(e);
        return 0;
      },
      dp.get(), nullptr));
  if (!dp->ring_) return libbpfError("open ring buffer", "ms_events", -errno);
  return dp;
}

Result<void> BpfDatapath::adoptSlots() {
  const uint32_t slot = config_.active_slot & 1;
  struct {
    bpf_map* outer;
    UniqueFd* inner;
  } maps[] = {{skel_->maps.ms_cgroups, &slots_[slot].cgroups},
              {skel_->maps.ms_policy, &slots_[slot].policy},
              {skel_->maps.ms_ranges, &slots_[slot].ranges},
              {skel_->maps.ms_ipcache, &slots_[slot].ipcache}};
  for (auto& m : maps) {
    uint32_t id = 0;
    if (bpf_map_lookup_elem(bpf_map__fd(m.outer), &slot, &id) != 0) {
      return sysError("read active slot of", bpf_map__name(m.outer));
    }
    *m.inner = UniqueFd(bpf_map_get_fd_by_id(id));
    if (!*m.inner) return sysError("open inner map of", bpf_map__name(m.outer));
  }
  // Which of the adopted ipcache entries are run-time addresses is not
  // recorded; the first generation this run applies rewrites them all.
  // The other nodes' listeners are kept as they are until the cluster's
  // view says otherwise: known now, so only differences are written.
  const int rl = bpf_map__fd(skel_->maps.ms_remote_listeners);
  ms_remote_listener_key key{}, next{};
  bool first = true;
  while (bpf_map_get_next_key(rl, first ? nullptr : &key, &next) == 0) {
    first = false;
    key = next;
    ms_remote_listener_value v{};
    if (bpf_map_lookup_elem(rl, &key, &v) == 0) remoteListeners_.emplace_back(key, v);
  }
  normalize(remoteListeners_);
  return {};
}

std::vector<uint64_t> BpfDatapath::activeCgroupIds() const {
  std::vector<uint64_t> out;
  const auto& active = slots_[config_.active_slot & 1];
  if (!active.cgroups) return out;
  uint64_t key = 0, next = 0;
  bool first = true;
  while (bpf_map_get_next_key(active.cgroups.get(), first ? nullptr : &key, &next) == 0) {
    first = false;
    key = next;
    out.push_back(key);
  }
  return out;
}

BpfDatapath::~BpfDatapath() = default;

Result<void> BpfDatapath::writeConfig() {
  uint32_t zero = 0;
  return updateElem(bpf_map__fd(skel_->maps.ms_config), "ms_config", &zero, &config_);
}

Result<SlotMaps> BpfDatapath::freshSlot(const SlotState& want, const compiler::CompiledPolicy* policy) {
  SlotMaps m;
  for (auto [spec, fd] : {std::pair{&specs_.cgroups, &m.cgroups}, std::pair{&specs_.policy, &m.policy},
                          std::pair{&specs_.ranges, &m.ranges},
                          std::pair{&specs_.ipcache, &m.ipcache}}) {
    auto made = createInner(*spec);
    if (!made) return made.error();
    *fd = std::move(made.value());
  }
  if (auto r = writeAll(m.cgroups.get(), specs_.cgroups, want.cgroups, lastWrites_); !r) return r.error();
  if (auto r = writeExactDifference(m.policy.get(), specs_.policy, {}, exactBlock(policy), lastWrites_); !r) {
    return r.error();
  }
  if (auto r = writeAll(m.ranges.get(), specs_.ranges, want.ranges, lastWrites_); !r) return r.error();
  if (auto r = writeAll(m.ipcache.get(), specs_.ipcache, want.ipcache, lastWrites_); !r) return r.error();
  return m;
}

Result<void> BpfDatapath::installSlot(uint32_t slot, SlotMaps maps) {
  const std::pair<bpf_map*, int> outer[] = {{skel_->maps.ms_cgroups, maps.cgroups.get()},
                                            {skel_->maps.ms_policy, maps.policy.get()},
                                            {skel_->maps.ms_ranges, maps.ranges.get()},
                                            {skel_->maps.ms_ipcache, maps.ipcache.get()}};
  for (const auto& [map, fd] : outer) {
    if (auto r = updateElem(bpf_map__fd(map), bpf_map__name(map), &slot, &fd); !r) return r;
  }
  slots_[slot] = std::move(maps);
  return {};
}

Result<void> BpfDatapath::writeSlotChanges(const SlotMaps& m, const SlotState& from, const SlotState& to,
                                           const compiler::CompiledPolicy* was, const compiler::CompiledPolicy* now,
                                           const Diff<ms_policy_exact_key, ms_policy_value>* exact) {
  if (auto r = writeDifference(m.cgroups.get(), specs_.cgroups, from.cgroups, to.cgroups, lastWrites_); !r) return r;
  if (exact != nullptr) {
    if (auto r = writeDiff(m.policy.get(), specs_.policy, *exact, lastWrites_); !r) return r;
  } else if (auto r = writeExactDifference(m.policy.get(), specs_.policy, exactBlock(was), exactBlock(now),
                                          lastWrites_);
             !r) {
    return r;
  }
  if (auto r = writeDifference(m.ranges.get(), specs_.ranges, from.ranges, to.ranges, lastWrites_); !r) return r;
  return writeDifference(m.ipcache.get(), specs_.ipcache, from.ipcache, to.ipcache, lastWrites_);
}

Result<void> BpfDatapath::flip(uint32_t slot, uint64_t generation) {
  ms_config next = config_;
  next.active_slot = slot;
  next.generation = generation;
  uint32_t zero = 0;
  if (auto r = updateElem(bpf_map__fd(skel_->maps.ms_config), "ms_config", &zero, &next); !r) return r;
  config_ = next;
  return {};
}

Result<void> BpfDatapath::applyGeneration(const Generation& gen) {
  // While synced, both slots hold state_ and the exact-port entries of the
  // policy stamped mirrored_ (none if 0), which the caller still has
  // (gen.inForce): those are not copied here (2 MB at 100k rules). Without
  // it, both slots are rebuilt.
  const compiler::CompiledPolicy* was = nullptr;
  bool known = synced_;
  if (known && mirrored_ != 0) {
    if (gen.inForce != nullptr && gen.inForce->stamp == mirrored_) {
      was = gen.inForce;
    } else {
      known = false;
    }
  }
  // A policy compiled on the one in force changed the entries of the
  // subjects it recomputed only: their difference is found there, not in
  // a pass over every entry (100k+).
  const bool patch = known && was != nullptr && gen.policy != nullptr && gen.policy->base == was->stamp;
  SlotState next = slotStateOf(gen);
  const uint32_t inactive = config_.active_slot ^ 1u;
  lastWrites_ = 0;
  synced_ = known;
  mirrored_ = 0;  // until this generation is in force
  // The same difference goes into the inactive slot, then, after the flip,
  // the other. It is walked, not made (it can be every entry), but for the
  // recomputed subjects' exact-port entries, found by exactPatch() (a few).
  Diff<ms_policy_exact_key, ms_policy_value> exactDiff;
  if (patch) exactPatch(*was, *gen.policy, exactDiff);
  const auto* exactChanges = patch ? &exactDiff : nullptr;
  if (synced_) {
    if (auto r = writeSlotChanges(slots_[inactive], state_, next, was, gen.policy, exactChanges); !r) {
      synced_ = false;  // the inactive slot is half-written: rebuild next time
      return r;
    }
  } else {
    // First generation of this run (or after a failed write): whole new
    // maps for the inactive slot.
    auto fresh = freshSlot(next, gen.policy);
    if (!fresh) return fresh.error();
    if (auto r = installSlot(inactive, std::move(fresh.value())); !r) return r;
  }
  if (auto r = writeFqdnNames(gen.fqdnNames); !r) {
    synced_ = false;
    return r;
  }
  if (auto r = flip(inactive, gen.number); !r) {
    synced_ = false;
    return r;
  }
  const uint32_t other = inactive ^ 1u;
  Result<void> level;
  if (synced_) {
    level = writeSlotChanges(slots_[other], state_, next, was, gen.policy, exactChanges);
  } else if (auto fresh = freshSlot(next, gen.policy); fresh) {
    level = installSlot(other, std::move(fresh.value()));
  } else {
    level = fresh.error();
  }
  // The generation is in force either way; an unlevelled slot is rebuilt
  // whole by the next generation.
  synced_ = level.ok();
  if (!level) spdlog::warn("datapath: {} (the next generation rebuilds the inactive slot)", level.error().str());
  state_ = std::move(next);
  compiled_ = compiledRanges(gen.policy);
  mirrored_ = gen.policy != nullptr ? gen.policy->stamp : 0;
  return {};
}

// An edit between generations goes to the active slot and, while both hold
// the same state, to the inactive one too.
template <typename K, typename V>
Result<void> BpfDatapath::editBoth(UniqueFd SlotMaps::*map, const InnerSpec& spec, Entries<K, V>& current,
                                   const Entries<K, V>& changes, const std::vector<K>& removes) {
  Diff<K, V> d;
  d.upserts = changes;
  d.removes = removes;
  size_t writes = 0;
  const uint32_t active = config_.active_slot & 1;
  if (!(slots_[active].*map)) return Error{"update", spec.name, 0, "no generation applied"};
  if (auto r = writeDiff((slots_[active].*map).get(), spec, d, writes); !r) {
    synced_ = false;
    return r;
  }
  if (synced_) {
    if (auto r = writeDiff((slots_[active ^ 1u].*map).get(), spec, d, writes); !r) {
      synced_ = false;
      spdlog::warn("datapath: {} (the next generation rebuilds the inactive slot)", r.error().str());
    }
  }
  patch(current, changes, removes);
  return {};
}

Result<void> BpfDatapath::upsertCgroups(const std::vector<CgroupEntry>& entries) {
  Entries<uint64_t, ms_cgroup_value> changes;
  for (const auto& c : entries) changes.emplace_back(c.cgroupId, cgroupValue(c.identity, c.flags, state_.identities));
  return editBoth(&SlotMaps::cgroups, specs_.cgroups, state_.cgroups, changes, {});
}

Result<void> BpfDatapath::removeCgroups(const std::vector<uint64_t>& cgroupIds) {
  return editBoth(&SlotMaps::cgroups, specs_.cgroups, state_.cgroups, {}, cgroupIds);
}

Result<void> BpfDatapath::setIdentityMode(uint32_t identity, uint32_t mode,
                                          const compiler::CompiledPolicy& policy) {
  auto it = std::lower_bound(state_.identities.begin(), state_.identities.end(), identity,
                             [](const auto& e, uint32_t id) { return keyLess(e.first, id); });
  if (policy.identity(identity) == nullptr || it == state_.identities.end() || it->first != identity) {
    return Error{"set identity mode", "identity " + std::to_string(identity), ENOENT, {}};
  }
  const uint32_t previous = it->second.mode;
  it->second.mode = mode;
  // The kernel reads the mode from every cgroup entry of the identity.
  Entries<uint64_t, ms_cgroup_value> changes;
  for (const auto& [id, v] : state_.cgroups) {
    if (v.identity != identity) continue;
    ms_cgroup_value nv = v;
    nv.mode = static_cast<uint8_t>(mode);
    changes.emplace_back(id, nv);
  }
  auto r = editBoth(&SlotMaps::cgroups, specs_.cgroups, state_.cgroups, changes, {});
  if (!r) it->second.mode = previous;
  return r;
}

Result<void> BpfDatapath::setMode(uint32_t mode) {
  ms_config next = config_;
  next.mode = mode;
  uint32_t zero = 0;
  if (auto r = updateElem(bpf_map__fd(skel_->maps.ms_config), "ms_config", &zero, &next); !r) {
    return r;
  }
  config_ = next;
  return {};
}

Result<void> BpfDatapath::setAddresses(const std::vector<AddressEntry>& addresses) {
  // The ipcache is the compiled ranges with the addresses over them.
  Entries<ms_ipcache_key, ms_ipcache_value> want = compiled_;
  for (const auto& a : addresses) want.emplace_back(a.key, a.value);
  normalize(want);
  const auto d = diff(state_.ipcache, want);
  return editBoth(&SlotMaps::ipcache, specs_.ipcache, state_.ipcache, d.upserts, d.removes);
}

Result<void> BpfDatapath::setRemoteListeners(const std::vector<RemoteListenerEntry>& listeners) {
  Entries<ms_remote_listener_key, ms_remote_listener_value> want;
  want.reserve(listeners.size());
  for (const auto& l : listeners) want.emplace_back(l.key, l.value);
  normalize(want);
  const auto d = diff(remoteListeners_, want);
  const int fd = bpf_map__fd(skel_->maps.ms_remote_listeners);
  // Removals first: a full map still takes the new entries.
  for (const auto& k : d.removes) {
    if (bpf_map_delete_elem(fd, &k) != 0 && errno != ENOENT) return sysError("delete from map", "ms_remote_listeners");
  }
  for (const auto& [k, v] : d.upserts) {
    if (auto r = updateElem(fd, "ms_remote_listeners", &k, &v); !r) return r;
  }
  remoteListeners_ = std::move(want);
  return {};
}

}  // namespace microseg::datapath
