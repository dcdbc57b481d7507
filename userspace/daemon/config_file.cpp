#include "daemon/config_file.h"

#include <grp.h>
#include <yaml-cpp/yaml.h>

#include <set>

namespace microseg::daemon {

std::vector<policy::Diagnostic> loadConfigFile(const std::string& path, DaemonConfig& cfg,
                                               std::string& logLevel) {
  std::vector<policy::Diagnostic> errs;
  auto at = [&](const YAML::Node& n) {
    const auto m = n.Mark();
    return policy::SourceLocation{path, m.is_null() ? 0 : m.line + 1, m.is_null() ? 0 : m.column + 1};
  };
  YAML::Node root;
  try {
    root = YAML::LoadFile(path);
  } catch (const YAML::BadFile&) {
    errs.push_back({{path, 0, 0}, "cannot read configuration file"});
    return errs;
  } catch (const YAML::Exception& e) {
    errs.push_back({{path, e.mark.line + 1, e.mark.column + 1}, "YAML syntax: " + e.msg});
    return errs;
  }
  if (root.IsNull()) return errs;
  if (!root.IsMap()) {
    errs.push_back({at(root), "configuration must be a mapping of settings"});
    return errs;
  }
  static const std::set<std::string> known = {
      "cgroupRoot", "policy",        "mode",     "socket",           "socketGroup",
      "stateDir",   "flowLog",       "logAllowed", "answerTtlSeconds", "defaultEnforcement",
      "logLevel",   "rescanIntervalMs", "metricsListen", "flowStoreSize"};
  auto str = [&](const YAML::Node& v, const std::string& key, std::string& out) {
    if (!v.IsScalar()) {
      errs.push_back({at(v), key + ": must be a string"});
      return false;
    }
    out = v.Scalar();
    return true;
  };
  auto oneOf = [&](const YAML::Node& v, const std::string& key, std::set<std::string> allowed,
                   std::string& out) {
    if (!str(v, key, out)) return false;
    if (!allowed.count(out)) {
      std::string list;
      for (const auto& a : allowed) list += (list.empty() ? "" : ", ") + a;
      errs.push_back({at(v), key + ": '" + out + "' is not one of " + list});
      return false;
    }
    return true;
  };
  auto uint = [&](const YAML::Node& v, const std::string& key, uint64_t lo, uint64_t hi,
                  uint64_t& out) {
    try {
      if (!v.IsScalar() || v.Tag() == "!") throw YAML::Exception(v.Mark(), "");
      long long x = v.as<long long>();
      if (x < static_cast<long long>(lo) || x > static_cast<long long>(hi)) {
        errs.push_back({at(v), key + ": " + v.Scalar() + " is out of range (" + std::to_string(lo) +
                                   "-" + std::to_string(hi) + ")"});
        return false;
      }
      out = static_cast<uint64_t>(x);
      return true;
    } catch (const YAML::Exception&) {
      errs.push_back({at(v), key + ": must be an integer"});
      return false;
    }
  };
  std::set<std::string> seen;
  for (const auto& kv : root) {
    const std::string key = kv.first.Scalar();
    const YAML::Node& v = kv.second;
    if (!seen.insert(key).second) {
      errs.push_back({at(kv.first), "duplicate key '" + key + "'"});
      continue;
    }
    if (!known.count(key)) {
      std::string list;
      for (const auto& k : known) list += (list.empty() ? "" : ", ") + k;
      errs.push_back({at(kv.first), "unknown setting '" + key + "' (known: " + list + ")"});
      continue;
    }
    std::string s;
    uint64_t n = 0;
    if (key == "cgroupRoot") {
      if (str(v, key, s)) cfg.cgroupRoot = s;
    } else if (key == "policy") {
      cfg.policyPaths.clear();
      if (v.IsSequence()) {
        for (const auto& p : v) {
          if (str(p, key, s)) cfg.policyPaths.push_back(s);
        }
      } else if (str(v, key, s)) {
        cfg.policyPaths.push_back(s);
      }
    } else if (key == "mode") {
      if (oneOf(v, key, {"monitor", "enforce"}, s)) cfg.mode = s == "enforce" ? MS_MODE_ENFORCE : MS_MODE_MONITOR;
    } else if (key == "socket") {
      if (str(v, key, s)) cfg.socketPath = s;
    } else if (key == "socketGroup") {
      if (str(v, key, s)) {
        if (!s.empty() && s.find_first_not_of("0123456789") == std::string::npos) {
          cfg.socketGroup = static_cast<unsigned>(std::stoul(s));
        } else if (const group* g = getgrnam(s.c_str())) {
          cfg.socketGroup = g->gr_gid;
        } else {
          errs.push_back({at(v), key + ": no group named '" + s + "'"});
        }
      }
    } else if (key == "stateDir") {
      if (str(v, key, s)) cfg.stateDir = s;
    } else if (key == "flowLog") {
      if (str(v, key, s)) cfg.flowLog = s;
    } else if (key == "logAllowed") {
      if (oneOf(v, key, {"true", "false"}, s)) cfg.logAllowed = s == "true";
    } else if (key == "answerTtlSeconds") {
      if (uint(v, key, 1, 3600, n)) cfg.answerTtlSeconds = static_cast<uint32_t>(n);
    } else if (key == "defaultEnforcement") {
      if (oneOf(v, key, {"always", "selected"}, s)) {
        cfg.defaultEnforcement = s == "selected" ? compiler::DefaultEnforcement::Selected
                                                 : compiler::DefaultEnforcement::Always;
      }
    } else if (key == "logLevel") {
      if (oneOf(v, key, {"trace", "debug", "info", "warn", "error"}, s)) logLevel = s;
    } else if (key == "metricsListen") {
      if (str(v, key, s)) cfg.metricsListen = s;
    } else if (key == "flowStoreSize") {
      if (uint(v, key, 1, 10000000, n)) cfg.flowStoreSize = static_cast<size_t>(n);
    } else if (key == "rescanIntervalMs") {
      if (uint(v, key, 100, 60000, n)) cfg.rescanIntervalMs = static_cast<uint32_t>(n);
    }
  }
  return errs;
}

}  // namespace microseg::daemon
