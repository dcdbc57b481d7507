// Classification between generations: the cgroup tree is scanned again (on
// inotify events and every second) and the difference written into the
// active slot, so a new cgroup is its workload's within milliseconds.
#include "daemon/daemon.h"

#include <spdlog/spdlog.h>

namespace microseg::daemon {

void Daemon::rescanLocked() {
  // Without a policy model of our own (adopted maps, invalid policy) we
  // would classify every cgroup as unmanaged: leave the maps alone.
  if (!gen().loaded) return;
  auto scanned = identity::scanCgroups(config_.cgroupRoot, *gen().matcher, gen().ids);
  if (!scanned) {
    spdlog::warn("identity: rescan failed: {}", scanned.error().str());
    return;
  }
  std::vector<datapath::CgroupEntry> upserts;
  std::set<uint64_t> seen;
  for (const auto& c : *scanned) {
    seen.insert(c.id);
    auto it = cgroups_.find(c.id);
    if (it == cgroups_.end() || it->second.identity != c.identity ||
        it->second.pendingChildren != c.pendingChildren) {
      upserts.push_back({c.id, c.mapIdentity(), c.pendingChildren ? MS_CGROUP_F_PENDING_CHILDREN : 0u});
    }
  }
  std::vector<uint64_t> removed;
  for (const auto& [id, c] : cgroups_) {
    if (!seen.count(id)) removed.push_back(id);
  }
  if (!upserts.empty()) {
    if (auto r = datapath_->upsertCgroups(upserts); !r) {
      spdlog::warn("identity: {}", r.error().str());
      return;
    }
  }
  if (!removed.empty()) {
    if (auto r = datapath_->removeCgroups(removed); !r) spdlog::warn("identity: {}", r.error().str());
  }
  if (!upserts.empty() || !removed.empty()) {
    spdlog::debug("identity: {} cgroups added/changed, {} removed", upserts.size(), removed.size());
  }
  watchCgroupsLocked(*scanned);
  classifiedLocked(*scanned);
}

void Daemon::watchCgroupsLocked(const std::vector<identity::CgroupInfo>& cgroups) {
  if (!cgroupWatch_) return;
  for (const auto& c : cgroups) {
    if (cgroups_.count(c.id)) continue;  // already watched
    cgroupWatch_->add(c.path == "/" ? config_.cgroupRoot : config_.cgroupRoot + c.path);
  }
}

void Daemon::classifiedLocked(const std::vector<identity::CgroupInfo>& cgroups) {
  cgroups_.clear();
  cgroupPaths_.clear();
  cgroupWorkloads_.clear();
  for (const auto& c : cgroups) {
    cgroups_[c.id] = c;
    cgroupPaths_[c.id] = c.path;
    if (!c.workload.empty()) cgroupWorkloads_[c.id] = c.workload;
  }
  watchWorkloadNetnsLocked(/*wait=*/false);
}

uint32_t Daemon::workloadModeLocked(const std::string& workload, uint32_t identity) const {
  if (auto m = workloadModes_.find(workload); m != workloadModes_.end()) return m->second;
  if (const ms_identity_value* v = gen().compiled.identity(identity); v != nullptr) return v->mode;
  return MS_MODE_INHERIT;
}

}  // namespace microseg::daemon
