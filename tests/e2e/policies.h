// Policies and the base fixture shared by the e2e tests: workloads client-a, client-b, server
// (cgroups of the same names under the test root).
#pragma once

#include <gtest/gtest.h>

#include <iostream>
#include <memory>
#include <string>

#include "harness.h"

namespace microseg::e2e {

inline std::string workloads() {
  std::string y;
  for (const char* w : {"client-a", "client-b", "server"}) {
    y += std::string("apiVersion: microseg.dev/v1\nkind: Workload\nmetadata: {name: ") + w +
         "}\nspec:\n  cgroups: [\"" + w + "\"]\n  labels: {app: " + w + "}\n---\n";
  }
  return y;
}

// `client` may reach the server on TCP/<port> (and UDP/<port+1>): the
// client's egress and the server's ingress both allow it, nothing else.
inline std::string allowPolicy(const std::string& client, int port, bool udp = false) {
  const std::string p = std::to_string(port), u = std::to_string(port + 1);
  std::string y = workloads() +
                  "apiVersion: microseg.dev/v1\nkind: Policy\nmetadata: {name: allow-client}\nspec:\n"
                  "  selector: {identity: " + client + "}\n  egress:\n"
                  "    - to: [{identity: server}]\n      ports: [{port: " + p + ", protocol: TCP}]\n";
  if (udp) y += "    - to: [{matchLabels: {app: server}}]\n      ports: [{port: " + u + ", protocol: UDP}]\n";
  y += "---\napiVersion: microseg.dev/v1\nkind: Policy\nmetadata: {name: server-in}\nspec:\n"
       "  selector: {identity: server}\n  ingress:\n"
       "    - from: [{identity: " + client + "}]\n      ports: [{port: " + p + ", protocol: TCP}]\n";
  if (udp) y += "    - from: [{matchLabels: {app: " + client + "}}]\n      ports: [{port: " + u + ", protocol: UDP}]\n";
  return y;
}

// A throwaway tree with the three workloads' cgroups and a free port range;
// prints the daemon's log when a test fails.
class WorkloadTest : public ::testing::Test {
 protected:
  void SetUp() override {
    a_ = tree_.create("client-a");
    b_ = tree_.create("client-b");
    srv_ = tree_.create("server");
    port_ = freePortBase();
  }
  void TearDown() override {
    if (HasFailure() && daemon_) std::cerr << "---- microsegd log ----\n" << daemon_->log().substr(0, 20000) << "\n";
  }
  CgroupTree tree_;
  std::string a_, b_, srv_;
  int port_ = 0;
  std::unique_ptr<Daemon> daemon_;
};

}  // namespace microseg::e2e
