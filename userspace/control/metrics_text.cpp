#include "control/metrics_text.h"

#include <charconv>
#include <cmath>
#include <cstdlib>
#include <set>
#include <stdexcept>
#include <string_view>
#include <utility>

#include "common/text.h"

namespace microseg::metrics {
namespace {

bool isAlpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool isDigit(char c) { return c >= '0' && c <= '9'; }
bool isMetricChar(char c) { return isAlpha(c) || isDigit(c) || c == '_' || c == ':'; }
bool isLabelChar(char c) { return isAlpha(c) || isDigit(c) || c == '_'; }

// Label values and HELP texts are UTF-8 in the format: a workload's or a
// cgroup's name that is not is encoded as text::toUtf8() does.
void escapeInto(std::string& out, const std::string& raw, bool quotes) {
  const std::string s = text::toUtf8(raw);
  for (char c : s) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '"' && quotes) {
      out += "\\\"";
    } else {
      out += c;
    }
  }
}

// Undoes escapeInto(); any other escape is an error (as in Prometheus).
bool unescape(std::string_view s, bool quotes, std::string& out) {
  out.clear();
  for (size_t i = 0; i < s.size(); i++) {
    if (s[i] != '\\') {
      out += s[i];
      continue;
    }
    if (++i == s.size()) return false;
    if (s[i] == '\\') {
      out += '\\';
    } else if (s[i] == 'n') {
      out += '\n';
    } else if (s[i] == '"' && quotes) {
      out += '"';
    } else {
      return false;
    }
  }
  return true;
}

bool endsWith(const std::string& s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// Finite floats in decimal or exponent notation, and the Prometheus
// spellings of the special values; nothing else (no hex, no "inf", no spaces).
bool parseValue(std::string_view v, double& out) {
  if (v == "+Inf") {
    out = INFINITY;
    return true;
  }
  if (v == "-Inf") {
    out = -INFINITY;
    return true;
  }
  if (v == "NaN") {
    out = NAN;
    return true;
  }
  if (v.empty()) return false;
  bool digit = false;
  for (char c : v) {
    if (isDigit(c)) {
      digit = true;
    } else if (c != '+' && c != '-' && c != '.' && c != 'e' && c != 'E') {
      return false;
    }
  }
  if (!digit) return false;
  const std::string s(v);
  char* end = nullptr;
  out = std::strtod(s.c_str(), &end);
  return end == s.c_str() + s.size();
}

}  // namespace

bool validMetricName(const std::string& name) {
  if (name.empty() || isDigit(name[0])) return false;
  for (char c : name) {
    if (!isMetricChar(c)) return false;
  }
  return true;
}

bool validLabelName(const std::string& name) {
  if (name.empty() || isDigit(name[0]) || name.rfind("__", 0) == 0) return false;
  for (char c : name) {
    if (!isLabelChar(c)) return false;
  }
  return true;
}

std::string formatValue(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  // Every integral double below 2^63 converts exactly.
  if (v == std::trunc(v) && std::fabs(v) < 9223372036854775808.0) {
    return std::to_string(static_cast<long long>(v));
  }
  char buf[64];
  const auto r = std::to_chars(buf, buf + sizeof(buf), v);  // shortest exact form
  return std::string(buf, r.ptr);
}

std::string render(const std::vector<Family>& families) {
  std::string out;
  std::set<std::string> seen;
  for (const auto& f : families) {
    if (!validMetricName(f.name)) throw std::invalid_argument("invalid metric name '" + f.name + "'");
    if (!seen.insert(f.name).second) throw std::invalid_argument("metric family '" + f.name + "' rendered twice");
    out += "# HELP " + f.name + " ";
    escapeInto(out, f.help, false);
    out += "\n# TYPE " + f.name + (f.type == Type::Counter ? " counter\n" : " gauge\n");
    for (const auto& s : f.samples) {
      out += f.name;
      if (!s.labels.empty()) {
        char sep = '{';
        for (const auto& [k, v] : s.labels) {
          if (!validLabelName(k)) throw std::invalid_argument("invalid label name '" + k + "' in metric '" + f.name + "'");
          out += sep;
          out += k + "=\"";
          escapeInto(out, v, true);
          out += '"';
          sep = ',';
        }
        out += '}';
      }
      out += ' ';
      out += formatValue(s.value);
      out += '\n';
    }
  }
  return out;
}

Result<std::vector<Family>> parse(const std::string& input) {
  struct State {
    size_t index = 0;
    int firstLine = 0;
    bool help = false;
    bool type = false;
  };
  std::vector<Family> out;
  std::map<std::string, State> fams;
  std::set<std::pair<std::string, std::map<std::string, std::string>>> series;
  std::string current;  // family of the previous line
  int n = 0;
  auto err = [&n](std::string what) { return Error{"parse metrics", "line " + std::to_string(n), 0, std::move(what)}; };

  // The family `name` is entered by a line: it must be new or the current one.
  auto enter = [&](const std::string& name, State*& st) -> std::string {
    auto it = fams.find(name);
    if (it == fams.end()) {
      it = fams.emplace(name, State{out.size(), n, false, false}).first;
      out.push_back(Family{name, "", Type::Counter, {}});
    } else if (name != current) {
      return "lines of " + name + " are not contiguous (family began on line " + std::to_string(it->second.firstLine) + ")";
    }
    current = name;
    st = &it->second;
    return {};
  };

  size_t pos = 0;
  while (pos < input.size()) {
    n++;
    const size_t nl = input.find('\n', pos);
    if (nl == std::string::npos) return err("last line does not end with a newline");
    const std::string_view line(input.data() + pos, nl - pos);
    pos = nl + 1;
    if (line.empty()) return err("empty line");
    if (!text::isUtf8(line)) return err("not valid UTF-8");

    if (line[0] == '#') {
      const bool help = line.rfind("# HELP ", 0) == 0;
      if (!help && line.rfind("# TYPE ", 0) != 0) return err("comment line that is neither HELP nor TYPE");
      const std::string_view rest = line.substr(7);
      const size_t sp = rest.find(' ');
      const std::string name(rest.substr(0, sp));
      if (!validMetricName(name)) return err("invalid metric name '" + name + "' in " + (help ? "HELP" : "TYPE"));
      State* st = nullptr;
      if (auto e = enter(name, st); !e.empty()) return err(e);
      Family& fam = out[st->index];
      if (help) {
        if (st->help) return err("duplicate HELP for " + name);
        if (!fam.samples.empty()) return err("HELP for " + name + " after its samples");
        if (sp != std::string_view::npos && !unescape(rest.substr(sp + 1), false, fam.help)) {
          return err("invalid escape sequence in HELP for " + name);
        }
        st->help = true;
      } else {
        if (st->type) return err("duplicate TYPE for " + name);
        const std::string_view type = sp == std::string_view::npos ? std::string_view() : rest.substr(sp + 1);
        if (type == "counter") {
          if (!endsWith(name, "_total")) return err("counter " + name + " does not end in _total");
          fam.type = Type::Counter;
        } else if (type == "gauge") {
          fam.type = Type::Gauge;
        } else {
          return err("unsupported TYPE '" + std::string(type) + "' for " + name + " (want counter or gauge)");
        }
        st->type = true;
      }
      continue;
    }

    // Sample: name[{label="value",...}] value
    size_t i = 0;
    while (i < line.size() && isMetricChar(line[i])) i++;
    const std::string name(line.substr(0, i));
    if (!validMetricName(name) || i == line.size() || (line[i] != '{' && line[i] != ' ')) {
      return err("not a HELP, TYPE or sample line");
    }
    auto it = fams.find(name);
    if (it == fams.end() || !it->second.type) return err("sample of " + name + " before its TYPE");
    State* st = nullptr;
    if (auto e = enter(name, st); !e.empty()) return err(e);
    Sample s;
    if (line[i] == '{') {
      i++;
      for (;;) {
        if (i < line.size() && line[i] == '}') break;
        const size_t start = i;
        while (i < line.size() && isLabelChar(line[i])) i++;
        const std::string key(line.substr(start, i - start));
        if (!validLabelName(key)) return err("invalid label name '" + key + "' in " + name);
        if (i + 1 >= line.size() || line[i] != '=' || line[i + 1] != '"') return err("malformed label " + key + " in " + name);
        i += 2;
        const size_t vstart = i;
        while (i < line.size() && line[i] != '"') i += line[i] == '\\' ? 2 : 1;
        if (i >= line.size()) return err("unterminated value of label " + key + " in " + name);
        std::string value;
        if (!unescape(line.substr(vstart, i - vstart), true, value)) {
          return err("invalid escape sequence in label " + key + " of " + name);
        }
        if (!s.labels.emplace(key, std::move(value)).second) return err("duplicate label " + key + " in " + name);
        i++;  // closing quote
        if (i < line.size() && line[i] == ',') {
          i++;
        } else if (i >= line.size() || line[i] != '}') {
          return err("expected ',' or '}' after label " + key + " in " + name);
        }
      }
      i++;  // '}'
    }
    if (i >= line.size() || line[i] != ' ') return err("missing value for " + name);
    const std::string_view value = line.substr(i + 1);
    if (value.find(' ') != std::string_view::npos) return err("unexpected text after the value of " + name);
    if (!parseValue(value, s.value)) return err("value '" + std::string(value) + "' of " + name + " is not a number");
    if (!series.emplace(name, s.labels).second) return err("duplicate series of " + name);
    out[st->index].samples.push_back(std::move(s));
  }
  for (const auto& [name, st] : fams) {
    if (!st.type) {
      n = st.firstLine;
      return err("family " + name + " has no TYPE");
    }
  }
  return out;
}

}  // namespace microseg::metrics
