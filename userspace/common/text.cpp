#include "common/text.h"

namespace microseg::text {
namespace {

// Length of the well-formed UTF-8 sequence at s[i], or 0 if it is not one;
// `subpart` is then the length of its maximal ill-formed subpart (>= 1).
// Table 3-7 of the Unicode standard: the second byte's range depends on the
// first byte, which excludes overlongs, surrogates and values > U+10FFFF.
size_t sequenceAt(std::string_view s, size_t i, size_t& subpart) {
  const auto b = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char c = b(i);
  subpart = 1;
  if (c < 0x80) return 1;
  size_t len = 0;
  unsigned char lo = 0x80, hi = 0xbf;
  if (c >= 0xc2 && c <= 0xdf) {
    len = 2;
  } else if (c >= 0xe0 && c <= 0xef) {
    len = 3;
    if (c == 0xe0) lo = 0xa0;
    if (c == 0xed) hi = 0x9f;
  } else if (c >= 0xf0 && c <= 0xf4) {
    len = 4;
    if (c == 0xf0) lo = 0x90;
    if (c == 0xf4) hi = 0x8f;
  } else {
    return 0;  // 0x80..0xc1, 0xf5..0xff never start a sequence
  }
  for (size_t k = 1; k < len; k++) {
    if (i + k >= s.size()) return 0;
    const unsigned char t = b(i + k);
    if (k == 1 ? (t < lo || t > hi) : (t < 0x80 || t > 0xbf)) return 0;
    subpart = k + 1;
  }
  return len;
}

}  // namespace

bool isUtf8(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    size_t subpart = 0;
    const size_t n = sequenceAt(s, i, subpart);
    if (n == 0) return false;
    i += n;
  }
  return true;
}

void appendUtf8(std::string& out, std::string_view s) {
  size_t clean = 0;  // start of the valid run not yet copied
  for (size_t i = 0; i < s.size();) {
    size_t subpart = 0;
    const size_t n = sequenceAt(s, i, subpart);
    if (n != 0) {
      i += n;
      continue;
    }
    out.append(s.substr(clean, i - clean));
    out.append(kReplacement);
    i += subpart;
    clean = i;
  }
  out.append(s.substr(clean));
}

std::string toUtf8(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  appendUtf8(out, s);
  return out;
}

std::string jsonText(const nlohmann::json& value, int indent) {
  return value.dump(indent, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace microseg::text
