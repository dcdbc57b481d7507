// The policy schema: YAML text -> model objects (policy::Bundle), with
// every problem a located Diagnostic. DocParser reads one document's tree
// (yaml_tree.h); parseText() and parseInto() read a text of documents.
// The definitions are split by part of the document: schema.cpp (the
// document, metadata, labels, the checks every part uses),
// schema_objects.cpp (Workload, External and Policy specs, selectors),
// schema_rules.cpp (rule lists, peers, ports).
#pragma once

#include <cstdint>
#include <functional>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "policy/model.h"
#include "policy/yaml_reader.h"
#include "policy/yaml_tree.h"

namespace microseg::policy {

struct ParseResult {
  Bundle bundle;
  std::vector<Diagnostic> errors;  // empty = valid
  bool ok() const { return errors.empty(); }
  // What the set holds. A valid set can be empty (an empty file, files of
  // comments) or have no Workload: applied, either leaves every workload
  // unmanaged. Refusing it is the caller's decision (the daemon's, with
  // `microseg policy validate` warning), so it is said here, not decided.
  bool empty() const { return bundle.workloads.empty() && bundle.externals.empty() && bundle.policies.empty(); }
  bool hasWorkloads() const { return !bundle.workloads.empty(); }
};

// Parse one YAML text (may hold several `---` documents). `file` is used in
// locations only. Does not run cross-document checks.
ParseResult parseText(const std::string& text, const std::string& file);

// Parses `text`, which starts on line `firstLine` (0-based) of `file`, into
// `out` and `errors`. A syntax error anywhere is the text's only diagnostic
// (as when the whole file was loaded before any document was looked at):
// then `out` and `errors` hold nothing else, and it returns false.
// A nesting or alias bound crossed (yaml_reader.h) is such an error too.
bool parseInto(std::string_view text, const std::string& file, int firstLine, Bundle& out,
               std::vector<Diagnostic>& errors, const yaml::Limits& limits = {});

// A YAML syntax error (or a bound crossed) in a text starting on line
// `firstLine` (0-based) of `file`, as a diagnostic:
// "FILE:LINE:COL: error: YAML syntax: ..." ("YAML limit: ..." for a bound).
Diagnostic yamlDiagnostic(const yaml::SyntaxError& err, const std::string& file, int firstLine = 0);

// One document's tree -> model objects, every problem a Diagnostic located at
// the offending key or value (tree marks are 0-based, diagnostics 1-based).
// It goes on after an error, so one run reports everything. Cross-document
// checks (names, references) are references.h's.
class DocParser {
 public:
  // `lineOffset`: the line of the whole file where the parsed text starts
  // (0-based), when that text is one document of it.
  DocParser(std::string file, std::vector<Diagnostic>& errors, int lineOffset = 0)
      : file_(std::move(file)), errors_(errors), lineOffset_(lineOffset) {}

  void document(const yaml::Node& doc, Bundle& out);

  // One item of a rule list at `rp` ("spec.egress[3]"); nullopt if it is
  // not a map (reported).
  std::optional<Rule> ruleItem(const yaml::Node& item, const std::string& rp, Direction dir);

  // Rule lists taken from elsewhere (rule-level reuse, rule_reuse.h):
  // asked first for every rule list the document has; true if it filled
  // `out` for that list.
  using RuleSource = std::function<bool(const yaml::Node& list, const std::string& path, Direction dir,
                                        std::vector<Rule>& out)>;
  void setRuleSource(RuleSource source) { ruleSource_ = std::move(source); }

 private:
  // An empty value (`port:`) is located at its key: the tree gives it the
  // key's mark (yaml_tree.h).
  SourceLocation loc(const yaml::Node& n) const {
    const yaml::Mark m = n.mark();
    if (m.isNull()) return {file_, 0, 0};
    return {file_, m.line + 1 + lineOffset_, m.column + 1};
  }
  void error(const yaml::Node& at, const std::string& msg) { errors_.push_back({loc(at), msg}); }
  void error(const SourceLocation& at, const std::string& msg) { errors_.push_back({at, msg}); }

  // Checks `node` is a map whose keys are all in `allowed` and unique.
  // Returns false (after reporting) if it is not a map.
  bool checkMap(const yaml::Node& node, const std::string& path,
                std::initializer_list<const char*> allowed);
  std::optional<std::string> scalar(const yaml::Node& node, const std::string& path);
  std::optional<int64_t> integer(const yaml::Node& node, const std::string& path);

  // What every kind takes from metadata.
  struct Meta {
    std::string name;
    std::string ns;  // metadata.namespace, "" = none
    SourceLocation at;
  };
  struct CidrItem {
    Cidr cidr;
    size_t index = 0;
    yaml::Node node;
  };

  void workload(const yaml::Node& spec, const Meta& meta, Bundle& out);
  void external(const yaml::Node& spec, const Meta& meta, Bundle& out);
  void policyDoc(const yaml::Node& spec, const Meta& meta, Bundle& out);
  Labels labels(const yaml::Node& node, const std::string& path);
  void namespaceLabel(const yaml::Node& labelsNode, const std::string& path, const std::string& ns);
  std::optional<Cidr> cidrValue(const yaml::Node& node, const std::string& path);
  std::optional<std::vector<CidrItem>> cidrList(const yaml::Node& node, const std::string& path, bool required);
  std::optional<Peer> cidrPeer(const yaml::Node& node, const std::string& path);
  std::optional<Peer> fqdnPeer(const yaml::Node& node, const std::string& path, Direction dir);
  void annotations(const yaml::Node& node);
  std::optional<LabelSelector> selector(const yaml::Node& node, const std::string& path);
  std::optional<Peer> subject(const yaml::Node& node, const std::string& path);
  std::optional<Peer> selectorOrIdentity(const yaml::Node& node, const std::string& path);
  std::optional<Peer> peer(const yaml::Node& node, const std::string& path, Direction dir);
  std::vector<Rule> rules(const yaml::Node& node, const std::string& path, Direction dir);
  std::optional<PortRange> port(const yaml::Node& node, const std::string& path);

  FileName file_;
  std::vector<Diagnostic>& errors_;
  int lineOffset_ = 0;
  RuleSource ruleSource_;
};

}  // namespace microseg::policy
