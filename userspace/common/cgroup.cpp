#include "common/cgroup.h"

#include <fcntl.h>
#include <sys/stat.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace microseg {

std::vector<std::string> cgroup2Mounts() {
  std::vector<std::string> out;
  std::ifstream in("/proc/mounts");
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream ls(line);
    std::string dev, dir, type;
    ls >> dev >> dir >> type;
    if (type == "cgroup2") out.push_back(dir);
  }
  return out;
}

std::string normalizePath(const std::string& path) {
  std::string p = std::filesystem::path(path).lexically_normal().string();
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  return p;
}

Result<std::string> cgroup2MountOf(const std::string& path) {
  const std::string p = normalizePath(path);
  std::string best;
  for (const auto& m : cgroup2Mounts()) {
    const std::string mm = normalizePath(m);
    if ((p == mm || p.rfind(mm == "/" ? mm : mm + "/", 0) == 0) && mm.size() > best.size()) best = mm;
  }
  if (best.empty()) {
    return Error{"find cgroup2 mount", path, 0,
                 "path is not inside a cgroup v2 filesystem (see /proc/mounts)"};
  }
  return best;
}

Result<uint64_t> cgroupId(const std::string& path) {
  struct {
    struct file_handle fh;
    uint64_t id;
  } h{};
  h.fh.handle_bytes = sizeof(uint64_t);
  int mountId = 0;
  if (name_to_handle_at(AT_FDCWD, path.c_str(), &h.fh, &mountId, 0) != 0) {
    return sysError("name_to_handle_at", path);
  }
  uint64_t id = 0;
  std::memcpy(&id, h.fh.f_handle, sizeof(id));
  return id;
}

Result<uint32_t> cgroupLevel(const std::string& path) {
  auto mount = cgroup2MountOf(path);
  if (!mount) return mount.error();
  const std::string p = normalizePath(path);
  const std::string rel = *mount == "/" ? p : p.substr(mount->size());
  uint32_t level = 0;
  for (char c : rel) level += c == '/';
  return level;
}

}  // namespace microseg
