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

// Does pattern `pat` of `w` beat the best match so far (see matchWorkload)?
bool beats(const policy::Workload& w, const std::string& pat, const policy::Workload* best,
           const std::string* bestPattern) {
  if (best == nullptr) return true;
  const bool g = hasGlob(pat), bg = hasGlob(*bestPattern);
  if (g != bg) return !g;
  if (pat.size() != bestPattern->size()) return pat.size() > bestPattern->size();
  return w.name < best->name;
}

// The length of the first `depth` components of `pat` (joined by '/' as
// written), `pat` itself if it has no more.
size_t prefixLength(const std::string& pat, size_t depth) {
  size_t end = 0;
  for (size_t k = 0; k < depth; k++) {
    end = pat.find('/', k == 0 ? 0 : end + 1);
    if (end == std::string::npos) return pat.size();
  }
  return end;
}

size_t componentsOf(const std::string& p) { return size_t(std::count(p.begin(), p.end(), '/')) + 1; }

size_t depthOf(const std::string& relPath) { return relPath.empty() ? 0 : componentsOf(relPath); }

}  // namespace

const policy::Workload* matchWorkload(const policy::Bundle& bundle, const std::string& relPath) {
  const policy::Workload* best = nullptr;
  const std::string* bestPattern = nullptr;
  for (const auto& w : bundle.workloads) {
    for (const auto& pat : w.cgroups) {
      if (fnmatch(pat.c_str(), relPath.c_str(), FNM_PATHNAME) != 0) continue;
      if (beats(w, pat, best, bestPattern)) {
        best = &w;
        bestPattern = &pat;
      }
    }
  }
  return best;
}

WorkloadMatcher::WorkloadMatcher(const policy::Bundle& bundle) : workloads_(bundle.workloads) {
  for (const auto& w : workloads_) {
    for (const auto& pat : w.cgroups) {
      any_ = true;
      const size_t comps = componentsOf(pat);
      // fnmatch treats '\\' as an escape: such a pattern is not its own text.
      if (hasGlob(pat) || pat.find('\\') != std::string::npos) {
        Pattern p{{&w, &pat}, {}};
        for (size_t k = 1; k < comps; k++) p.prefixes.push_back(pat.substr(0, prefixLength(pat, k)));
        others_.push_back(std::move(p));
        continue;
      }
      // Its proper prefixes are literal too, and start where it does.
      for (size_t k = 1; k < comps; k++) literalPrefixes_.insert(std::string_view(pat).substr(0, prefixLength(pat, k)));
      auto [it, fresh] = literal_.try_emplace(pat, Literal{&w, &pat});
      if (!fresh && beats(w, pat, it->second.workload, it->second.pattern)) it->second = {&w, &pat};
    }
  }
}

const policy::Workload* WorkloadMatcher::match(const std::string& relPath) const {
  const policy::Workload* best = nullptr;
  const std::string* bestPattern = nullptr;
  if (auto it = literal_.find(relPath); it != literal_.end()) {
    best = it->second.workload;
    bestPattern = it->second.pattern;
  }
  for (const Pattern& p : others_) {
    if (fnmatch(p.of.pattern->c_str(), relPath.c_str(), FNM_PATHNAME) != 0) continue;
    if (beats(*p.of.workload, *p.of.pattern, best, bestPattern)) {
      best = p.of.workload;
      bestPattern = p.of.pattern;
    }
  }
  return best;
}

bool WorkloadMatcher::mayHaveChildren(const std::string& relPath) const {
  const size_t depth = depthOf(relPath);
  if (depth == 0) return any_;
  if (literalPrefixes_.count(relPath) != 0) return true;
  for (const Pattern& p : others_) {
    if (p.prefixes.size() >= depth && fnmatch(p.prefixes[depth - 1].c_str(), relPath.c_str(), FNM_PATHNAME) == 0) {
      return true;
    }
  }
  return false;
}

bool mayHaveWorkloadChildren(const policy::Bundle& bundle, const std::string& relPath) {
  const size_t depth = depthOf(relPath);
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
  return scanCgroups(root, WorkloadMatcher(bundle), ids, limits);
}

Result<std::vector<CgroupInfo>> scanCgroups(const std::string& root, const WorkloadMatcher& matcher,
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
    if (const auto* w = rel.empty() ? nullptr : matcher.match(rel)) {
      info.workload = w->name;
      auto it = ids.byWorkload.find(w->name);
      // A workload without an identity yet (cluster mode, etcd away) is
      // pending: its sockets fail closed, never unmanaged.
      info.identity = it != ids.byWorkload.end() ? it->second : ids.pending.count(w->name) ? MS_IDENTITY_PENDING : 0;
    } else if (parent != nullptr && !parent->workload.empty()) {
      info.workload = parent->workload;
      info.identity = parent->identity;
      info.inherited = true;
    }
    info.pendingChildren = matcher.mayHaveChildren(rel);
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
