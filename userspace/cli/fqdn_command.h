// `microseg fqdn [--workload X]`: the addresses DNS answers bound to names
// (FQDN peers, policies/README.md), per workload, with the time left.
#pragma once

#include <ostream>
#include <string>

#include <nlohmann/json.hpp>

namespace microseg::cli {

int cmdFqdn(const std::string& socket, bool json, const std::string& workload);

// The table (unit-tested).
void printFqdn(const nlohmann::json& r, std::ostream& out);

}  // namespace microseg::cli
