// Which files a list of policy paths names, and opening them: every access
// the loader makes to the file system goes through one FileAccess, so the
// daemon can make them with its caller's credentials (policy.apply runs as
// root for a member of the socket group, who must not read through it what
// they could not read themselves). Only regular files are read: a FIFO, a
// socket or a device is refused at once, never opened in a way that waits.
#pragma once

#include <fcntl.h>
#include <sys/stat.h>

#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include "common/fd.h"
#include "common/result.h"
#include "policy/model.h"

namespace microseg::policy {

// The loader's one seam to the file system. It opens paths only; what it
// learns about them it learns from the fds (fstat, a directory's entries
// through fdopendir(openat(fd, "."))).
class FileAccess {
 public:
  virtual ~FileAccess() = default;
  // open(2) of `path` with `flags` (kPolicyOpenFlags). The error's `err`
  // is the errno (or 0 and `detail` says why); what it says is put in the
  // diagnostic, so it must never hold anything read from the file.
  virtual Result<UniqueFd> open(const std::string& path, int flags) const;
};

// Plain syscalls, with the process's own credentials.
const FileAccess& defaultFileAccess();

// O_NONBLOCK: opening a FIFO does not wait for a writer (it is then
// refused by its type); O_NOCTTY: a terminal does not become ours.
inline constexpr int kPolicyOpenFlags = O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY;

// A file to read: a path given, or an entry of a directory given.
struct ListedFile {
  std::string path;
  bool inDirectory = false;
};

// The files `paths` name, directories expanded (their *.yaml and *.yml
// entries, sorted by name; a directory with none is an error); problems
// appended. A path given that is neither a directory nor a regular file is
// an error; an entry of a directory is checked when it is opened.
std::vector<ListedFile> listFiles(const std::vector<std::string>& paths, const FileAccess& access,
                                  std::vector<Diagnostic>& errors);

// A policy file, open, and what fstat said of it when it was opened.
struct OpenFile {
  UniqueFd fd;
  struct stat st {};
};

// Opens `file` for reading: a regular file of at most `maxBytes` only
// (else nullopt, the problem appended, located at the file). An entry of
// a directory that is itself a directory, or gone (a dangling symlink such
// as an editor's lock file, or removed since the listing), is skipped
// without a word, as it always was; a FIFO, socket or device is an error.
std::optional<OpenFile> openPolicyFile(const ListedFile& file, const FileAccess& access, size_t maxBytes,
                                       std::vector<Diagnostic>& errors);

// What is said of a file that grew over `maxBytes` while it was read
// (openPolicyFile() refuses one that is over it when opened).
std::string tooBigMessage(size_t maxBytes);

// The whole of a regular file of at most `maxBytes` (a configuration
// file); nullopt with the problem appended.
std::optional<std::string> readRegularFile(const std::string& path, const FileAccess& access, size_t maxBytes,
                                           std::vector<Diagnostic>& errors);

}  // namespace microseg::policy
