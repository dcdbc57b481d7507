#include "policy/fast_yaml.h"

#include <algorithm>
#include <string>

namespace microseg::policy::yaml {
namespace {

// yaml-cpp's IsNullString: plain scalars that are empty values.
bool nullText(std::string_view s) { return s.empty() || s == "~" || s == "null" || s == "Null" || s == "NULL"; }

bool blankOrEnd(char c) { return c == ' ' || c == '\n' || c == '\0'; }

// What may start a plain scalar (yaml-cpp's Exp::PlainScalar and
// PlainScalarInFlow), minus '?' and ':' starts, which this reader leaves to
// yaml-cpp.
bool plainStart(char c, char next) {
  switch (c) {
    case ' ': case '\n': case '\0': case ',': case '[': case ']': case '{': case '}': case '#':
    case '&': case '*': case '!': case '|': case '>': case '\'': case '"': case '%': case '@':
    case '`': case '?': case ':':
      return false;
    case '-': return !blankOrEnd(next);
    default: return true;
  }
}

class Reader {
 public:
  Reader(std::string_view text, const DocumentSpan& span, Tree& tree)
      : s_(text), p_(span.begin), end_(span.end), line_(span.firstLine), lineStart_(span.begin), tree_(tree) {}

  bool document() {
    tree_.clear();
    if (!nextContent()) {
      tree_.addNull(here());  // an empty document, as yaml-cpp reads it
      return true;
    }
    if (!blockNode(-1)) return false;
    return atEnd();  // content less indented than the root's is an error
  }

 private:
  // '\0' past the end: the splitter refuses NUL bytes, so it only means that.
  char peek(size_t k = 0) const { return p_ + k < end_ ? s_[p_ + k] : '\0'; }
  bool atEnd() const { return p_ >= end_; }
  int col() const { return static_cast<int>(p_ - lineStart_); }
  Mark here() const { return {line_, col()}; }
  void newline() {  // at '\n'
    p_++;
    line_++;
    lineStart_ = p_;
  }
  void skipSpaces() {
    while (peek() == ' ') p_++;
  }
  void skipComment() {
    while (!atEnd() && peek() != '\n') p_++;
  }
  static bool isEntry(char c, char next) { return c == '-' && blankOrEnd(next); }

  // After a token: spaces, maybe a comment, then the line break (or the end).
  bool endOfLine() {
    skipSpaces();
    if (peek() == '#') skipComment();
    if (atEnd()) return true;
    if (peek() != '\n') return false;
    newline();
    return true;
  }

  // From a line start, over blank and comment lines to the first content
  // character of a line; false at the end. `commentIndent`: the largest
  // indentation of a comment line passed.
  bool nextContent(int* commentIndent = nullptr) {
    for (;;) {
      skipSpaces();
      if (atEnd()) return false;
      if (peek() == '\n') {
        newline();
        continue;
      }
      if (peek() == '#') {
        if (commentIndent != nullptr) *commentIndent = std::max(*commentIndent, col());
        skipComment();
        if (atEnd()) return false;
        newline();
        continue;
      }
      return true;
    }
  }

  // After a value that ended its line, at the next content line: it must not
  // be indented more than the block the value is in (yaml-cpp would read it
  // as more of a plain scalar, or refuse it), nor may a comment line be.
  bool afterValue(int indent) {
    int commentIndent = -1;
    const bool more = nextContent(&commentIndent);
    return commentIndent <= indent && (!more || col() <= indent);
  }

  // ---- scalars ---------------------------------------------------------------

  // A quoted scalar on one line; p_ at the quote, left after the closing one.
  bool quoted(std::string_view& out) {
    const char q = peek();
    p_++;
    const size_t begin = p_;
    bool plainText = true;  // no escapes: the text is the source
    for (;;) {
      const char c = peek();
      if (c == '\0' || c == '\n') return false;
      if (q == '\'') {
        if (c == '\'') {
          if (peek(1) != '\'') break;
          plainText = false;
          p_ += 2;
          continue;
        }
      } else {
        if (c == '"') break;
        if (c == '\\') {
          switch (peek(1)) {
            case '\\': case '"': case '/': case 'n': case 't': case 'r': break;
            default: return false;
          }
          plainText = false;
          p_ += 2;
          continue;
        }
      }
      p_++;
    }
    const std::string_view raw = s_.substr(begin, p_ - begin);
    p_++;  // closing quote
    if (plainText) {
      out = raw;
      return true;
    }
    unescaped_.clear();
    for (size_t i = 0; i < raw.size(); i++) {
      if (q == '\'') {
        unescaped_.push_back(raw[i]);
        if (raw[i] == '\'') i++;  // '' -> '
        continue;
      }
      if (raw[i] != '\\') {
        unescaped_.push_back(raw[i]);
        continue;
      }
      switch (raw[++i]) {
        case 'n': unescaped_.push_back('\n'); break;
        case 't': unescaped_.push_back('\t'); break;
        case 'r': unescaped_.push_back('\r'); break;
        default: unescaped_.push_back(raw[i]); break;  // \\ \" \/
      }
    }
    out = unescaped_;
    return true;
  }

  // A plain scalar in block context, to ": ", " #" or the end of the line,
  // without trailing spaces.
  std::string_view plainBlock() {
    const size_t begin = p_;
    for (;;) {
      const char c = peek();
      if (c == '\0' || c == '\n') break;
      if (c == ':' && blankOrEnd(peek(1))) break;
      if (c == ' ' && peek(1) == '#') break;
      p_++;
    }
    size_t end = p_;
    while (end > begin && s_[end - 1] == ' ') end--;
    return s_.substr(begin, end - begin);
  }

  // A plain scalar in a flow collection. False where yaml-cpp could read it
  // otherwise (on into the next line, or a '[', '{' or '?' inside).
  bool plainFlow(std::string_view& out) {
    const size_t begin = p_;
    for (;;) {
      const char c = peek();
      if (c == '\0' || c == '\n' || c == ',' || c == ']' || c == '}') break;
      if (c == '[' || c == '{' || c == '?') return false;
      if (c == ':') {
        const char n = peek(1);
        if (blankOrEnd(n) || n == ',' || n == ']' || n == '}') break;
      }
      if (c == ' ' && peek(1) == '#') break;
      p_++;
    }
    size_t end = p_;
    while (end > begin && s_[end - 1] == ' ') end--;
    out = s_.substr(begin, end - begin);
    if (peek() == '\n') {
      // Only a ',', ']' or '}' after the line break surely ends it.
      size_t q = p_;
      while (q < end_ && (s_[q] == ' ' || s_[q] == '\n')) q++;
      if (q >= end_ || (s_[q] != ',' && s_[q] != ']' && s_[q] != '}')) return false;
    }
    return true;
  }

  void addPlain(Mark at, std::string_view text) {
    if (nullText(text)) {
      tree_.addNull(at);
    } else {
      tree_.addScalar(at, "?", text);
    }
  }

  // ---- flow collections ----------------------------------------------------

  // Spaces, comments and line breaks between flow tokens (yaml-cpp takes
  // any indentation inside a flow collection). False at the end: unclosed.
  bool flowSpace() {
    for (;;) {
      const char c = peek();
      if (c == ' ') {
        p_++;
      } else if (c == '#') {
        skipComment();
      } else if (c == '\n') {
        newline();
      } else {
        break;
      }
    }
    return !atEnd();
  }

  bool flowNode() {
    const char c = peek();
    if (c == '[') return flowSeq();
    if (c == '{') return flowMap();
    return flowScalar();
  }

  bool flowScalar() {
    const Mark at = here();
    const char c = peek();
    std::string_view text;
    if (c == '\'' || c == '"') {
      if (!quoted(text)) return false;
      tree_.addScalar(at, "!", text);
      return true;
    }
    if (!plainStart(c, peek(1)) || !plainFlow(text)) return false;
    addPlain(at, text);
    return true;
  }

  bool flowSeq() {
    tree_.open(Type::Sequence, here());
    p_++;
    if (!flowSpace()) return false;
    if (peek() == ']') {
      p_++;
      tree_.close();
      return true;
    }
    for (;;) {
      if (!flowNode() || !flowSpace()) return false;
      const char c = peek();
      if (c == ']') break;
      if (c != ',') return false;  // a ':' (a pair in a sequence) or worse
      p_++;
      if (!flowSpace() || peek() == ']') return false;  // a trailing ','
    }
    p_++;
    tree_.close();
    return true;
  }

  bool flowMap() {
    tree_.open(Type::Map, here());
    p_++;
    if (!flowSpace()) return false;
    if (peek() == '}') {
      p_++;
      tree_.close();
      return true;
    }
    for (;;) {
      if (peek() == '[' || peek() == '{' || !flowScalar()) return false;
      skipSpaces();
      if (peek() != ':' || peek(1) != ' ') return false;
      p_++;
      if (!flowSpace()) return false;
      if (peek() == ',' || peek() == '}') return false;  // an empty value
      if (!flowNode() || !flowSpace()) return false;
      const char c = peek();
      if (c == '}') break;
      if (c != ',') return false;
      p_++;
      if (!flowSpace() || peek() == '}') return false;
    }
    p_++;
    tree_.close();
    return true;
  }

  // ---- block collections ---------------------------------------------------
  // Each starts at its first token and returns at the first content
  // character after it (a less indented line), or at the end.

  // A node that starts a line; `parent` is the indentation of the block
  // around it (-1 at the root).
  bool blockNode(int parent) {
    const char c = peek();
    if (isEntry(c, peek(1))) return blockSeq(col(), false);
    if (c == '[' || c == '{') {
      if (!flowNode()) return false;
      skipSpaces();
      if (peek() == ':') return false;  // a collection as a key
      return endOfLine() && afterValue(parent);
    }
    return blockMap(col());  // a scalar alone on its line is left to yaml-cpp
  }

  // Is there a `key:` at p_ (a scalar, then ':' and a blank)?
  bool keyAhead() {
    const size_t p = p_;
    std::string_view text;
    bool key = false;
    const char c = peek();
    if (c == '\'' || c == '"') {
      if (quoted(text)) {
        skipSpaces();
        key = peek() == ':' && blankOrEnd(peek(1));
      }
    } else if (plainStart(c, peek(1))) {
      plainBlock();
      key = peek() == ':' && blankOrEnd(peek(1));
    }
    p_ = p;
    return key;
  }

  // `key:` at p_; adds the key and leaves p_ after the ':'.
  bool blockKey() {
    const Mark at = here();
    const size_t begin = p_;
    const char c = peek();
    std::string_view text;
    const bool isQuoted = c == '\'' || c == '"';
    if (isQuoted) {
      if (!quoted(text)) return false;
      skipSpaces();
    } else {
      if (!plainStart(c, peek(1))) return false;
      text = plainBlock();
    }
    if (peek() != ':' || !blankOrEnd(peek(1))) return false;
    if (p_ - begin > 1000) return false;  // yaml-cpp: a simple key is at most 1024 characters
    p_++;
    if (isQuoted) {
      tree_.addScalar(at, "!", text);
    } else {
      addPlain(at, text);
    }
    return true;
  }

  // A value on its key's line, in a mapping of indentation `indent`.
  bool inlineValue(int indent) {
    const Mark at = here();
    const char c = peek();
    if (c == '[' || c == '{') {
      if (!flowNode()) return false;
    } else if (c == '\'' || c == '"') {
      std::string_view text;
      if (!quoted(text)) return false;
      tree_.addScalar(at, "!", text);
    } else {
      if (!plainStart(c, peek(1))) return false;
      const std::string_view text = plainBlock();
      if (peek() == ':') return false;  // `a: b: c`
      addPlain(at, text);
    }
    return endOfLine() && afterValue(indent);
  }

  bool blockMap(int n) {
    tree_.open(Type::Map, here());
    for (;;) {
      if (!blockKey()) return false;
      skipSpaces();
      const char c = peek();
      if (c == '\n' || c == '\0' || c == '#') {
        if (!endOfLine()) return false;
        if (!nextContent()) {
          tree_.addNull(here());  // takes its key's mark
          break;
        }
        const int m = col();
        if (m > n) {
          if (!blockNode(n)) return false;
        } else if (m == n && isEntry(peek(), peek(1))) {
          if (!blockSeq(n, true)) return false;
        } else {
          tree_.addNull(here());
        }
      } else if (!inlineValue(n)) {
        return false;
      }
      if (atEnd()) break;
      const int m = col();
      if (m < n) break;
      if (m > n || isEntry(peek(), peek(1))) return false;
    }
    tree_.close();
    return true;
  }

  // `indentless`: the value of a key at the same indentation (`key:` then
  // `- item` below it), which a line with that key's indentation ends.
  bool blockSeq(int n, bool indentless) {
    tree_.open(Type::Sequence, here());
    for (;;) {
      p_++;  // '-'
      skipSpaces();
      const char c = peek();
      if (c == '\n' || c == '\0' || c == '#') {
        if (!endOfLine() || !nextContent() || col() <= n) return false;  // an empty item
        if (!blockNode(n)) return false;
      } else if (isEntry(c, peek(1))) {
        return false;  // `- - x`
      } else if (c == '[' || c == '{') {
        if (!flowNode()) return false;
        skipSpaces();
        if (peek() == ':' || !endOfLine() || !afterValue(n)) return false;
      } else if (keyAhead()) {
        if (!blockMap(col())) return false;  // `- key: value`, more keys below at its column
        if (!atEnd() && col() > n) return false;
      } else {
        const Mark at = here();
        if (c == '\'' || c == '"') {
          std::string_view text;
          if (!quoted(text)) return false;
          tree_.addScalar(at, "!", text);
        } else {
          if (!plainStart(c, peek(1))) return false;
          addPlain(at, plainBlock());
        }
        if (!endOfLine() || !afterValue(n)) return false;
      }
      if (atEnd()) break;
      const int m = col();
      if (m < n) break;
      if (m > n) return false;
      if (isEntry(peek(), peek(1))) continue;
      if (indentless) break;
      return false;
    }
    tree_.close();
    return true;
  }

  std::string_view s_;
  size_t p_, end_;
  int line_;
  size_t lineStart_;
  Tree& tree_;
  std::string unescaped_;
};

}  // namespace

bool splitDocuments(std::string_view text, std::vector<DocumentSpan>& out) {
  out.clear();
  for (char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    if (c >= 0x7f || (c < 0x20 && c != '\n')) return false;
  }
  size_t begin = 0;
  int beginLine = 0, line = 0;
  for (size_t p = 0; p < text.size(); line++) {
    size_t eol = text.find('\n', p);
    if (eol == std::string_view::npos) eol = text.size();
    const std::string_view l = text.substr(p, eol - p);
    if (l.substr(0, 3) == "---") {
      if (l.size() > 3 && l[3] != ' ') return false;  // "---x": left to yaml-cpp
      size_t k = 3;
      while (k < l.size() && l[k] == ' ') k++;
      if (k < l.size() && l[k] != '#') return false;  // content after the marker
      out.push_back({begin, p, beginLine});
      begin = std::min(eol + 1, text.size());
      beginLine = line + 1;
    } else if (l.substr(0, 3) == "..." || (!l.empty() && l[0] == '%')) {
      return false;  // document ends, directives
    }
    p = eol + 1;
  }
  out.push_back({begin, text.size(), beginLine});
  return true;
}

bool readDocument(std::string_view text, const DocumentSpan& span, Tree& tree) {
  Reader r(text, span, tree);
  return r.document();
}

}  // namespace microseg::policy::yaml
