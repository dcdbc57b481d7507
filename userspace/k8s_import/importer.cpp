#include "k8s_import/importer.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <iostream>
#include <iterator>
#include <sstream>
#include <sys/stat.h>

#include "k8s_import/emit_yaml.h"
#include "k8s_import/read_objects.h"

namespace microseg::k8s {

ImportResult importTexts(const std::vector<Input>& inputs, const TranslateOptions& options) {
  ImportResult out;
  ReadResult read;
  for (const auto& in : inputs) readObjects(in.text, in.name, read);
  out.warnings = std::move(read.warnings);
  if (!read.errors.empty()) {
    out.errors = std::move(read.errors);
    return out;
  }
  TranslateResult t = translate(read.objects, options);
  out.warnings.insert(out.warnings.end(), t.warnings.begin(), t.warnings.end());
  if (!t.ok()) {
    out.errors = std::move(t.errors);
    return out;
  }
  out.documents = std::move(t.documents);
  out.yaml = emitYaml(out.documents);
  return out;
}

ImportResult importFiles(const std::vector<std::string>& paths, const TranslateOptions& options) {
  std::vector<Input> inputs;
  std::vector<policy::Diagnostic> errors;
  for (const auto& path : paths) {
    Input in;
    if (path == "-") {
      in.name = "<stdin>";
      in.text.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
      inputs.push_back(std::move(in));
      continue;
    }
    in.name = path;
    struct stat st {};
    if (stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
      errors.push_back({{path, 0, 0}, "is a directory (give its files with -f each)"});
      continue;
    }
    std::ifstream f(path, std::ios::binary);
    if (!f) {
      errors.push_back({{path, 0, 0}, std::string("cannot read: ") + std::strerror(errno)});
      continue;
    }
    std::ostringstream ss;
    ss << f.rdbuf();
    in.text = ss.str();
    inputs.push_back(std::move(in));
  }
  if (!errors.empty()) {
    ImportResult out;
    out.errors = std::move(errors);
    return out;
  }
  return importTexts(inputs, options);
}

}  // namespace microseg::k8s
