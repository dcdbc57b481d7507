#include "policy/promote.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <climits>
#include <cstdlib>
#include <fstream>
#include <regex>
#include <sstream>
#include <vector>

#include "common/fd.h"
#include "policy/schema.h"

namespace microseg::policy {
namespace {

Error promoteError(const std::string& file, const std::string& detail) {
  return Error{"promote", file, 0, detail};
}

// The one policy of that name in `b`; null if none or several.
const Policy* findIn(const Bundle& b, const std::string& name) {
  const Policy* found = nullptr;
  for (const auto& p : b.policies) {
    if (p.name != name) continue;
    if (found != nullptr) return nullptr;
    found = &p;
  }
  return found;
}

}  // namespace

Result<std::string> promoteText(const std::string& text, const std::string& file, const std::string& name) {
  const ParseResult before = parseText(text, file);
  if (!before.ok()) {
    return promoteError(file, "the file does not parse as it is now (" + before.errors.front().str() +
                                  "): fix it first");
  }
  const Policy* p = findIn(before.bundle, name);
  if (p == nullptr) return promoteError(file, "no single policy '" + name + "' is defined in this file");
  if (!p->staged) return promoteError(file, "policy '" + name + "' is not staged: nothing to promote");
  const std::string where = file + ":" + std::to_string(p->stagedLoc.line);
  const std::string byHand = ": edit the file by hand (remove `staged: true` from policy '" + name +
                             "') and run `microseg policy reload`";
  // The line's bounds.
  size_t begin = 0;
  for (int line = 1; line < p->stagedLoc.line; line++) {
    begin = text.find('\n', begin);
    if (begin == std::string::npos) return promoteError(file, where + " is past the end of the file" + byHand);
    begin++;
  }
  size_t end = text.find('\n', begin);
  end = end == std::string::npos ? text.size() : end + 1;
  std::string line = text.substr(begin, end - begin);
  while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.pop_back();
  // `staged: true` alone on its line (block style), an optional comment.
  static const std::regex kPlain(R"(^[ ]*staged[ ]*:[ ]+true[ ]*(#.*)?$)");
  if (!std::regex_match(line, kPlain)) {
    return promoteError(file, where + ": `staged: true` is not a plain block-style line of its own (the line is: " +
                                  line + ")" + byHand);
  }
  std::string out = text.substr(0, begin) + text.substr(end);
  // The same policies, this one in force now.
  const ParseResult after = parseText(out, file);
  const Policy* q = after.ok() ? findIn(after.bundle, name) : nullptr;
  if (q == nullptr || q->staged || after.bundle.policies.size() != before.bundle.policies.size() ||
      after.bundle.stagedPolicies() + 1 != before.bundle.stagedPolicies()) {
    return promoteError(file, where + ": removing the line would not leave the same policies with '" + name +
                                  "' in force" + byHand);
  }
  return out;
}

Result<void> replaceFile(const std::string& path, const std::string& text) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return sysError("stat", path);
  const auto slash = path.rfind('/');
  const std::string dir = slash == std::string::npos ? "." : path.substr(0, slash == 0 ? 1 : slash);
  std::string tmpl = (slash == std::string::npos ? std::string() : path.substr(0, slash + 1)) + ".promote-XXXXXX";
  std::vector<char> name(tmpl.begin(), tmpl.end());
  name.push_back('\0');
  UniqueFd fd(::mkstemp(name.data()));
  if (!fd) return sysError("create", tmpl);
  const std::string tmp(name.data());
  auto fail = [&](Error e) -> Result<void> {
    ::unlink(tmp.c_str());
    return e;
  };
  // The file keeps its mode, and its owner where we may set it (root).
  if (::fchmod(fd.get(), st.st_mode & 07777) != 0) return fail(sysError("chmod", tmp));
  if ((st.st_uid != ::geteuid() || st.st_gid != ::getegid()) && ::fchown(fd.get(), st.st_uid, st.st_gid) != 0) {
    return fail(sysError("chown", tmp));
  }
  size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = ::write(fd.get(), text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return fail(sysError("write", tmp));
    done += static_cast<size_t>(n);
  }
  if (::fsync(fd.get()) != 0) return fail(sysError("fsync", tmp));
  if (::rename(tmp.c_str(), path.c_str()) != 0) return fail(sysError("rename to " + path, tmp));
  if (UniqueFd d(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC)); d) ::fsync(d.get());
  return {};
}

Result<std::string> promoteFile(const std::string& path, const std::string& name) {
  // A symlinked policy file: its target is edited (the link stays).
  char real[PATH_MAX];
  if (::realpath(path.c_str(), real) == nullptr) return sysError("resolve", path);
  std::ifstream in(real, std::ios::binary);
  if (!in) return sysError("open", real);
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) return sysError("read", real);
  const std::string text = ss.str();
  auto edited = promoteText(text, path, name);
  if (!edited) return edited.error();
  if (auto w = replaceFile(real, edited.value()); !w) return w.error();
  return text;
}

}  // namespace microseg::policy
