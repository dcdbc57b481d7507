// The CLI's temporary access (README "Temporary access"): `microseg grant`
// (a flow allowed for a while, on both sides), `microseg grants` (active and
// recently ended ones) and `microseg revoke` (one ended at once).
#pragma once

#include <ostream>
#include <string>

#include <nlohmann/json.hpp>

namespace microseg::cli {

struct GrantArgs {
  std::string from, to, port;  // port: "22/tcp", "8000-8010/udp"
  std::string duration;        // "30s", "15m", "8h"; "" = the daemon's default (30m)
  std::string reason;
};
int cmdGrant(const std::string& socket, bool json, const GrantArgs& a);
int cmdGrants(const std::string& socket, bool json);
// `grant` is "7" or "grant:7" (as flow records name it).
int cmdRevoke(const std::string& socket, bool json, const std::string& grant);

// The `grants` table (unit-tested).
void printGrants(const nlohmann::json& r, std::ostream& out);

}  // namespace microseg::cli
