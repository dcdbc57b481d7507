// Policy files opened as the caller who named them: `policy apply` by a
// member of the socket group runs in the root daemon, so every open() of
// the load is made with that caller's fsuid, fsgid and groups
// (common/fs_credentials.h). The kernel then refuses what the caller could
// not read, and no file's text reaches them through an error. The paths
// stay the caller's: later reloads of them (inotify, SIGHUP) read them as
// the same caller.
#pragma once

#include "common/fs_credentials.h"
#include "control/server.h"
#include "policy/files.h"

namespace microseg::daemon {

class CallerFileAccess final : public policy::FileAccess {
 public:
  explicit CallerFileAccess(FsIdentity who) : who_(std::move(who)) {}
  Result<UniqueFd> open(const std::string& path, int flags) const override;
  const FsIdentity& who() const { return who_; }

 private:
  FsIdentity who_;
};

// Who a control client is, for file access: its uid and gid and its
// supplementary groups (SO_PEERGROUPS, else /proc while the process lives
// with that uid; none if neither says).
FsIdentity callerIdentity(const control::PeerCred& peer);

}  // namespace microseg::daemon
