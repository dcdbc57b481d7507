// microseg-bench-cluster report: section 5 of bench.sh's results, from the
// raw records `run` wrote, printed with its targets and added to the JSON
// file microseg-bench report wrote ("cluster", and its targets appended to
// "targets").
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

// Nearest-rank percentile (p99 of 50 samples is the largest: said so in the
// output by the sample count).
double percentile(std::vector<double> v, double p) {
  if (v.empty()) return NAN;
  std::sort(v.begin(), v.end());
  size_t rank = size_t(std::ceil(p / 100.0 * double(v.size())));
  return v[std::clamp<size_t>(rank, 1, v.size()) - 1];
}

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

double connect4Ns(const json& rec) {
  // The kernel keeps 15 characters of a program name.
  for (auto& [name, v] : rec["progs"].items()) {
    if (name.rfind("ms_connect4", 0) == 0) return v["ns_per_run"].get<double>();
  }
  return NAN;
}

}  // namespace

int cmdReport(int argc, char** argv) {
  std::string in, jsonOut;
  double targetMs = 10;
  for (int i = 2; i + 1 < argc; i += 2) {
    const std::string k = argv[i];
    if (k == "--in") in = argv[i + 1];
    else if (k == "--json") jsonOut = argv[i + 1];
    else if (k == "--target-ms") targetMs = std::stod(argv[i + 1]);
    else die("report: unknown argument " + k);
  }
  std::ifstream f(in);
  if (!f) die("report: --in FILE");
  json setup;
  std::vector<json> connects, changes;
  json denyCheck;
  std::string remoteDest;
  std::string line;
  while (std::getline(f, line)) {
    if (line.empty()) continue;
    json r = json::parse(line);
    const std::string s = r.value("section", "");
    if (s == "cluster_setup") setup = r;
    if (s == "cluster_connect") connects.push_back(r);
    if (s == "cluster_connect" && r["target"] == "remote") remoteDest = r["dest"];
    if (s == "cluster_deny_check") denyCheck = r;
    if (s == "cluster_change") changes.push_back(r);
  }
  if (setup.is_null()) {
    std::cout << "5. Cluster: not run\n";
    return 0;
  }
  std::ostringstream t;
  t << "5. Cluster (the bench's microsegd = node A; a fake node B through the real cluster agent, with "
    << setup["addresses"].get<long>() << " workload addresses + " << setup["listeners"].get<long>()
    << " listeners; A holds " << setup["remote_addresses"].get<long>() << " remote addresses, "
    << setup["remote_listeners"].get<long>() << " remote listeners)\n\n";
  t << "   B's endpoints published -> in A's kernel: " << fmt("%.2f s", setup["publish_to_kernel_s"].get<double>())
    << " (A's last full write of them " << fmt("%.1f ms", setup["full_apply_us"].get<double>() / 1000) << ")\n\n";

  // connect4: per round, local and remote a few seconds apart.
  std::vector<double> local, remote, ratios, wallLocal, wallRemote;
  std::map<int, std::pair<double, double>> byRound;
  long errors = 0;
  for (auto& r : connects) {
    const double ns = connect4Ns(r);
    errors += r["errors"].get<long>();
    auto& slot = byRound[r["round"].get<int>()];
    if (r["target"] == "local") {
      local.push_back(ns);
      wallLocal.push_back(r["ns_per_op"].get<double>());
      slot.first = ns;
    } else {
      remote.push_back(ns);
      wallRemote.push_back(r["ns_per_op"].get<double>());
      slot.second = ns;
    }
  }
  for (auto& [round, p] : byRound) {
    if (p.first > 0 && p.second > 0) ratios.push_back(p.second / p.first);
  }
  const double ratio = median(ratios);
  auto list = [](const std::vector<double>& v) {
    std::string s;
    for (double x : v) s += (s.empty() ? "" : " / ") + fmt("%.0f", x);
    return s;
  };
  t << "   connect4 ns/run (kernel run_time_ns / run_cnt), " << byRound.size() << " rounds:\n"
    << "     local destination (127.0.0.1, a listener of the same workload): " << list(local) << "  median "
    << fmt("%.0f", median(local)) << "\n"
    << "     remote destination (B's listener, " << remoteDest
    << ", behind a veth): " << list(remote) << "  median " << fmt("%.0f", median(remote)) << "\n"
    << "     remote / local: " << fmt("%.2f", ratio) << " (median of the rounds' ratios); whole connect (wall, ns): local "
    << fmt("%.0f", median(wallLocal)) << ", remote " << fmt("%.0f", median(wallRemote)) << "; connect errors "
    << errors << "\n";
  if (!denyCheck.is_null()) {
    t << "     the same address on a port not allowed (" << denyCheck["dest"].get<std::string>() << "): "
      << denyCheck["errors"].get<long>() << " of " << denyCheck["iters"].get<long>() << " connects refused ("
      << denyCheck["errno"].get<std::string>() << ")\n";
  }
  t << "\n";

  std::vector<double> prop, applyAdd, applyAll, toEtcd;
  long extraApplies = 0;
  for (auto& c : changes) {
    const double us = c["apply_us"].get<double>();
    applyAll.push_back(us / 1000);
    if (c["op"] == "add") {
      prop.push_back(c["propagation_ms"].get<double>());
      if (c.contains("b_to_etcd_ms") && c["b_to_etcd_ms"].is_number()) toEtcd.push_back(c["b_to_etcd_ms"].get<double>());
      applyAdd.push_back(us / 1000);
    }
    extraApplies += std::max<long>(0, c["applies"].get<long>() - 1);
  }
  const double p50 = median(applyAll), p99 = percentile(applyAll, 99);
  const bool pass = !std::isnan(p99) && p99 <= targetMs;  // "no single change more than ~10 ms"
  t << "   propagation, a workload address appearing on B -> A's kernel has it (" << prop.size()
    << " changes): median " << fmt("%.1f ms", median(prop)) << ", p99 " << fmt("%.1f ms", percentile(prop, 99))
    << ", max " << fmt("%.1f ms", prop.empty() ? NAN : *std::max_element(prop.begin(), prop.end())) << "\n";
  if (!toEtcd.empty()) {
    t << "     of which B's agent until the key is in etcd (seen by a probe polling with A): median "
      << fmt("%.1f ms", median(toEtcd)) << ", p99 " << fmt("%.1f ms", percentile(toEtcd, 99)) << "\n";
  }
  t << "   one change with " << setup["remote_addresses"].get<long>() + setup["remote_listeners"].get<long>()
    << " remote endpoints, A's write to the kernel (endpoints_apply_us_last, " << applyAll.size()
    << " single-address adds and removes): median " << fmt("%.2f ms", p50) << ", p99 " << fmt("%.2f ms", p99)
    << ", max " << fmt("%.2f ms", applyAll.empty() ? NAN : *std::max_element(applyAll.begin(), applyAll.end()))
    << "   target p99 <= " << fmt("%.0f ms", targetMs) << ": " << (pass ? "PASS" : "FAIL") << "\n";
  if (extraApplies) t << "   (" << extraApplies << " changes saw more than one endpoint write on A)\n";
  t << "\n";
  std::cout << t.str();

  if (!jsonOut.empty()) {
    json out = json::object();
    {
      std::ifstream jf(jsonOut);
      if (jf) out = json::parse(jf, nullptr, false);
      if (!out.is_object()) die("report: " + jsonOut + " is not a JSON object");
    }
    out["cluster"] = json{{"setup", setup},
                          {"connect4_local_ns", median(local)},
                          {"connect4_remote_ns", median(remote)},
                          {"connect4_remote_over_local", ratio},
                          {"connect4_local_ns_rounds", local},
                          {"connect4_remote_ns_rounds", remote},
                          {"connect_wall_local_ns", median(wallLocal)},
                          {"connect_wall_remote_ns", median(wallRemote)},
                          {"connect_errors", errors},
                          {"deny_check", denyCheck},
                          {"propagation_ms_median", median(prop)},
                          {"propagation_ms_p99", percentile(prop, 99)},
                          {"propagation_samples", prop.size()},
                          {"b_to_etcd_ms_median", median(toEtcd)},
                          {"b_to_etcd_ms_p99", percentile(toEtcd, 99)},
                          {"change_apply_ms_median", p50},
                          {"change_apply_ms_p99", p99},
                          {"change_apply_ms_add_median", median(applyAdd)},
                          {"change_samples", applyAll.size()},
                          {"changes", changes},
                          {"connects", connects}};
    if (!out["targets"].is_array()) out["targets"] = json::array();
    out["targets"].push_back(json{{"target", "cluster: one endpoint change with " +
                                                 std::to_string(setup["remote_addresses"].get<long>() +
                                                                setup["remote_listeners"].get<long>()) +
                                                 " remote endpoints <= ~" +
                                                 fmt("%.0f", targetMs) + " ms (p99)"},
                                  {"measured", fmt("%.2f ms median", p50) + ", " + fmt("%.2f ms p99", p99)},
                                  {"met", pass}});
    std::ofstream o(jsonOut);
    o << out.dump(2) << "\n";
    if (!o) die("cannot write " + jsonOut);
  }
  return 0;
}
