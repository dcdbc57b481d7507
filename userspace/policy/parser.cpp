// YAML -> policy model. Every problem becomes a Diagnostic located at the
// offending key or value; parsing goes on after an error so one run reports
// everything. Tree marks are 0-based; diagnostics are 1-based.
#include "policy/parser.h"
#include "policy/progress.h"
#include "policy/rule_lists.h"
#include "policy/yaml_reader.h"
#include "policy/yaml_tree.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <time.h>
#include <xxhash.h>
#if defined(__x86_64__)
#define XXH_DISPATCH_DISABLE_REPLACE  // called by name where it pays (documentHash)
#include <xxh_x86dispatch.h>
#endif

#include <algorithm>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <functional>
#include <sstream>
#include <string_view>
#include <unordered_map>
#include <unordered_set>

namespace microseg::policy {

namespace {

constexpr const char* kApiVersion = "microseg.dev/v1";

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

  // Rule lists taken from elsewhere (rule-level reuse, see PolicyLoader):
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
  void annotations(const yaml::Node& node);
  std::optional<LabelSelector> selector(const yaml::Node& node, const std::string& path);
  std::optional<Peer> subject(const yaml::Node& node, const std::string& path);
  std::optional<Peer> selectorOrIdentity(const yaml::Node& node, const std::string& path);
  std::optional<Peer> peer(const yaml::Node& node, const std::string& path);
  std::vector<Rule> rules(const yaml::Node& node, const std::string& path, Direction dir);
  std::optional<PortRange> port(const yaml::Node& node, const std::string& path);

  FileName file_;
  std::vector<Diagnostic>& errors_;
  int lineOffset_ = 0;
  RuleSource ruleSource_;
};

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

// Items of a sequence, for range-for.
struct Items {
  yaml::Node seq;
  struct It {
    yaml::Node seq;
    size_t i;
    yaml::Node operator*() const { return seq.item(i); }
    It& operator++() {
      i++;
      return *this;
    }
    bool operator!=(const It& o) const { return i != o.i; }
  };
  It begin() const { return {seq, 0}; }
  It end() const { return {seq, seq.IsSequence() ? seq.size() : 0}; }
};
Items items(const yaml::Node& seq) { return {seq}; }

std::string joinAllowed(std::initializer_list<const char*> allowed) {
  std::string s;
  for (const char* a : allowed) s += (s.empty() ? "" : ", ") + std::string(a);
  return s;
}

// Hand-written rather than std::regex (which costs microseconds a call, and
// these run for every name, label and port of a 100k-rule file).
bool lowerAlnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }
bool alnum(char c) { return lowerAlnum(c) || (c >= 'A' && c <= 'Z'); }

// [a-z0-9]([-a-z0-9]*[a-z0-9])?
bool dnsLabel(std::string_view s) {
  if (s.empty() || !lowerAlnum(s.front()) || !lowerAlnum(s.back())) return false;
  for (char c : s) {
    if (!lowerAlnum(c) && c != '-') return false;
  }
  return true;
}

bool validName(std::string_view s) { return s.size() <= 63 && dnsLabel(s); }

// [A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?, at most 63
bool validLabelName(std::string_view s) {
  if (s.empty() || s.size() > 63 || !alnum(s.front()) || !alnum(s.back())) return false;
  for (char c : s) {
    if (!alnum(c) && c != '-' && c != '_' && c != '.') return false;
  }
  return true;
}

bool validLabelKey(std::string_view key) {
  auto slash = key.find('/');
  if (slash == std::string_view::npos) return validLabelName(key);
  // DNS subdomain: dot-separated labels.
  const std::string_view prefix = key.substr(0, slash);
  if (prefix.empty() || prefix.size() > 253) return false;
  for (size_t from = 0;;) {
    const size_t dot = prefix.find('.', from);
    if (!dnsLabel(prefix.substr(from, dot == std::string_view::npos ? std::string_view::npos : dot - from))) {
      return false;
    }
    if (dot == std::string_view::npos) break;
    from = dot + 1;
  }
  return validLabelName(key.substr(slash + 1));
}

bool validLabelValue(std::string_view v) { return v.empty() || validLabelName(v); }

// [-+]?[0-9]+
bool integerText(std::string_view s) {
  if (!s.empty() && (s[0] == '-' || s[0] == '+')) s.remove_prefix(1);
  if (s.empty()) return false;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

// The resolver matches cgroup patterns with fnmatch(FNM_PATHNAME). fnmatch
// quietly treats a malformed bracket as literal text, so a typo would make a
// pattern that never matches; catch it here instead.
std::optional<std::string> globProblem(const std::string& pattern) {
  for (size_t i = 0; i < pattern.size(); i++) {
    if (pattern[i] == '\\') {
      if (++i == pattern.size()) return "ends with a lone '\\'";
      continue;
    }
    if (pattern[i] != '[') continue;
    size_t j = i + 1;
    if (j < pattern.size() && (pattern[j] == '!' || pattern[j] == '^')) j++;
    if (j < pattern.size() && pattern[j] == ']') j++;  // a leading ']' is a member
    while (j < pattern.size() && pattern[j] != ']') {
      if (pattern[j] == '/') return "'[' at offset " + std::to_string(i) + " has no closing ']' before '/'";
      j++;
    }
    if (j == pattern.size()) return "'[' at offset " + std::to_string(i) + " has no closing ']'";
    i = j;
  }
  return std::nullopt;
}

// An IPv4 hole in an IPv6 range that covers the mapped space bit-wise: the
// likely misunderstanding, so name it.
std::string familyHint(const Cidr& inner, const std::vector<Cidr>& outers) {
  for (const auto& o : outers) {
    if (inner.isV4() && !o.isV4() && o.covers(inner.addr)) {
      return " (" + o.str() + " is IPv6 and never contains IPv4 addresses)";
    }
  }
  return "";
}

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
      error(k, path + ": duplicate key '" + std::string(key) + "'");
      continue;
    }
    if (std::find_if(allowed.begin(), allowed.end(), [&](const char* a) { return key == a; }) ==
        allowed.end()) {
      error(k, path + ": unknown field '" + std::string(key) + "' (allowed: " + joinAllowed(allowed) + ")");
    }
  }
  return true;
}

std::optional<std::string> DocParser::scalar(const yaml::Node& node, const std::string& path) {
  if (!node.IsScalar()) {
    error(node, path + ": must be a string");
    return std::nullopt;
  }
  return std::string(node.Scalar());
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
    error(node, path + ": '" + s + "' is not an integer");
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
      error(k, path + ": duplicate key '" + key + "'");
      continue;
    }
    if (!validLabelKey(key)) {
      error(k, path + ": '" + key +
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
      error(val, path + "." + key + ": '" + value + "' is not a valid label value");
      continue;
    }
    out[key] = value;
  }
  if (out.size() > 64) error(node, path + ": at most 64 labels");
  return out;
}

void DocParser::namespaceLabel(const yaml::Node& labelsNode, const std::string& path, const std::string& ns) {
  if (ns.empty() || !labelsNode.IsMap()) return;
  const yaml::Node v = labelsNode[kNamespaceLabel];
  if (v && v.IsScalar() && v.Scalar() != ns) {
    error(v, path + "." + kNamespaceLabel + ": '" + std::string(v.Scalar()) + "' contradicts metadata.namespace '" + ns +
                 "' (the namespace sets this label)");
  }
}

std::optional<Cidr> DocParser::cidrValue(const yaml::Node& node, const std::string& path) {
  auto text = scalar(node, path);
  if (!text) return std::nullopt;
  CidrError why;
  auto c = parseCidr(*text, &why);
  if (!c) error(node, path + ": " + why.message);
  return c;
}

// Every item is parsed and checked for duplicates; nullopt only when the
// node is not a list at all.
std::optional<std::vector<DocParser::CidrItem>> DocParser::cidrList(const yaml::Node& node, const std::string& path,
                                                                     bool required) {
  if (!node.IsSequence()) {
    error(node, path + ": must be a list of CIDRs (e.g. [\"10.0.0.0/8\"])");
    return std::nullopt;
  }
  if (required && node.size() == 0) {
    error(node, path + ": must be a non-empty list of CIDRs");
    return std::nullopt;
  }
  std::vector<CidrItem> out;
  size_t i = 0;
  for (const yaml::Node item : items(node)) {
    const std::string ip = path + "[" + std::to_string(i) + "]";
    if (auto c = cidrValue(item, ip)) {
      auto dup = std::find_if(out.begin(), out.end(), [&](const CidrItem& o) { return o.cidr == *c; });
      if (dup != out.end()) {
        error(item, ip + ": " + c->str() + " is listed twice (first at " + path + "[" +
                        std::to_string(dup->index) + "])");
      } else {
        out.push_back({*c, i, item});
      }
    }
    i++;
  }
  return out;
}

std::optional<LabelSelector> DocParser::selector(const yaml::Node& node, const std::string& path) {
  LabelSelector sel;
  bool ok = true;
  bool any = false;
  if (auto ml = node["matchLabels"]) {
    const size_t before = errors_.size();
    sel.matchLabels = labels(ml, path + ".matchLabels");
    ok &= errors_.size() == before;
    any |= !sel.matchLabels.empty();
  }
  if (auto me = node["matchExpressions"]) {
    if (!me.IsSequence()) {
      error(me, path + ".matchExpressions: must be a list");
      return std::nullopt;
    }
    size_t i = 0;
    for (const yaml::Node item : items(me)) {
      const std::string ip = path + ".matchExpressions[" + std::to_string(i++) + "]";
      if (!checkMap(item, ip, {"key", "operator", "values"})) {
        ok = false;
        continue;
      }
      LabelRequirement req;
      if (!item["key"]) {
        error(item, ip + ": 'key' is required");
        ok = false;
        continue;
      }
      auto key = scalar(item["key"], ip + ".key");
      if (!key) {
        ok = false;
        continue;
      }
      if (!validLabelKey(*key)) {
        error(item["key"], ip + ".key: '" + *key + "' is not a valid label key");
        ok = false;
      }
      req.key = *key;
      if (!item["operator"]) {
        error(item, ip + ": 'operator' is required (In, NotIn, Exists, DoesNotExist)");
        ok = false;
        continue;
      }
      auto op = scalar(item["operator"], ip + ".operator");
      if (!op) {
        ok = false;
        continue;
      }
      if (*op == "In") {
        req.op = SelectorOp::In;
      } else if (*op == "NotIn") {
        req.op = SelectorOp::NotIn;
      } else if (*op == "Exists") {
        req.op = SelectorOp::Exists;
      } else if (*op == "DoesNotExist") {
        req.op = SelectorOp::DoesNotExist;
      } else {
        error(item["operator"], ip + ".operator: '" + *op +
                                    "' is not one of In, NotIn, Exists, DoesNotExist");
        ok = false;
        continue;
      }
      const bool needsValues = req.op == SelectorOp::In || req.op == SelectorOp::NotIn;
      if (auto vals = item["values"]) {
        if (!vals.IsSequence()) {
          error(vals, ip + ".values: must be a list of strings");
          ok = false;
          continue;
        }
        for (const yaml::Node v : items(vals)) {
          if (!v.IsScalar()) {
            error(v, ip + ".values: must be a list of strings");
            ok = false;
            continue;
          }
          req.values.emplace_back(v.Scalar());
        }
        if (!needsValues && !req.values.empty()) {
          error(vals, ip + ".values: must be empty for operator " + *op);
          ok = false;
        }
      }
      if (needsValues && req.values.empty()) {
        error(item, ip + ": operator " + *op + " needs a non-empty 'values' list");
        ok = false;
      }
      sel.matchExpressions.push_back(std::move(req));
      any = true;
    }
  }
  if (!ok) return std::nullopt;
  if (!any) {
    error(node, path + ": empty selector: give matchLabels, matchExpressions or identity "
                       "(an empty selector would silently match everything or nothing)");
    return std::nullopt;
  }
  return sel;
}

std::optional<Peer> DocParser::subject(const yaml::Node& node, const std::string& path) {
  if (!checkMap(node, path, {"matchLabels", "matchExpressions", "identity"})) return std::nullopt;
  return selectorOrIdentity(node, path);
}

// Keys already checked by the caller.
std::optional<Peer> DocParser::selectorOrIdentity(const yaml::Node& node, const std::string& path) {
  Peer p;
  p.loc = loc(node);
  if (auto id = node["identity"]) {
    if (node["matchLabels"] || node["matchExpressions"]) {
      error(node, path + ": use either 'identity' or matchLabels/matchExpressions, not both");
      return std::nullopt;
    }
    auto name = scalar(id, path + ".identity");
    if (!name) return std::nullopt;
    p.kind = Peer::Kind::Identity;
    p.identity = *name;
    p.loc = loc(id);
    return p;
  }
  auto sel = selector(node, path);
  if (!sel) return std::nullopt;
  p.kind = Peer::Kind::Selector;
  p.edit().selector = std::move(*sel);
  return p;
}

std::optional<Peer> DocParser::peer(const yaml::Node& node, const std::string& path) {
  auto reserved = [&](const yaml::Node& n, const std::string& name) -> std::optional<Peer> {
    Peer p;
    p.kind = Peer::Kind::Reserved;
    p.loc = loc(n);
    if (name == "host") {
      p.reserved = ReservedPeer::Host;
    } else if (name == "world") {
      p.reserved = ReservedPeer::World;
    } else if (name == "unmanaged") {
      p.reserved = ReservedPeer::Unmanaged;
    } else {
      error(n, path + ": '" + name + "' is not a reserved peer (host, world, unmanaged)");
      return std::nullopt;
    }
    return p;
  };
  if (node.IsScalar()) return reserved(node, std::string(node.Scalar()));
  if (!checkMap(node, path, {"matchLabels", "matchExpressions", "identity", "reserved", "cidr", "except"})) {
    return std::nullopt;
  }
  int forms = (node["identity"] ? 1 : 0) + (node["reserved"] ? 1 : 0) +
              ((node["matchLabels"] || node["matchExpressions"]) ? 1 : 0) +
              ((node["cidr"] || node["except"]) ? 1 : 0);
  if (forms > 1) {
    error(node, path + ": a peer is exactly one of: a selector (matchLabels/matchExpressions), "
                       "identity, reserved, cidr");
    return std::nullopt;
  }
  if (node["cidr"] || node["except"]) return cidrPeer(node, path);
  if (auto r = node["reserved"]) {
    auto name = scalar(r, path + ".reserved");
    if (!name) return std::nullopt;
    return reserved(r, *name);
  }
  return selectorOrIdentity(node, path);
}

std::optional<Peer> DocParser::cidrPeer(const yaml::Node& node, const std::string& path) {
  const size_t before = errors_.size();
  if (!node["cidr"]) {
    error(node["except"], path + ": 'except' needs 'cidr' (the range to take the exceptions out of)");
    return std::nullopt;
  }
  Peer p;
  p.kind = Peer::Kind::Cidr;
  p.loc = loc(node["cidr"]);
  auto c = cidrValue(node["cidr"], path + ".cidr");
  if (c) p.edit().cidr = *c;
  auto items = node["except"] ? cidrList(node["except"], path + ".except", false) : std::nullopt;
  if (items && c) {  // without a cidr there is nothing to check the holes against
    for (const auto& it : *items) {
      const std::string ip = path + ".except[" + std::to_string(it.index) + "]";
      if (it.cidr.contains(*c)) {
        error(it.node, ip + ": " + it.cidr.str() + " covers all of cidr " + c->str() + " (nothing would be left)");
      } else if (!c->contains(it.cidr)) {
        error(it.node, ip + ": " + it.cidr.str() + " is not inside cidr " + c->str() + familyHint(it.cidr, {*c}));
      } else {
        p.edit().except.push_back(it.cidr);
      }
    }
  }
  if (errors_.size() != before) return std::nullopt;
  return p;
}

std::optional<PortRange> DocParser::port(const yaml::Node& node, const std::string& path) {
  if (node.IsScalar()) {
    error(node, path + ": must be a mapping; write {port: " + std::string(node.Scalar()) + "}");
    return std::nullopt;
  }
  if (!checkMap(node, path, {"port", "endPort", "protocol"})) return std::nullopt;
  PortRange pr;
  pr.loc = loc(node);
  bool ok = true;
  if (auto p = node["port"]) {
    auto v = integer(p, path + ".port");
    if (!v) {
      ok = false;
    } else if (*v < 1 || *v > 65535) {
      error(p, path + ".port: " + std::to_string(*v) + " is out of range (1-65535)");
      ok = false;
    } else {
      pr.first = pr.last = static_cast<uint16_t>(*v);
    }
  }
  if (auto e = node["endPort"]) {
    auto v = integer(e, path + ".endPort");
    if (!node["port"]) {
      error(e, path + ".endPort: needs 'port' (the start of the range)");
      ok = false;
    } else if (!v) {
      ok = false;
    } else if (*v < 1 || *v > 65535) {
      error(e, path + ".endPort: " + std::to_string(*v) + " is out of range (1-65535)");
      ok = false;
    } else if (ok && *v < pr.first) {
      error(e, path + ".endPort: " + std::to_string(*v) + " is below port " +
                   std::to_string(pr.first));
      ok = false;
    } else if (ok) {
      pr.last = static_cast<uint16_t>(*v);
    }
  }
  if (auto p = node["protocol"]) {
    auto v = scalar(p, path + ".protocol");
    if (!v) {
      ok = false;
    } else if (*v == "TCP") {
      pr.protocol = Protocol::TCP;
    } else if (*v == "UDP") {
      pr.protocol = Protocol::UDP;
    } else {
      std::string upper = *v;
      std::transform(upper.begin(), upper.end(), upper.begin(), ::toupper);
      error(p, path + ".protocol: '" + *v + "' is not TCP or UDP" +
                   ((upper == "TCP" || upper == "UDP") ? " (use " + upper + ")" : ""));
      ok = false;
    }
  }
  if (!node["port"] && !node["protocol"]) {
    error(node, path + ": empty port item: give 'port' and/or 'protocol'");
    ok = false;
  }
  if (!ok) return std::nullopt;
  return pr;
}

std::vector<Rule> DocParser::rules(const yaml::Node& node, const std::string& path, Direction dir) {
  std::vector<Rule> out;
  if (ruleSource_ && ruleSource_(node, path, dir, out)) return out;
  if (!node.IsSequence()) {
    error(node, path + ": must be a list of rules");
    return out;
  }
  out.reserve(node.size());  // exactly: 100k rules are 8 MB, and growth leaves up to half of it unused
  size_t i = 0;
  for (const yaml::Node item : items(node)) {
    progressTick();
    if (auto r = ruleItem(item, path + "[" + std::to_string(i++) + "]", dir)) out.push_back(std::move(*r));
  }
  return out;
}

std::optional<Rule> DocParser::ruleItem(const yaml::Node& item, const std::string& rp, Direction dir) {
  const char* peersKey = dir == Direction::Egress ? "to" : "from";
  const char* wrongKey = dir == Direction::Egress ? "from" : "to";
  if (item.IsMap() && item[wrongKey]) {
    error(item[wrongKey], rp + ": '" + wrongKey + "' is not valid in an " +
                              (dir == Direction::Egress ? "egress" : "ingress") + " rule; use '" + peersKey +
                              "'");
  }
  if (!checkMap(item, rp, {"action", peersKey, "ports", wrongKey})) return std::nullopt;
  Rule r;
  r.loc = loc(item);
  if (auto a = item["action"]) {
    auto v = scalar(a, rp + ".action");
    if (v && *v == "allow") {
      r.action = Action::Allow;
    } else if (v && *v == "deny") {
      r.action = Action::Deny;
    } else if (v) {
      error(a, rp + ".action: '" + *v + "' is not allow or deny");
    }
  }
  if (auto peers = item[peersKey]) {
    const std::string pp = rp + "." + peersKey;
    if (!peers.IsSequence()) {
      error(peers, pp + ": must be a list of peers");
    } else if (peers.size() == 0) {
      error(peers, pp + ": empty list; omit '" + std::string(peersKey) + "' to mean any peer");
    } else {
      r.peers.emplace();
      r.peers->reserve(peers.size());
      size_t j = 0;
      for (const yaml::Node p : items(peers)) {
        if (auto parsed = peer(p, pp + "[" + std::to_string(j) + "]")) r.peers->push_back(std::move(*parsed));
        j++;
      }
    }
  }
  if (auto ports = item["ports"]) {
    const std::string pp = rp + ".ports";
    if (!ports.IsSequence()) {
      error(ports, pp + ": must be a list");
    } else if (ports.size() == 0) {
      error(ports, pp + ": empty list; omit 'ports' to mean every port and protocol");
    } else {
      r.ports.reserve(ports.size());
      size_t j = 0;
      for (const yaml::Node p : items(ports)) {
        if (auto parsed = port(p, pp + "[" + std::to_string(j) + "]")) r.ports.push_back(*parsed);
        j++;
      }
    }
  }
  return r;
}

void DocParser::workload(const yaml::Node& spec, const Meta& meta, Bundle& out) {
  if (!checkMap(spec, "spec", {"cgroups", "labels", "spiffeId"})) return;
  Workload w;
  w.name = meta.name;
  w.namespaceName = meta.ns;
  w.loc = meta.at;
  if (auto cg = spec["cgroups"]) {
    if (!cg.IsSequence() || cg.size() == 0) {
      error(cg, "spec.cgroups: must be a non-empty list of cgroup path patterns");
    } else {
      size_t i = 0;
      for (const yaml::Node c : items(cg)) {
        const std::string cp = "spec.cgroups[" + std::to_string(i++) + "]";
        auto v = scalar(c, cp);
        if (!v) continue;
        if (v->empty()) {
          error(c, cp + ": empty path");
          continue;
        }
        if ((*v)[0] == '/') {
          error(c, cp + ": '" + *v + "' must be relative to the daemon's cgroup root (no leading '/')");
          continue;
        }
        std::stringstream ss(*v);
        std::string comp;
        bool bad = false;
        while (std::getline(ss, comp, '/')) {
          if (comp.empty() || comp == "." || comp == "..") bad = true;
        }
        if (bad || v->back() == '/') {
          error(c, cp + ": '" + *v + "' has an empty, '.' or '..' path component");
          continue;
        }
        if (auto why = globProblem(*v)) {
          error(c, cp + ": '" + *v + "': " + *why);
          continue;
        }
        w.cgroups.push_back(*v);
      }
    }
  } else {
    error(spec, "spec: 'cgroups' is required");
  }
  if (auto l = spec["labels"]) {
    w.labels = labels(l, "spec.labels");
    namespaceLabel(l, "spec.labels", meta.ns);
  }
  if (auto s = spec["spiffeId"]) {
    auto v = scalar(s, "spec.spiffeId");
    if (v && v->rfind("spiffe://", 0) != 0) {
      error(s, "spec.spiffeId: '" + *v + "' must start with spiffe://");
    } else if (v) {
      w.spiffeId = *v;
    }
  }
  out.workloads.push_back(std::move(w));
}

void DocParser::external(const yaml::Node& spec, const Meta& meta, Bundle& out) {
  if (!checkMap(spec, "spec", {"labels", "cidrs", "except"})) return;
  External e;
  e.name = meta.name;
  e.namespaceName = meta.ns;
  e.loc = meta.at;
  if (auto l = spec["labels"]) {
    e.labels = labels(l, "spec.labels");
    namespaceLabel(l, "spec.labels", meta.ns);
  }
  std::vector<CidrItem> cidrs;
  bool cidrsOk = false;
  if (auto c = spec["cidrs"]) {
    const size_t before = errors_.size();
    if (auto items = cidrList(c, "spec.cidrs", true)) cidrs = *items;
    cidrsOk = errors_.size() == before;
  } else {
    error(spec, "spec: 'cidrs' is required (the address ranges this External stands for)");
  }
  for (const auto& c : cidrs) e.cidrs.push_back(c.cidr);
  auto items = spec["except"] ? cidrList(spec["except"], "spec.except", false) : std::nullopt;
  // A hole is judged against the ranges only when they all parsed, so a typo
  // in cidrs is not reported a second time as a misplaced except.
  if (items && cidrsOk) {
    for (const auto& it : *items) {
      const std::string ip = "spec.except[" + std::to_string(it.index) + "]";
      auto covered =
          std::find_if(cidrs.begin(), cidrs.end(), [&](const CidrItem& c) { return it.cidr.contains(c.cidr); });
      const bool inside =
          std::any_of(cidrs.begin(), cidrs.end(), [&](const CidrItem& c) { return c.cidr.contains(it.cidr); });
      if (covered != cidrs.end()) {
        error(it.node, ip + ": " + it.cidr.str() + " covers all of spec.cidrs[" + std::to_string(covered->index) +
                           "] (" + covered->cidr.str() + "); remove that cidr instead");
      } else if (!inside) {
        error(it.node, ip + ": " + it.cidr.str() + " is not inside any of spec.cidrs" + familyHint(it.cidr, e.cidrs));
      } else {
        e.except.push_back(it.cidr);
      }
    }
  }
  out.externals.push_back(std::move(e));
}

void DocParser::policyDoc(const yaml::Node& spec, const Meta& meta, Bundle& out) {
  if (!checkMap(spec, "spec", {"selector", "enforcement", "egress", "ingress"})) return;
  Policy p;
  p.name = meta.name;
  p.namespaceName = meta.ns;
  p.loc = meta.at;
  bool ok = true;
  if (auto sel = spec["selector"]) {
    auto s = subject(sel, "spec.selector");
    if (s) {
      p.selector = *s;
      if (s->kind == Peer::Kind::Selector && sel["matchLabels"].IsMap()) {
        namespaceLabel(sel["matchLabels"], "spec.selector.matchLabels", meta.ns);
      }
    } else {
      ok = false;
    }
  } else {
    error(spec, "spec: 'selector' is required (which workloads this policy governs)");
    ok = false;
  }
  if (auto e = spec["enforcement"]) {
    auto v = scalar(e, "spec.enforcement");
    if (v && *v == "monitor") {
      p.enforcement = Enforcement::Monitor;
    } else if (v && *v == "enforce") {
      p.enforcement = Enforcement::Enforce;
    } else if (v) {
      error(e, "spec.enforcement: '" + *v + "' is not monitor or enforce");
    }
  }
  // A bare `egress:` is rejected rather than read as `[]`: it is as likely a
  // mis-indented rule list as a deliberate "allow nothing".
  if (auto e = spec["egress"]) {
    p.hasEgress = true;
    if (e.IsNull()) {
      error(e, "spec.egress: must be a list of rules (write [] to allow nothing)");
    } else {
      p.egress = rules(e, "spec.egress", Direction::Egress);
    }
  }
  if (auto i = spec["ingress"]) {
    p.hasIngress = true;
    if (i.IsNull()) {
      error(i, "spec.ingress: must be a list of rules (write [] to allow nothing)");
    } else {
      p.ingress = rules(i, "spec.ingress", Direction::Ingress);
    }
  }
  if (!p.hasEgress && !p.hasIngress) {
    error(spec, "spec: a policy needs 'egress' and/or 'ingress' rules");
  }
  forEachRulePeer(p, [&](const Peer& peer) { p.hasCidrPeers |= peer.kind == Peer::Kind::Cidr; });
  if (ok) out.policies.push_back(std::move(p));
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
      error(k, "metadata.annotations: duplicate key '" + std::string(k.Scalar()) + "'");
    }
  }
}

std::string locStr(const SourceLocation& l) {
  return l.file.str() + ":" + std::to_string(l.line) + ":" + std::to_string(l.column);
}

std::string nsText(const std::string& ns) { return ns.empty() ? "no namespace" : "namespace '" + ns + "'"; }

// The first Workload and External of each name (what findWorkload and
// findExternal return), indexed: references are checked for every rule.
struct Names {
  std::unordered_map<std::string_view, const Workload*> workloads;
  std::unordered_map<std::string_view, const External*> externals;
  template <typename T>
  static const T* find(const std::unordered_map<std::string_view, const T*>& m, std::string_view name) {
    auto it = m.find(name);
    return it == m.end() ? nullptr : it->second;
  }
  const Workload* workload(std::string_view name) const { return find(workloads, name); }
  const External* external(std::string_view name) const { return find(externals, name); }
};

void checkSubjectRef(const Names& b, const Policy& p, std::vector<Diagnostic>& errors) {
  const Peer& s = p.selector;
  if (s.kind != Peer::Kind::Identity) return;
  const Workload* w = b.workload(s.identity);
  if (w == nullptr) {
    errors.push_back({s.loc, "spec.selector: identity '" + s.identity + "' " +
                                 (b.external(s.identity) != nullptr
                                      ? "is an External; a policy's selector selects Workloads only"
                                      : "names no Workload")});
    return;
  }
  if (p.namespaceName.empty()) return;
  const Labels l = w->effectiveLabels();
  auto it = l.find(kNamespaceLabel);
  const std::string wns = it == l.end() ? "" : it->second;
  if (wns != p.namespaceName) {
    errors.push_back({s.loc, "spec.selector: workload '" + s.identity + "' is in " + nsText(wns) +
                                 ", not in the policy's namespace '" + p.namespaceName + "'"});
  }
}

void checkPeerRef(const Names& b, const Peer& p, std::vector<Diagnostic>& errors) {
  if (p.kind == Peer::Kind::Identity && b.workload(p.identity) == nullptr && b.external(p.identity) == nullptr) {
    errors.push_back({p.loc, "peer: identity '" + p.identity + "' names no Workload or External"});
  }
}

}  // namespace

namespace {

// Parses `text`, which starts on line `firstLine` (0-based) of `file`, into
// `out` and `errors`. A syntax error anywhere is the text's only diagnostic
// (as when the whole file was loaded before any document was looked at):
// then `out` and `errors` hold nothing else, and it returns false.
bool parseInto(std::string_view text, const std::string& file, int firstLine, Bundle& out,
               std::vector<Diagnostic>& errors) {
  yaml::Tree tree;
  DocParser parser(file, errors, firstLine);
  auto err = yaml::readDocuments(text, tree, [&](const yaml::Tree& doc) {
    try {
      parser.document(doc.root(), out);
    } catch (const yaml::SubscriptError& e) {
      errors.push_back({{file, e.mark.line + 1 + firstLine, e.mark.column + 1}, e.what()});
    }
  });
  if (!err) return true;
  out = Bundle{};
  errors = {{{file, err->at.isNull() ? 0 : err->at.line + 1 + firstLine, err->at.isNull() ? 0 : err->at.column + 1},
             "YAML syntax: " + err->text(firstLine)}};
  return false;
}

}  // namespace

ParseResult parseText(const std::string& text, const std::string& file) {
  ParseResult out;
  parseInto(text, file, 0, out.bundle, out.errors);
  return out;
}

namespace {

// The names index of `bundle`'s Workloads and Externals (their duplicates and
// clashes reported).
void indexNames(const Bundle& bundle, Names& names, std::vector<Diagnostic>& errors) {
  auto& workloads = names.workloads;
  for (const auto& w : bundle.workloads) {
    auto [it, fresh] = workloads.emplace(w.name, &w);
    if (!fresh) {
      errors.push_back({w.loc, "duplicate Workload name '" + w.name + "' (first defined at " +
                                   locStr(it->second->loc) + ")"});
    }
  }
  auto& externals = names.externals;
  for (const auto& e : bundle.externals) {
    auto [it, fresh] = externals.emplace(e.name, &e);
    if (!fresh) {
      errors.push_back({e.loc, "duplicate External name '" + e.name + "' (first defined at " +
                                   locStr(it->second->loc) + ")"});
    } else if (auto w = workloads.find(e.name); w != workloads.end()) {
      errors.push_back({e.loc, "External name '" + e.name + "' is also a Workload's (defined at " +
                                   locStr(w->second->loc) + "); 'identity: " + e.name +
                                   "' must name one thing"});
    }
  }
}

// A policy's references to Workloads and Externals; true if all resolve.
bool checkRefs(const Names& names, const Policy& p, std::vector<Diagnostic>& errors) {
  const size_t before = errors.size();
  checkSubjectRef(names, p, errors);
  forEachRulePeer(p, [&](const Peer& peer) { checkPeerRef(names, peer, errors); });
  return errors.size() == before;
}

// A policy as the last validation found it: held (a key of the index
// views its name), whether its references resolved, and the load that last
// found it in the bundle.
struct CheckedPolicy {
  std::shared_ptr<const Policy> policy;
  bool resolved = false;
  uint64_t seen = 0;
};
using PolicyIndex = std::unordered_map<std::string_view, CheckedPolicy>;

// Every policy's name (no duplicates) and references, in file order, into
// a new `index` (the first policy of each name). `known(p)` says p's
// references were checked against the same names before and all resolved
// (not checked again). True if the names are unique.
template <typename Known>
bool checkPolicies(const Bundle& bundle, const Names& names, Known known, std::vector<Diagnostic>& errors,
                   PolicyIndex& index, uint64_t load, size_t& checked) {
  index.clear();
  index.reserve(bundle.policies.size());
  bool unique = true;
  for (size_t i = 0; i < bundle.policies.size(); i++) {
    const Policy& p = bundle.policies[i];
    auto [it, fresh] = index.try_emplace(p.name);
    if (!fresh) {
      unique = false;
      errors.push_back({p.loc, "duplicate Policy name '" + p.name + "' (first defined at " +
                                   locStr(it->second.policy->loc) + ")"});
    }
    const bool resolved = known(&p) || (checked++, checkRefs(names, p, errors));
    if (fresh) it->second = {bundle.policies.shared(i), resolved, load};
  }
  return unique;
}

// checkPolicies() for a bundle whose names are those `index` was built
// against, with no duplicates then: only the policies that are not the
// same objects as last time, or whose references did not resolve, are
// looked at, and the index is updated in place (a one-rule change touches
// one entry of 10,000). False, with `index` and `errors` as they came,
// where a name is now taken twice (checkPolicies() reports it).
bool recheckPolicies(const Bundle& bundle, const Names& names, std::vector<Diagnostic>& errors, PolicyIndex& index,
                     uint64_t load, size_t& checked) {
  std::vector<size_t> check;  // in file order
  for (size_t i = 0; i < bundle.policies.size(); i++) {
    const Policy& p = bundle.policies[i];
    auto it = index.find(p.name);
    if (it != index.end() && it->second.policy.get() == &p) {
      if (it->second.seen == load) return false;  // the same object twice
      it->second.seen = load;
      if (it->second.resolved) continue;
    }
    check.push_back(i);
  }
  const size_t errorsBefore = errors.size();
  for (size_t i : check) {
    const Policy& p = bundle.policies[i];
    auto it = index.find(p.name);
    if (it == index.end() || it->second.policy.get() != &p) {
      if (it != index.end() && it->second.seen == load) {  // a duplicate
        errors.resize(errorsBefore);
        return false;
      }
      // A new object; the old one of that name (if any) is gone, and the
      // key must view the new one's name.
      if (it != index.end()) index.erase(it);
      it = index.emplace(p.name, CheckedPolicy{bundle.policies.shared(i), false, load}).first;
    }
    it->second.resolved = checkRefs(names, p, errors);
  }
  checked = check.size();
  if (index.size() != bundle.policies.size()) {  // policies removed
    std::erase_if(index, [&](const auto& e) { return e.second.seen != load; });
  }
  return true;
}

}  // namespace

void validateBundle(const Bundle& bundle, std::vector<Diagnostic>& errors) {
  Names names;
  indexNames(bundle, names, errors);
  PolicyIndex index;
  size_t checked = 0;
  checkPolicies(bundle, names, [](const Policy*) { return false; }, errors, index, 0, checked);
}

namespace {

// The files `paths` name, directories expanded (sorted); problems appended.
std::vector<std::string> listFiles(const std::vector<std::string>& paths, std::vector<Diagnostic>& errors) {
  namespace fs = std::filesystem;
  std::vector<std::string> files;
  if (paths.empty()) {
    errors.push_back({{"<policy>", 0, 0}, "no policy path given"});
    return files;
  }
  for (const auto& p : paths) {
    std::error_code ec;
    auto st = fs::status(p, ec);
    if (ec || !fs::exists(st)) {
      errors.push_back({{p, 0, 0}, "cannot read: " + (ec ? ec.message() : std::string("No such file or directory"))});
      continue;
    }
    if (fs::is_directory(st)) {
      std::vector<std::string> found;
      // The error_code forms throughout: a vanished or unreadable entry is a
      // diagnostic, not an exception out of the daemon's reload.
      for (fs::directory_iterator it(p, ec), end; !ec && it != end; it.increment(ec)) {
        const std::string ext = it->path().extension().string();
        std::error_code fec;
        if ((ext == ".yaml" || ext == ".yml") && it->is_regular_file(fec)) {
          found.push_back(it->path().string());
        }
      }
      if (ec) {
        errors.push_back({{p, 0, 0}, "cannot list directory: " + ec.message()});
        continue;
      }
      if (found.empty()) {
        errors.push_back({{p, 0, 0}, "directory has no *.yaml or *.yml files"});
        continue;
      }
      std::sort(found.begin(), found.end());
      files.insert(files.end(), found.begin(), found.end());
    } else {
      files.push_back(p);
    }
  }
  return files;
}

// What a document is known by between reads (with its length): XXH3-128
// of its text, the same value on every CPU. On x86-64, libxxhash's
// dispatcher picks the widest vector unit there is: with AVX2, 7 MB hash in
// 0.4-0.8 ms instead of 1.0-1.5 ms (SSE2, the baseline build's).
XXH128_hash_t documentHash(std::string_view text) {
#if defined(__x86_64__)
  return XXH3_128bits_dispatch(text.data(), text.size());
#else
  return XXH3_128bits(text.data(), text.size());
#endif
}

// Does a "---" / "..." marker line start at `pos` (three `marker`s, then a
// space, a tab or the line's end)?
bool markerAt(std::string_view text, size_t pos, char marker) {
  const size_t n = text.size();
  if (pos + 3 > n || text[pos] != marker || text[pos + 1] != marker || text[pos + 2] != marker) return false;
  return pos + 3 == n || text[pos + 3] == ' ' || text[pos + 3] == '\t' || text[pos + 3] == '\n';
}

// Can a line starting with `c` be a marker ('---', '...') or a directive?
bool markerStart(unsigned char c) { return c == '-' || c == '.' || c == '%'; }

// Bits set in a 16-bit mask (__builtin_popcount is a libgcc call on
// baseline x86-64, which has no POPCNT: it was 5% of a reload).
inline unsigned bits16(unsigned x) {
  x = x - ((x >> 1) & 0x5555u);
  x = (x & 0x3333u) + ((x >> 2) & 0x3333u);
  x = (x + (x >> 4)) & 0x0f0fu;
  return (x + (x >> 8)) & 0x1fu;
}

// Calls atLine(offset, lines) for the start of every line after the first
// that can be a marker or a directive (markerStart), and for offset == size
// after a final '\n', in order; `lines` is the number of '\n' before
// `offset`. false as soon as atLine is, or where the text has a line break
// other than '\n' ('\r', NEL, LS, PS); else `newlines` gets the number of
// '\n' in the text. Sixteen bytes at a time where SSE2 is there, and only
// the lines that can matter cost a call: a 100k-rule file has 340k lines,
// and a call per line to find the next '\n' was 6 ms of a reload.
template <typename AtLine>
bool scanLines(std::string_view text, size_t& newlines, AtLine&& atLine) {
  const auto* d = reinterpret_cast<const unsigned char*>(text.data());
  const size_t n = text.size();
  auto otherBreak = [&](size_t i) {
    if (d[i] == '\r') return true;
    if (d[i] == 0xc2) return i + 1 < n && d[i + 1] == 0x85;
    if (d[i] == 0xe2) return i + 2 < n && d[i + 1] == 0x80 && (d[i + 2] == 0xa8 || d[i + 2] == 0xa9);
    return false;
  };
  size_t i = 0, lines = 0;
#if defined(__SSE2__)
  const __m128i nl = _mm_set1_epi8('\n'), cr = _mm_set1_epi8('\r');
  const __m128i c2 = _mm_set1_epi8(static_cast<char>(0xc2)), e2 = _mm_set1_epi8(static_cast<char>(0xe2));
  const __m128i dash = _mm_set1_epi8('-'), dot = _mm_set1_epi8('.'), pct = _mm_set1_epi8('%');
  // Line breaks are counted per byte lane (a lane adds 1 for each '\n' it
  // sees) and summed every 255 blocks, before a lane can overflow, and
  // where a call needs the count: a popcount per block was most of the scan.
  const __m128i zero = _mm_setzero_si128();
  __m128i lanes = zero;
  unsigned inLanes = 0;  // blocks counted in `lanes`
  auto laneSum = [&] {
    const __m128i s = _mm_sad_epu8(lanes, zero);
    return static_cast<size_t>(_mm_cvtsi128_si32(s)) + static_cast<size_t>(_mm_cvtsi128_si32(_mm_srli_si128(s, 8)));
  };
  // 17 bytes readable: the 16 looked at and the one after the last.
  for (; i + 17 <= n; i += 16) {
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(d + i));
    const __m128i next = _mm_loadu_si128(reinterpret_cast<const __m128i*>(d + i + 1));
    const __m128i odd = _mm_or_si128(_mm_cmpeq_epi8(v, cr), _mm_or_si128(_mm_cmpeq_epi8(v, c2), _mm_cmpeq_epi8(v, e2)));
    for (unsigned m = static_cast<unsigned>(_mm_movemask_epi8(odd)); m != 0; m &= m - 1) {
      if (otherBreak(i + static_cast<size_t>(__builtin_ctz(m)))) return false;
    }
    const __m128i isBreak = _mm_cmpeq_epi8(v, nl);
    const __m128i marks =
        _mm_or_si128(_mm_cmpeq_epi8(next, dash), _mm_or_si128(_mm_cmpeq_epi8(next, dot), _mm_cmpeq_epi8(next, pct)));
    const unsigned at = static_cast<unsigned>(_mm_movemask_epi8(_mm_and_si128(isBreak, marks)));
    if (at != 0) {
      const unsigned breaks = static_cast<unsigned>(_mm_movemask_epi8(isBreak));
      const size_t counted = lines + laneSum();
      for (unsigned m = at; m != 0; m &= m - 1) {
        const unsigned bit = static_cast<unsigned>(__builtin_ctz(m));
        if (!atLine(i + bit + 1, counted + bits16(breaks & ((2u << bit) - 1)))) return false;
      }
    }
    lanes = _mm_sub_epi8(lanes, isBreak);  // a '\n' lane is -1
    if (++inLanes == 255) {
      lines += laneSum();
      lanes = zero;
      inLanes = 0;
    }
  }
  lines += laneSum();
#endif
  for (; i < n; i++) {
    if (otherBreak(i)) return false;
    if (d[i] != '\n') continue;
    lines++;
    if ((i + 1 == n || markerStart(d[i + 1])) && !atLine(i + 1, lines)) return false;
  }
  newlines = lines;
  return true;
}

// A line starting with '---' followed by a space, a tab or its end is always
// a document start: YAML forbids it inside any content (c-forbidden), so
// cutting there yields the stream's documents, each readable alone. Texts
// where that is not the whole story are not cut: directives (they belong to
// the next document), '...' ends, and line breaks other than '\n' (libyaml
// also counts '\r', NEL, LS and PS, which would shift line numbers).
//
// DocumentReader cuts a file that way as it reads it, a chunk at a time:
// each document is handed out contiguous in `buf`, which holds the document
// being looked at and what was read after it, never the whole file (a
// 100k-rule file is 7.5 MB; its texts kept for the next comparison were
// 15 MB of the daemon's memory).
class DocumentReader {
 public:
  enum class Step { Document, End, Uncut, Failed };
  DocumentReader(int fd, std::vector<char>& buf, size_t chunk) : fd_(fd), buf_(buf) {
    if (buf_.size() < chunk) buf_.resize(chunk);
  }
  // Document: the next one is `text` (valid until the next call), starting
  // on line `firstLine` (0-based). End: there are no more. Uncut: the file
  // cannot be cut (see above). Failed: reading failed, errno in error().
  Step next(std::string_view& text, int& firstLine);
  // The '\n' in the document next() or take() handed out last.
  int lines() const { return docLines_; }
  // Without a scan: the next `length` bytes, if they end where a scan would
  // cut (before a '---' line, or at the end of the file), as `text` (valid
  // until the next call); nothing is consumed. Whether that is the next
  // document is the caller's to know: the same text as a document of the
  // same file read last time (a cut file), whose lines (none a marker, a
  // directive or another line break) the scan would find again. Failed:
  // reading failed; Uncut: no such text here (next() finds the document).
  Step peek(size_t length, std::string_view& text);
  // Hands out the text peek() showed, of `lines` '\n', as next() would.
  void take(size_t length, int lines, int& firstLine);
  int error() const { return errno_; }

 private:
  bool fill();
  int fd_;
  std::vector<char>& buf_;
  size_t start_ = 0;      // where the current document starts
  size_t end_ = 0;        // bytes in buf_
  size_t scan_ = 0;       // the line start to look at next
  bool pending_ = true;   // scan_ itself is still to be looked at
  int lines_ = 0;         // '\n' before scan_ (in the file)
  int startLine_ = 0;     // line of start_
  int docLines_ = 0;      // '\n' in the document handed out last
  bool eof_ = false, done_ = false, any_ = false;
  int errno_ = 0;
};

bool DocumentReader::fill() {
  if (start_ > 0) {  // keep only the current document
    std::memmove(buf_.data(), buf_.data() + start_, end_ - start_);
    end_ -= start_;
    scan_ -= start_;
    start_ = 0;
  }
  if (end_ == buf_.size()) buf_.resize(buf_.size() * 2);  // a document bigger than the buffer
  for (;;) {
    const ssize_t n = ::read(fd_, buf_.data() + end_, buf_.size() - end_);
    if (n > 0) {
      end_ += static_cast<size_t>(n);
      return true;
    }
    if (n == 0) {
      eof_ = true;
      return true;
    }
    if (errno != EINTR) {
      errno_ = errno;
      return false;
    }
  }
}

DocumentReader::Step DocumentReader::next(std::string_view& text, int& firstLine) {
  if (done_) return Step::End;
  for (;;) {
    // Only whole lines are looked at (a line start needs the 3 bytes after
    // it, a multi-byte line break its last byte), all of it at the end.
    size_t limit = end_;
    if (!eof_) {
      const void* nl = scan_ < end_ ? memrchr(buf_.data() + scan_, '\n', end_ - scan_) : nullptr;
      limit = nl != nullptr ? static_cast<size_t>(static_cast<const char*>(nl) - buf_.data()) + 1 : scan_;
    }
    const std::string_view seen(buf_.data(), limit);
    bool uncut = false, wait = false;
    size_t cut = SIZE_MAX;
    // false: stop (the document ends at `p`, or the file cannot be cut)
    auto look = [&](size_t p) {
      if (p == seen.size()) return true;  // the final '\n'
      if (seen[p] == '%' || markerAt(seen, p, '.')) {
        uncut = true;
        return false;
      }
      if (p > start_ && markerAt(seen, p, '-')) {
        cut = p;
        return false;
      }
      return true;
    };
    bool go = true;
    if (pending_ && (scan_ < limit || eof_)) {
      pending_ = false;
      go = look(scan_);
    }
    if (go && !pending_ && scan_ < limit) {
      const size_t from = scan_;
      const int base = lines_;
      size_t newlines = 0;
      const bool whole = scanLines(seen.substr(from), newlines, [&](size_t off, size_t lines) {
        const size_t p = from + off;
        lines_ = base + static_cast<int>(lines);
        scan_ = p;
        if (p == limit && !eof_) {  // the start of a line not read whole yet
          pending_ = true;
          wait = true;
          return false;
        }
        return look(p);
      });
      if (!whole && !wait && cut == SIZE_MAX) uncut = true;  // a line break other than '\n'
      if (whole) {
        scan_ = limit;
        lines_ = base + static_cast<int>(newlines);
      }
    }
    if (uncut) return Step::Uncut;
    if (cut != SIZE_MAX) {
      text = seen.substr(start_, cut - start_);
      firstLine = startLine_;
      docLines_ = lines_ - startLine_;
      start_ = cut;
      startLine_ = lines_;
      any_ = true;
      return Step::Document;
    }
    if (eof_) {
      done_ = true;
      if (start_ == end_ && any_) return Step::End;
      text = std::string_view(buf_.data() + start_, end_ - start_);
      firstLine = startLine_;
      docLines_ = lines_ - startLine_;
      return Step::Document;
    }
    if (!fill()) return Step::Failed;
  }
}

DocumentReader::Step DocumentReader::peek(size_t length, std::string_view& text) {
  // Only at a document's start, nothing of it scanned yet.
  if (done_ || length == 0 || scan_ != start_ || (pending_ && start_ != 0)) return Step::Uncut;
  // The bytes and the marker line after them (4 bytes tell a "---").
  while (end_ - start_ < length + 4 && !eof_) {
    if (!fill()) return Step::Failed;
  }
  const std::string_view seen(buf_.data(), end_);
  // The file's first line is looked at as next() would: a directive or a
  // "..." there means it is not cut.
  if (pending_ && (seen.empty() || seen[0] == '%' || markerAt(seen, 0, '.'))) return Step::Uncut;
  const size_t cut = start_ + length;
  if (cut > end_) return Step::Uncut;
  if (cut < end_ && (seen[cut - 1] != '\n' || !markerAt(seen, cut, '-'))) return Step::Uncut;
  text = seen.substr(start_, length);
  return Step::Document;
}

void DocumentReader::take(size_t length, int lines, int& firstLine) {
  firstLine = startLine_;
  docLines_ = lines;
  start_ += length;
  scan_ = start_;
  pending_ = false;
  startLine_ += lines;
  lines_ = startLine_;
  any_ = true;
  if (start_ == end_ && eof_) done_ = true;
}

// The rest of the file from its start, whole (for a file not cut).
bool readWhole(int fd, std::string& out, int& err) {
  out.clear();
  if (::lseek(fd, 0, SEEK_SET) != 0) {
    err = errno;
    return false;
  }
  char chunk[1 << 16];
  for (;;) {
    const ssize_t n = ::read(fd, chunk, sizeof chunk);
    if (n > 0) {
      out.append(chunk, static_cast<size_t>(n));
    } else if (n == 0) {
      return true;
    } else if (errno != EINTR) {
      err = errno;
      return false;
    }
  }
}

// Every location of `x` moved down by `lines`.
void shift(SourceLocation& l, int lines) {
  if (l.line > 0) l.line += lines;
}
void shift(Peer& p, int lines) { shift(p.loc, lines); }
void shift(Rule& r, int lines) {
  shift(r.loc, lines);
  if (r.peers) {
    for (auto& p : *r.peers) shift(p, lines);
  }
  for (auto& pr : r.ports) shift(pr.loc, lines);
}
void shift(Workload& w, int lines) { shift(w.loc, lines); }
void shift(External& e, int lines) { shift(e.loc, lines); }
void shift(Policy& p, int lines) {
  shift(p.loc, lines);
  shift(p.selector, lines);
  for (auto& r : p.egress) shift(r, lines);
  for (auto& r : p.ingress) shift(r, lines);
}

template <typename T>
void append(SharedList<T>& to, const SharedList<T>& from) {
  for (size_t i = 0; i < from.size(); i++) to.push_back(from.shared(i));
}

// `from`'s objects added to `to` (shared, not copied).
void append(Bundle& to, const Bundle& from) {
  append(to.workloads, from.workloads);
  append(to.externals, from.externals);
  append(to.policies, from.policies);
}

template <typename T>
void appendShifted(SharedList<T>& to, const SharedList<T>& from, int lines) {
  for (const T& x : from) {
    T copy = x;
    shift(copy, lines);
    to.push_back(std::move(copy));
  }
}

// Copies of `from`'s objects with every location moved down by `lines`.
Bundle shifted(const Bundle& from, int lines) {
  Bundle out;
  appendShifted(out.workloads, from.workloads, lines);
  appendShifted(out.externals, from.externals, lines);
  appendShifted(out.policies, from.policies, lines);
  return out;
}

// Where a rule list of a document was (rule_lists.h) and a hash of each of
// its items, whose rule is the policy's rule at the same position.
struct RuleListIndex {
  Direction dir = Direction::Egress;
  int startLine = 0, endLine = 0;  // in the document
  std::vector<uint64_t> hashes;    // XXH3-64 of each item's text
};

// A document as read last time. Not its text: its length and a 128-bit
// hash of it (XXH3), which is what the next read compares with. (Whoever can
// write a policy file can write any policy, so a crafted collision gains
// nothing; by chance, one is as likely as 2^-128.)
struct Document {
  size_t length = 0;
  XXH128_hash_t hash{};
  int firstLine = 0;
  int lines = 0;  // '\n' in the text
  Bundle objects;
  std::vector<Diagnostic> errors;
  bool syntaxError = false;  // errors is then that one error
  // Kept for a document that is one policy read without errors, with at
  // least the loader's minReuseItems rules (8 bytes a rule): what the next
  // read of an edited version reuses rules by.
  std::vector<RuleListIndex> ruleLists;
  bool sameText(size_t len, const XXH128_hash_t& h) const { return length == len && XXH128_isEqual(hash, h); }
};

const std::vector<Rule>& rulesOf(const Policy& p, Direction dir) { return dir == Direction::Egress ? p.egress : p.ingress; }

// Can the rules of `doc` be reused by the next read of an edited version:
// one policy (nothing else) of at least `minItems` rules, read without errors.
bool worthIndexing(const Document& doc, size_t minItems) {
  const auto& ps = doc.objects.policies;
  return !doc.syntaxError && doc.errors.empty() && ps.size() == 1 && doc.objects.workloads.empty() &&
         doc.objects.externals.empty() && ps[0].egress.size() + ps[0].ingress.size() >= minItems;
}

// `doc`'s rule lists as cut from its text, if worthIndexing() and they are
// exactly the rules of its one policy: a list per direction at most, an
// item per rule, each rule's location inside its item. Else none (nothing
// is reused from it).
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

// One item of a rule list (`rp`, "spec.egress[3]"), whose text starts on
// line `itemLine` of a document starting on line `firstLine` of `file`,
// parsed on its own into `out` (nothing if it is not a map, as in the whole
// document): false if the text does not read as exactly one list item.
bool parseItemAlone(std::string_view itemText, const std::string& file, int firstLine, int itemLine,
                    const std::string& rp, Direction dir, std::vector<Diagnostic>& errors, std::vector<Rule>& out) {
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
  });
  return !err && docs == 1 && one;
}

// Parses `text` (the new version of the document `old`, starting on line
// doc.firstLine of `file`) into `doc` reusing `old`'s rules: in each rule
// list, the items whose text is that of the old list's first or last items
// keep their rules (moved to their new lines); the others are parsed alone,
// and the rest of the document as a skeleton with a placeholder per list
// (rule_lists.h). False, with `doc` untouched, when that cannot be done
// exactly: the caller then parses the whole text.
bool parseReusingRules(std::string_view text, const std::string& file, const Document& old, Document& doc,
                       size_t minItems, size_t& reused) {
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
                             path + "[" + std::to_string(i) + "]", l.dir, errors, out);
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
  });
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

struct Stamp {
  dev_t dev = 0;
  ino_t ino = 0;
  off_t size = -1;
  int64_t mtimeNs = 0, ctimeNs = 0;
  bool operator==(const Stamp&) const = default;
};

int64_t ns(const struct timespec& t) { return int64_t(t.tv_sec) * 1000000000 + t.tv_nsec; }

}  // namespace

struct PolicyLoader::FileState {
  Stamp stamp;          // before it was read
  int64_t readAtNs = 0; // CLOCK_REALTIME, when it was stat'ed for that read
  std::vector<std::unique_ptr<Document>> docs;  // in the file's order
  const Document* syntax = nullptr;             // the first one with a syntax error
  bool cut = false;  // docs are the file cut at '---' lines (else one document)
};

namespace {

// The documents of a file read before, handed out to the documents read now
// that have the same text. Looked for first where the previous match leads
// (same position, or after an insertion or removal just before), then among
// those of the same length.
class DocumentMatch {
 public:
  explicit DocumentMatch(std::vector<std::unique_ptr<Document>>* old) : old_(old) {}
  // The old document the next one most likely is, if it is still there.
  const Document* expected() const {
    return old_ != nullptr && expect_ < old_->size() ? (*old_)[expect_].get() : nullptr;
  }
  // `replaced`, on a miss: the old document this one most likely replaced
  // (at the position the previous match leads to), if still there.
  std::unique_ptr<Document> take(std::string_view text, const XXH128_hash_t& hash, const Document** replaced) {
    *replaced = nullptr;
    if (old_ == nullptr) return nullptr;
    auto matches = [&](size_t k) {
      const Document* d = k < old_->size() ? (*old_)[k].get() : nullptr;
      return d != nullptr && d->sameText(text.size(), hash);
    };
    size_t found = old_->size();
    if (matches(expect_)) {
      found = expect_;
    } else {
      if (!indexed_) {
        for (size_t k = 0; k < old_->size(); k++) {
          if ((*old_)[k]) byLength_.emplace((*old_)[k]->length, k);
        }
        indexed_ = true;
      }
      auto [lo, hi] = byLength_.equal_range(text.size());
      for (auto it = lo; it != hi; ++it) {
        if (matches(it->second)) {
          found = it->second;
          break;
        }
      }
    }
    if (found == old_->size()) {
      if (expect_ < old_->size()) *replaced = (*old_)[expect_].get();
      expect_++;  // most likely this document replaced that one
      return nullptr;
    }
    expect_ = found + 1;
    return std::move((*old_)[found]);
  }

 private:
  std::vector<std::unique_ptr<Document>>* old_;
  std::unordered_multimap<size_t, size_t> byLength_;  // built on the first miss
  bool indexed_ = false;
  size_t expect_ = 0;  // the old document the next one most likely is
};

}  // namespace

// What the last validation established, so that the next one checks only
// what changed: the Workload and External lists the names index was built
// from (held, so their objects stay alive and pointers keep their meaning),
// the index and its errors, and every policy by name with whether its
// references resolved in it.
struct PolicyLoader::Validation {
  SharedList<Workload> workloads;
  SharedList<External> externals;
  Names names;
  std::vector<Diagnostic> nameErrors;
  PolicyIndex policies;
  bool unique = false;  // no policy name was taken twice
  uint64_t loads = 0;
};

void PolicyLoader::validate(const Bundle& bundle, std::vector<Diagnostic>& errors) {
  if (!validation_) validation_ = std::make_unique<Validation>();
  Validation& v = *validation_;
  const bool sameNames = v.loads > 0 && bundle.workloads.sameObjects(v.workloads) &&
                         bundle.externals.sameObjects(v.externals);
  const uint64_t load = ++v.loads;
  if (!sameNames) {
    v.names = {};  // its keys view the names of the lists it was built from
    v.nameErrors.clear();
    v.workloads = bundle.workloads;
    v.externals = bundle.externals;
    indexNames(bundle, v.names, v.nameErrors);
  }
  errors.insert(errors.end(), v.nameErrors.begin(), v.nameErrors.end());
  stats_.policiesChecked = 0;
  if (sameNames && v.unique && recheckPolicies(bundle, v.names, errors, v.policies, load, stats_.policiesChecked)) {
    return;
  }
  PolicyIndex before;
  if (sameNames) before = std::move(v.policies);
  auto known = [&](const Policy* p) {
    auto it = before.find(p->name);
    return it != before.end() && it->second.policy.get() == p && it->second.resolved;
  };
  v.unique = checkPolicies(bundle, v.names, known, errors, v.policies, load, stats_.policiesChecked);
}

PolicyLoader::PolicyLoader(std::chrono::nanoseconds stableAfter, size_t readChunk, size_t minReuseItems)
    : readChunk_(std::max<size_t>(readChunk, 1)),
      minReuseItems_(std::max<size_t>(minReuseItems, 1)),
      stableNs_(stableAfter.count()) {}
PolicyLoader::~PolicyLoader() = default;

ParseResult PolicyLoader::load(const std::vector<std::string>& paths) {
  ParseResult out;
  stats_ = {};
  std::unordered_map<std::string, std::unique_ptr<FileState>> next;
  const std::vector<std::string> files = listFiles(paths, out.errors);
  for (const auto& f : files) {
    stats_.files++;
    // Stat before reading: a change after it makes the stamp differ next time.
    struct stat st {};
    struct timespec now {};
    clock_gettime(CLOCK_REALTIME, &now);
    const bool haveStamp = ::stat(f.c_str(), &st) == 0;
    Stamp stamp;
    if (haveStamp) stamp = {st.st_dev, st.st_ino, st.st_size, ns(st.st_mtim), ns(st.st_ctim)};
    std::unique_ptr<FileState> before;
    if (auto it = cache_.find(f); it != cache_.end()) before = std::move(it->second);
    std::unique_ptr<FileState> state;
    if (before && haveStamp && before->stamp == stamp &&
        before->readAtNs - std::max(stamp.mtimeNs, stamp.ctimeNs) >= stableNs_) {
      state = std::move(before);
      stats_.filesUnchanged++;
      stats_.documents += state->docs.size();
      stats_.reused += state->docs.size();
    } else {
      const int fd = ::open(f.c_str(), O_RDONLY | O_CLOEXEC);
      if (fd < 0) {
        out.errors.push_back({{f, 0, 0}, std::string("cannot open for reading: ") + std::strerror(errno)});
        continue;
      }
      state = std::make_unique<FileState>();
      if (haveStamp) {
        state->stamp = stamp;
        state->readAtNs = ns(now);
      }
      std::string error;
      const bool read = readDocuments(f, fd, before.get(), *state, error);
      ::close(fd);
      if (!read) {
        out.errors.push_back({{f, 0, 0}, error});
        continue;
      }
    }
    // A syntax error anywhere is the file's only diagnostic (as parseText).
    if (state->syntax != nullptr) {
      out.errors.insert(out.errors.end(), state->syntax->errors.begin(), state->syntax->errors.end());
    } else {
      for (const auto& d : state->docs) {
        out.errors.insert(out.errors.end(), d->errors.begin(), d->errors.end());
        append(out.bundle, d->objects);
      }
    }
    next[f] = std::move(state);
  }
  cache_ = std::move(next);
  // Grown for a big document: kept up to a few MiB (a set of 10k-rule
  // policies needs ~1 MiB on every reload, and a new buffer costs a fault
  // a page), given back beyond.
  constexpr size_t kKeepReadBuf = size_t(4) << 20;
  if (readBuf_.size() > std::max(readChunk_, kKeepReadBuf)) std::vector<char>().swap(readBuf_);
  validate(out.bundle, out.errors);
  return out;
}

// The documents of `file` (open as `fd`), each the one with the same text
// read from it last time (`before`), else parsed; cut as it is read (see
// DocumentReader), or one document if it cannot be cut.
bool PolicyLoader::readDocuments(const std::string& file, int fd, FileState* before, FileState& state,
                                 std::string& error) {
  const Stats at = stats_;
  DocumentMatch match(before != nullptr ? &before->docs : nullptr);
  auto add = [&](std::string_view text, int firstLine, int lines, const XXH128_hash_t& hash) {
    stats_.documents++;
    const Document* replaced = nullptr;
    std::unique_ptr<Document> doc = match.take(text, hash, &replaced);
    if (doc) {
      stats_.reused++;
      if (doc->firstLine != firstLine) {
        const int lines = firstLine - doc->firstLine;
        doc->objects = shifted(doc->objects, lines);
        for (auto& e : doc->errors) shift(e.loc, lines);
        doc->firstLine = firstLine;
      }
    } else {
      doc = std::make_unique<Document>();
      doc->length = text.size();
      doc->hash = hash;
      doc->firstLine = firstLine;
      doc->lines = lines;
      if (replaced == nullptr ||
          !parseReusingRules(text, file, *replaced, *doc, minReuseItems_, stats_.rulesReused)) {
        doc->syntaxError = !parseInto(text, file, firstLine, doc->objects, doc->errors);
        if (worthIndexing(*doc, minReuseItems_)) {  // before the text is scanned for its lists
          if (auto lists = findRuleLists(text)) indexRuleLists(*lists, *doc, minReuseItems_);
        }
      } else {
        stats_.spliced++;
      }
    }
    if (doc->syntaxError && state.syntax == nullptr) state.syntax = doc.get();
    state.docs.push_back(std::move(doc));
    progressTick();
  };
  auto failed = [&](int err) {
    error = std::string("cannot read: ") + std::strerror(err);
    return false;
  };
  std::string whole;
  int err = 0;
  if (before != nullptr && !before->cut) {
    // Not cut last time (it most likely still cannot be): whole, unless
    // it changed; then it may be cut now.
    if (!readWhole(fd, whole, err)) return failed(err);
    const XXH128_hash_t hash = XXH3_128bits(whole.data(), whole.size());
    if (before->docs.size() == 1 && before->docs[0]->sameText(whole.size(), hash)) {
      add(whole, 0, 0, hash);
      return true;
    }
    whole = std::string();
    if (::lseek(fd, 0, SEEK_SET) != 0) return failed(errno);
  }
  {
    DocumentReader reader(fd, readBuf_, readChunk_);
    std::string_view text;
    int firstLine = 0;
    // Where the file was cut last time, the documents most likely come in
    // the same order: the text as long as the one expected next is hashed
    // (as it would be anyway), and if it is that document, the scan for its
    // end is skipped. Hashing runs at 10+ GB/s, the scan at a few: after a
    // one-rule change to a 7 MB file, 4-5 ms of the reload were the scan.
    const bool guess = before != nullptr && before->cut;
    for (;;) {
      if (const Document* e = guess ? match.expected() : nullptr; e != nullptr) {
        const DocumentReader::Step peeked = reader.peek(e->length, text);
        if (peeked == DocumentReader::Step::Failed) return failed(reader.error());
        if (peeked == DocumentReader::Step::Document) {
          const XXH128_hash_t hash = documentHash(text);
          if (e->sameText(text.size(), hash)) {
            const int lines = e->lines;
            reader.take(text.size(), lines, firstLine);
            stats_.unscanned++;
            add(text, firstLine, lines, hash);
            continue;
          }
        }
      }
      const DocumentReader::Step step = reader.next(text, firstLine);
      if (step == DocumentReader::Step::Document) {
        add(text, firstLine, reader.lines(), documentHash(text));
        continue;
      }
      if (step == DocumentReader::Step::End) {
        state.cut = true;
        return true;
      }
      if (step == DocumentReader::Step::Failed) return failed(reader.error());
      break;  // Uncut
    }
  }
  // Not to be cut after all: one document (what was handed out so far goes).
  state.docs.clear();
  state.syntax = nullptr;
  stats_ = at;
  if (!readWhole(fd, whole, err)) return failed(err);
  add(whole, 0, 0, documentHash(whole));
  return true;
}

ParseResult loadPaths(const std::vector<std::string>& paths) { return PolicyLoader().load(paths); }

}  // namespace microseg::policy
