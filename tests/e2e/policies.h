// Policies shared by the e2e tests: workloads client-a, client-b, server
// (cgroups of the same names under the test root).
#pragma once

#include <string>

namespace microseg::e2e {

inline std::string workloads() {
  std::string y;
  for (const char* w : {"client-a", "client-b", "server"}) {
    y += std::string("apiVersion: microseg.dev/v1\nkind: Workload\nmetadata: {name: ") + w +
         "}\nspec:\n  cgroups: [\"" + w + "\"]\n  labels: {app: " + w + "}\n---\n";
  }
  return y;
}

inline std::string allowPolicy(const std::string& client, int port, bool udp = false) {
  std::string y = workloads() +
                  "apiVersion: microseg.dev/v1\nkind: Policy\nmetadata: {name: allow-client}\nspec:\n"
                  "  selector: {identity: " + client + "}\n  egress:\n"
                  "    - to: [{identity: server}]\n      ports: [{port: " + std::to_string(port) +
                  ", protocol: TCP}]\n";
  if (udp) {
    y += "    - to: [{matchLabels: {app: server}}]\n      ports: [{port: " + std::to_string(port + 1) +
         ", protocol: UDP}]\n";
  }
  return y;
}

}  // namespace microseg::e2e
