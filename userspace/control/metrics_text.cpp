#include "control/metrics_text.h"

#include <cmath>
#include <cstdio>
#include <regex>
#include <set>
#include <sstream>
#include <stdexcept>

namespace microseg::metrics {
namespace {

const std::regex kName("[a-zA-Z_:][a-zA-Z0-9_:]*");
const std::regex kLabel("[a-zA-Z_][a-zA-Z0-9_]*");

std::string formatValue(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  if (v == std::floor(v) && std::fabs(v) < 1e18) {
    char buf[32];
    snprintf(buf, sizeof(buf), "%lld", static_cast<long long>(v));
    return buf;
  }
  char buf[64];
  snprintf(buf, sizeof(buf), "%.17g", v);
  return buf;
}

std::string escape(const std::string& s, bool quotes) {
  std::string o;
  for (char c : s) {
    if (c == '\\') {
      o += "\\\\";
    } else if (c == '\n') {
      o += "\\n";
    } else if (c == '"' && quotes) {
      o += "\\\"";
    } else {
      o += c;
    }
  }
  return o;
}

std::string seriesKey(const std::string& name, const std::map<std::string, std::string>& labels) {
  std::string k = name + "{";
  for (const auto& [a, b] : labels) k += a + "=" + b + ",";
  return k + "}";
}

}  // namespace

std::string render(const std::vector<Family>& families) {
  std::string out;
  for (const auto& f : families) {
    if (!std::regex_match(f.name, kName)) throw std::invalid_argument("invalid metric name '" + f.name + "'");
    out += "# HELP " + f.name + " " + escape(f.help, false) + "\n";
    out += "# TYPE " + f.name + (f.type == Type::Counter ? " counter\n" : " gauge\n");
    for (const auto& s : f.samples) {
      out += f.name;
      if (!s.labels.empty()) {
        out += "{";
        bool first = true;
        for (const auto& [k, v] : s.labels) {
          if (!std::regex_match(k, kLabel) || k.rfind("__", 0) == 0) {
            throw std::invalid_argument("invalid label name '" + k + "' in " + f.name);
          }
          out += (first ? "" : ",") + k + "=\"" + escape(v, true) + "\"";
          first = false;
        }
        out += "}";
      }
      out += " " + formatValue(s.value) + "\n";
    }
  }
  return out;
}

Result<std::vector<Family>> parse(const std::string& text) {
  std::vector<Family> out;
  std::map<std::string, size_t> byName;
  std::set<std::string> series, closed;
  std::string current;
  std::istringstream in(text);
  std::string line;
  int n = 0;
  auto err = [&](const std::string& what) {
    return Error{"parse metrics", "line " + std::to_string(n), 0, what};
  };
  while (std::getline(in, line)) {
    n++;
    if (line.empty()) continue;
    if (line.rfind("# HELP ", 0) == 0) {
      std::string rest = line.substr(7);
      auto sp = rest.find(' ');
      std::string name = rest.substr(0, sp);
      if (!std::regex_match(name, kName)) return err("bad metric name in HELP");
      if (!byName.count(name)) {
        byName[name] = out.size();
        out.push_back(Family{name, sp == std::string::npos ? "" : rest.substr(sp + 1), Type::Counter, {}});
      }
      continue;
    }
    if (line.rfind("# TYPE ", 0) == 0) {
      std::istringstream ls(line.substr(7));
      std::string name, type;
      ls >> name >> type;
      if (!std::regex_match(name, kName)) return err("bad metric name in TYPE");
      if (type != "counter" && type != "gauge") return err("unsupported type '" + type + "'");
      if (closed.count(name) || (byName.count(name) && !out[byName[name]].samples.empty())) {
        return err("TYPE for " + name + " after its samples or repeated");
      }
      if (!byName.count(name)) {
        byName[name] = out.size();
        out.push_back(Family{name, "", Type::Counter, {}});
      }
      if (type == "counter" && (name.size() < 6 || name.compare(name.size() - 6, 6, "_total") != 0)) {
        return err("counter " + name + " does not end in _total");
      }
      out[byName[name]].type = type == "counter" ? Type::Counter : Type::Gauge;
      closed.insert(name);
      if (!current.empty() && current != name) closed.insert(current);
      current = name;
      continue;
    }
    if (line[0] == '#') continue;  // comment
    // sample: name[{labels}] value
    size_t i = 0;
    while (i < line.size() && line[i] != '{' && line[i] != ' ') i++;
    std::string name = line.substr(0, i);
    if (!std::regex_match(name, kName)) return err("bad sample line");
    if (!byName.count(name)) return err("sample of " + name + " before its TYPE");
    if (name != current) return err("samples of " + name + " are not contiguous");
    Sample s;
    if (i < line.size() && line[i] == '{') {
      i++;
      while (i < line.size() && line[i] != '}') {
        size_t eq = line.find('=', i);
        if (eq == std::string::npos || eq + 1 >= line.size() || line[eq + 1] != '"') return err("bad label");
        std::string key = line.substr(i, eq - i);
        if (!std::regex_match(key, kLabel)) return err("bad label name '" + key + "'");
        std::string val;
        size_t j = eq + 2;
        for (; j < line.size() && line[j] != '"'; j++) {
          if (line[j] == '\\' && j + 1 < line.size()) {
            j++;
            val += line[j] == 'n' ? '\n' : line[j];
          } else {
            val += line[j];
          }
        }
        if (j >= line.size()) return err("unterminated label value");
        if (s.labels.count(key)) return err("duplicate label " + key);
        s.labels[key] = val;
        i = j + 1;
        if (i < line.size() && line[i] == ',') i++;
      }
      if (i >= line.size()) return err("unterminated label set");
      i++;
    }
    if (i >= line.size() || line[i] != ' ') return err("missing value");
    const std::string v = line.substr(i + 1);
    if (v == "+Inf" || v == "-Inf" || v == "NaN") {
      s.value = v == "NaN" ? NAN : (v[0] == '+' ? INFINITY : -INFINITY);
    } else {
      char* end = nullptr;
      s.value = std::strtod(v.c_str(), &end);
      if (v.empty() || end == nullptr || *end != '\0') return err("value '" + v + "' is not a number");
    }
    if (!series.insert(seriesKey(name, s.labels)).second) return err("duplicate series " + name);
    out[byName[name]].samples.push_back(s);
  }
  return out;
}

}  // namespace microseg::metrics
