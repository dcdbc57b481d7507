#include "datapath/bpf_datapath.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <cstdarg>
#include <cstring>
#include <filesystem>

#include "common/cgroup.h"
#include "microseg.skel.h"

#ifndef BPF_FS_MAGIC
#define BPF_FS_MAGIC 0xcafe4a11
#endif

namespace microseg::datapath {
namespace {

int libbpfPrint(enum libbpf_print_level level, const char* fmt, va_list args) {
  char buf[1024];
  int n = vsnprintf(buf, sizeof(buf), fmt, args);
  std::string msg(buf, n > 0 ? std::min<size_t>(n, sizeof(buf) - 1) : 0);
  while (!msg.empty() && msg.back() == '\n') msg.pop_back();
  if (level == LIBBPF_WARN) {
    spdlog::warn("libbpf: {}", msg);
  } else {
    spdlog::debug("libbpf: {}", msg);
  }
  return 0;
}

// libbpf returns -errno (or sets errno); normalise once here.
Error libbpfError(std::string op, std::string object, long rc) {
  int e = rc < 0 ? static_cast<int>(-rc) : errno;
  return Error{std::move(op), std::move(object), e, {}};
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

struct InnerSpec {
  bpf_map_type type;
  const char* name;
  uint32_t keySize, valueSize, maxEntries;
};

constexpr InnerSpec kCgroupsSpec{BPF_MAP_TYPE_HASH, "ms_cgroups_in", sizeof(uint64_t),
                                 sizeof(ms_cgroup_value), MS_MAX_CGROUPS};
constexpr InnerSpec kIdentitiesSpec{BPF_MAP_TYPE_HASH, "ms_ident_in", sizeof(uint32_t),
                                    sizeof(ms_identity_value), MS_MAX_IDENTITIES};
constexpr InnerSpec kPolicySpec{BPF_MAP_TYPE_LPM_TRIE, "ms_policy_in", sizeof(ms_policy_key),
                                sizeof(ms_policy_value), MS_MAX_POLICY_ENTRIES};

Result<UniqueFd> createInner(const InnerSpec& spec) {
  LIBBPF_OPTS(bpf_map_create_opts, opts, .map_flags = BPF_F_NO_PREALLOC);
  int fd = bpf_map_create(spec.type, spec.name, spec.keySize, spec.valueSize, spec.maxEntries,
                          &opts);
  if (fd < 0) return libbpfError("create map", spec.name, fd);
  return UniqueFd(fd);
}

Result<void> updateElem(int fd, const char* name, const void* key, const void* value,
                        uint64_t flags = BPF_ANY) {
  int rc = bpf_map_update_elem(fd, key, value, flags);
  if (rc != 0) return libbpfError("update of map", name, rc);
  return {};
}

}  // namespace

void BpfDatapath::SkelDeleter::operator()(::microseg_bpf* s) const { microseg_bpf__destroy(s); }
void BpfDatapath::LinkDeleter::operator()(bpf_link* l) const { bpf_link__destroy(l); }
void BpfDatapath::RingDeleter::operator()(ring_buffer* r) const { ring_buffer__free(r); }

Result<std::unique_ptr<BpfDatapath>> BpfDatapath::load(const BpfOptions& options) {
  libbpf_set_print(libbpfPrint);
  std::unique_ptr<BpfDatapath> dp(new BpfDatapath());
  dp->options_ = options;

  int cfd = ::open(options.cgroupRoot.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (cfd < 0) return sysError("open cgroup root", options.cgroupRoot);
  dp->cgroupFd_.reset(cfd);
  auto level = cgroupLevel(options.cgroupRoot);
  if (!level) return level.error();
  if (*level == 0) {
    return Error{"use cgroup root", options.cgroupRoot, 0,
                 "refusing to manage the root of the cgroup hierarchy; point --cgroup-root at a "
                 "subtree"};
  }

  if (auto r = ensureBpffs(options.stateDir); !r) return r.error();
  dp->stateDirCreated_ = true;

  ::microseg_bpf* skel = microseg_bpf__open();
  if (!skel) return libbpfError("open BPF object", "microseg", -errno);
  dp->skel_.reset(skel);
  skel->rodata->ms_root_level = *level;
  skel->rodata->ms_ringbuf_bytes = options.ringbufBytes;
  if (int rc = bpf_map__set_max_entries(skel->maps.ms_events, options.ringbufBytes); rc != 0) {
    return libbpfError("size ring buffer", "ms_events", rc);
  }
  if (int rc = microseg_bpf__load(skel); rc != 0) {
    return Error{"load BPF programs", "microseg", rc < 0 ? -rc : errno,
                 "kernel needs cgroup v2, BTF, sk_storage and ring buffers (>= 5.8); run with "
                 "--log-level debug for the verifier log"};
  }

  dp->config_.active_slot = 0;
  dp->config_.mode = options.mode;
  dp->config_.generation = 0;
  dp->config_.flags = options.logAllowed ? MS_CONFIG_F_LOG_ALLOWED : 0;
  dp->config_.answer_ttl_ns = options.answerTtlNs;
  if (auto r = dp->writeConfig(); !r) return r.error();

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

BpfDatapath::~BpfDatapath() = default;

Result<void> BpfDatapath::writeConfig() {
  uint32_t zero = 0;
  return updateElem(bpf_map__fd(skel_->maps.ms_config), "ms_config", &zero, &config_);
}

Result<void> BpfDatapath::applyGeneration(const Generation& gen) {
  const uint32_t slot = config_.active_slot ^ 1u;
  SlotMaps next;
  auto cg = createInner(kCgroupsSpec);
  if (!cg) return cg.error();
  auto id = createInner(kIdentitiesSpec);
  if (!id) return id.error();
  auto po = createInner(kPolicySpec);
  if (!po) return po.error();
  next.cgroups = std::move(cg.value());
  next.identities = std::move(id.value());
  next.policy = std::move(po.value());

  for (const auto& c : gen.cgroups) {
    ms_cgroup_value v{};
    v.identity = c.identity;
    uint64_t key = c.cgroupId;
    if (auto r = updateElem(next.cgroups.get(), kCgroupsSpec.name, &key, &v); !r) return r;
  }
  if (gen.policy != nullptr) {
    for (const auto& [ident, value] : gen.policy->identities) {
      ms_identity_value v = value;
      if (auto it = gen.modeOverrides.find(ident); it != gen.modeOverrides.end()) v.mode = it->second;
      uint32_t key = ident;
      if (auto r = updateElem(next.identities.get(), kIdentitiesSpec.name, &key, &v); !r) return r;
    }
    for (const auto& e : gen.policy->entries) {
      if (auto r = updateElem(next.policy.get(), kPolicySpec.name, &e.key, &e.value); !r) {
        Error err = r.error();
        err.detail = "entry " + std::to_string(&e - gen.policy->entries.data()) + " of " +
                     std::to_string(gen.policy->entries.size()) + ", capacity " +
                     std::to_string(kPolicySpec.maxEntries);
        return err;
      }
    }
  }

  // Install the complete inner maps in the inactive slot, then flip.
  int cgFd = next.cgroups.get(), idFd = next.identities.get(), poFd = next.policy.get();
  if (auto r = updateElem(bpf_map__fd(skel_->maps.ms_cgroups), "ms_cgroups", &slot, &cgFd); !r)
    return r;
  if (auto r = updateElem(bpf_map__fd(skel_->maps.ms_identities), "ms_identities", &slot, &idFd);
      !r)
    return r;
  if (auto r = updateElem(bpf_map__fd(skel_->maps.ms_policy), "ms_policy", &slot, &poFd); !r)
    return r;

  ms_config next_cfg = config_;
  next_cfg.active_slot = slot;
  next_cfg.generation = gen.number;
  uint32_t zero = 0;
  if (auto r = updateElem(bpf_map__fd(skel_->maps.ms_config), "ms_config", &zero, &next_cfg); !r)
    return r;
  config_ = next_cfg;
  slots_[slot] = std::move(next);
  return {};
}

Result<void> BpfDatapath::upsertCgroups(const std::vector<CgroupEntry>& entries) {
  const auto& active = slots_[config_.active_slot & 1];
  if (!active.cgroups) return Error{"update cgroups", "ms_cgroups", 0, "no generation applied"};
  for (const auto& c : entries) {
    ms_cgroup_value v{};
    v.identity = c.identity;
    uint64_t key = c.cgroupId;
    if (auto r = updateElem(active.cgroups.get(), kCgroupsSpec.name, &key, &v); !r) return r;
  }
  return {};
}

Result<void> BpfDatapath::removeCgroups(const std::vector<uint64_t>& cgroupIds) {
  const auto& active = slots_[config_.active_slot & 1];
  if (!active.cgroups) return {};
  for (uint64_t id : cgroupIds) {
    if (bpf_map_delete_elem(active.cgroups.get(), &id) != 0 && errno != ENOENT) {
      return sysError("delete from map", kCgroupsSpec.name);
    }
  }
  return {};
}

Result<void> BpfDatapath::setIdentityMode(uint32_t identity, uint32_t mode,
                                          const compiler::CompiledPolicy& policy) {
  const auto& active = slots_[config_.active_slot & 1];
  auto it = policy.identities.find(identity);
  if (it == policy.identities.end() || !active.identities) {
    return Error{"set identity mode", "identity " + std::to_string(identity), ENOENT, {}};
  }
  ms_identity_value v = it->second;
  v.mode = mode;
  return updateElem(active.identities.get(), kIdentitiesSpec.name, &identity, &v);
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

Result<void> BpfDatapath::setLocalAddrs(const std::vector<ms_addr>& addrs) {
  int fd = bpf_map__fd(skel_->maps.ms_local_addrs);
  uint8_t one = 1;
  for (const auto& a : addrs) {
    if (auto r = updateElem(fd, "ms_local_addrs", &a, &one); !r) return r;
  }
  for (const auto& old : localAddrs_) {
    bool keep = false;
    for (const auto& a : addrs) keep |= std::memcmp(&a, &old, sizeof(a)) == 0;
    if (!keep) bpf_map_delete_elem(fd, &old);
  }
  localAddrs_ = addrs;
  return {};
}

Result<void> BpfDatapath::syncListeners(const std::vector<identity::Listener>& listeners,
                                        const std::set<uint64_t>& cgroupsUnderRoot) {
  const int fd = bpf_map__fd(skel_->maps.ms_binds);
  auto id = [](const ms_bind_key& k, uint64_t cookie) {
    std::string s(reinterpret_cast<const char*>(&k), sizeof(k));
    s.append(reinterpret_cast<const char*>(&cookie), sizeof(cookie));
    return s;
  };
  std::set<std::string> live;
  for (const auto& l : listeners) {
    live.insert(id(l.key, l.cookie));
    if (!cgroupsUnderRoot.count(l.cgroupId)) continue;
    ms_bind_value v{};
    v.cookie = l.cookie;
    v.cgroup_id = l.cgroupId;
    // NOEXIST: an entry recorded by post_bind is at least as fresh.
    if (bpf_map_update_elem(fd, &l.key, &v, BPF_NOEXIST) != 0 && errno != EEXIST) {
      return sysError("update of map", "ms_binds");
    }
  }
  std::set<std::string> stale;
  ms_bind_key key{}, next{};
  bool first = true;
  std::vector<ms_bind_key> remove;
  while (bpf_map_get_next_key(fd, first ? nullptr : &key, &next) == 0) {
    first = false;
    key = next;
    ms_bind_value v{};
    if (bpf_map_lookup_elem(fd, &key, &v) != 0) continue;
    const std::string k = id(key, v.cookie);
    if (live.count(k)) continue;
    if (staleBinds_.count(k)) {
      remove.push_back(key);
    } else {
      stale.insert(k);
    }
  }
  for (const auto& k : remove) bpf_map_delete_elem(fd, &k);
  staleBinds_ = std::move(stale);
  return {};
}

Result<Counters> BpfDatapath::counters() const {
  Counters out;
  int ncpu = libbpf_num_possible_cpus();
  if (ncpu <= 0) return libbpfError("count CPUs", "possible", ncpu);
  std::vector<uint64_t> vals(static_cast<size_t>(ncpu));
  int fd = bpf_map__fd(skel_->maps.ms_counters);
  for (uint32_t i = 0; i < MS_CTR_MAX; i++) {
    if (bpf_map_lookup_elem(fd, &i, vals.data()) != 0) return sysError("lookup in map", "ms_counters");
    for (uint64_t v : vals) out.values[i] += v;
  }
  return out;
}

Result<int> BpfDatapath::drainEvents(const EventHandler& handler) {
  handler_ = &handler;
  int n = ring_buffer__consume(ring_.get());
  handler_ = nullptr;
  if (n < 0) return libbpfError("consume ring buffer", "ms_events", n);
  return n;
}

int BpfDatapath::eventFd() const { return ring_buffer__epoll_fd(ring_.get()); }

Result<void> BpfDatapath::attach() {
  bpf_program* progs[] = {
      skel_->progs.ms_sock_create, skel_->progs.ms_post_bind4, skel_->progs.ms_post_bind6,
      skel_->progs.ms_recvmsg4,    skel_->progs.ms_recvmsg6,   skel_->progs.ms_sock_release,
      skel_->progs.ms_connect4,    skel_->progs.ms_connect6,   skel_->progs.ms_sendmsg4,
      skel_->progs.ms_sendmsg6,
  };
  for (bpf_program* p : progs) {
    bpf_link* link = bpf_program__attach_cgroup(p, cgroupFd_.get());
    if (!link) {
      int e = errno;
      links_.clear();  // all or nothing
      return Error{"attach program", std::string(bpf_program__name(p)) + "' to '" +
                                         options_.cgroupRoot,
                   e, {}};
    }
    links_.emplace_back(link);
  }
  return pin();
}

Result<void> BpfDatapath::pin() {
  // Pins make the state visible to bpftool and are the base for adoption
  // across restarts; a clean shutdown removes them.
  for (auto& l : links_) {
    bpf_link_info info{};
    uint32_t len = sizeof(info);
    std::string name = "link_" + std::to_string(pins_.size());
    if (bpf_obj_get_info_by_fd(bpf_link__fd(l.get()), &info, &len) == 0) {
      bpf_prog_info pinfo{};
      uint32_t plen = sizeof(pinfo);
      int pfd = bpf_prog_get_fd_by_id(info.prog_id);
      if (pfd >= 0 && bpf_obj_get_info_by_fd(pfd, &pinfo, &plen) == 0) name = std::string("link_") + pinfo.name;
      if (pfd >= 0) ::close(pfd);
    }
    std::string path = options_.stateDir + "/" + name;
    ::unlink(path.c_str());
    if (int rc = bpf_link__pin(l.get(), path.c_str()); rc != 0) return libbpfError("pin link", path, rc);
    pins_.push_back(path);
  }
  bpf_map* maps[] = {skel_->maps.ms_config, skel_->maps.ms_cgroups, skel_->maps.ms_identities,
                     skel_->maps.ms_policy, skel_->maps.ms_binds,   skel_->maps.ms_counters,
                     skel_->maps.ms_events};
  for (bpf_map* m : maps) {
    std::string path = options_.stateDir + "/" + bpf_map__name(m);
    ::unlink(path.c_str());
    if (int rc = bpf_map__pin(m, path.c_str()); rc != 0) return libbpfError("pin map", path, rc);
    pins_.push_back(path);
  }
  return {};
}

void BpfDatapath::detachAndCleanup() {
  for (auto& l : links_) {
    bpf_link__unpin(l.get());
    // bpf_link__detach makes the detach explicit even if something else
    // still holds a reference to the link.
    bpf_link__detach(l.get());
  }
  links_.clear();
  for (const auto& p : pins_) ::unlink(p.c_str());
  pins_.clear();
  if (stateDirCreated_) {
    if (::rmdir(options_.stateDir.c_str()) != 0 && errno != ENOENT) {
      spdlog::warn("datapath: could not remove state dir {}: {}", options_.stateDir,
                   std::strerror(errno));
    }
  }
}

}  // namespace microseg::datapath
