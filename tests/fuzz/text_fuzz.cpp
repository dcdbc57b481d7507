// common/text.h against a reference written here from the Unicode
// standard (Table 3-7, well-formed byte sequences; "maximal subpart"
// replacement, 3.9 U+FFFD substitution): toUtf8(), isUtf8(), appendUtf8()
// and jsonText() on any bytes.
#include <string>

#include "common/text.h"
#include "fuzz_util.h"

using namespace microseg;

namespace {

// The length of the well-formed sequence at s[i], or of its maximal
// subpart (negated) when it is ill-formed: -1 for a byte that starts
// nothing.
int sequenceAt(std::string_view s, size_t i) {
  const auto b = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char c = b(i);
  if (c < 0x80) return 1;
  int need;
  unsigned char lo = 0x80, hi = 0xBF;  // the second byte's range
  if (c >= 0xC2 && c <= 0xDF) {
    need = 1;
  } else if (c == 0xE0) {
    need = 2, lo = 0xA0;
  } else if (c >= 0xE1 && c <= 0xEC) {
    need = 2;
  } else if (c == 0xED) {
    need = 2, hi = 0x9F;
  } else if (c >= 0xEE && c <= 0xEF) {
    need = 2;
  } else if (c == 0xF0) {
    need = 3, lo = 0x90;
  } else if (c >= 0xF1 && c <= 0xF3) {
    need = 3;
  } else if (c == 0xF4) {
    need = 3, hi = 0x8F;
  } else {
    return -1;
  }
  for (int k = 1; k <= need; k++) {
    if (i + k >= s.size()) return -k;
    const unsigned char x = b(i + k);
    const unsigned char l = k == 1 ? lo : 0x80, h = k == 1 ? hi : 0xBF;
    if (x < l || x > h) return -k;
  }
  return need + 1;
}

std::string reference(std::string_view s, bool& valid) {
  std::string out;
  valid = true;
  for (size_t i = 0; i < s.size();) {
    const int n = sequenceAt(s, i);
    if (n > 0) {
      out.append(s.substr(i, n));
      i += n;
    } else {
      out.append(text::kReplacement);
      valid = false;
      i += -n;
    }
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  bool valid = false;
  const std::string want = reference(bytes, valid);
  const std::string got = text::toUtf8(bytes);
  fuzz::check(got == want, "toUtf8 differs from the reference", "got:  " + got + "\nwant: " + want);
  fuzz::check(text::isUtf8(bytes) == valid, "isUtf8 differs from the reference");
  fuzz::check(text::isUtf8(got), "toUtf8's output is not UTF-8");
  fuzz::check(text::toUtf8(got) == got, "toUtf8 is not idempotent");
  std::string appended = "x";
  text::appendUtf8(appended, bytes);
  fuzz::check(appended == "x" + want, "appendUtf8 differs from toUtf8");

  // A JSON document of these bytes always dumps, and reads back as the
  // replaced text.
  const nlohmann::json doc = {{"s", std::string(bytes)}, {std::string(bytes), 1}};
  const std::string json = text::jsonText(doc);
  fuzz::check(text::isUtf8(json) && json.find('\n') == std::string::npos, "jsonText's output is not one UTF-8 line");
  const nlohmann::json back = nlohmann::json::parse(json);
  fuzz::check(back["s"] == want && back.contains(want), "jsonText does not read back as toUtf8's text", json);
  return 0;
}
