#include "policy/rule_reuse.h"
#include "policy/locations.h"
#include "policy/progress.h"
#include "policy/schema.h"
#include "policy/yaml_reader.h"

#include <algorithm>

namespace microseg::policy {

namespace {

const std::vector<Rule>& rulesOf(const Policy& p, Direction dir) { return dir == Direction::Egress ? p.egress : p.ingress; }

// One item of a rule list (`rp`, "spec.egress[3]"), whose text starts on
// line `itemLine` of a document starting on line `firstLine` of `file`,
// parsed on its own into `out` (nothing if it is not a map, as in the whole
// document): false if the text does not read as exactly one list item.
bool parseItemAlone(std::string_view itemText, const std::string& file, int firstLine, int itemLine,
                    const std::string& rp, Direction dir, const yaml::Limits& limits, std::vector<Diagnostic>& errors,
                    std::vector<Rule>& out) {
  yaml::Tree tree;
  DocParser parser(file, errors, firstLine + itemLine);
  size_t docs = 0;
  bool one = false;
  const auto err = yaml::readDocuments(itemText, tree, [&](const yaml::Tree& t) {
    const yaml::Node root = t.root();
    one = ++docs == 1 && root.IsSequence() && root.size() == 1;
    if (!one) return;
    try {
      if (auto r = parser.ruleItem(root.item(0), rp, dir)) out.push_back(std::move(*r));
    } catch (const yaml::SubscriptError& e) {  // located in the document, as the caller expects
      throw yaml::SubscriptError({e.mark.line + itemLine, e.mark.column}, e.what());
    }
  }, limits);
  return !err && docs == 1 && one;
}

}  // namespace

bool worthIndexing(const Document& doc, size_t minItems) {
  const auto& ps = doc.objects.policies;
  return !doc.syntaxError && doc.errors.empty() && ps.size() == 1 && doc.objects.workloads.empty() &&
         doc.objects.externals.empty() && ps[0].egress.size() + ps[0].ingress.size() >= minItems;
}

void indexRuleLists(const std::vector<RuleListText>& lists, Document& doc, size_t minItems) {
  doc.ruleLists.clear();
  if (!worthIndexing(doc, minItems)) return;
  const Policy& p = doc.objects.policies[0];
  bool seen[2] = {false, false};
  std::vector<RuleListIndex> out;
  for (const RuleListText& l : lists) {
    const auto d = static_cast<size_t>(l.dir);
    const std::vector<Rule>& rules = rulesOf(p, l.dir);
    if (seen[d] || rules.size() != l.items.size()) return;
    seen[d] = true;
    RuleListIndex x;
    x.dir = l.dir;
    x.startLine = l.startLine;
    x.endLine = l.endLine;
    x.hashes.reserve(l.items.size());
    for (size_t i = 0; i < l.items.size(); i++) {
      const int line = rules[i].loc.line - 1 - doc.firstLine;  // 0-based, in the document
      const int next = i + 1 < l.items.size() ? l.items[i + 1].line : l.endLine;
      if (line < l.items[i].line || line >= next) return;
      x.hashes.push_back(l.items[i].hash);
    }
    out.push_back(std::move(x));
  }
  doc.ruleLists = std::move(out);
}

bool parseReusingRules(std::string_view text, const std::string& file, const Document& old, Document& doc,
                       size_t minItems, const yaml::Limits& limits, size_t& reused) {
  if (old.ruleLists.empty()) return false;
  auto lists = findRuleLists(text);
  if (!lists || lists->empty()) return false;
  const std::string skeleton = ruleListSkeleton(text, *lists);
  const Policy& was = old.objects.policies[0];
  Bundle objects;
  std::vector<Diagnostic> errors;
  std::vector<bool> taken(lists->size(), false);
  bool exact = true;
  size_t kept = 0;
  DocParser parser(file, errors, doc.firstLine);
  // An item alone is two levels from the top (its list, itself) where in
  // the document it is four (the document, spec, its list, itself): with
  // two levels less, it crosses the nesting bound exactly where it would
  // in the whole document. (Texts with aliases are never cut.)
  yaml::Limits itemLimits = limits;
  itemLimits.maxDepth = std::max(limits.maxDepth - 2, 0);

  // The k-th list's rules.
  auto build = [&](size_t k, const std::string& path, std::vector<Rule>& out) {
    const RuleListText& l = (*lists)[k];
    const RuleListIndex* before = nullptr;
    for (const auto& x : old.ruleLists) {
      if (x.dir == l.dir) before = &x;
    }
    const std::vector<Rule>& oldRules = rulesOf(was, l.dir);
    const size_t n = l.items.size();
    const size_t m = before != nullptr && before->hashes.size() == oldRules.size() ? oldRules.size() : 0;
    size_t head = 0, tail = 0;
    while (head < n && head < m && l.items[head].hash == before->hashes[head]) head++;
    while (tail < n - head && tail < m - head && l.items[n - 1 - tail].hash == before->hashes[m - 1 - tail]) tail++;
    out.reserve(n);
    for (size_t i = 0; i < n && exact; i++) {
      progressTick();
      if (i < head || i >= n - tail) {
        Rule r = i < head ? oldRules[i] : oldRules[m - (n - i)];
        shift(r, i < head ? (doc.firstLine + l.startLine) - (old.firstLine + before->startLine)
                          : (doc.firstLine + l.endLine) - (old.firstLine + before->endLine));
        out.push_back(std::move(r));
        continue;
      }
      const RuleItemText& item = l.items[i];
      exact = parseItemAlone(text.substr(item.begin, item.end - item.begin), file, doc.firstLine, item.line,
                             path + "[" + std::to_string(i) + "]", l.dir, itemLimits, errors, out);
    }
    kept += head + tail;
  };
  parser.setRuleSource([&](const yaml::Node& list, const std::string& path, Direction dir, std::vector<Rule>& out) {
    if (!list.IsSequence() || list.size() != 1 || !list.item(0).IsScalar() || list.item(0).Tag() != "?") return false;
    const std::string_view name = list.item(0).Scalar();
    for (size_t k = 0; k < lists->size(); k++) {
      if (name != rulePlaceholder(k)) continue;
      const Direction d = (*lists)[k].dir;
      if (taken[k] || d != dir || path != (d == Direction::Egress ? "spec.egress" : "spec.ingress")) {
        exact = false;
        return false;
      }
      taken[k] = true;
      build(k, path, out);
      return true;
    }
    return false;
  });
  size_t docs = 0;
  yaml::Tree tree;
  const auto err = yaml::readDocuments(skeleton, tree, [&](const yaml::Tree& t) {
    docs++;
    try {
      parser.document(t.root(), objects);
    } catch (const yaml::SubscriptError& e) {
      errors.push_back({{file, e.mark.line + 1 + doc.firstLine, e.mark.column + 1}, e.what()});
    }
  }, limits);
  if (err || docs != 1 || !exact || objects.policies.size() != 1 || !objects.workloads.empty() ||
      !objects.externals.empty() || std::find(taken.begin(), taken.end(), false) != taken.end()) {
    return false;
  }
  doc.objects = std::move(objects);
  doc.errors = std::move(errors);
  doc.syntaxError = false;
  indexRuleLists(*lists, doc, minItems);
  reused += kept;
  return true;
}

}  // namespace microseg::policy
