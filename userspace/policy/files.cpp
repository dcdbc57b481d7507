#include "policy/files.h"

#include <algorithm>
#include <filesystem>
#include <system_error>

namespace microseg::policy {

std::vector<std::string> listFiles(const std::vector<std::string>& paths, std::vector<Diagnostic>& errors) {
  namespace fs = std::filesystem;
  std::vector<std::string> files;
  if (paths.empty()) {
    errors.push_back({{"<policy>", 0, 0}, "no policy path given"});
    return files;
  }
  for (const auto& p : paths) {
    std::error_code ec;
    auto st = fs::status(p, ec);
    if (ec || !fs::exists(st)) {
      errors.push_back({{p, 0, 0}, "cannot read: " + (ec ? ec.message() : std::string("No such file or directory"))});
      continue;
    }
    if (fs::is_directory(st)) {
      std::vector<std::string> found;
      // The error_code forms throughout: a vanished or unreadable entry is a
      // diagnostic, not an exception out of the daemon's reload.
      for (fs::directory_iterator it(p, ec), end; !ec && it != end; it.increment(ec)) {
        const std::string ext = it->path().extension().string();
        std::error_code fec;
        if ((ext == ".yaml" || ext == ".yml") && it->is_regular_file(fec)) {
          found.push_back(it->path().string());
        }
      }
      if (ec) {
        errors.push_back({{p, 0, 0}, "cannot list directory: " + ec.message()});
        continue;
      }
      if (found.empty()) {
        errors.push_back({{p, 0, 0}, "directory has no *.yaml or *.yml files"});
        continue;
      }
      std::sort(found.begin(), found.end());
      files.insert(files.end(), found.begin(), found.end());
    } else {
      files.push_back(p);
    }
  }
  return files;
}

}  // namespace microseg::policy
