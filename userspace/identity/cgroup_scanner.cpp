#include "identity/cgroup_scanner.h"

#include <dirent.h>
#include <fnmatch.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstring>
#include <functional>

#include "common/cgroup.h"

namespace microseg::identity {
namespace {

bool hasGlob(const std::string& p) { return p.find_first_of("*?[") != std::string::npos; }

}  // namespace

const policy::Workload* matchWorkload(const policy::Bundle& bundle, const std::string& relPath) {
  const policy::Workload* best = nullptr;
  const std::string* bestPattern = nullptr;
  for (const auto& w : bundle.workloads) {
    for (const auto& pat : w.cgroups) {
      if (fnmatch(pat.c_str(), relPath.c_str(), FNM_PATHNAME) != 0) continue;
      if (best == nullptr) {
        best = &w;
        bestPattern = &pat;
        continue;
      }
      const bool g = hasGlob(pat), bg = hasGlob(*bestPattern);
      bool better = false;
      if (g != bg) {
        better = !g;
      } else if (pat.size() != bestPattern->size()) {
        better = pat.size() > bestPattern->size();
      } else {
        better = w.name < best->name;
      }
      if (better) {
        best = &w;
        bestPattern = &pat;
      }
    }
  }
  return best;
}

bool mayHaveWorkloadChildren(const policy::Bundle& bundle, const std::string& relPath) {
  const size_t depth = relPath.empty() ? 0 : std::count(relPath.begin(), relPath.end(), '/') + 1;
  for (const auto& w : bundle.workloads) {
    for (const auto& pat : w.cgroups) {
      // Components of the pattern, split at '/' (globs never contain '/').
      std::vector<std::string> comps;
      size_t start = 0;
      for (size_t i = 0; i <= pat.size(); i++) {
        if (i == pat.size() || pat[i] == '/') {
          comps.push_back(pat.substr(start, i - start));
          start = i + 1;
        }
      }
      if (comps.size() <= depth) continue;
      if (depth == 0) return true;
      std::string prefix;
      for (size_t k = 0; k < depth; k++) prefix += (k ? "/" : "") + comps[k];
      if (fnmatch(prefix.c_str(), relPath.c_str(), FNM_PATHNAME) == 0) return true;
    }
  }
  return false;
}

Result<std::vector<CgroupInfo>> scanCgroups(const std::string& root, const policy::Bundle& bundle,
                                            const IdentityTable& ids, const ScanLimits& limits) {
  std::vector<CgroupInfo> out;
  std::function<Result<void>(const std::string&, const std::string&, uint32_t, const CgroupInfo*)>
      walk = [&](const std::string& abs, const std::string& rel, uint32_t depth,
                 const CgroupInfo* parent) -> Result<void> {
    auto id = cgroupId(abs);
    if (!id) {
      // Removed while we walked: not an error, it just no longer exists.
      if (id.error().err == ENOENT) return {};
      return id.error();
    }
    CgroupInfo info;
    info.id = *id;
    info.path = "/" + rel;
    if (const auto* w = rel.empty() ? nullptr : matchWorkload(bundle, rel)) {
      info.workload = w->name;
      auto it = ids.byWorkload.find(w->name);
      info.identity = it == ids.byWorkload.end() ? 0 : it->second;
    } else if (parent != nullptr && !parent->workload.empty()) {
      info.workload = parent->workload;
      info.identity = parent->identity;
      info.inherited = true;
    }
    info.pendingChildren = mayHaveWorkloadChildren(bundle, rel);
    if (out.size() >= limits.maxCgroups) {
      return Error{"scan cgroups", root, 0,
                   "more than " + std::to_string(limits.maxCgroups) + " cgroups"};
    }
    out.push_back(info);
    const CgroupInfo self = info;  // `out` may reallocate below
    if (depth >= limits.maxDepth) return {};

    DIR* d = opendir(abs.c_str());
    if (d == nullptr) {
      if (errno == ENOENT) return {};
      return sysError("open cgroup dir", abs);
    }
    std::vector<std::string> children;
    while (dirent* de = readdir(d)) {
      if (de->d_type != DT_DIR || std::strcmp(de->d_name, ".") == 0 ||
          std::strcmp(de->d_name, "..") == 0) {
        continue;
      }
      children.emplace_back(de->d_name);
    }
    closedir(d);
    std::sort(children.begin(), children.end());
    for (const auto& c : children) {
      auto r = walk(abs + "/" + c, rel.empty() ? c : rel + "/" + c, depth + 1, &self);
      if (!r) return r;
    }
    return {};
  };
  auto r = walk(normalizePath(root), "", 0, nullptr);
  if (!r) return r.error();
  return out;
}

}  // namespace microseg::identity
