// Aligned text tables for the CLI: a header row, then rows; columns are as
// wide as their widest cell (in characters, UTF-8 aware) plus two spaces.
#pragma once

#include <cstddef>
#include <ostream>
#include <string>
#include <vector>

namespace microseg::cli {

class Table {
 public:
  enum class Align { Left, Right };

  explicit Table(std::vector<std::string> headers);
  // Short rows are padded with empty cells; extra cells are dropped.
  void add(std::vector<std::string> row);
  void align(size_t column, Align a);  // default Left; Right suits numbers
  void print(std::ostream& out) const;
  std::string str() const;
  bool empty() const { return rows_.empty(); }
  size_t size() const { return rows_.size(); }

 private:
  std::vector<std::string> headers_;
  std::vector<Align> align_;
  std::vector<std::vector<std::string>> rows_;
};

// Terminal-safe text: bytes that are not UTF-8 are replaced as
// text::toUtf8() does, and control characters (C0, DEL and the C1 range
// U+0080..U+009F: a cgroup or a comm can be named by an unprivileged user)
// become "\xNN", so they can neither break the layout nor send escape
// sequences to the operator's terminal.
std::string sanitize(const std::string& s);

// Display width in characters of valid UTF-8 (bytes of invalid UTF-8 count 1).
size_t displayWidth(const std::string& s);

}  // namespace microseg::cli
