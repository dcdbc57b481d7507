#include "policy/files.h"

#include <dirent.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string_view>

namespace microseg::policy {

namespace {

std::string kindOf(mode_t mode) {
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISFIFO(mode)) return "a FIFO";
  if (S_ISSOCK(mode)) return "a socket";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  return "not a file";
}

std::string notRegular(mode_t mode) {
  return "not a regular file (" + kindOf(mode) + "): only regular files are read";
}

// Why an open through a FileAccess failed: its errno, else its words (a
// FileAccess may refuse without a system error).
std::string reason(const Error& e) {
  if (e.err != 0) return std::strerror(e.err);
  return e.detail.empty() ? "refused" : e.detail;
}

bool yamlName(std::string_view name) {
  const size_t dot = name.rfind('.');
  if (dot == std::string_view::npos || dot == 0) return false;  // ".yaml" is a hidden file, not a *.yaml
  const std::string_view ext = name.substr(dot);
  return ext == ".yaml" || ext == ".yml";
}

// The *.yaml and *.yml entries of the directory open as `fd`, sorted, each
// `dir` + '/' + its name; false with `err` on a failure to read it.
bool yamlEntries(int fd, const std::string& dir, std::vector<std::string>& out, int& err) {
  // A descriptor of its own: closedir() closes the one it was given.
  const int dfd = ::openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) {
    err = errno;
    return false;
  }
  DIR* d = ::fdopendir(dfd);
  if (d == nullptr) {
    err = errno;
    ::close(dfd);
    return false;
  }
  const std::string prefix = !dir.empty() && dir.back() == '/' ? dir : dir + "/";
  for (;;) {
    errno = 0;
    const dirent* e = ::readdir(d);
    if (e == nullptr) {
      err = errno;
      break;
    }
    if (yamlName(e->d_name)) out.push_back(prefix + e->d_name);
  }
  ::closedir(d);
  std::sort(out.begin(), out.end());
  return err == 0;
}

}  // namespace

Result<UniqueFd> FileAccess::open(const std::string& path, int flags) const {
  const int fd = ::open(path.c_str(), flags);
  if (fd < 0) return sysError("open", path);
  return UniqueFd(fd);
}

const FileAccess& defaultFileAccess() {
  static const FileAccess plain;
  return plain;
}

std::vector<ListedFile> listFiles(const std::vector<std::string>& paths, const FileAccess& access,
                                  std::vector<Diagnostic>& errors) {
  std::vector<ListedFile> files;
  if (paths.empty()) {
    errors.push_back({{"<policy>", 0, 0}, "no policy path given"});
    return files;
  }
  for (const auto& p : paths) {
    auto fd = access.open(p, kPolicyOpenFlags);
    struct stat st {};
    if (!fd) {
      errors.push_back({{p, 0, 0}, "cannot read: " + reason(fd.error())});
      continue;
    }
    if (::fstat(fd->get(), &st) != 0) {
      errors.push_back({{p, 0, 0}, std::string("cannot read: ") + std::strerror(errno)});
      continue;
    }
    if (S_ISREG(st.st_mode)) {
      files.push_back({p, false});  // opened again to be read (openPolicyFile), and checked again then
      continue;
    }
    if (!S_ISDIR(st.st_mode)) {
      errors.push_back({{p, 0, 0}, notRegular(st.st_mode)});
      continue;
    }
    std::vector<std::string> found;
    int err = 0;
    if (!yamlEntries(fd->get(), p, found, err)) {
      errors.push_back({{p, 0, 0}, std::string("cannot list directory: ") + std::strerror(err)});
      continue;
    }
    if (found.empty()) {
      errors.push_back({{p, 0, 0}, "directory has no *.yaml or *.yml files"});
      continue;
    }
    for (auto& f : found) files.push_back({std::move(f), true});
  }
  return files;
}

std::string tooBigMessage(size_t maxBytes) {
  return "grew over the size limit of " + std::to_string(maxBytes) + " bytes while it was read";
}

std::optional<OpenFile> openPolicyFile(const ListedFile& file, const FileAccess& access, size_t maxBytes,
                                       std::vector<Diagnostic>& errors) {
  const std::string& path = file.path;
  auto fd = access.open(path, kPolicyOpenFlags);
  if (!fd && file.inDirectory && fd.error().err == ENOENT) return std::nullopt;
  if (!fd) {
    errors.push_back({{path, 0, 0}, "cannot open for reading: " + reason(fd.error())});
    return std::nullopt;
  }
  OpenFile f;
  f.fd = std::move(*fd);
  if (::fstat(f.fd.get(), &f.st) != 0) {
    errors.push_back({{path, 0, 0}, std::string("cannot read: ") + std::strerror(errno)});
    return std::nullopt;
  }
  if (file.inDirectory && S_ISDIR(f.st.st_mode)) return std::nullopt;
  if (!S_ISREG(f.st.st_mode)) {
    errors.push_back({{path, 0, 0}, notRegular(f.st.st_mode)});
    return std::nullopt;
  }
  if (static_cast<uint64_t>(f.st.st_size) > maxBytes) {
    errors.push_back({{path, 0, 0}, std::to_string(f.st.st_size) + " bytes: over the size limit of " +
                                        std::to_string(maxBytes) + " bytes"});
    return std::nullopt;
  }
  return f;
}

std::optional<std::string> readRegularFile(const std::string& path, const FileAccess& access, size_t maxBytes,
                                           std::vector<Diagnostic>& errors) {
  auto f = openPolicyFile({path, false}, access, maxBytes, errors);
  if (!f) return std::nullopt;
  std::string out;
  char chunk[1 << 16];
  for (;;) {
    const ssize_t n = ::read(f->fd.get(), chunk, sizeof chunk);
    if (n > 0) {
      out.append(chunk, static_cast<size_t>(n));
      if (out.size() > maxBytes) {  // it grew since fstat
        errors.push_back({{path, 0, 0}, tooBigMessage(maxBytes)});
        return std::nullopt;
      }
    } else if (n == 0) {
      return out;
    } else if (errno != EINTR) {
      errors.push_back({{path, 0, 0}, std::string("cannot read: ") + std::strerror(errno)});
      return std::nullopt;
    }
  }
}

}  // namespace microseg::policy
