// The CLI's rollout commands (README "Rolling out"): `microseg reach` (what
// a workload can open under the policy in force, in up to N hops; who can
// reach it; blast radius of every workload), `microseg suggest`
// (least-privilege policy from the observed flows) and `microseg policy
// diff` (a candidate set against the one in force, over those flows).
#pragma once

#include <ostream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace microseg::cli {

struct ReachArgs {
  std::string workload;
  int hops = 3;
  bool reverse = false;
  bool all = false;
  std::string output = "table";  // table | json | dot
};
int cmdReach(const std::string& socket, const ReachArgs& a);

struct SuggestArgs {
  std::string workload;       // "" with all
  bool all = false;
  std::string since;          // "24h", "30m", "" (every record)
  std::string output = "yaml";  // yaml | json
  bool staged = false;        // documents carry `staged: true`
};
int cmdSuggest(const std::string& socket, const SuggestArgs& a);

// `microseg policy diff PATH...`: exit kOk when nothing observed would
// break, kWouldBreak when something would.
struct DiffArgs {
  std::vector<std::string> paths;
  std::string since;              // "24h", "" (every record)
  std::string output = "table";  // table | json
};
int cmdDiff(const std::string& socket, const DiffArgs& a);

// Renderings of the daemon's `reach` and `policy.diff` results (unit-tested).
void printDiff(const nlohmann::json& r, std::ostream& out);
void printReach(const nlohmann::json& r, std::ostream& out);
std::string reachDot(const nlohmann::json& r);

}  // namespace microseg::cli
