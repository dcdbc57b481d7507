#include "datapath/pin_dir.h"

#include <bpf/bpf.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <set>

#include "common/fd.h"

namespace microseg::datapath {
namespace {

bool exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

}  // namespace

std::optional<ms_config> adoptableConfig(const std::string& dir, const PinnedSet& want, uint64_t rootId) {
  // The links too: a run that stopped between load and attach left maps
  // only, and a build with a new program has no link for it to update.
  for (const auto* names : {&want.maps, &want.links}) {
    for (const auto& n : *names) {
      if (!exists(dir + "/" + n)) return std::nullopt;
    }
  }
  UniqueFd fd(bpf_obj_get((dir + "/ms_config").c_str()));
  if (!fd) return std::nullopt;
  uint32_t zero = 0;
  ms_config cfg{};
  if (bpf_map_lookup_elem(fd.get(), &zero, &cfg) != 0) return std::nullopt;
  if (cfg.abi_version != MS_ABI_VERSION || cfg.root_cgroup_id != rootId) return std::nullopt;
  return cfg;
}

std::optional<uint32_t> pinnedMapSize(const std::string& path) {
  UniqueFd fd(bpf_obj_get(path.c_str()));
  if (!fd) return std::nullopt;
  bpf_map_info info{};
  uint32_t len = sizeof(info);
  if (bpf_obj_get_info_by_fd(fd.get(), &info, &len) != 0) return std::nullopt;
  return info.max_entries;
}

// Detach (if a link) and unpin `path`.
static bool removePin(const std::string& path) {
  UniqueFd fd(bpf_obj_get(path.c_str()));
  // Detach links explicitly so the hook is gone even if something else
  // still holds a reference (for maps this fails with EINVAL: harmless).
  if (fd) bpf_link_detach(fd.get());
  return ::unlink(path.c_str()) == 0;
}

int removeStray(const std::string& dir, const PinnedSet& want) {
  std::set<std::string> keep(want.maps.begin(), want.maps.end());
  keep.insert(want.links.begin(), want.links.end());
  keep.insert(want.optionalLinks.begin(), want.optionalLinks.end());
  int removed = 0;
  std::error_code ec;
  std::vector<std::string> stray;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    if (keep.count(e.path().filename().string()) == 0) stray.push_back(e.path().string());
  }
  for (const auto& f : stray) removed += removePin(f) ? 1 : 0;
  return removed;
}

int removePinDir(const std::string& dir) {
  int removed = 0;
  std::error_code ec;
  std::vector<std::string> files;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) files.push_back(e.path().string());
  for (const auto& f : files) removed += removePin(f) ? 1 : 0;
  ::rmdir(dir.c_str());
  return removed;
}

}  // namespace microseg::datapath
