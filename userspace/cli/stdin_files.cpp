#include "cli/stdin_files.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>

namespace microseg::cli {

Result<StdinFiles> StdinFiles::read(size_t maxBytes) {
  StdinFiles out;
  out.text_ = UniqueFd(memfd_create("microseg-stdin", MFD_CLOEXEC));
  if (!out.text_) return sysError("memfd_create", "stdin");
  char buf[65536];
  size_t total = 0;
  for (;;) {
    const ssize_t n = ::read(STDIN_FILENO, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return sysError("read", "stdin");
    if (n == 0) break;
    total += size_t(n);
    if (total > maxBytes) {
      return Error{"read", "stdin", 0,
                   "more than " + std::to_string(maxBytes) + " bytes (the limit of a policy file)"};
    }
    for (ssize_t off = 0; off < n;) {
      const ssize_t w = ::write(out.text_.get(), buf + off, size_t(n - off));
      if (w < 0 && errno == EINTR) continue;
      if (w < 0) return sysError("write", "stdin copy");
      off += w;
    }
  }
  return out;
}

Result<UniqueFd> StdinFiles::open(const std::string& path, int flags) const {
  if (path != "-") return FileAccess::open(path, flags);
  // A descriptor of its own (the loader closes it), read from the start.
  const std::string self = "/proc/self/fd/" + std::to_string(text_.get());
  const int fd = ::open(self.c_str(), flags);
  if (fd < 0) return sysError("open", "stdin copy");
  return UniqueFd(fd);
}

}  // namespace microseg::cli
