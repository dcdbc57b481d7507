#include "daemon/config_file.h"

#include <grp.h>

#include <optional>
#include <set>

#include "common/durations.h"
#include "policy/files.h"
#include "policy/loader.h"
#include "policy/schema.h"
#include "policy/value_checks.h"
#include "policy/yaml_reader.h"

namespace microseg::daemon {

namespace {

using policy::yaml::Node;

// Reads the settings of one YAML document (the file's) into `cfg`.
class ConfigReader {
 public:
  ConfigReader(const std::string& path, DaemonConfig& cfg, std::string& logLevel,
               std::vector<policy::Diagnostic>& errs)
      : path_(path), cfg_(cfg), logLevel_(logLevel), errs_(errs) {}

  void settings(const Node& root);

 private:
  policy::SourceLocation at(const Node& n) const {
    const auto m = n.mark();
    return {path_, m.isNull() ? 0 : m.line + 1, m.isNull() ? 0 : m.column + 1};
  }
  void error(const Node& n, const std::string& msg) { errs_.push_back({at(n), msg}); }
  bool str(const Node& v, const std::string& key, std::string& out);
  bool oneOf(const Node& v, const std::string& key, const std::set<std::string>& allowed, std::string& out);
  bool uint(const Node& v, const std::string& key, uint64_t lo, uint64_t hi, uint64_t& out);
  void setting(const std::string& key, const Node& v);

  const std::string& path_;
  DaemonConfig& cfg_;
  std::string& logLevel_;
  std::vector<policy::Diagnostic>& errs_;
};

const std::set<std::string> kKnown = {
    "cgroupRoot", "policy",           "mode",          "socket",       "socketGroup",
    "stateDir",   "flowLog",          "logAllowed",    "answerTtlSeconds", "defaultEnforcement",
    "logLevel",   "rescanIntervalMs", "metricsListen", "flowStoreSize", "dataDir",
    "etcdEndpoints", "nodeName", "nodeAddresses", "clusterPrefix", "etcdCacert", "etcdCert", "etcdKey", "nodeTtl",
    "wireIdentity", "maxGrant", "revokeEstablished", "edgeRetention", "fqdnMinTtl", "fqdnMaxTtl", "fqdnResolvers"};

std::string listOf(const std::set<std::string>& items) {
  std::string list;
  for (const auto& a : items) list += (list.empty() ? "" : ", ") + a;
  return list;
}

bool ConfigReader::str(const Node& v, const std::string& key, std::string& out) {
  if (!v.IsScalar()) {
    error(v, key + ": must be a string");
    return false;
  }
  const std::string_view text = v.Scalar();
  if (const size_t c = policy::controlCharAt(text); c != std::string_view::npos) {
    error(v, key + ": contains a control character" + policy::controlCharText(text, c));
    return false;
  }
  out = std::string(text);
  return true;
}

bool ConfigReader::oneOf(const Node& v, const std::string& key, const std::set<std::string>& allowed,
                         std::string& out) {
  if (!str(v, key, out)) return false;
  if (!allowed.count(out)) {
    error(v, key + ": '" + out + "' is not one of " + listOf(allowed));
    return false;
  }
  return true;
}

// Decimal digits only, as a policy's ports (no sign, no leading zero, no
// 0x or 0o): what a reader of the file sees is the number.
bool ConfigReader::uint(const Node& v, const std::string& key, uint64_t lo, uint64_t hi, uint64_t& out) {
  const std::string_view s = v.IsScalar() ? v.Scalar() : std::string_view();
  const bool plain = v.IsScalar() && (v.Tag() == "?" || v.Tag() == "tag:yaml.org,2002:int");
  const bool digits = !s.empty() && s.size() <= 12 && s.find_first_not_of("0123456789") == std::string_view::npos;
  const bool leadingZero = s.size() > 1 && s[0] == '0';
  if (!plain || !digits || leadingZero) {
    error(v, key + ": must be an integer (decimal digits" + (digits && leadingZero ? ", no leading zero" : "") + ")");
    return false;
  }
  const uint64_t x = std::stoull(std::string(s));
  if (x < lo || x > hi) {
    error(v, key + ": " + std::string(s) + " is out of range (" + std::to_string(lo) + "-" + std::to_string(hi) + ")");
    return false;
  }
  out = x;
  return true;
}

void ConfigReader::settings(const Node& root) {
  if (!root || root.IsNull()) return;
  if (!root.IsMap()) {
    error(root, "configuration must be a mapping of settings");
    return;
  }
  std::set<std::string> seen;
  for (size_t i = 0; i < root.size(); i++) {
    const Node k = root.key(i);
    if (!k.IsScalar()) {
      error(k, "setting names must be strings");
      continue;
    }
    const std::string key(k.Scalar());
    if (!seen.insert(key).second) {
      error(k, "duplicate key '" + policy::shown(key) + "'");
      continue;
    }
    if (!kKnown.count(key)) {
      error(k, "unknown setting '" + policy::shown(key) + "' (known: " + listOf(kKnown) + ")");
      continue;
    }
    setting(key, root.value(i));
  }
}

void ConfigReader::setting(const std::string& key, const Node& v) {
  std::string s;
  uint64_t n = 0;
  if (key == "cgroupRoot") {
    if (str(v, key, s)) cfg_.cgroupRoot = s;
  } else if (key == "policy") {
    cfg_.policyPaths.clear();
    if (v.IsSequence()) {
      for (const Node p : policy::yaml::items(v)) {
        if (str(p, key, s)) cfg_.policyPaths.push_back(s);
      }
    } else if (str(v, key, s)) {
      cfg_.policyPaths.push_back(s);
    }
  } else if (key == "mode") {
    if (oneOf(v, key, {"monitor", "enforce"}, s)) cfg_.mode = s == "enforce" ? MS_MODE_ENFORCE : MS_MODE_MONITOR;
  } else if (key == "socket") {
    if (str(v, key, s)) cfg_.socketPath = s;
  } else if (key == "socketGroup") {
    if (str(v, key, s)) {
      if (!s.empty() && s.size() <= 10 && s.find_first_not_of("0123456789") == std::string::npos &&
          std::stoull(s) <= UINT32_MAX) {
        cfg_.socketGroup = static_cast<unsigned>(std::stoul(s));
      } else if (const group* g = getgrnam(s.c_str())) {
        cfg_.socketGroup = g->gr_gid;
      } else {
        error(v, key + ": no group named '" + s + "'");
      }
    }
  } else if (key == "stateDir") {
    if (str(v, key, s)) cfg_.stateDir = s;
  } else if (key == "flowLog") {
    if (str(v, key, s)) cfg_.flowLog = s;
  } else if (key == "logAllowed") {
    if (oneOf(v, key, {"true", "false"}, s)) cfg_.logAllowed = s == "true";
  } else if (key == "answerTtlSeconds") {
    if (uint(v, key, 1, 3600, n)) cfg_.answerTtlSeconds = static_cast<uint32_t>(n);
  } else if (key == "defaultEnforcement") {
    if (oneOf(v, key, {"always", "selected"}, s)) {
      cfg_.defaultEnforcement =
          s == "selected" ? compiler::DefaultEnforcement::Selected : compiler::DefaultEnforcement::Always;
    }
  } else if (key == "logLevel") {
    if (oneOf(v, key, {"trace", "debug", "info", "warn", "error"}, s)) logLevel_ = s;
  } else if (key == "metricsListen") {
    if (str(v, key, s)) cfg_.metricsListen = s;
  } else if (key == "flowStoreSize") {
    if (uint(v, key, 1, 10000000, n)) cfg_.flowStoreSize = static_cast<size_t>(n);
  } else if (key == "rescanIntervalMs") {
    if (uint(v, key, 100, 60000, n)) cfg_.rescanIntervalMs = static_cast<uint32_t>(n);
  } else if (key == "dataDir") {
    if (str(v, key, s)) cfg_.dataDir = s;
  } else if (key == "etcdEndpoints" || key == "nodeAddresses" || key == "fqdnResolvers") {
    auto& list = key == "etcdEndpoints"   ? cfg_.cluster.etcdEndpoints
                 : key == "fqdnResolvers" ? cfg_.fqdnResolvers
                                          : cfg_.cluster.nodeAddresses;
    list.clear();
    if (v.IsSequence()) {
      for (const Node p : policy::yaml::items(v)) {
        if (str(p, key, s)) list.push_back(s);
      }
    } else if (str(v, key, s)) {
      list.push_back(s);
    }
  } else if (key == "nodeName") {
    if (str(v, key, s)) cfg_.cluster.nodeName = s;
  } else if (key == "clusterPrefix") {
    if (str(v, key, s)) cfg_.cluster.prefix = s;
  } else if (key == "etcdCacert") {
    if (str(v, key, s)) cfg_.cluster.etcdCaCert = s;
  } else if (key == "etcdCert") {
    if (str(v, key, s)) cfg_.cluster.etcdCert = s;
  } else if (key == "etcdKey") {
    if (str(v, key, s)) cfg_.cluster.etcdKey = s;
  } else if (key == "nodeTtl") {
    if (uint(v, key, 5, 3600, n)) cfg_.cluster.nodeTtlSeconds = static_cast<uint32_t>(n);
  } else if (key == "maxGrant") {
    if (str(v, key, s)) {
      std::string err;
      if (auto d = parseDuration(s, err)) {
        cfg_.maxGrantSeconds = *d;
      } else {
        error(v, key + ": " + err);
      }
    }
  } else if (key == "revokeEstablished") {
    if (oneOf(v, key, {"never", "on-change"}, s)) cfg_.revokeOnChange = s == "on-change";
  } else if (key == "edgeRetention") {
    if (str(v, key, s)) {
      std::string err;
      if (auto d = parseLongDuration(s, err)) {
        cfg_.edgeRetentionSeconds = *d;
      } else {
        error(v, key + ": " + err);
      }
    }
  } else if (key == "fqdnMinTtl" || key == "fqdnMaxTtl") {
    if (str(v, key, s)) {
      std::string err;
      if (auto d = parseDuration(s, err)) {
        (key == "fqdnMinTtl" ? cfg_.fqdnMinTtlSeconds : cfg_.fqdnMaxTtlSeconds) = *d;
      } else {
        error(v, key + ": " + err);
      }
    }
  } else if (key == "wireIdentity") {
    if (oneOf(v, key, {"on", "off"}, s)) cfg_.cluster.wireIdentity = s == "on";
  }
}

}  // namespace

std::vector<policy::Diagnostic> loadConfigFile(const std::string& path, DaemonConfig& cfg, std::string& logLevel,
                                               const policy::LoadLimits& limits) {
  std::vector<policy::Diagnostic> errs;
  auto text = policy::readRegularFile(path, policy::defaultFileAccess(), limits.maxFileBytes, errs);
  if (!text) return errs;
  policy::yaml::Tree tree;
  int documents = 0;
  ConfigReader reader(path, cfg, logLevel, errs);
  auto err = policy::yaml::readDocuments(
      *text, tree,
      [&](const policy::yaml::Tree& doc) {
        if (++documents == 2) {
          const auto m = doc.root().mark();
          errs.push_back({{path, m.isNull() ? 0 : m.line + 1, m.isNull() ? 0 : m.column + 1},
                          "configuration must be one YAML document (a second one starts here)"});
        }
        if (documents == 1) reader.settings(doc.root());
      },
      limits.yaml);
  if (err) return {policy::yamlDiagnostic(*err, path)};  // the file's only diagnostic, as a policy file's
  return errs;
}

}  // namespace microseg::daemon
