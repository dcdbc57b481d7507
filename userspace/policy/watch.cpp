#include "policy/watch.h"

#include <map>

namespace microseg::policy {

std::vector<PolicyWatch> policyWatches(const std::vector<std::string>& paths,
                                       const std::function<bool(const std::string&)>& isDir) {
  std::map<std::string, PolicyWatch> byDir;
  for (const auto& p : paths) {
    if (isDir(p)) {
      PolicyWatch& w = byDir[p];
      w.dir = p;
      w.wholeDir = true;
      continue;
    }
    const auto slash = p.find_last_of('/');
    const std::string dir = slash == std::string::npos ? "." : (slash == 0 ? "/" : p.substr(0, slash));
    PolicyWatch& w = byDir[dir];
    w.dir = dir;
    w.files.insert(slash == std::string::npos ? p : p.substr(slash + 1));
  }
  std::vector<PolicyWatch> out;
  for (auto& [dir, w] : byDir) out.push_back(std::move(w));
  return out;
}

bool concerns(const PolicyWatch& w, std::string_view name) {
  if (name.empty()) return true;
  if (w.files.count(std::string(name)) != 0) return true;
  if (!w.wholeDir) return false;
  auto endsWith = [&](std::string_view suffix) {
    return name.size() > suffix.size() && name.substr(name.size() - suffix.size()) == suffix;
  };
  return endsWith(".yaml") || endsWith(".yml");
}

}  // namespace microseg::policy
