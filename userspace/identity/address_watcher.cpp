#include "identity/address_watcher.h"

#include <linux/nsfs.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <map>
#include <set>

#include <spdlog/spdlog.h>

#include "identity/netns.h"
#include "policy/cidr.h"

namespace microseg::identity {
namespace {

int64_t nowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

bool sameAddr(const ms_addr& x, const ms_addr& y) { return std::memcmp(&x, &y, sizeof(x)) == 0; }

bool sameAddrs(const std::vector<ms_addr>& x, const std::vector<ms_addr>& y) {
  return std::equal(x.begin(), x.end(), y.begin(), y.end(), sameAddr);
}

bool sameNetns(const AddressWatcher::Netns& x, const AddressWatcher::Netns& y) {
  return x.inode == y.inode && x.cookie == y.cookie && x.workload == y.workload && x.identity == y.identity &&
         x.workloads == y.workloads && x.trusted == y.trusted && x.distrust == y.distrust && x.dropped == y.dropped &&
         sameAddrs(x.addrs, y.addrs) && sameAddrs(x.broadcasts, y.broadcasts);
}

bool sameContent(const AddressWatcher::Snapshot& x, const AddressWatcher::Snapshot& y) {
  return sameAddrs(x.host, y.host) && sameAddrs(x.hostBroadcasts, y.hostBroadcasts) &&
         std::equal(x.netns.begin(), x.netns.end(), y.netns.begin(), y.netns.end(), sameNetns);
}

void drainEventFd(int fd) {
  uint64_t v;
  while (read(fd, &v, sizeof(v)) == sizeof(v)) {
  }
}

}  // namespace

uint64_t ownUsernsInode() {
  struct stat st {};
  if (::stat("/proc/thread-self/ns/user", &st) != 0) return 0;
  return st.st_ino;
}

Result<bool> netnsOwnedBy(int nsFd, uint64_t usernsInode) {
  UniqueFd owner(ioctl(nsFd, NS_GET_USERNS));
  if (!owner) {
    // EPERM: the owner is outside our own user namespace, so not ours.
    if (errno == EPERM) return false;
    return sysError("ask the owner of a netns (NS_GET_USERNS)", "fd " + std::to_string(nsFd));
  }
  struct stat st {};
  if (fstat(owner.get(), &st) != 0) return sysError("stat user namespace", "of a netns");
  return usernsInode != 0 && st.st_ino == usernsInode;
}

// What only the watcher's thread touches.
struct AddressWatcher::State {
  struct Entry {
    UniqueFd ns;            // keeps the netns open while we track it
    UniqueFd subscription;  // its address changes (trusted ones only)
    Netns info;             // as published, addrs capped
    bool dirty = false;     // its subscription reported a change not read yet
    int64_t readAt = 0;
    int64_t readCostMs = 0;  // how long the last read took
  };
  std::map<uint64_t, Entry> entries;  // by netns inode
  UniqueFd hostSubscription;
  std::vector<ms_addr> host;
  std::vector<ms_addr> hostBroadcasts;
  bool hostDirty = false;
  int64_t hostReadAt = 0;
  int64_t hostReadCostMs = 0;
  int64_t discoveredAt = 0;
  uint64_t userns = 0;
  std::vector<WorkloadCgroup> workloads;
  uint64_t workloadsSeq = 0;
  std::set<std::string> warned;  // problems already logged (once each)

  void warnOnce(const std::string& problem) {
    if (warned.insert(problem).second) spdlog::warn("identity: {}", problem);
  }

  // Reads a trusted namespace's addresses into its entry.
  void read(Entry& e, bool subscribe) {
    const int64_t from = nowMs();
    auto view = inspectNetns(e.ns.get(), subscribe ? &e.subscription : nullptr);
    e.readAt = nowMs();
    e.readCostMs = e.readAt - from;
    e.dirty = false;
    if (!view) {
      warnOnce(view.error().str());
      return;
    }
    std::vector<ms_addr> addrs;
    for (const auto& a : view->addrs) {
      if (!policy::isLoopback(a)) addrs.push_back(a);
    }
    e.info.cookie = view->cookie;
    e.info.broadcasts = view->broadcasts;
    e.info.dropped = addrs.size() > kMaxNetnsAddresses ? addrs.size() - kMaxNetnsAddresses : 0;
    if (e.info.dropped > 0) {
      addrs.resize(kMaxNetnsAddresses);
      warnOnce("network namespace " + std::to_string(e.info.inode) + " of workload " + e.info.workload + " has " +
               std::to_string(addrs.size() + e.info.dropped) + " addresses; only the first " +
               std::to_string(kMaxNetnsAddresses) + " name it");
    }
    e.info.addrs = std::move(addrs);
    spdlog::debug("identity: network namespace {} of {}: {} addresses ({} over the cap)", e.info.inode,
                  e.info.workload, e.info.addrs.size(), e.info.dropped);
  }

  // Which netns each workload's processes are in; opens new ones, forgets
  // vanished ones.
  void discover(uint64_t hostInode) {
    struct Seen {
      std::set<std::string> workloads;
      std::string workload;
      uint32_t identity = 0;
      pid_t pid = 0;
    };
    std::map<uint64_t, Seen> seen;
    for (const auto& c : workloads) {
      for (pid_t pid : cgroupPids(c.dir, 4)) {
        const uint64_t inode = netnsInodeOf(pid);
        if (inode == 0 || inode == hostInode) continue;
        auto& s = seen[inode];
        s.workloads.insert(c.workload);
        // Several workloads in one netns (a pod's containers): the address
        // can name only one; the first by name (listeners still resolve
        // by their own cgroup).
        if (s.workload.empty() || c.workload < s.workload) {
          s.workload = c.workload;
          s.identity = c.identity;
          s.pid = pid;
        }
      }
    }
    for (auto it = entries.begin(); it != entries.end();) {
      it = seen.count(it->first) ? std::next(it) : entries.erase(it);
    }
    for (const auto& [inode, s] : seen) {
      auto it = entries.find(inode);
      if (it == entries.end()) {
        auto ns = openNetnsOf(s.pid);
        if (!ns) continue;  // the process is gone or moved: next time
        struct stat st {};
        // The process may have changed namespace since it was looked at.
        if (fstat(ns->get(), &st) != 0 || st.st_ino != inode) continue;
        Entry e;
        e.ns = std::move(*ns);
        e.info.inode = inode;
        e.info.workload = s.workload;
        auto owned = netnsOwnedBy(e.ns.get(), userns);
        if (!owned) {
          e.info.distrust = owned.error().str();
        } else if (!*owned) {
          e.info.distrust = "owned by another user namespace (an unprivileged process can make one): "
                            "its addresses name nobody";
        }
        e.info.trusted = e.info.distrust.empty();
        if (!e.info.trusted) {
          spdlog::warn("identity: network namespace {} of workload {} is not trusted: {}", inode, s.workload,
                       e.info.distrust);
        }
        it = entries.emplace(inode, std::move(e)).first;
        if (it->second.info.trusted) read(it->second, /*subscribe=*/true);
      }
      Entry& e = it->second;
      e.info.workload = s.workload;
      e.info.identity = s.identity;
      e.info.workloads.assign(s.workloads.begin(), s.workloads.end());
      if (e.info.workloads.size() > 1) {
        std::string all;
        for (const auto& n : e.info.workloads) all += (all.empty() ? "" : ", ") + n;
        warnOnce("workloads " + all + " share a network namespace; its addresses are " + s.workload + "'s");
      }
      // A trusted one without a subscription (it failed): read it again.
      if (e.info.trusted && !e.subscription) read(e, /*subscribe=*/true);
    }
  }

  // When a namespace that reported changes may be read again: reading is
  // O(addresses) (and holds the kernel's locks that adding one takes), so a
  // big one is read at most every 20 times its last read's duration: the
  // watcher stays under ~5% of a CPU whatever a namespace holds. At most
  // kMaxRereadDelayMs, though: a read's duration includes waiting for those
  // locks while a storm of changes holds them, so one slow read during a
  // storm put the next far beyond its end (20k additions in ~14 s: 10 s
  // after they ended the watcher still had the 2-3k of an early read;
  // e2e AttacksAddresses.ANamespaceWithManyAddressesStallsNothing).
  static constexpr int64_t kMaxRereadDelayMs = 2000;
  static int64_t rereadAt(int64_t readAt, int64_t costMs, int minRereadMs) {
    return readAt + std::min(kMaxRereadDelayMs, std::max<int64_t>(minRereadMs, 20 * costMs));
  }

  Snapshot build() const {
    Snapshot s;
    s.host = host;
    s.hostBroadcasts = hostBroadcasts;
    for (const auto& [inode, e] : entries) s.netns.push_back(e.info);
    return s;
  }
};

AddressWatcher::AddressWatcher(Options options) : options_(std::move(options)), state_(std::make_unique<State>()) {}

Result<std::unique_ptr<AddressWatcher>> AddressWatcher::start(Options options) {
  std::unique_ptr<AddressWatcher> w(new AddressWatcher(std::move(options)));
  w->wakeFd_.reset(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!w->wakeFd_) return sysError("create eventfd", "address watcher");
  State& st = *w->state_;
  st.userns = ownUsernsInode();
  const int64_t from = nowMs();
  auto own = inspectOwnNetns(&st.hostSubscription);
  if (!own) return own.error();
  st.host = own->addrs;
  st.hostBroadcasts = own->broadcasts;
  st.hostReadAt = nowMs();
  st.hostReadCostMs = st.hostReadAt - from;
  auto first = std::make_shared<Snapshot>(st.build());
  first->version = 1;
  w->snapshot_ = std::move(first);
  w->thread_ = std::thread([raw = w.get()] { raw->run(); });
  return w;
}

AddressWatcher::~AddressWatcher() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  uint64_t one = 1;
  (void)!write(wakeFd_.get(), &one, sizeof(one));
  if (thread_.joinable()) thread_.join();
}

void AddressWatcher::setWorkloads(std::vector<WorkloadCgroup> cgroups, bool wait, int waitMs) {
  std::unique_lock<std::mutex> lock(mu_);
  if (cgroups == workloads_ && !wait) return;
  workloads_ = std::move(cgroups);
  const uint64_t seq = ++workloadsSeq_;
  uint64_t one = 1;
  (void)!write(wakeFd_.get(), &one, sizeof(one));
  if (wait) {
    published_.wait_for(lock, std::chrono::milliseconds(waitMs), [&] { return workloadsDone_ >= seq || stop_; });
  }
}

std::shared_ptr<const AddressWatcher::Snapshot> AddressWatcher::snapshot() const {
  std::lock_guard<std::mutex> lock(mu_);
  return snapshot_;
}

void AddressWatcher::run() {
  State& st = *state_;
  std::vector<pollfd> fds;
  std::vector<uint64_t> inodes;  // fds[i + 2] is the subscription of inodes[i]
  for (;;) {
    int64_t now = nowMs();
    int64_t wakeAt = st.discoveredAt + options_.rediscoverMs;
    if (st.hostDirty) wakeAt = std::min(wakeAt, State::rereadAt(st.hostReadAt, st.hostReadCostMs, options_.minRereadMs));
    fds.clear();
    inodes.clear();
    fds.push_back({wakeFd_.get(), POLLIN, 0});
    fds.push_back({st.hostSubscription.get(), POLLIN, 0});
    for (const auto& [inode, e] : st.entries) {
      if (e.dirty) wakeAt = std::min(wakeAt, State::rereadAt(e.readAt, e.readCostMs, options_.minRereadMs));
      if (!e.subscription) continue;
      fds.push_back({e.subscription.get(), POLLIN, 0});
      inodes.push_back(inode);
    }
    const int timeout = static_cast<int>(std::clamp<int64_t>(wakeAt - now, 0, options_.rediscoverMs));
    if (poll(fds.data(), fds.size(), timeout) < 0 && errno != EINTR) {
      spdlog::error("identity: address watcher: poll failed: {}", std::strerror(errno));
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      continue;
    }
    if (fds[0].revents & POLLIN) drainEventFd(wakeFd_.get());
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stop_) return;
      if (workloadsSeq_ != st.workloadsSeq) {
        st.workloads = workloads_;
        st.workloadsSeq = workloadsSeq_;
        st.discoveredAt = 0;  // now
      }
    }
    // A storm of changes is drained as it comes and read at most every
    // rereadAt(): reading is O(addresses), so a read per event was
    // quadratic (a netns given 20k addresses one by one took ~40 s).
    if ((fds[1].revents & POLLIN) && drainSubscription(st.hostSubscription.get())) st.hostDirty = true;
    for (size_t i = 0; i < inodes.size(); i++) {
      if (!(fds[i + 2].revents & POLLIN)) continue;
      auto it = st.entries.find(inodes[i]);
      if (it != st.entries.end() && drainSubscription(it->second.subscription.get())) it->second.dirty = true;
    }
    now = nowMs();
    if (now - st.discoveredAt >= options_.rediscoverMs) {
      st.discover(options_.hostNetnsInode);
      st.discoveredAt = now;
    }
    if (st.hostDirty && now >= State::rereadAt(st.hostReadAt, st.hostReadCostMs, options_.minRereadMs)) {
      st.host = interfaceAddrs();
      st.hostBroadcasts = interfaceBroadcasts();
      st.hostReadAt = nowMs();
      st.hostReadCostMs = st.hostReadAt - now;
      st.hostDirty = false;
    }
    for (auto& [inode, e] : st.entries) {
      if (e.dirty && now >= State::rereadAt(e.readAt, e.readCostMs, options_.minRereadMs)) {
        st.read(e, /*subscribe=*/false);
      }
    }
    auto next = std::make_shared<Snapshot>(st.build());
    bool changed = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!sameContent(*next, *snapshot_)) {
        next->version = snapshot_->version + 1;
        snapshot_ = std::move(next);
        changed = true;
      }
      workloadsDone_ = st.workloadsSeq;
    }
    published_.notify_all();
    if (changed && options_.onChange) options_.onChange();
  }
}

}  // namespace microseg::identity
