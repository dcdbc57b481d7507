// policy::parseText() and the cross-document checks on any text: no crash,
// no sanitizer finding, every diagnostic located in the text it names, and
// the same text read twice gives the same result.
#include <algorithm>
#include <string>

#include "fuzz_util.h"
#include "policy/parser.h"

using namespace microseg;

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  fuzz::quietLogs();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  policy::ParseResult r = policy::parseText(text, "fuzz.yaml");
  policy::validateBundle(r.bundle, r.errors);

  // Lines as libyaml counts them: "\r\n", "\r", "\n", NEL, LS and PS each
  // end one, and an error at the end of the text is on the line after it.
  int lines = 1;
  for (size_t i = 0; i < text.size(); i++) {
    if (text[i] == '\n' || (text[i] == '\r' && (i + 1 == text.size() || text[i + 1] != '\n')) ||
        text.compare(i, 2, "\xc2\x85") == 0 || text.compare(i, 3, "\xe2\x80\xa8") == 0 ||
        text.compare(i, 3, "\xe2\x80\xa9") == 0) {
      lines++;
    }
  }
  for (const auto& d : r.errors) {
    fuzz::check(d.loc.file == "fuzz.yaml", "a diagnostic names another file", d.str());
    fuzz::check(d.loc.line >= 0 && d.loc.line <= lines + 1 && d.loc.column >= 0,
                "a diagnostic is located outside the text", d.str());
    fuzz::check(!d.message.empty(), "a diagnostic without a message", d.str());
  }
  // A rejected set is rejected for a reason, and a syntax error is the
  // text's only diagnostic (schema.h).
  for (const auto& d : r.errors) {
    if (d.message.rfind("YAML syntax: ", 0) == 0 || d.message.rfind("YAML limit: ", 0) == 0) {
      fuzz::check(r.errors.size() == 1 && r.bundle.workloads.empty() && r.bundle.policies.empty() &&
                      r.bundle.externals.empty(),
                  "a YAML syntax error is not the text's only result", fuzz::dump(r));
    }
  }
  const std::string first = fuzz::dump(r);
  fuzz::check(fuzz::dump(fuzz::freshParse(text, "fuzz.yaml")) == first, "parseText is not deterministic", first);
  return 0;
}
