#include "daemon/caller_files.h"

#include <fcntl.h>

#include <fstream>
#include <sstream>

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

FsIdentity callerIdentity(const control::PeerCred& peer) {
  FsIdentity who{peer.uid, peer.gid, {}};
  if (peer.groups) {
    who.groups = *peer.groups;
    return who;
  }
  std::ifstream in("/proc/" + std::to_string(peer.pid) + "/status");
  std::string line;
  bool sameUid = false;
  while (std::getline(in, line)) {
    std::istringstream ss(line.substr(line.find(':') + 1));
    if (line.rfind("Uid:", 0) == 0) {
      unsigned real = 0, effective = 0;
      sameUid = (ss >> real >> effective) && effective == peer.uid;
    } else if (line.rfind("Groups:", 0) == 0 && sameUid) {
      for (unsigned g; ss >> g;) who.groups.push_back(g);
    }
  }
  return who;
}

}  // namespace microseg::daemon
