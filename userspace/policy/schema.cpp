// A document and its metadata, the checks every part uses (mappings,
// scalars, integers, labels), and reading a text of documents (schema.h).
// The kinds' specs are in schema_objects.cpp, rules in schema_rules.cpp.
#include "policy/schema.h"
#include "policy/progress.h"
#include "policy/value_checks.h"
#include "policy/yaml_reader.h"

#include <algorithm>
#include <unordered_set>

namespace microseg::policy {

namespace {

constexpr const char* kApiVersion = "microseg.dev/v1";

// Keys of one mapping seen so far. Mappings are small: a linear scan, until
// one is not.
class SeenKeys {
 public:
  // False if `key` was already inserted.
  bool insert(std::string_view key) {
    if (big_.empty()) {
      if (std::find(small_.begin(), small_.end(), key) != small_.end()) return false;
      small_.push_back(key);
      if (small_.size() > 16) big_.insert(small_.begin(), small_.end());
      return true;
    }
    return big_.insert(key).second;
  }

 private:
  std::vector<std::string_view> small_;
  std::unordered_set<std::string_view> big_;
};


std::string joinAllowed(std::initializer_list<const char*> allowed) {
  std::string s;
  for (const char* a : allowed) s += (s.empty() ? "" : ", ") + std::string(a);
  return s;
}

}  // namespace

bool DocParser::checkMap(const yaml::Node& node, const std::string& path,
                         std::initializer_list<const char*> allowed) {
  if (!node.IsMap()) {
    error(node, path + ": must be a mapping");
    return false;
  }
  SeenKeys seen;
  const size_t n = node.size();
  for (size_t i = 0; i < n; i++) {
    const yaml::Node k = node.key(i);
    if (!k.IsScalar()) {
      error(k, path + ": keys must be strings");
      continue;
    }
    const std::string_view key = k.Scalar();
    if (!seen.insert(key)) {
      error(k, path + ": duplicate key '" + shown(key) + "'");
      continue;
    }
    if (std::find_if(allowed.begin(), allowed.end(), [&](const char* a) { return key == a; }) ==
        allowed.end()) {
      error(k, path + ": unknown field '" + shown(key) + "' (allowed: " + joinAllowed(allowed) + ")");
    }
  }
  return true;
}

std::optional<std::string> DocParser::scalar(const yaml::Node& node, const std::string& path) {
  if (!node.IsScalar()) {
    error(node, path + ": must be a string");
    return std::nullopt;
  }
  const std::string_view text = node.Scalar();
  if (const size_t at = controlCharAt(text); at != std::string_view::npos) {
    error(node, path + ": contains a control character" + controlCharText(text, at));
    return std::nullopt;
  }
  return std::string(text);
}

std::optional<int64_t> DocParser::integer(const yaml::Node& node, const std::string& path) {
  // Quoted "80" is a string, not a port: the tag tells them apart ("!" =
  // quoted, "?" = plain). An explicit tag such as !!str is not a number either.
  if (!node.IsScalar() || (node.Tag() != "?" && node.Tag() != "tag:yaml.org,2002:int")) {
    error(node, path + ": must be an integer, not " +
                    (node.IsScalar() ? (node.Tag() == "!" ? "a quoted string" : "a tagged value")
                     : node.IsNull() ? "empty"
                                     : "a collection"));
    return std::nullopt;
  }
  const std::string s(node.Scalar());
  if (!integerText(s) || s.size() > 12) {
    error(node, path + ": '" + shown(s) + "' is not an integer");
    return std::nullopt;
  }
  // Decimal digits, as written in a port list anywhere: "+80" is YAML's
  // integer 80, but no one writes a port so, and what reads the policy
  // next (a person, a diff, grep) should not have to know that.
  if (s[0] == '+') {
    error(node, path + ": '" + s + "' has a sign (write the number as decimal digits)");
    return std::nullopt;
  }
  // YAML 1.1 reads 010 as octal 8, YAML 1.2 as 10: refuse to guess.
  const size_t digits = s.find_first_not_of("+-");
  if (s.size() - digits > 1 && s[digits] == '0') {
    error(node, path + ": '" + s + "' has a leading zero (ambiguous: octal in YAML 1.1)");
    return std::nullopt;
  }
  return std::stoll(s);
}

Labels DocParser::labels(const yaml::Node& node, const std::string& path) {
  Labels out;
  if (!node.IsMap()) {
    error(node, path + ": must be a mapping of label keys to values");
    return out;
  }
  SeenKeys seen;
  const size_t n = node.size();
  for (size_t i = 0; i < n; i++) {
    const yaml::Node k = node.key(i), val = node.value(i);
    if (!k.IsScalar()) {
      error(k, path + ": label keys must be strings");
      continue;
    }
    const std::string key(k.Scalar());
    if (!seen.insert(k.Scalar())) {
      error(k, path + ": duplicate key '" + shown(key) + "'");
      continue;
    }
    if (!validLabelKey(key)) {
      error(k, path + ": '" + shown(key) +
                          "' is not a valid label key (alphanumerics, '-', '_', '.', at most 63 "
                          "characters, optional DNS prefix 'example.com/')");
      continue;
    }
    if (!val.IsScalar()) {
      error(val, path + "." + key + ": label values must be strings");
      continue;
    }
    const std::string value(val.Scalar());
    if (!validLabelValue(value)) {
      error(val, path + "." + key + ": '" + shown(value) + "' is not a valid label value");
      continue;
    }
    out[key] = value;
  }
  if (out.size() > 64) error(node, path + ": at most 64 labels");
  return out;
}

void DocParser::document(const yaml::Node& doc, Bundle& out) {
  if (doc.IsNull()) return;
  if (!checkMap(doc, "document", {"apiVersion", "kind", "metadata", "spec"})) return;
  bool ok = true;
  for (const char* key : {"apiVersion", "kind", "metadata", "spec"}) {
    if (!doc[key]) {
      error(doc, std::string("document: '") + key + "' is required");
      ok = false;
    }
  }
  if (!ok) return;
  auto api = scalar(doc["apiVersion"], "apiVersion");
  if (api && *api != kApiVersion) {
    error(doc["apiVersion"], "apiVersion: '" + *api + "' is not supported (use " + kApiVersion + ")");
    return;
  }
  auto kind = scalar(doc["kind"], "kind");
  if (!kind) return;
  if (*kind != "Workload" && *kind != "External" && *kind != "Policy") {
    error(doc["kind"], "kind: '" + *kind + "' is not Workload, External or Policy");
    return;
  }
  const yaml::Node md = doc["metadata"];
  if (!checkMap(md, "metadata", {"name", "namespace", "labels", "annotations"})) return;
  // With a bad or missing name the document is not kept, but its spec is still
  // checked so one run reports everything.
  bool keep = true;
  std::string name;
  if (!md["name"]) {
    error(md, "metadata: 'name' is required");
    keep = false;
  } else if (auto n = scalar(md["name"], "metadata.name"); !n) {
    keep = false;
  } else if (!validName(*n)) {
    error(md["name"], "metadata.name: '" + *n +
                          "' is not a valid name (lowercase letters, digits and '-', at most 63)");
    keep = false;
  } else {
    name = *n;
  }
  std::string ns;
  if (auto n = md["namespace"]) {
    if (auto v = scalar(n, "metadata.namespace"); v && !validName(*v)) {
      error(n, "metadata.namespace: '" + *v +
                   "' is not a valid namespace (lowercase letters, digits and '-', at most 63)");
    } else if (v) {
      ns = *v;
    }
  }
  if (auto l = md["labels"]) {
    if (*kind == "Workload" || *kind == "External") {
      // Kubernetes habit; here selection uses spec.labels only, so accepting
      // these would silently leave the object unselected.
      error(md["labels"], "metadata.labels: a" + std::string(*kind == "External" ? "n " : " ") + *kind +
                              "'s labels go in spec.labels");
    } else {
      labels(l, "metadata.labels");
    }
  }
  if (auto a = md["annotations"]) annotations(a);
  const Meta meta{name, ns, md["name"] ? loc(md["name"]) : loc(md)};
  Bundle scratch;
  Bundle& into = keep ? out : scratch;
  if (*kind == "Workload") {
    workload(doc["spec"], meta, into);
  } else if (*kind == "External") {
    external(doc["spec"], meta, into);
  } else {
    policyDoc(doc["spec"], meta, into);
  }
}

void DocParser::annotations(const yaml::Node& node) {
  if (!node.IsMap()) {
    error(node, "metadata.annotations: must be a mapping of strings to strings");
    return;
  }
  SeenKeys seen;
  const size_t n = node.size();
  for (size_t i = 0; i < n; i++) {
    const yaml::Node k = node.key(i), v = node.value(i);
    if (!k.IsScalar() || !v.IsScalar()) {
      error(k, "metadata.annotations: keys and values must be strings");
    } else if (!seen.insert(k.Scalar())) {
      error(k, "metadata.annotations: duplicate key '" + shown(k.Scalar()) + "'");
    } else if (const size_t at = controlCharAt(k.Scalar()); at != std::string_view::npos) {
      error(k, "metadata.annotations: a key contains a control character" + controlCharText(k.Scalar(), at));
    } else if (const size_t at = controlCharAt(v.Scalar(), true); at != std::string_view::npos) {
      // Free text: it may have lines and tabs, nothing else unprintable.
      error(v, "metadata.annotations." + std::string(k.Scalar()) + ": contains a control character" +
                   controlCharText(v.Scalar(), at));
    }
  }
}

Diagnostic yamlDiagnostic(const yaml::SyntaxError& err, const std::string& file, int firstLine) {
  if (err.at.isNull()) return {{file, 0, 0}, (err.limit ? "YAML limit: " : "YAML syntax: ") + err.text(firstLine)};
  return {{file, err.at.line + 1 + firstLine, err.at.column + 1},
          (err.limit ? "YAML limit: " : "YAML syntax: ") + err.text(firstLine)};
}

bool parseInto(std::string_view text, const std::string& file, int firstLine, Bundle& out,
               std::vector<Diagnostic>& errors, const yaml::Limits& limits) {
  yaml::Tree tree;
  DocParser parser(file, errors, firstLine);
  auto err = yaml::readDocuments(text, tree, [&](const yaml::Tree& doc) {
    try {
      parser.document(doc.root(), out);
    } catch (const yaml::SubscriptError& e) {
      errors.push_back({{file, e.mark.line + 1 + firstLine, e.mark.column + 1}, e.what()});
    }
  }, limits);
  if (!err) return true;
  out = Bundle{};
  errors = {yamlDiagnostic(*err, file, firstLine)};
  return false;
}

ParseResult parseText(const std::string& text, const std::string& file) {
  ParseResult out;
  parseInto(text, file, 0, out.bundle, out.errors);
  return out;
}

}  // namespace microseg::policy
