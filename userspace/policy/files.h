// Which files a list of policy paths names: a file itself, a directory its
// *.yaml and *.yml files (sorted by name).
#pragma once

#include <string>
#include <vector>

#include "policy/model.h"

namespace microseg::policy {

// The files `paths` name, directories expanded (sorted); problems appended.
std::vector<std::string> listFiles(const std::vector<std::string>& paths, std::vector<Diagnostic>& errors);

}  // namespace microseg::policy
