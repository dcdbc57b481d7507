#include "cli/views.h"

#include <cstdio>
#include <map>
#include <set>

#include "bpf/abi.h"
#include "cli/format.h"
#include "common/names.h"
#include "cli/table.h"

namespace microseg::cli {

using nlohmann::json;

namespace {

// A revocation record's rule cell adds what ended the connection and how
// long it had been open: "default-deny [generation 12 (SIGHUP); open 4.9 s]".
std::string ruleCell(const json& r) {
  std::string cell = field(r, "rule");
  const json rv = r.value("revocation", json());
  if (!rv.is_object()) return cell;
  const json age = rv.value("connection_age_s", json());
  char open[48] = "age unknown";
  if (age.is_number()) std::snprintf(open, sizeof(open), "open %.1f s", age.get<double>());
  return cell + " [" + field(rv, "by") + "; " + open + "]";
}

}  // namespace

void printFlows(const json& records, std::ostream& out, bool header, bool staged) {
  std::vector<std::string> cols{"ID", "LAST SEEN", "VERDICT", "DIR", "FROM", "TO", "PORT", "RULE", "COUNT"};
  // --staged: what "in force + staged" would decide, beside the verdict.
  if (staged) cols.insert(cols.begin() + 8, {"STAGED", "STAGED RULE"});
  Table t(cols);
  for (const auto& r : records) {
    const json src = r.value("src", json::object()), dst = r.value("dst", json::object());
    std::vector<std::string> row{field(r, "record_id"), field(r, "last_seen"), field(r, "verdict"),
                                 field(r, "direction"), field(src, "workload"),
                                 field(dst, "workload") + " (" + field(dst, "addr") + ")",
                                 field(dst, "port") + "/" + field(r, "protocol"), ruleCell(r),
                                 field(r, "total")};
    if (staged) row.insert(row.begin() + 8, {field(r, "staged_verdict"), field(r, "staged_rule")});
    t.add(row);
  }
  if (header) {
    t.print(out);
    return;
  }
  // --follow: one self-describing line per update, like `hubble observe`.
  for (const auto& r : records) {
    const json src = r.value("src", json::object()), dst = r.value("dst", json::object());
    std::string line = field(r, "last_seen") + "  " + field(r, "verdict") + "  " + field(r, "direction") + "  " +
                       field(src, "workload") + " -> " + field(dst, "workload") + " " + field(dst, "addr") + ":" +
                       field(dst, "port") + "/" + field(r, "protocol") + "  rule=" + ruleCell(r);
    if (staged) line += "  staged=" + field(r, "staged_verdict") + "  staged_rule=" + field(r, "staged_rule");
    out << sanitize(line + "  count=" + field(r, "total") + "  id=" + field(r, "record_id")) << "\n";
  }
}

namespace {

// One side: "egress of web: deny (audit in monitor mode)" and why.
void printSide(const json& sd, std::ostream& out) {
  const json by = sd.value("judged_by", json::object());
  const std::string who = field(by, "workload");
  out << "  " << field(sd, "direction") << " of " << who << ": " << field(sd, "verdict");
  if (field(sd, "outcome") != field(sd, "verdict")) out << " (" << field(sd, "outcome") << " in " << field(sd, "mode") << " mode)";
  if (sd.contains("decided_by") && sd["decided_by"].is_object()) {
    const json& d = sd["decided_by"];
    out << ", decided by " << field(d, "rule") << ": " << field(d, "text") << "  (" << field(d, "location") << ")\n";
  } else {
    out << " (" << field(sd, "reason") << ")\n";
  }
  const json pols = sd.value("selecting_policies", json::array());
  if (pols.empty()) {
    out << "    no policy selects " << who << "\n";
  } else {
    out << "    policies selecting " << who << ": " << formatList(pols) << "\n";
  }
  // The tier chain (a daemon that knows tiers sends it).
  if (sd.contains("tier") && sd["tier"].is_string()) {
    const std::string tier = field(sd, "tier");
    out << "    tier chain: " << (tier == "default" ? std::string("no rule decided, the default applies") : "decided in the " + tier + " tier");
    if (sd.contains("passed_by") && sd["passed_by"].is_string()) out << ", after admin rule " << field(sd, "passed_by") << " passed";
    const json app = sd.value("application_policies", json::array());
    if (app.empty()) {
      out << "; no application policy selects " << who << " in this direction (the baseline tier applies)\n";
    } else {
      out << "; application policies: " << formatList(app) << "\n";
    }
  }
  bool any = false;
  for (const auto& c : sd.value("rules_checked", json::array())) {
    if (!any) out << "    rules checked:\n";
    any = true;
    out << "      " << field(c, "rule") << "  " << field(c, "text") << "\n        -> "
        << (c.value("matches", false) && c.value("why", "").empty() ? "matches" : field(c, "why")) << "\n";
  }
}

}  // namespace

void printExplain(const json& r, std::ostream& out) {
  const json from = r.value("from", json::object()), to = r.value("to", json::object());
  out << field(from, "workload") << " -> " << field(to, "workload") << " " << field(r, "port") << "/"
      << field(r, "protocol") << ": " << field(r, "verdict");
  if (field(r, "outcome") != field(r, "verdict")) out << ", " << field(r, "outcome") << " (monitor mode)";
  out << "\n";
  const json sides = r.value("sides", json::array());
  if (sides.empty()) {
    out << "  neither end is a workload: no policy of microseg governs this flow\n";
    return;
  }
  for (const auto& sd : sides) printSide(sd, out);
}

void printWorkloads(const json& r, std::ostream& out) {
  Table t({"WORKLOAD", "IDENTITY", "MODE", "PROCS", "MAY CALL", "CALLED BY", "CGROUPS", "LABELS"});
  for (const auto& w : r.value("workloads", json::array())) {
    std::string mode = field(w, "mode");
    if (mode == modeName(MS_MODE_INHERIT)) mode = mode + " (" + field(w, "effective_mode") + ")";
    t.add({field(w, "name"), field(w, "identity"), mode, field(w, "processes"), field(w, "allowed_peers"),
           field(w, "allowed_callers"), formatList(w.value("cgroups", json::array()), 3),
           formatLabels(w.value("labels", json::object()))});
  }
  t.print(out);
}

void printPolicyShow(const json& r, std::ostream& out) {
  out << "generation " << field(r, "generation") << ", " << field(r, "entries") << " map entries, "
      << "default-deny hits " << field(r, "default_deny_hits") << "\n\n";
  Table t({"ID", "RULE", "DIR", "ACTION", "HITS", "TEXT"});
  for (const auto& x : r.value("rules", json::array())) {
    // A rule of an admin or baseline policy: its text starts with the tier
    // ("[admin 10] pass to ..."), and the action is the text's first word
    // after it (the action field knows allow and deny only).
    std::string action = field(x, "action"), text = field(x, "text");
    if (text.rfind("[", 0) == 0) {
      const auto close = text.find("] ");
      if (close != std::string::npos) action = text.substr(close + 2, text.find(' ', close + 2) - close - 2);
    }
    t.add({field(x, "id"), field(x, "rule"), field(x, "direction"), action, field(x, "hits"), text});
  }
  t.print(out);
  const json staged = r.value("staged", json::array());
  if (staged.empty()) return;
  out << "\nstaged (validated, not enforced; see `microseg flows --staged`):\n";
  Table s({"POLICY", "RULES", "LOCATION"});
  for (const auto& x : staged) s.add({field(x, "policy"), field(x, "rules"), field(x, "location")});
  s.print(out);
}

namespace {

// A DOT string: terminal-safe as a table cell (the graph is printed to the
// terminal by default), then quoted.
std::string dotQuote(const std::string& s) {
  std::string o = "\"";
  for (char c : sanitize(s)) {
    if (c == '"' || c == '\\') o += '\\';
    o += c;
  }
  return o + "\"";
}

}  // namespace

std::string graphDot(const json& g) {
  std::string out = "digraph microseg {\n  rankdir=LR;\n  node [shape=box, style=rounded, fontname=\"Helvetica\"];\n";
  std::map<int64_t, std::string> names;
  for (const auto& n : g.value("nodes", json::array())) {
    const int64_t id = n.value("id", 0);
    const std::string name = n.value("name", std::to_string(id));
    names[id] = name;
    out += "  " + dotQuote(name);
    if (n.value("kind", "") == "reserved") out += " [shape=ellipse, style=dashed]";
    if (n.value("kind", "") == "external") out += " [shape=ellipse]";
    out += ";\n";
  }
  for (const auto& e : g.value("edges", json::array())) {
    const std::string from = names.count(e.value("from", 0)) ? names[e.value("from", 0)] : "?";
    const std::string to = names.count(e.value("to", 0)) ? names[e.value("to", 0)] : "?";
    std::string ports;
    for (const auto& p : e.value("ports", json::array())) ports += (ports.empty() ? "" : ",") + p.get<std::string>();
    std::string attrs;
    if (e.value("kind", "") == "policy") {
      // The caller's egress allows (solid) / the callee's ingress admits (dotted).
      attrs = "color=grey50, label=" + dotQuote(ports);
      if (e.value("direction", "") == directionName(MS_DIR_INGRESS)) attrs += ", style=dotted";
    } else {
      const std::string v = e.value("verdict", "");
      const std::string label = v + " x" + std::to_string(e.value("count", 0)) + " " + ports;
      if (v == verdictName(MS_VERDICT_DENY)) {
        attrs = "color=red, penwidth=2, fontcolor=red, label=" + dotQuote(label);
      } else if (v == verdictName(MS_VERDICT_AUDIT)) {
        attrs = "color=orange, style=dashed, fontcolor=orange, label=" + dotQuote(label);
      } else {
        attrs = "color=darkgreen, fontcolor=darkgreen, label=" + dotQuote(label);
      }
    }
    out += "  " + dotQuote(from) + " -> " + dotQuote(to) + " [" + attrs + "];\n";
  }
  return out + "}\n";
}

std::optional<int64_t> parseDuration(const std::string& s) {
  if (s.size() < 2) return std::nullopt;
  const char unit = s.back();
  const std::string num = s.substr(0, s.size() - 1);
  if (num.empty() || num.find_first_not_of("0123456789") != std::string::npos || num.size() > 9) return std::nullopt;
  const int64_t n = std::stoll(num);
  switch (unit) {
    case 's': return n;
    case 'm': return n * 60;
    case 'h': return n * 3600;
    case 'd': return n * 86400;
    default: return std::nullopt;
  }
}

std::optional<std::pair<uint16_t, std::string>> parsePortSpec(const std::string& s) {
  const auto slash = s.find('/');
  const std::string num = s.substr(0, slash);
  std::string proto = slash == std::string::npos ? protocolName(MS_PROTO_TCP) : s.substr(slash + 1);
  for (auto& c : proto) c = static_cast<char>(tolower(c));
  if (num.empty() || num.size() > 5 || num.find_first_not_of("0123456789") != std::string::npos) return std::nullopt;
  const long p = std::stol(num);
  if (p < 1 || p > 65535 || !parseProtocol(proto)) return std::nullopt;
  return std::make_pair(static_cast<uint16_t>(p), proto);
}

}  // namespace microseg::cli
