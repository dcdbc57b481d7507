#include "cli/table.h"

#include <algorithm>
#include <sstream>

#include "common/text.h"

namespace microseg::cli {

Table::Table(std::vector<std::string> headers)
    : headers_(std::move(headers)), align_(headers_.size(), Align::Left) {}

void Table::add(std::vector<std::string> row) {
  row.resize(headers_.size());
  for (auto& cell : row) cell = sanitize(cell);
  rows_.push_back(std::move(row));
}

void Table::align(size_t column, Align a) {
  if (column < align_.size()) align_[column] = a;
}

void Table::print(std::ostream& out) const {
  std::vector<size_t> width(headers_.size(), 0);
  auto measure = [&](const std::vector<std::string>& r) {
    for (size_t i = 0; i < r.size(); i++) width[i] = std::max(width[i], displayWidth(r[i]));
  };
  measure(headers_);
  for (const auto& r : rows_) measure(r);
  auto line = [&](const std::vector<std::string>& r) {
    std::string s;
    for (size_t i = 0; i < r.size(); i++) {
      const std::string pad(width[i] - displayWidth(r[i]), ' ');
      s += align_[i] == Align::Right ? pad + r[i] : r[i] + pad;
      if (i + 1 < r.size()) s += "  ";
    }
    while (!s.empty() && s.back() == ' ') s.pop_back();
    out << s << "\n";
  };
  line(headers_);
  for (const auto& r : rows_) line(r);
}

std::string Table::str() const {
  std::ostringstream ss;
  print(ss);
  return ss.str();
}

std::string sanitize(const std::string& raw) {
  static const char* kHex = "0123456789abcdef";
  const std::string s = text::toUtf8(raw);
  std::string out;
  out.reserve(s.size());
  auto escape = [&](unsigned char c) {
    out += "\\x";
    out += kHex[c >> 4];
    out += kHex[c & 0xf];
  };
  for (size_t i = 0; i < s.size(); i++) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x20 || c == 0x7f) {
      escape(c);
    } else if (c == 0xc2 && i + 1 < s.size() && static_cast<unsigned char>(s[i + 1]) < 0xa0) {
      // U+0080..U+009F, the C1 controls: some terminals take U+009B as CSI.
      escape(static_cast<unsigned char>(s[++i]));
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

size_t displayWidth(const std::string& s) {
  size_t n = 0;
  for (size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    size_t len = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xe ? 3 : (c >> 3) == 0x1e ? 4 : 1;
    if (i + len > s.size()) len = 1;
    for (size_t k = 1; k < len; k++) {
      if ((static_cast<unsigned char>(s[i + k]) & 0xc0) != 0x80) {
        len = 1;
        break;
      }
    }
    i += len;
    n++;
  }
  return n;
}

}  // namespace microseg::cli
