// YAML -> policy::Bundle, with every problem reported as a located Diagnostic.
#pragma once

#include <string>
#include <vector>

#include "policy/model.h"

namespace microseg::policy {

struct ParseResult {
  Bundle bundle;
  std::vector<Diagnostic> errors;  // empty = valid
  bool ok() const { return errors.empty(); }
};

// Parse one YAML text (may hold several `---` documents). `file` is used in
// locations only. Does not run cross-document checks.
ParseResult parseText(const std::string& text, const std::string& file);

// Load FILE or DIR (every *.yaml / *.yml directly inside, sorted by name; a
// directory with none is an error), parse all documents, then validate the
// whole set (duplicate names, unknown identity references, ...).
ParseResult loadPaths(const std::vector<std::string>& paths);

// Cross-document checks on an already parsed bundle; appends to `errors`.
void validateBundle(const Bundle& bundle, std::vector<Diagnostic>& errors);

}  // namespace microseg::policy
