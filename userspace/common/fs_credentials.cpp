#include "common/fs_credentials.h"

#include <grp.h>
#include <sys/fsuid.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace microseg {
namespace {

bool setThreadGroups(const std::vector<gid_t>& groups) {
  return syscall(SYS_setgroups, groups.size(), groups.empty() ? nullptr : groups.data()) == 0;
}

// setfsuid()/setfsgid() return the previous value and report no error: ask
// again with an impossible id, which changes nothing and returns the current.
uid_t currentFsuid() { return static_cast<uid_t>(setfsuid(static_cast<uid_t>(-1))); }
gid_t currentFsgid() { return static_cast<gid_t>(setfsgid(static_cast<gid_t>(-1))); }

}  // namespace

Result<FsCredentials> FsCredentials::assume(const FsIdentity& who) {
  FsCredentials c;
  if (who.isRoot()) return c;
  FsIdentity saved;
  saved.uid = currentFsuid();
  saved.gid = currentFsgid();
  const int n = getgroups(0, nullptr);
  if (n < 0) return sysError("read supplementary groups", "daemon thread");
  saved.groups.resize(static_cast<size_t>(n));
  if (n > 0 && getgroups(n, saved.groups.data()) != n) return sysError("read supplementary groups", "daemon thread");
  c.saved_ = saved;  // from here on the destructor restores
  if (!setThreadGroups(who.groups)) return sysError("take the caller's groups", "uid " + std::to_string(who.uid));
  setfsgid(who.gid);
  setfsuid(who.uid);
  if (currentFsgid() != who.gid || currentFsuid() != who.uid) {
    return Error{"take the caller's file-system identity", "uid " + std::to_string(who.uid), EPERM, {}};
  }
  return c;
}

FsCredentials::~FsCredentials() {
  if (!saved_) return;
  // uid first: back to root gives the capabilities setfsgid needs.
  setfsuid(saved_->uid);
  setfsgid(saved_->gid);
  (void)setThreadGroups(saved_->groups);
}

}  // namespace microseg
