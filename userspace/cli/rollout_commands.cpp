#include "cli/rollout_commands.h"

#include <limits.h>
#include <stdlib.h>

#include <cerrno>
#include <cstring>
#include <iostream>
#include <set>

#include "cli/exit_codes.h"
#include "cli/request.h"
#include "cli/table.h"
#include "cli/views.h"
#include "common/names.h"

namespace microseg::cli {

using nlohmann::json;

namespace {
constexpr int kTimeoutMs = 20000;  // the graph of a large policy takes a while

std::string joined(const json& list, const char* sep) {
  std::string s;
  for (const auto& x : list) {
    if (!s.empty()) s += sep;
    s += x.is_string() ? x.get<std::string>() : x.dump();
  }
  return s;
}

std::string chainText(const json& chain) {
  std::string s;
  for (const auto& e : chain) {
    if (s.empty()) s = e.value("from", "");
    s += " -(" + joined(e["ports"], ",") + ")-> " + e.value("to", "");
  }
  return s;
}
}  // namespace

void printReach(const json& r, std::ostream& out) {
  if (r.contains("ranking")) {
    Table t({"WORKLOAD", "DIRECT", "REACHABLE"});
    t.align(1, Table::Align::Right);
    t.align(2, Table::Align::Right);
    for (const auto& x : r["ranking"]) {
      t.add({sanitize(x.value("workload", "")), std::to_string(x.value("direct", 0)),
             std::to_string(x.value("reachable", 0))});
    }
    t.print(out);
    return;
  }
  const bool reverse = r.value("reverse", false);
  out << (reverse ? "Who can open " : "What ") << sanitize(r.value("workload", ""))
      << (reverse ? " directly:\n" : " can open directly:\n");
  Table d({reverse ? "CALLER" : "PEER", "PORTS", "OBSERVED"});
  for (const auto& e : r["direct"]) {
    d.add({sanitize(e.value("peer", "")), joined(e["ports"], ", "), e.value("observed", false) ? "yes" : "never"});
  }
  if (d.empty()) {
    out << "  nothing\n";
  } else {
    d.print(out);
  }
  out << "\nPaths in up to " << r.value("hops", 0) << " hops (shortest first):\n";
  Table p({"WORKLOAD", "HOPS", "PATH", "OBSERVED"});
  p.align(1, Table::Align::Right);
  for (const auto& x : r["paths"]) {
    p.add({sanitize(x.value("workload", "")), std::to_string(x.value("hops", 0)), sanitize(chainText(x["chain"])),
           x.value("observed", false) ? "yes" : "never"});
  }
  if (p.empty()) {
    out << "  none\n";
  } else {
    p.print(out);
  }
}

std::string reachDot(const json& r) {
  auto q = [](const std::string& s) {
    std::string o = "\"";
    for (char c : sanitize(s)) o += c == '"' || c == '\\' ? std::string("\\") + c : std::string(1, c);
    return o + "\"";
  };
  std::string out = "digraph reach {\n  rankdir=LR;\n";
  if (r.contains("workload")) out += "  " + q(r.value("workload", "")) + " [shape=box, style=bold];\n";
  std::set<std::string> seen;
  for (const auto& x : r.value("paths", json::array())) {
    for (const auto& e : x["chain"]) {
      const std::string line = "  " + q(e.value("from", "")) + " -> " + q(e.value("to", "")) + " [label=" +
                               q(joined(e["ports"], ",")) + (e.value("observed", false) ? "" : ", style=dashed") +
                               "];\n";
      if (seen.insert(line).second) out += line;
    }
  }
  return out + "}\n";
}

int cmdReach(const std::string& socket, const ReachArgs& a) {
  if (a.all == !a.workload.empty()) return fail("reach: name one WORKLOAD, or --all", kUsage);
  json req{{"command", command::kReach}, {"hops", a.hops}, {"reverse", a.reverse}};
  if (a.all) {
    req["all"] = true;
  } else {
    req["workload"] = a.workload;
  }
  json r;
  if (int rc = request(socket, req, r, kTimeoutMs); rc != kOk) return rc;
  if (a.output == "json") {
    printJson(r);
  } else if (a.output == "dot") {
    std::cout << reachDot(r);
  } else {
    printReach(r, std::cout);
  }
  return kOk;
}

int cmdSuggest(const std::string& socket, const SuggestArgs& a) {
  if (a.all == !a.workload.empty()) return fail("suggest: name --workload X, or --all", kUsage);
  json req{{"command", command::kSuggest}};
  if (!a.workload.empty()) req["workload"] = a.workload;
  if (a.staged) req["staged"] = true;
  if (!a.since.empty()) {
    const auto s = parseDuration(a.since);
    if (!s || *s <= 0) return fail("suggest: --since '" + a.since + "' is not a duration like 30m, 24h or 7d", kUsage);
    req["since_seconds"] = *s;
  }
  json r;
  if (int rc = request(socket, req, r, kTimeoutMs); rc != kOk) return rc;
  if (a.output == "json") {
    printJson(r);
    return kOk;
  }
  const std::string yaml = r.value("yaml", "");
  if (yaml.empty()) {
    std::cerr << "microseg: no flow records" << (a.since.empty() ? "" : " in the last " + a.since)
              << (a.workload.empty() ? "" : " for " + a.workload) << ": nothing to suggest\n";
    return kOk;
  }
  std::cout << yaml;
  return kOk;
}

namespace {
void printEdges(const json& items, const char* title, std::ostream& out) {
  uint64_t passed = 0;
  for (const auto& e : items) passed += e.value("passed", uint64_t{0});
  out << title << " (" << items.size() << (items.size() == 1 ? " edge, " : " edges, ") << passed
      << " events passed):\n";
  Table t({"DIRECTION", "SOURCE", "DESTINATION", "PORT", "PASSED", "DENIED", "LAST SEEN", "IN FORCE", "CANDIDATE"});
  t.align(4, Table::Align::Right);
  t.align(5, Table::Align::Right);
  for (const auto& e : items) {
    t.add({e.value("direction", ""), sanitize(e.value("src", "")), sanitize(e.value("dst", "")),
           std::to_string(e.value("port", 0)) + "/" + e.value("protocol", ""),
           std::to_string(e.value("passed", uint64_t{0})), std::to_string(e.value("denied", uint64_t{0})),
           e.value("last_seen", ""), e.value("verdict_now", ""),
           e.value("verdict_candidate", "") + " (" + sanitize(e.value("candidate_rule", "")) + ")"});
  }
  if (t.empty()) {
    out << "  none\n";
  } else {
    t.print(out);
  }
}

void printPairs(const json& items, const char* title, std::ostream& out) {
  out << title << " (" << items.size() << "):\n";
  Table t({"FROM", "TO", "PORTS"});
  for (const auto& x : items) {
    t.add({sanitize(x.value("from", "")), sanitize(x.value("to", "")), joined(x["ports"], ", ")});
  }
  if (t.empty()) {
    out << "  none\n";
  } else {
    t.print(out);
  }
}
}  // namespace

void printDiff(const json& r, std::ostream& out) {
  const json c = r.value("candidate", json::object());
  out << "Candidate " << sanitize(joined(c.value("paths", json::array()), " ")) << ": "
      << c.value("workloads", 0) << " workloads, " << c.value("policies", 0) << " policies; against generation "
      << r.value("generation", 0) << ", over " << r.value("records", 0) << " flow records";
  if (r.value("since_seconds", 0) > 0) out << " of the last " << r.value("since_seconds", 0) << " s";
  out << "\n\n";
  printEdges(r.value("would_break", json::array()), "Would break: passed, the candidate denies", out);
  out << "\n";
  printEdges(r.value("widening", json::array()), "Widening: denied in force, the candidate allows", out);
  out << "\n";
  printEdges(r.value("unchanged", json::array()), "Unchanged", out);
  if (r.value("udp_answers", 0) > 0) {
    out << "  (" << r.value("udp_answers", 0) << " UDP answer events not judged: they follow their requests)\n";
  }
  const json reach = r.value("reach", json::object());
  out << "\n";
  printPairs(reach.value("gained", json::array()), "Workload pairs that gain a direct path", out);
  out << "\n";
  printPairs(reach.value("lost", json::array()), "Workload pairs that lose a direct path", out);
  const size_t n = r.value("would_break", json::array()).size();
  out << "\n"
      << (n == 0 ? std::string("Nothing observed would break.")
                 : std::to_string(n) + (n == 1 ? " observed edge" : " observed edges") + " would break.")
      << "\n";
}

int cmdDiff(const std::string& socket, const DiffArgs& a) {
  json req{{"command", command::kPolicyDiff}};
  // The daemon resolves paths in its own working directory; send absolute ones.
  json abs = json::array();
  for (const auto& p : a.paths) {
    char buf[PATH_MAX];
    if (realpath(p.c_str(), buf) == nullptr) {
      return fail("policy diff: cannot resolve '" + p + "': " + std::strerror(errno), kFailed);
    }
    abs.push_back(std::string(buf));
  }
  req["paths"] = abs;
  if (!a.since.empty()) {
    const auto s = parseDuration(a.since);
    if (!s || *s <= 0) {
      return fail("policy diff: --since '" + a.since + "' is not a duration like 30m, 24h or 7d", kUsage);
    }
    req["since_seconds"] = *s;
  }
  json r;
  if (int rc = request(socket, req, r, kTimeoutMs); rc != kOk) return rc;
  if (a.output == "json") {
    printJson(r);
  } else {
    printDiff(r, std::cout);
  }
  return r.value("breaks", false) ? kWouldBreak : kOk;
}

}  // namespace microseg::cli
