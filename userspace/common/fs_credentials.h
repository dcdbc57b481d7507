// The calling thread's file-system identity, borrowed from another user for a
// while: its fsuid, fsgid and supplementary groups. The daemon runs as root
// and reads policy files for callers that may not be root (members of the
// control socket's group); reading them as that caller means the kernel, at
// open(), refuses what the caller could not read itself, so no file's
// content reaches a caller through an error message.
//
// Per thread: setfsuid()/setfsgid() change only the calling thread, and the
// groups are set with the raw syscall (glibc's setgroups() changes every
// thread of the process). Leaving root's fsuid also drops the file-system
// capabilities (CAP_DAC_OVERRIDE, ...) until it is restored.
#pragma once

#include <sys/types.h>

#include <optional>
#include <vector>

#include "common/result.h"

namespace microseg {

struct FsIdentity {
  uid_t uid = 0;
  gid_t gid = 0;
  std::vector<gid_t> groups;  // supplementary
  bool isRoot() const { return uid == 0; }
};

class FsCredentials {
 public:
  // Switches the calling thread to `who` (nothing to do for root); the
  // destructor switches it back. Error if the kernel did not take it.
  static Result<FsCredentials> assume(const FsIdentity& who);
  FsCredentials(FsCredentials&& o) noexcept : saved_(std::move(o.saved_)) { o.saved_.reset(); }
  FsCredentials& operator=(FsCredentials&&) = delete;
  FsCredentials(const FsCredentials&) = delete;
  FsCredentials& operator=(const FsCredentials&) = delete;
  ~FsCredentials();

 private:
  FsCredentials() = default;
  std::optional<FsIdentity> saved_;  // what to restore; none: nothing was changed
};

}  // namespace microseg
