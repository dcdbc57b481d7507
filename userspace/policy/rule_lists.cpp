#include "policy/rule_lists.h"

#include <xxhash.h>

#include <algorithm>
#include <array>

namespace microseg::policy {
namespace {

constexpr std::string_view kPlaceholder = "__microseg_rule_list_";

// Printable ASCII and '\n', none of the characters that can tie one part
// of the text to another or change how a line is read (see rule_lists.h).
bool plainEnough(std::string_view text) {
  static constexpr auto kAllowed = [] {
    std::array<bool, 256> ok{};
    for (int c = 0x20; c <= 0x7e; c++) ok[static_cast<size_t>(c)] = true;
    for (const char c : std::string_view("&*!%|>\"'?`@")) ok[static_cast<unsigned char>(c)] = false;
    ok['\n'] = true;
    return ok;
  }();
  bool ok = true;
  for (const char c : text) ok &= kAllowed[static_cast<unsigned char>(c)];
  return ok && text.find(kPlaceholder) == std::string_view::npos;
}

// Is this line (text from its indentation on) `egress:` or `ingress:` with
// nothing after it but spaces or a comment?
std::optional<Direction> ruleKey(std::string_view rest) {
  std::optional<Direction> dir;
  size_t n = 0;
  if (rest.starts_with("egress:")) {
    dir = Direction::Egress;
    n = 7;
  } else if (rest.starts_with("ingress:")) {
    dir = Direction::Ingress;
    n = 8;
  } else {
    return std::nullopt;
  }
  for (size_t i = n; i < rest.size(); i++) {
    if (rest[i] == '#' && i > n) return dir;  // " #...": a comment
    if (rest[i] != ' ') return std::nullopt;
  }
  return dir;
}

// Does this line (from its indentation on) start a list item: '-' then a
// space or its end?
bool itemStart(std::string_view rest) { return rest.size() >= 1 && rest[0] == '-' && (rest.size() == 1 || rest[1] == ' '); }

}  // namespace

std::optional<std::vector<RuleListText>> findRuleLists(std::string_view text) {
  if (!plainEnough(text)) return std::nullopt;
  std::vector<RuleListText> lists;
  bool key = false;  // a rule key line was seen, its list not yet
  Direction keyDir = Direction::Egress;
  size_t keyIndent = 0;
  bool inList = false;
  size_t listIndent = 0;
  auto closeList = [&](size_t at, int line) {
    RuleListText& l = lists.back();
    l.end = at;
    l.endLine = line;
    l.items.back().end = at;
    for (auto& it : l.items) it.hash = XXH3_64bits(text.data() + it.begin, it.end - it.begin);
    inList = false;
  };
  int line = 0;
  for (size_t pos = 0; pos < text.size(); line++) {
    const size_t nl = text.find('\n', pos);
    const size_t end = nl == std::string_view::npos ? text.size() : nl;
    const std::string_view whole = text.substr(pos, end - pos);
    const size_t indent = std::min(whole.find_first_not_of(' '), whole.size());
    const std::string_view rest = whole.substr(indent);
    const bool blank = rest.empty() || rest[0] == '#';
    const size_t begin = pos;
    pos = nl == std::string_view::npos ? text.size() : nl + 1;
    if (blank) continue;  // in an item, before a list, or between objects: it changes nothing
    if (inList) {
      if (indent > listIndent) continue;  // the item goes on
      if (indent == listIndent && itemStart(rest)) {
        lists.back().items.back().end = begin;
        lists.back().items.push_back({begin, begin, line, 0});
        continue;
      }
      closeList(begin, line);
    }
    if (key) {
      const bool opens = indent >= keyIndent && itemStart(rest);
      if (opens) {
        RuleListText l;
        l.dir = keyDir;
        l.begin = begin;
        l.startLine = line;
        l.items.push_back({begin, begin, line, 0});
        lists.push_back(std::move(l));
        inList = true;
        listIndent = indent;
      }
      key = false;
      if (opens) continue;
    }
    if (auto k = ruleKey(rest)) {
      key = true;
      keyDir = *k;
      keyIndent = indent;
    }
  }
  if (inList) closeList(text.size(), line);
  return lists;
}

std::string rulePlaceholder(size_t k) { return std::string(kPlaceholder) + std::to_string(k) + "__"; }

std::string ruleListSkeleton(std::string_view text, const std::vector<RuleListText>& lists) {
  std::string out;
  size_t from = 0;
  for (size_t k = 0; k < lists.size(); k++) {
    const RuleListText& l = lists[k];
    out.append(text.substr(from, l.begin - from));
    const std::string_view first = text.substr(l.begin);
    const size_t indent = first.find_first_not_of(' ');
    out.append(indent, ' ');
    out.append("- ");
    out.append(rulePlaceholder(k));
    // The list's line breaks: one per line it spans, but for a last line
    // that the text ends without one.
    const bool openEnd = l.end == text.size() && !text.empty() && text.back() != '\n';
    out.append(static_cast<size_t>(l.endLine - l.startLine - (openEnd ? 1 : 0)), '\n');
    from = l.end;
  }
  out.append(text.substr(from));
  return out;
}

}  // namespace microseg::policy
