#include "k8s_import/importer.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "k8s_import/emit_yaml.h"
#include "k8s_import/read_objects.h"
#include "policy/files.h"
#include "policy/loader.h"

namespace microseg::k8s {

namespace {

// The policy loader's bound on a file, for the same reason: a hostile or
// mistaken input (a device, a huge file) is refused, not read until memory
// runs out.
const size_t kMaxInputBytes = policy::LoadLimits{}.maxFileBytes;

std::optional<std::string> readStdin(std::vector<policy::Diagnostic>& errors) {
  std::string out;
  char chunk[1 << 16];
  for (;;) {
    const ssize_t n = ::read(STDIN_FILENO, chunk, sizeof chunk);
    if (n > 0) {
      out.append(chunk, static_cast<size_t>(n));
      if (out.size() > kMaxInputBytes) {
        errors.push_back({{"<stdin>", 0, 0}, policy::tooBigMessage(kMaxInputBytes)});
        return std::nullopt;
      }
    } else if (n == 0) {
      return out;
    } else if (errno != EINTR) {
      errors.push_back({{"<stdin>", 0, 0}, std::string("cannot read: ") + std::strerror(errno)});
      return std::nullopt;
    }
  }
}

}  // namespace

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
    auto text = path == "-" ? readStdin(errors)
                            : policy::readRegularFile(path, policy::defaultFileAccess(), kMaxInputBytes, errors);
    if (text) inputs.push_back({path == "-" ? "<stdin>" : path, std::move(*text)});
  }
  if (!errors.empty()) {
    ImportResult out;
    out.errors = std::move(errors);
    return out;
  }
  return importTexts(inputs, options);
}

}  // namespace microseg::k8s
