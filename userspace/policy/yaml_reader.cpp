#include "policy/yaml_reader.h"
#include "policy/progress.h"

#include <yaml.h>

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

}  // namespace

std::optional<SyntaxError> readDocuments(std::string_view text, Tree& tree,
                                         const std::function<void(const Tree&)>& onDocument) {
  Events events(text);
  if (!events.initialized()) return SyntaxError{{}, "cannot initialise the YAML parser"};
  std::unordered_map<std::string, uint32_t> anchors;
  auto anchor = [&](const yaml_char_t* name, uint32_t index) {
    if (name != nullptr) anchors[std::string(str(name))] = index;
  };
  // A collection's anchor is defined where the collection ends, so an alias
  // inside it cannot make the tree a cycle.
  struct OpenAnchor {
    std::string name;
    uint32_t index;
  };
  std::vector<OpenAnchor> open;
  for (;;) {
    const yaml_event_t* e = events.next();
    if (e == nullptr) return events.error();
    progressTick();
    switch (e->type) {
      case YAML_STREAM_END_EVENT: return std::nullopt;
      case YAML_DOCUMENT_START_EVENT:
        tree.clear();
        anchors.clear();
        open.clear();
        break;
      case YAML_DOCUMENT_END_EVENT: onDocument(tree); break;
      case YAML_ALIAS_EVENT: {
        auto it = anchors.find(std::string(str(e->data.alias.anchor)));
        if (it == anchors.end()) {
          return SyntaxError{markOf(*e), "alias '*" + std::string(str(e->data.alias.anchor)) +
                                             "' names no anchor defined before it"};
        }
        tree.addExisting(it->second);
        break;
      }
      case YAML_SCALAR_EVENT: {
        const auto& s = e->data.scalar;
        const std::string_view value(reinterpret_cast<const char*>(s.value), s.length);
        const bool plain = s.style == YAML_PLAIN_SCALAR_STYLE;
        if (s.tag == nullptr && plain && isNullText(value)) {
          anchor(s.anchor, tree.addNull(markOf(*e)));
        } else {
          const std::string_view tag = s.tag != nullptr ? str(s.tag) : (plain ? "?" : "!");
          anchor(s.anchor, tree.addScalar(markOf(*e), tag, value));
        }
        break;
      }
      case YAML_SEQUENCE_START_EVENT:
        open.push_back({std::string(str(e->data.sequence_start.anchor)), tree.open(Type::Sequence, markOf(*e))});
        break;
      case YAML_MAPPING_START_EVENT:
        open.push_back({std::string(str(e->data.mapping_start.anchor)), tree.open(Type::Map, markOf(*e))});
        break;
      case YAML_SEQUENCE_END_EVENT:
      case YAML_MAPPING_END_EVENT:
        tree.close();
        if (!open.back().name.empty()) anchors[open.back().name] = open.back().index;
        open.pop_back();
        break;
      case YAML_STREAM_START_EVENT:
      case YAML_NO_EVENT: break;
    }
  }
}

}  // namespace microseg::policy::yaml
