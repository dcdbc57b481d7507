// The loader's reuse paths (documents, and the rules of a policy document:
// rule_reuse.h): a file, then an edited version of it, then the first again,
// loaded one after the other through one PolicyLoader. Every load is
// exactly what a fresh parse of that text gives.
//
// Input: one byte of settings (the chunk size; the rules a policy needs for
// its rules to be reused: 1, 2, 4 or 64), then the first text, a NUL byte,
// the edited text (a NUL is never valid in YAML, so no input loses
// anything by it).
#include <string>

#include "fuzz_util.h"
#include "policy/parser.h"

using namespace microseg;

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  fuzz::quietLogs();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const uint8_t settings = data[0];
  const std::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);
  const size_t cut = input.find('\0');
  const std::string first(input.substr(0, cut));
  const std::string edited(cut == std::string_view::npos ? std::string_view("") : input.substr(cut + 1));
  static const size_t kChunks[] = {1, 7, 64, size_t(256) << 10};
  static const size_t kMinReuse[] = {1, 2, 4, 64};

  static fuzz::MemFile file;
  policy::PolicyLoader loader(std::chrono::seconds(2), kChunks[settings & 0x03], kMinReuse[(settings >> 2) & 0x03]);
  const std::string* steps[] = {&first, &edited, &first};
  for (size_t i = 0; i < 3; i++) {
    file.write(*steps[i]);
    const std::string got = fuzz::dump(loader.load({file.path()}));
    const std::string want = fuzz::dump(fuzz::freshParse(*steps[i], file.path()));
    if (got != want) {
      fuzz::fail("load " + std::to_string(i + 1) + " of 3 is not a fresh parse's (" +
                     std::to_string(loader.lastStats().reused) + " documents reused, " +
                     std::to_string(loader.lastStats().spliced) + " spliced, " +
                     std::to_string(loader.lastStats().rulesReused) + " rules reused)",
                 "loader:\n" + got + "fresh parse:\n" + want);
    }
  }
  return 0;
}
