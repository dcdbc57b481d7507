#include "daemon/watches.h"

#include <spdlog/spdlog.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <string_view>

namespace microseg::daemon {

void PolicyWatch::watch(const std::vector<std::string>& paths) {
  // Made anew on every change of paths: the simplest way to drop old watches.
  fd_.reset(inotify_init1(IN_NONBLOCK | IN_CLOEXEC));
  watches_.clear();
  if (!fd_) {
    spdlog::warn("policy: inotify unavailable ({}); reload with SIGHUP or `microseg policy reload`",
                 std::strerror(errno));
    return;
  }
  const uint32_t mask = IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_CREATE | IN_DELETE | IN_DELETE_SELF |
                        IN_MOVE_SELF | IN_ATTRIB;
  auto isDir = [](const std::string& p) {
    struct stat st {};
    return ::stat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
  };
  for (auto& w : policy::policyWatches(paths, isDir)) {
    const int wd = inotify_add_watch(fd_.get(), w.dir.c_str(), mask);
    if (wd < 0) {
      spdlog::warn("policy: cannot watch {}: {}", w.dir, std::strerror(errno));
      continue;
    }
    watches_[wd] = std::move(w);
  }
}

bool PolicyWatch::drain() {
  if (!fd_) return false;
  bool relevant = false;
  alignas(inotify_event) char buf[8192];
  for (ssize_t n; (n = read(fd_.get(), buf, sizeof(buf))) > 0;) {
    for (ssize_t off = 0; off + static_cast<ssize_t>(sizeof(inotify_event)) <= n;) {
      const auto* ev = reinterpret_cast<const inotify_event*>(buf + off);
      off += static_cast<ssize_t>(sizeof(inotify_event) + ev->len);
      if (ev->mask & IN_Q_OVERFLOW) {
        relevant = true;  // events were lost: one may have been ours
        continue;
      }
      auto w = watches_.find(ev->wd);
      if (w == watches_.end()) continue;
      const std::string_view name = ev->len > 0 ? std::string_view(ev->name) : std::string_view();
      if (policy::concerns(w->second, name)) {
        relevant = true;
      } else {
        spdlog::debug("policy: {}/{} changed; not a policy file, no reload", w->second.dir, name);
      }
    }
  }
  return relevant;
}

CgroupWatch::CgroupWatch() : fd_(inotify_init1(IN_NONBLOCK | IN_CLOEXEC)) {
  if (!fd_) spdlog::warn("identity: inotify unavailable ({}); new cgroups wait for the periodic rescan", std::strerror(errno));
}

void CgroupWatch::add(const std::string& dir) {
  if (fd_) inotify_add_watch(fd_.get(), dir.c_str(), IN_CREATE | IN_DELETE | IN_ONLYDIR);
}

bool CgroupWatch::drain() {
  if (!fd_) return false;
  bool any = false;
  alignas(inotify_event) char buf[8192];
  while (read(fd_.get(), buf, sizeof(buf)) > 0) any = true;
  return any;
}

}  // namespace microseg::daemon
