// Which directories the daemon watches for its policy paths, and which
// events in them concern the policy set. Pure logic; the daemon does the
// inotify calls.
#pragma once

#include <functional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace microseg::policy {

struct PolicyWatch {
  std::string dir;
  // A directory given as a policy path: every *.yaml / *.yml in it counts.
  bool wholeDir = false;
  // Policy files given by path that live in `dir` (their base names): a file
  // is watched through its directory, since editors and GitOps tools
  // replace files by rename.
  std::set<std::string> files;
};

// One watch per directory. `isDir` tells whether a path is a directory
// (injected for tests; the daemon uses stat()).
std::vector<PolicyWatch> policyWatches(const std::vector<std::string>& paths,
                                       const std::function<bool(const std::string&)>& isDir);

// Does an event on `name` in w.dir concern the policy set? An empty name is
// an event on the directory itself (deleted, moved): it does.
bool concerns(const PolicyWatch& w, std::string_view name);

}  // namespace microseg::policy
