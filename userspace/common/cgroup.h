// cgroup v2 filesystem helpers (read-only; nothing here attaches anything).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/result.h"

namespace microseg {

// Mount points of every cgroup2 filesystem, from /proc/mounts, in order.
std::vector<std::string> cgroup2Mounts();

// The cgroup2 mount that contains `path` (longest matching mount point).
Result<std::string> cgroup2MountOf(const std::string& path);

// Kernel cgroup id of a cgroup directory (what bpf_get_current_cgroup_id()
// returns for tasks in it): the kernfs node id, from name_to_handle_at.
Result<uint64_t> cgroupId(const std::string& path);

// Depth below the cgroup2 mount root (the root itself is level 0).
Result<uint32_t> cgroupLevel(const std::string& path);

// Lexically normalised absolute path without trailing slash.
std::string normalizePath(const std::string& path);

}  // namespace microseg
