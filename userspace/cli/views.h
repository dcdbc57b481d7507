// Table/text renderings of the observation commands (flows, explain,
// workloads, policy show, graph). Pure: JSON results in, text out.
#pragma once

#include <cstdint>
#include <optional>
#include <ostream>
#include <string>

#include <nlohmann/json.hpp>

namespace microseg::cli {

// staged: the STAGED and STAGED RULE columns (`flows --staged`).
void printFlows(const nlohmann::json& records, std::ostream& out, bool header = true, bool staged = false);
void printExplain(const nlohmann::json& result, std::ostream& out);
void printWorkloads(const nlohmann::json& result, std::ostream& out);
void printPolicyShow(const nlohmann::json& result, std::ostream& out);
// Graphviz: workloads as nodes; policy edges solid grey, observed edges
// green (allow), orange dashed (audit), red bold (deny).
std::string graphDot(const nlohmann::json& graph);

// "90s", "10m", "2h", "1d" -> seconds; nullopt if malformed.
std::optional<int64_t> parseDuration(const std::string& s);
// "5432/tcp", "53/udp", "8080" (tcp) -> (port, "tcp"|"udp"); nullopt if malformed.
std::optional<std::pair<uint16_t, std::string>> parsePortSpec(const std::string& s);

}  // namespace microseg::cli
