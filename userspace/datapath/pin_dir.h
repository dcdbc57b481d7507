// The pin dir (<state-dir>/abi-<N>/): what a run leaves for the next one to
// adopt (bpf_datapath.h says when), and how it is taken down.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "bpf/abi.h"

namespace microseg::datapath {

// What a complete pin dir holds: these map names and link pin names, and
// what it may hold besides (the link of a program attached on demand).
struct PinnedSet {
  std::vector<std::string> maps;
  std::vector<std::string> links;
  std::vector<std::string> optionalLinks;
};

// The pinned ms_config of `dir` if the dir is complete (every entry of
// `want`), of our ABI and for the cgroup `rootId`; else nothing (it is
// replaced).
std::optional<ms_config> adoptableConfig(const std::string& dir, const PinnedSet& want, uint64_t rootId);

// max_entries of the map pinned at `path`, if it can be read.
std::optional<uint32_t> pinnedMapSize(const std::string& path);

// Detaches and unpins what `dir` holds beyond `want` (what an older build
// of the same ABI pinned and this one has not). Returns how many.
int removeStray(const std::string& dir, const PinnedSet& want);

// Detaches (if a link) and unpins every object in `dir`, then removes it.
// Returns how many were removed.
int removePinDir(const std::string& dir);

}  // namespace microseg::datapath
