// PolicyLoader on a file written from the input, under the default bounds
// or tight ones (nesting, aliases, file size) and read a chunk of 1, 7,
// 4096 or 256 KiB bytes at a time: the result is exactly what a fresh parse
// of the whole text gives (loader.h's promise), and a second load of the
// unchanged file gives it again.
//
// Input: one byte of settings, then the file's text.
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
  const std::string_view text(reinterpret_cast<const char*>(data) + 1, size - 1);
  static const size_t kChunks[] = {1, 7, 4096, size_t(256) << 10};

  policy::LoadLimits limits;
  if (settings & 0x04) limits.yaml.maxDepth = 6;
  if (settings & 0x08) {
    limits.yaml.aliasFloor = 20;
    limits.yaml.aliasFactor = 1;
  }
  if (settings & 0x10) limits.maxFileBytes = 512;

  static fuzz::MemFile file;
  file.write(text);
  policy::PolicyLoader loader(std::chrono::seconds(2), kChunks[settings & 0x03]);
  loader.setLimits(limits);
  const policy::ParseResult warm = loader.load({file.path()});
  const std::string got = fuzz::dump(warm);

  if (text.size() > limits.maxFileBytes) {
    fuzz::check(warm.errors.size() == 1 && warm.empty(), "a file over the size bound is not refused alone", got);
  } else {
    const std::string want = fuzz::dump(fuzz::freshParse(text, file.path(), limits.yaml));
    fuzz::check(got == want, "the loader's result is not a fresh parse's",
                "loader:\n" + got + "fresh parse:\n" + want);
  }
  // Unchanged (and read while fresh, so read again): the same.
  const std::string again = fuzz::dump(loader.load({file.path()}));
  fuzz::check(again == got, "a second load of the unchanged file differs", "first:\n" + got + "second:\n" + again);
  return 0;
}
