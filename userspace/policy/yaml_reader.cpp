#include "policy/yaml_reader.h"
#include "policy/progress.h"

#include <yaml.h>

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

namespace microseg::policy::yaml {
namespace {

// Owns a libyaml parser and the event being looked at.
class Events {
 public:
  explicit Events(std::string_view text) {
    ok_ = yaml_parser_initialize(&parser_) != 0;
    if (ok_) {
      yaml_parser_set_input_string(&parser_, reinterpret_cast<const unsigned char*>(text.data()), text.size());
    }
  }
  ~Events() {
    if (have_) yaml_event_delete(&event_);
    if (ok_) yaml_parser_delete(&parser_);
  }
  Events(const Events&) = delete;
  Events& operator=(const Events&) = delete;

  bool initialized() const { return ok_; }
  // The next event, or nullptr on a syntax error (see error()).
  const yaml_event_t* next() {
    if (have_) yaml_event_delete(&event_);
    have_ = yaml_parser_parse(&parser_, &event_) != 0;
    return have_ ? &event_ : nullptr;
  }
  SyntaxError error() const {
    std::string msg = parser_.problem != nullptr ? parser_.problem : "malformed YAML";
    int contextLine = -1;
    if (parser_.context != nullptr) {
      msg += std::string(" ") + parser_.context;
      if (parser_.context_mark.line != parser_.problem_mark.line) contextLine = int(parser_.context_mark.line);
    }
    if (parser_.error == YAML_MEMORY_ERROR) return {{}, "out of memory"};
    return {{int(parser_.problem_mark.line), int(parser_.problem_mark.column)}, msg, contextLine};
  }
  // Where the character libyaml could not read starts (ill-formed UTF-8, a
  // control character), if that was the error: its reader gives an offset,
  // not a mark.
  std::optional<size_t> unreadableAt() const {
    if (parser_.error != YAML_READER_ERROR) return std::nullopt;
    return static_cast<size_t>(parser_.offset);
  }

 private:
  yaml_parser_t parser_{};
  yaml_event_t event_{};
  bool ok_ = false;
  bool have_ = false;
};

Mark markOf(const yaml_event_t& e) { return {int(e.start_mark.line), int(e.start_mark.column)}; }

std::string_view str(const yaml_char_t* s) {
  return s == nullptr ? std::string_view() : std::string_view(reinterpret_cast<const char*>(s));
}

bool isNullText(std::string_view v) { return v.empty() || v == "~" || v == "null" || v == "Null" || v == "NULL"; }

// Saturating: what nested aliases stand for can pass any integer.
uint64_t addNodes(uint64_t a, uint64_t b) { return a > UINT64_MAX - b ? UINT64_MAX : a + b; }

// Node counts kept per collection and anchor: 32 bits, saturating (no
// bound comes near: a 64 MiB text has fewer than 2^26 nodes, and a count
// that saturates is over every budget).
uint32_t count32(uint64_t n) { return n > UINT32_MAX ? UINT32_MAX : static_cast<uint32_t>(n); }

// The mark libyaml would give the character at `offset` of `text`: lines
// end at "\r\n", "\r", "\n", NEL, LS and PS; columns count characters; a
// byte order mark at the start is not one.
Mark markAt(std::string_view text, size_t offset) {
  Mark m{0, 0};
  size_t i = text.substr(0, 3) == "\xef\xbb\xbf" ? 3 : 0;
  const auto at = [&](size_t k, std::string_view s) { return text.substr(k, s.size()) == s; };
  while (i < offset) {
    size_t len = 1;
    bool lineBreak = false;
    if (at(i, "\r\n")) {
      len = 2, lineBreak = true;
    } else if (text[i] == '\r' || text[i] == '\n') {
      lineBreak = true;
    } else if (at(i, "\xc2\x85")) {
      len = 2, lineBreak = true;
    } else if (at(i, "\xe2\x80\xa8") || at(i, "\xe2\x80\xa9")) {
      len = 3, lineBreak = true;
    } else {
      // Valid UTF-8 up to `offset`: a character is its lead byte and the
      // continuation bytes after it.
      while (i + len < offset && (static_cast<unsigned char>(text[i + len]) & 0xC0) == 0x80) len++;
    }
    if (lineBreak) {
      m.line++;
      m.column = 0;
    } else {
      m.column++;
    }
    i += len;
  }
  return m;
}

bool before(const Mark& a, const Mark& b) { return a.line < b.line || (a.line == b.line && a.column < b.column); }

struct Failure {
  SyntaxError error;
  std::optional<size_t> unreadableAt;  // a character libyaml could not read, at this offset
};

std::optional<Failure> parseStream(std::string_view text, Tree& tree,
                                   const std::function<void(const Tree&)>& onDocument, const Limits& limits);

}  // namespace

std::optional<SyntaxError> readDocuments(std::string_view text, Tree& tree,
                                         const std::function<void(const Tree&)>& onDocument,
                                         const Limits& limits) {
  auto failed = parseStream(text, tree, onDocument, limits);
  if (!failed) return std::nullopt;
  if (!failed->unreadableAt) return std::move(failed->error);
  // libyaml decodes up to 16 KiB of text ahead of what it parses, so a
  // character it cannot read is reported before a syntax error (or a bound
  // crossed) earlier in the text; and a reader that is given the text a
  // document at a time (the policy loader) would report that earlier one.
  // The text's first problem is the one reported: the text before the
  // character is parsed again (an invalid text costs a second parse), and
  // its own error counts if it lies before the character (one at the cut
  // is only where the text was cut).
  const size_t at = std::min(*failed->unreadableAt, text.size());
  SyntaxError unreadable = std::move(failed->error);
  unreadable.at = markAt(text, at);
  unreadable.contextLine = -1;
  if (at > 0) {
    Tree scratch;
    auto earlier = parseStream(text.substr(0, at), scratch, [](const Tree&) {}, limits);
    if (earlier && !earlier->unreadableAt && !earlier->error.at.isNull() && before(earlier->error.at, unreadable.at)) {
      return std::move(earlier->error);
    }
  }
  return unreadable;
}

namespace {

std::optional<Failure> parseStream(std::string_view text, Tree& tree,
                                   const std::function<void(const Tree&)>& onDocument, const Limits& limits) {
  Events events(text);
  if (!events.initialized()) return Failure{SyntaxError{{}, "cannot initialise the YAML parser"}, {}};
  // An anchor's node, and how many nodes it stands for (see Limits).
  struct Anchor {
    uint32_t index;
    uint32_t nodes;
  };
  std::unordered_map<std::string, Anchor> anchors;
  // A collection's anchor is defined where the collection ends, so an alias
  // inside it cannot make the tree a cycle. 40 bytes, as this record was
  // before it counted nodes: measured, with 48 a one-rule reload of 100k
  // rules in 20k documents took ~0.7 ms more (the sizes of what a parse
  // allocates and frees steer where malloc puts the loader's Document
  // records, which a reload then walks: more cache misses).
  struct OpenCollection {
    std::string anchor;
    uint32_t index;
    uint32_t nodes;  // itself and what is in it so far
  };
  std::vector<OpenCollection> open;
  uint64_t own = 0;      // nodes of the document's text
  uint64_t aliased = 0;  // nodes its aliases stand for
  auto counted = [&](uint64_t nodes) {
    if (!open.empty()) open.back().nodes = count32(addNodes(open.back().nodes, nodes));
  };
  auto anchor = [&](const yaml_char_t* name, uint32_t index) {
    if (name != nullptr) anchors[std::string(str(name))] = {index, 1};
  };
  for (;;) {
    const yaml_event_t* e = events.next();
    if (e == nullptr) return Failure{events.error(), events.unreadableAt()};
    progressTick();
    switch (e->type) {
      case YAML_STREAM_END_EVENT: return std::nullopt;
      case YAML_DOCUMENT_START_EVENT:
        tree.clear();
        anchors.clear();
        open.clear();
        own = aliased = 0;
        break;
      case YAML_DOCUMENT_END_EVENT: onDocument(tree); break;
      case YAML_ALIAS_EVENT: {
        const std::string name(str(e->data.alias.anchor));
        auto it = anchors.find(name);
        if (it == anchors.end()) {
          return Failure{SyntaxError{markOf(*e), "alias '*" + name + "' names no anchor defined before it"}, {}};
        }
        aliased = addNodes(aliased, it->second.nodes);
        const uint64_t budget = std::max(limits.aliasFloor, limits.aliasFactor != 0 && own > UINT64_MAX / limits.aliasFactor
                                                                ? UINT64_MAX
                                                                : own * limits.aliasFactor);
        if (aliased > budget) {
          return Failure{SyntaxError{markOf(*e),
                                     "alias '*" + name + "': the document's aliases stand for more than " +
                                         std::to_string(budget) + " nodes (the bound: " +
                                         std::to_string(limits.aliasFactor) +
                                         " times the nodes written in it so far, at least " +
                                         std::to_string(limits.aliasFloor) + ")",
                                     -1, true},
                         {}};
        }
        counted(it->second.nodes);
        tree.addExisting(it->second.index);
        break;
      }
      case YAML_SCALAR_EVENT: {
        const auto& s = e->data.scalar;
        const std::string_view value(reinterpret_cast<const char*>(s.value), s.length);
        const bool plain = s.style == YAML_PLAIN_SCALAR_STYLE;
        own++;
        counted(1);
        if (s.tag == nullptr && plain && isNullText(value)) {
          anchor(s.anchor, tree.addNull(markOf(*e)));
        } else {
          const std::string_view tag = s.tag != nullptr ? str(s.tag) : (plain ? "?" : "!");
          anchor(s.anchor, tree.addScalar(markOf(*e), tag, value));
        }
        break;
      }
      case YAML_SEQUENCE_START_EVENT:
      case YAML_MAPPING_START_EVENT: {
        const bool seq = e->type == YAML_SEQUENCE_START_EVENT;
        if (static_cast<int>(open.size()) >= limits.maxDepth) {
          return Failure{SyntaxError{markOf(*e),
                                     "nesting deeper than " + std::to_string(limits.maxDepth) +
                                         " levels of collections",
                                     -1, true},
                         {}};
        }
        own++;
        const yaml_char_t* name = seq ? e->data.sequence_start.anchor : e->data.mapping_start.anchor;
        open.push_back({std::string(str(name)), tree.open(seq ? Type::Sequence : Type::Map, markOf(*e)), 1});
        break;
      }
      case YAML_SEQUENCE_END_EVENT:
      case YAML_MAPPING_END_EVENT: {
        tree.close();
        const OpenCollection done = std::move(open.back());
        open.pop_back();
        if (!done.anchor.empty()) anchors[done.anchor] = {done.index, done.nodes};
        counted(done.nodes);
        break;
      }
      case YAML_STREAM_START_EVENT:
      case YAML_NO_EVENT: break;
    }
  }
}

}  // namespace

}  // namespace microseg::policy::yaml
