#include "k8s_import/reader.h"

#include <algorithm>
#include <set>

#include "k8s_import/labels.h"

namespace microseg::k8s {

namespace {

std::string quoted(std::string_view s) { return "'" + std::string(s) + "'"; }

}  // namespace

SourceLocation Reader::loc(const yaml::Node& n) const {
  const yaml::Mark m = n.mark();
  SourceLocation l;
  l.file = file_;
  if (!m.isNull()) {
    l.line = m.line + 1;
    l.column = m.column + 1;
  }
  return l;
}

void Reader::error(const yaml::Node& n, const std::string& path, const std::string& message) {
  out_.errors.push_back({n ? loc(n) : ref_.loc, ref_.text() + ": " + (path.empty() ? "" : path + ": ") + message});
}

void Reader::warning(const yaml::Node& n, const std::string& path, const std::string& message) {
  out_.warnings.push_back({n ? loc(n) : ref_.loc, ref_.text() + ": " + (path.empty() ? "" : path + ": ") + message});
}

bool Reader::fields(const yaml::Node& n, const std::string& path, std::initializer_list<std::string_view> allowed) {
  if (!n.IsMap()) {
    error(n, path, "expected a mapping");
    return false;
  }
  bool ok = true;
  std::set<std::string_view> seen;
  for (size_t i = 0; i < n.size(); i++) {
    const yaml::Node k = n.key(i);
    const std::string_view key = k.Scalar();
    const std::string at = path.empty() ? std::string(key) : path + "." + std::string(key);
    if (!k.IsScalar()) {
      error(k, path, "a key must be a string");
      ok = false;
    } else if (std::find(allowed.begin(), allowed.end(), key) == allowed.end()) {
      std::string list;
      for (auto a : allowed) list += (list.empty() ? "" : ", ") + std::string(a);
      error(k, path, "unknown field " + quoted(key) + " (allowed: " + list + ")");
      ok = false;
    } else if (!seen.insert(key).second) {
      error(k, path, "duplicate field " + quoted(key));
      ok = false;
    }
  }
  return ok;
}

std::optional<std::string> Reader::string(const yaml::Node& n, const std::string& path) {
  if (!n.IsScalar()) {
    error(n, path, n.IsNull() ? "a value is required" : "expected a string");
    return std::nullopt;
  }
  return std::string(n.Scalar());
}

std::optional<int64_t> Reader::integer(const yaml::Node& n, const std::string& path, int64_t lo, int64_t hi) {
  if (!n.IsScalar() || n.Tag() != "?") {
    error(n, path, n.IsScalar() ? quoted(n.Scalar()) + " is not a number (write it unquoted)" : "expected a number");
    return std::nullopt;
  }
  const std::string_view s = n.Scalar();
  int64_t v = 0;
  bool digits = !s.empty() && s.size() <= 10;
  for (char c : s) digits = digits && c >= '0' && c <= '9';
  if (digits) {
    for (char c : s) v = v * 10 + (c - '0');
  }
  if (!digits || v < lo || v > hi) {
    error(n, path, std::string(s) + " is not an integer in " + std::to_string(lo) + "-" + std::to_string(hi));
    return std::nullopt;
  }
  return v;
}

std::optional<bool> Reader::boolean(const yaml::Node& n, const std::string& path) {
  if (n.IsScalar() && n.Tag() == "?" && (n.Scalar() == "true" || n.Scalar() == "false")) return n.Scalar() == "true";
  error(n, path, "expected true or false");
  return std::nullopt;
}

bool Reader::sequence(const yaml::Node& n, const std::string& path, bool nullOk) {
  if (n.IsSequence() || (nullOk && n.IsNull())) return true;
  error(n, path, "expected a list");
  return false;
}

Labels Reader::labels(const yaml::Node& n, const std::string& path) {
  Labels out;
  if (n.IsNull()) return out;
  if (!n.IsMap()) {
    error(n, path, "expected a mapping of label keys to values");
    return out;
  }
  for (size_t i = 0; i < n.size(); i++) {
    const yaml::Node k = n.key(i), v = n.value(i);
    const std::string key(k.Scalar());
    if (!k.IsScalar() || !validLabelKey(key)) {
      error(k, path, quoted(key) + " is not a valid label key");
      continue;
    }
    auto value = v.IsNull() ? std::optional<std::string>("") : string(v, path + "." + key);
    if (!value) continue;
    if (!validLabelValue(*value)) {
      error(v, path + "." + key, quoted(*value) + " is not a valid label value");
      continue;
    }
    if (!out.emplace(key, *value).second) error(k, path, "duplicate label " + quoted(key));
  }
  return out;
}

std::optional<Selector> Reader::selector(const yaml::Node& n, const std::string& path) {
  if (n.IsNull()) return Selector{};
  if (!fields(n, path, {"matchLabels", "matchExpressions"})) return std::nullopt;
  const size_t before = errorCount();
  Selector s;
  if (auto ml = n["matchLabels"]) s.matchLabels = labels(ml, path + ".matchLabels");
  if (auto me = n["matchExpressions"]; me && sequence(me, path + ".matchExpressions")) {
    for (size_t i = 0; i < me.size(); i++) {
      const yaml::Node e = me.item(i);
      const std::string at = path + ".matchExpressions[" + std::to_string(i) + "]";
      if (!fields(e, at, {"key", "operator", "values"})) continue;
      policy::LabelRequirement req;
      auto key = string(e["key"], at + ".key");
      auto op = string(e["operator"], at + ".operator");
      if (!key || !op) continue;
      if (!validLabelKey(*key)) error(e["key"], at + ".key", quoted(*key) + " is not a valid label key");
      req.key = *key;
      if (*op == "In") {
        req.op = policy::SelectorOp::In;
      } else if (*op == "NotIn") {
        req.op = policy::SelectorOp::NotIn;
      } else if (*op == "Exists") {
        req.op = policy::SelectorOp::Exists;
      } else if (*op == "DoesNotExist") {
        req.op = policy::SelectorOp::DoesNotExist;
      } else {
        error(e["operator"], at + ".operator", quoted(*op) + " is not an operator (In, NotIn, Exists, DoesNotExist)");
        continue;
      }
      const bool needsValues = req.op == policy::SelectorOp::In || req.op == policy::SelectorOp::NotIn;
      const yaml::Node vals = e["values"];
      if (vals && sequence(vals, at + ".values")) {
        for (size_t j = 0; j < vals.size(); j++) {
          const std::string vat = at + ".values[" + std::to_string(j) + "]";
          auto v = string(vals.item(j), vat);
          if (v && !validLabelValue(*v)) error(vals.item(j), vat, quoted(*v) + " is not a valid label value");
          if (v) req.values.push_back(*v);
        }
      }
      if (needsValues && req.values.empty()) error(vals ? vals : e, at + ".values", *op + " needs at least one value");
      if (!needsValues && !req.values.empty()) error(vals, at + ".values", *op + " takes no values");
      s.matchExpressions.push_back(std::move(req));
    }
  }
  if (errorCount() != before) return std::nullopt;
  return s;
}

std::optional<Protocol> Reader::protocol(const yaml::Node& n, const std::string& path) {
  auto p = string(n, path);
  if (!p) return std::nullopt;
  if (*p == "TCP") return Protocol::TCP;
  if (*p == "UDP") return Protocol::UDP;
  if (*p == "SCTP") {
    error(n, path, "SCTP is not supported (microseg polices TCP and UDP only)");
  } else {
    error(n, path, quoted(*p) + " is not a protocol (TCP, UDP)");
  }
  return std::nullopt;
}

std::optional<policy::Cidr> Reader::cidr(const yaml::Node& n, const std::string& path) {
  auto text = string(n, path);
  if (!text) return std::nullopt;
  policy::CidrError why;
  if (auto c = policy::parseCidr(*text, &why)) return c;
  // Kubernetes reads "10.1.2.3/8" as 10.0.0.0/8; microseg wants the
  // network written, so write it.
  const size_t slash = text->find('/');
  if (slash != std::string::npos) {
    const std::string len = text->substr(slash + 1);
    auto addr = policy::parseAddress(text->substr(0, slash));
    const bool digits = !len.empty() && len.size() <= 3 && std::all_of(len.begin(), len.end(), ::isdigit);
    if (addr && digits && text->find("::ffff:") == std::string::npos) {
      const uint32_t n4 = policy::isMapped(*addr) ? policy::kIpv4PrefixOffset : 0;
      const uint32_t l = static_cast<uint32_t>(std::stoi(len));
      if (l <= (n4 ? 32u : 128u)) return policy::networkOf(*addr, n4 + l);
    }
  }
  error(n, path, why.message);
  return std::nullopt;
}

void Reader::peekObject(const yaml::Node& obj, const std::string& kind) {
  ObjectRef ref;
  ref.kind = kind;
  ref.loc = loc(obj);
  ref.name = "(unnamed)";
  if (const yaml::Node md = obj["metadata"]; md.IsMap()) {
    if (auto n = md["name"]; n.IsScalar()) ref.name = std::string(n.Scalar());
    if (auto n = md["namespace"]; n.IsScalar()) ref.ns = std::string(n.Scalar());
  }
  setObject(ref);
}

bool Reader::metadata(const yaml::Node& obj, const std::string& kind, bool namespaced, Labels* labels,
                      std::string* uid) {
  ObjectRef ref;
  ref.kind = kind;
  ref.loc = loc(obj);
  ref.name = "(unnamed)";
  const yaml::Node md = obj["metadata"];
  if (md && md.IsMap()) {
    if (auto n = md["name"]; n && n.IsScalar()) ref.name = std::string(n.Scalar());
    if (namespaced) {
      ref.ns = "default";
      if (auto n = md["namespace"]; n && n.IsScalar()) ref.ns = std::string(n.Scalar());
    }
  }
  setObject(ref);
  if (!md) {
    error(obj, "metadata", "required");
    return false;
  }
  if (!fields(md, "metadata",
              {"name", "generateName", "namespace", "selfLink", "uid", "resourceVersion", "generation",
               "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "labels", "annotations",
               "ownerReferences", "finalizers", "managedFields"})) {
    return false;
  }
  auto name = md["name"] ? string(md["name"], "metadata.name") : std::nullopt;
  if (!md["name"]) error(md, "metadata.name", "required");
  if (!name) return false;
  if (!validDnsSubdomain(*name)) error(md["name"], "metadata.name", quoted(*name) + " is not a valid object name");
  if (namespaced && md["namespace"]) {
    auto ns = string(md["namespace"], "metadata.namespace");
    if (ns && !validDnsLabel(*ns)) {
      error(md["namespace"], "metadata.namespace", quoted(*ns) + " is not a valid namespace name");
    }
  } else if (!namespaced && md["namespace"]) {
    error(md["namespace"], "metadata.namespace", kind + " is not namespaced");
  }
  if (labels != nullptr && md["labels"]) *labels = this->labels(md["labels"], "metadata.labels");
  if (uid != nullptr && md["uid"]) {
    if (auto u = string(md["uid"], "metadata.uid")) *uid = *u;
  }
  return true;
}

}  // namespace microseg::k8s
