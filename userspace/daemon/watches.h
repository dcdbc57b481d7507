// What the daemon watches in the filesystem with inotify: the policy paths
// (a reload when a policy file changes) and the cgroup tree (a new cgroup is
// classified at once, not at the next periodic rescan).
#pragma once

#include <map>
#include <string>
#include <vector>

#include "common/fd.h"
#include "policy/watch.h"

namespace microseg::daemon {

class PolicyWatch {
 public:
  // Watches the directories of `paths` (for a directory path, any
  // *.yaml/*.yml in it; for a file, that file); the watches of earlier
  // paths are dropped. Without inotify it logs once and reloads only on
  // SIGHUP or request.
  void watch(const std::vector<std::string>& paths);
  int fd() const { return fd_.get(); }
  // Reads the pending events; true if one concerns the policy set (a
  // lost-events overflow counts: one may have).
  bool drain();

 private:
  UniqueFd fd_;
  std::map<int, policy::PolicyWatch> watches_;  // by inotify watch descriptor
};

class CgroupWatch {
 public:
  CgroupWatch();
  int fd() const { return fd_.get(); }
  // Watches `dir` for new and removed child cgroups (once per directory;
  // a removed directory drops its watch by itself).
  void add(const std::string& dir);
  // Reads the pending events; true if there were any.
  bool drain();

 private:
  UniqueFd fd_;
};

}  // namespace microseg::daemon
