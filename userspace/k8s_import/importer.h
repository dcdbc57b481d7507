// `microseg import k8s`: Kubernetes objects in, microseg documents out
// (read_objects.h -> translate.h -> emit_yaml.h). Pure: no daemon, no
// kernel. Nothing is printed unless everything translated: one error
// anywhere and the result has no text.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "k8s_import/documents.h"
#include "k8s_import/translate.h"

namespace microseg::k8s {

struct Input {
  std::string name;  // for locations
  std::string text;
};

struct ImportResult {
  Documents documents;
  std::string yaml;  // "" unless ok()
  std::vector<policy::Diagnostic> errors;
  std::vector<policy::Diagnostic> warnings;
  bool ok() const { return errors.empty(); }
};

ImportResult importTexts(const std::vector<Input>& inputs, const TranslateOptions& options);

// Reads each path ("-": standard input, named "<stdin>"), then importTexts.
// A file that cannot be read is an error naming it.
ImportResult importFiles(const std::vector<std::string>& paths, const TranslateOptions& options);

}  // namespace microseg::k8s
