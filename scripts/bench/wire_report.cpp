// microseg-bench-wire report: section 6 of bench.sh's results (wire
// identity ON vs OFF), from the raw records `run` wrote, printed with its
// target and added to the JSON file microseg-bench report wrote ("wire", and
// its target appended to "targets").
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cluster_util.h"

using nlohmann::json;
using microseg::bench::die;

namespace {

double median(std::vector<double> v) {
  if (v.empty()) return NAN;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

std::string fmt(const char* f, double v) {
  if (std::isnan(v)) return "n/a";
  char b[64];
  snprintf(b, sizeof(b), f, v);
  return b;
}

// The programs of a managed TCP connect (the kernel keeps 15 characters of
// a name: these fit). The senders (sockops) run on both nodes while they
// sign (A's socket connects, B's is accepted) and not at all while they do
// not: OFF is the datapath without the feature.
const char* const kProgs[] = {"a.ms_connect4", "a.ms_sockops", "a.ms_ingress", "b.ms_ingress", "b.ms_sockops"};
const char* const kAll[] = {"a.ms_connect4", "a.ms_sendmsg4", "a.ms_sockops", "a.ms_ingress", "b.ms_ingress",
                            "b.ms_sockops"};

double prog(const json& rec, const std::string& name, const char* field) {
  const auto& p = rec["progs"];
  return p.contains(name) ? p[name][field].get<double>() : 0.0;
}

struct Series {  // one (caller, kind, signing): per-round figures
  std::vector<double> wall, sum;
  std::map<std::string, std::vector<double>> nsPerOp, runsPerOp, nsPerRun;
  std::map<std::string, std::vector<double>> counters;  // a.* / b.* deltas per op
  int64_t errors = 0;
};

double counterPerOp(const Series& x, const std::string& k) {
  auto it = x.counters.find(k);
  return it == x.counters.end() ? NAN : median(it->second);
}

}  // namespace

int cmdWireReport(int argc, char** argv) {
  std::string in, jsonOut;
  double target = 1.5;
  for (int i = 2; i + 1 < argc; i += 2) {
    const std::string k = argv[i];
    if (k == "--in") in = argv[i + 1];
    else if (k == "--json") jsonOut = argv[i + 1];
    else if (k == "--target") target = std::stod(argv[i + 1]);
    else die("report: unknown option " + k);
  }
  if (in.empty()) die("report: --in is required");
  std::ifstream f(in);
  if (!f) die("report: cannot read " + in);
  std::map<std::string, Series> s;  // "workload tcp4 on"
  json setup, restore;
  std::vector<double> skStorage;
  for (std::string line; std::getline(f, line);) {
    json r = json::parse(line, nullptr, false);
    if (!r.is_object()) continue;
    if (r["section"] == "wire_setup") setup = r;
    if (r["section"] == "wire_restore") restore = r;
    // Section 1's sk_storage anchor (empty.bpf.c), when the run had it.
    if (r["section"] == "floor" && r["kind"] == "tcp4" && r["progs"].contains("anchor_skstorag")) {
      skStorage.push_back(r["progs"]["anchor_skstorag"]["ns_per_run"].get<double>());
    }
    if (r["section"] != "wire") continue;
    Series& x = s[r["caller"].get<std::string>() + " " + r["kind"].get<std::string>() + " " +
                  r["signing"].get<std::string>()];
    x.wall.push_back(r["ns_per_op"].get<double>());
    x.errors += r["errors"].get<int64_t>();
    double sum = 0;
    for (const char* p : kProgs) sum += prog(r, p, "ns_per_op");
    x.sum.push_back(sum);
    for (const char* p : kAll) {
      x.nsPerOp[p].push_back(prog(r, p, "ns_per_op"));
      x.runsPerOp[p].push_back(prog(r, p, "runs_per_op"));
      x.nsPerRun[p].push_back(prog(r, p, "ns_per_run"));
    }
    const double n = std::max(1.0, r["iters"].get<double>());
    for (const char* side : {"a", "b"}) {
      for (auto& [k, v] : r[std::string(side) + "_counters"].items()) {
        x.counters[std::string(side) + "." + k].push_back(v.get<double>() / n);
      }
    }
  }
  if (s.empty()) die("report: no section 6 records in " + in);
  auto get = [&](const std::string& k) -> const Series& {
    auto it = s.find(k);
    if (it == s.end()) die("report: no records for " + k);
    return it->second;
  };
  const Series &on = get("workload tcp4 on"), &off = get("workload tcp4 off");
  const double sumOn = median(on.sum), sumOff = median(off.sum);
  const double ratio = sumOn / sumOff;
  // The round ratios too (interleaved: each compares runs seconds apart).
  std::vector<double> roundRatios;
  for (size_t i = 0; i < std::min(on.sum.size(), off.sum.size()); i++) roundRatios.push_back(on.sum[i] / off.sum[i]);
  const bool pass = ratio <= target && on.errors == 0 && off.errors == 0;

  std::ostringstream t;
  t << "6. Wire identity: TCP connect+accept+close from A's workload to B's listener, signing ON vs OFF ("
    << on.sum.size() << " interleaved rounds, medians; ns per connect from the kernel's per-program stats)\n";
  t << "   program          ON ns/connect  (runs x ns/run)     OFF ns/connect  (runs x ns/run)\n";
  for (const char* p : kProgs) {
    char b[200];
    snprintf(b, sizeof(b), "   %-15s  %10s     (%4s x %6s)      %10s     (%4s x %6s)\n", p,
             fmt("%.0f", median(on.nsPerOp.at(p))).c_str(), fmt("%.1f", median(on.runsPerOp.at(p))).c_str(),
             fmt("%.0f", median(on.nsPerRun.at(p))).c_str(), fmt("%.0f", median(off.nsPerOp.at(p))).c_str(),
             fmt("%.1f", median(off.runsPerOp.at(p))).c_str(), fmt("%.0f", median(off.nsPerRun.at(p))).c_str());
    t << b;
  }
  t << "   sum of the five  " << fmt("%10.0f", sumOn) << "                           " << fmt("%10.0f", sumOff) << "\n";
  t << "   kernel-accounted overhead ON / OFF: " << fmt("%.2fx", ratio) << " (rounds:";
  for (double r : roundRatios) t << " " << fmt("%.2f", r);
  t << ")   target <= " << fmt("%.1fx", target) << ": " << (pass ? "PASS" : "FAIL") << "\n";
  t << "   wall time per connect+accept+close: ON " << fmt("%.0f ns", median(on.wall)) << ", OFF "
    << fmt("%.0f ns", median(off.wall)) << " (" << fmt("%+.1f%%", (median(on.wall) / median(off.wall) - 1) * 100)
    << ")\n";
  t << "   counters per connect (medians): ON A sent " << fmt("%.2f", counterPerOp(on, "a.wire_identity_sent"))
    << ", B verified " << fmt("%.2f", counterPerOp(on, "b.wire_identity_verified")) << "; OFF A sent "
    << fmt("%.2f", counterPerOp(off, "a.wire_identity_sent")) << ", B absent "
    << fmt("%.2f", counterPerOp(off, "b.wire_identity_absent")) << "\n";
  {
    const double d = median(on.nsPerOp.at("a.ms_connect4")) - median(off.nsPerOp.at("a.ms_connect4"));
    t << "   connect4 ON - OFF: " << fmt("%.0f ns", d)
      << " (signing adds nothing to connect4: sockops decides at TCP_CONNECT_CB, wire.bpf.h wire_arm)";
    if (!skStorage.empty()) t << "; section 1's anchor, one sk_storage create on connect4: " << fmt("%.0f ns", median(skStorage));
    t << "\n";
  }
  if (on.errors || off.errors) t << "   !! connect errors: ON " << on.errors << ", OFF " << off.errors << "\n";

  json extra = json::object();
  for (const char* sign : {"on", "off"}) {
    const Series &u = get(std::string("unmanaged tcp4 ") + sign), &d = get(std::string("workload udp4 ") + sign);
    t << "   signing " << sign << ": unmanaged caller (not under A's root) "
      << fmt("%.0f ns", median(u.wall)) << " wall/connect, A's sockops " << fmt("%.2f", median(u.runsPerOp.at("a.ms_sockops")))
      << " runs/connect, A's connect4 " << fmt("%.2f", median(u.runsPerOp.at("a.ms_connect4"))) << ", B's ingress "
      << fmt("%.0f ns", median(u.nsPerOp.at("b.ms_ingress"))) << "/connect, A sent "
      << fmt("%.2f", counterPerOp(u, "a.wire_identity_sent")) << "; UDP sendto from A's workload "
      << fmt("%.0f ns", median(d.wall)) << " wall/datagram, A's sendmsg4 " << fmt("%.0f ns", median(d.nsPerOp.at("a.ms_sendmsg4")))
      << ", A's sockops " << fmt("%.2f", median(d.runsPerOp.at("a.ms_sockops"))) << " runs/datagram, B's ingress "
      << fmt("%.0f ns", median(d.nsPerOp.at("b.ms_ingress"))) << "\n";
    extra[sign] = json{{"unmanaged_wall_ns", median(u.wall)},
                       {"unmanaged_sockops_runs_per_connect", median(u.runsPerOp.at("a.ms_sockops"))},
                       {"unmanaged_connect4_runs_per_connect", median(u.runsPerOp.at("a.ms_connect4"))},
                       {"unmanaged_b_ingress_ns", median(u.nsPerOp.at("b.ms_ingress"))},
                       {"unmanaged_a_sent_per_connect", counterPerOp(u, "a.wire_identity_sent")},
                       {"udp_wall_ns", median(d.wall)},
                       {"udp_sendmsg4_ns", median(d.nsPerOp.at("a.ms_sendmsg4"))},
                       {"udp_sockops_runs_per_datagram", median(d.runsPerOp.at("a.ms_sockops"))},
                       {"udp_b_ingress_ns", median(d.nsPerOp.at("b.ms_ingress"))},
                       {"unmanaged_errors", u.errors},
                       {"udp_errors", d.errors}};
  }
  if (!restore.is_null() && !restore["restored"].get<bool>()) t << "   !! the nodes' signing state was not restored\n";
  t << "\n";
  std::cout << t.str();

  if (!jsonOut.empty()) {
    json out = json::object();
    {
      std::ifstream jf(jsonOut);
      if (jf) out = json::parse(jf, nullptr, false);
      if (!out.is_object()) out = json::object();
    }
    json progsOn = json::object(), progsOff = json::object();
    for (const char* p : kAll) {
      progsOn[p] = json{{"ns_per_connect", median(on.nsPerOp.at(p))}, {"runs_per_connect", median(on.runsPerOp.at(p))},
                        {"ns_per_run", median(on.nsPerRun.at(p))}};
      progsOff[p] = json{{"ns_per_connect", median(off.nsPerOp.at(p))},
                         {"runs_per_connect", median(off.runsPerOp.at(p))}, {"ns_per_run", median(off.nsPerRun.at(p))}};
    }
    out["wire"] = json{{"setup", setup},
                       {"rounds", on.sum.size()},
                       {"progs_on", progsOn},
                       {"progs_off", progsOff},
                       {"sum_on_ns", sumOn},
                       {"sum_off_ns", sumOff},
                       {"sum_ratio", ratio},
                       {"sum_ratio_rounds", roundRatios},
                       {"wall_on_ns", median(on.wall)},
                       {"wall_off_ns", median(off.wall)},
                       {"wall_on_ns_rounds", on.wall},
                       {"wall_off_ns_rounds", off.wall},
                       {"connect4_on_minus_off_ns",
                        median(on.nsPerOp.at("a.ms_connect4")) - median(off.nsPerOp.at("a.ms_connect4"))},
                       {"anchor_sk_storage_create_ns", skStorage.empty() ? json(nullptr) : json(median(skStorage))},
                       {"errors_on", on.errors},
                       {"errors_off", off.errors},
                       {"unmanaged_and_udp", extra}};
    if (!out["targets"].is_array()) out["targets"] = json::array();
    out["targets"].push_back(json{{"target", "wire identity: kernel-accounted TCP connect overhead ON / OFF <= " +
                                                 fmt("%.1fx", target)},
                                  {"measured", fmt("%.2fx", ratio) + " (" + fmt("%.0f", sumOn) + " / " +
                                                   fmt("%.0f ns", sumOff) + ")"},
                                  {"met", pass}});
    std::ofstream o(jsonOut);
    o << out.dump(2) << "\n";
    if (!o) die("cannot write " + jsonOut);
  }
  return 0;
}
