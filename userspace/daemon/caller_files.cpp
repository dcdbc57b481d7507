#include "daemon/caller_files.h"

#include <fcntl.h>

namespace microseg::daemon {

Result<UniqueFd> CallerFileAccess::open(const std::string& path, int flags) const {
  // Only around the open(): a thread created while switched would inherit
  // the caller's identity, and nothing else of a reload needs it.
  auto as = FsCredentials::assume(who_);
  if (!as) return as.error();
  UniqueFd fd(::open(path.c_str(), flags));
  if (!fd) return sysError("open", path);
  return fd;
}

}  // namespace microseg::daemon
