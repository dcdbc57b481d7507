// End-to-end tests of revocation (README "Revocation"): established
// connections that a change no longer allows are destroyed by the real
// daemon through the kernel's socket iterators, both ends see it, and
// nothing else is touched: a policy change with on-change (the daemon's
// setting or the policy's), the same in a workload's own netns, a mode
// switch to enforce, a grant's expiry; never without on-change; monitor
// mode records would-revoke and destroys nothing.
#include <gtest/gtest.h>
#include <linux/bpf.h>

#include <chrono>
#include <thread>

#include "harness.h"
#include "held_connections.h"
#include "policies.h"

namespace microseg::e2e {
namespace {

using nlohmann::json;
using std::chrono::milliseconds;

// client-a and client-b may call the server on `port` (both sides);
// client-b's own egress policy allows `bPort` (the port a change moves
// away) and says `bRevoke` ("" for nothing) as its spec.revokeEstablished.
std::string twoClients(int port, int bPort, const std::string& bRevoke = "") {
  const std::string p = std::to_string(port);
  std::string y = workloads();
  y += "apiVersion: microseg.dev/v1\nkind: Policy\nmetadata: {name: a-out}\nspec:\n"
       "  selector: {identity: client-a}\n  egress:\n"
       "    - to: [{identity: server}]\n      ports: [{port: " + p + ", protocol: TCP}]\n---\n";
  y += "apiVersion: microseg.dev/v1\nkind: Policy\nmetadata: {name: b-out}\nspec:\n"
       "  selector: {identity: client-b}\n";
  if (!bRevoke.empty()) y += "  revokeEstablished: " + bRevoke + "\n";
  y += "  egress:\n    - to: [{identity: server}]\n      ports: [{port: " + std::to_string(bPort) +
       ", protocol: TCP}]\n---\n";
  y += "apiVersion: microseg.dev/v1\nkind: Policy\nmetadata: {name: server-in}\nspec:\n"
       "  selector: {identity: server}\n  ingress:\n"
       "    - from: [{identity: client-a}, {identity: client-b}]\n      ports: [{port: " + p +
       ", protocol: TCP}]\n";
  return y;
}

bool endedByTheKernel(std::optional<int> e) { return e && (*e == ECONNABORTED || *e == ECONNRESET); }

class Revocation : public WorkloadTest {
 protected:
  void startDaemon(const std::string& mode, const std::string& policy, std::vector<std::string> extra = {}) {
    daemon_ = std::make_unique<Daemon>(tree_, policy, mode, extra);
    ASSERT_TRUE(daemon_->started()) << daemon_->log();
    auto st = daemon_->status();
    ASSERT_TRUE(st);
    ASSERT_EQ((*st)["revocation"]["available"], true) << (*st)["revocation"].dump();
  }
  // The server (accepting two) and one held connection from each client.
  void connectBoth(const std::string& netns = "") {
    server_ = std::make_unique<Child>(acceptingServer(srv_, port_, 2, srvEnded_, netns));
    ASSERT_TRUE(server_->ready());
    ca_ = std::make_unique<Child>(tcpClient(a_, port_, aEnded_, netns));
    ASSERT_TRUE(ca_->ready()) << "client-a's connect was refused\n" << daemon_->log();
    cb_ = std::make_unique<Child>(tcpClient(b_, port_, bEnded_, netns));
    ASSERT_TRUE(cb_->ready()) << "client-b's connect was refused\n" << daemon_->log();
  }
  // Writes the policy and reloads; the time the reload returned.
  std::chrono::steady_clock::time_point reloadWith(const std::string& policy) {
    daemon_->writePolicy("policy.yaml", policy);
    auto r = daemon_->cli({"policy", "reload"});
    EXPECT_EQ(r.rc, 0) << r.err;
    return std::chrono::steady_clock::now();
  }
  int msLeft(std::chrono::steady_clock::time_point deadline) const {
    return std::max<int>(0, int(std::chrono::duration_cast<milliseconds>(deadline - std::chrono::steady_clock::now())
                                    .count()));
  }
  std::optional<json> revocationRecord(const std::string& verdict) {
    return daemon_->waitFlow([&](const json& r) {
      return r.value("verdict", "") == verdict && r["src"]["workload"] == "client-b";
    });
  }
  // client-b's connection ended by the kernel within 1 s of `t`, the
  // server's end of it too; client-a's (still allowed) lives on.
  void expectOnlyBRevoked(std::chrono::steady_clock::time_point t) {
    EXPECT_TRUE(endedByTheKernel(bEnded_.wait(msLeft(t + milliseconds(1000)))))
        << "client-b's connection was not reset within 1 s\n" << daemon_->log();
    EXPECT_TRUE(endedByTheKernel(srvEnded_.wait(1000))) << "the server's end of it";
    EXPECT_EQ(aEnded_.wait(300), std::nullopt) << "client-a's connection is still allowed: untouched";
    EXPECT_EQ(srvEnded_.wait(100), std::nullopt) << "and so is the server's end of it";
  }
  Report aEnded_, bEnded_, srvEnded_;
  std::unique_ptr<Child> server_, ca_, cb_;
};

TEST_F(Revocation, OnChangeEndsTheConnectionANewGenerationRefusesAndNothingElse) {
  startDaemon("enforce", twoClients(port_, port_), {"--revoke-established", "on-change"});
  connectBoth();
  const auto t = reloadWith(twoClients(port_, port_ + 5));
  expectOnlyBRevoked(t);
  auto rec = revocationRecord("revoked");
  ASSERT_TRUE(rec) << daemon_->log();
  EXPECT_EQ((*rec)["direction"], "egress");
  EXPECT_EQ((*rec)["dst"]["workload"], "server");
  EXPECT_EQ((*rec)["reason"], "default-deny") << rec->dump();
  EXPECT_EQ((*rec)["revocation"]["by"].get<std::string>().rfind("generation ", 0), 0u) << rec->dump();
  EXPECT_TRUE((*rec)["revocation"]["connection_age_s"].is_number()) << "the kernel stamped it" << rec->dump();
  auto st = daemon_->status();
  ASSERT_TRUE(st);
  EXPECT_EQ((*st)["revocation"]["revoked"], 1) << (*st)["revocation"].dump();
  EXPECT_EQ((*st)["revocation"]["revoke_established"], "on-change");
  EXPECT_EQ((*st)["revocation"]["connection_ages"], true);
  EXPECT_EQ(attachedPrograms(tree_.root(), BPF_CGROUP_SOCK_OPS), 1) << "ms_established stamps connections";
  // New connections: refused as before revocation existed.
  EXPECT_EQ(runIn(b_, [p = port_] { return tcpConnect(AF_INET, "127.0.0.1", p); }), EPERM);
}

TEST_F(Revocation, APolicysOwnOnChangeRevokesOnItsSideWithTheDaemonSettingNever) {
  startDaemon("enforce", twoClients(port_, port_, "on-change"));
  connectBoth();
  const auto t = reloadWith(twoClients(port_, port_ + 5, "on-change"));
  expectOnlyBRevoked(t);
  EXPECT_EQ(bEnded_.wait(0), std::nullopt);
  ASSERT_TRUE(revocationRecord("revoked")) << daemon_->log();
}

TEST_F(Revocation, NeverLeavesEstablishedConnectionsAlone) {
  startDaemon("enforce", twoClients(port_, port_));
  connectBoth();
  reloadWith(twoClients(port_, port_ + 5));
  EXPECT_EQ(bEnded_.wait(1500), std::nullopt) << "the default: only new connections are refused";
  EXPECT_EQ(runIn(b_, [p = port_] { return tcpConnect(AF_INET, "127.0.0.1", p); }), EPERM);
  auto st = daemon_->status();
  ASSERT_TRUE(st);
  EXPECT_EQ((*st)["revocation"]["passes"], 0) << "nothing asked for a pass";
  // Nothing can be revoked here: connections are not stamped (no sockops
  // program runs on the tree's TCP sockets).
  EXPECT_EQ((*st)["revocation"]["connection_ages"], false);
  EXPECT_EQ(attachedPrograms(tree_.root(), BPF_CGROUP_SOCK_OPS), 0);
}

TEST_F(Revocation, InAWorkloadsOwnNetns) {
  Netns ns;
  ASSERT_TRUE(ns.ok());
  startDaemon("enforce", twoClients(port_, port_), {"--revoke-established", "on-change"});
  connectBoth(ns.path());
  const auto t = reloadWith(twoClients(port_, port_ + 5));
  expectOnlyBRevoked(t);
  ASSERT_TRUE(revocationRecord("revoked")) << daemon_->log();
}

TEST_F(Revocation, MonitorModeRecordsWouldRevokeAndResetsNothing) {
  startDaemon("monitor", twoClients(port_, port_), {"--revoke-established", "on-change"});
  connectBoth();
  reloadWith(twoClients(port_, port_ + 5));
  auto rec = revocationRecord("would-revoke");
  ASSERT_TRUE(rec) << daemon_->log();
  EXPECT_EQ((*rec)["direction"], "egress");
  EXPECT_TRUE((*rec)["revocation"]["connection_age_s"].is_number()) << rec->dump();
  EXPECT_EQ(bEnded_.wait(1000), std::nullopt) << "monitor mode never destroys";
  EXPECT_EQ(aEnded_.wait(0), std::nullopt);
  auto st = daemon_->status();
  ASSERT_TRUE(st);
  EXPECT_EQ((*st)["revocation"]["revoked"], 0);
  EXPECT_EQ((*st)["revocation"]["would_revoke"], 1) << (*st)["revocation"].dump();
  // A second change that still would revoke it is no news: counted once.
  reloadWith(twoClients(port_, port_ + 6));
  st = daemon_->status();
  ASSERT_TRUE(st);
  EXPECT_GE((*st)["revocation"]["passes"], 2);
  EXPECT_EQ((*st)["revocation"]["would_revoke"], 1) << (*st)["revocation"].dump();

  // Then enforce: the switch is a change, and the connection goes.
  auto r = daemon_->cli({"mode", "enforce"});
  ASSERT_EQ(r.rc, 0) << r.err;
  const auto t = std::chrono::steady_clock::now();
  expectOnlyBRevoked(t);
}

TEST_F(Revocation, AGrantsExpiryEndsTheConnectionsOnlyItAllowed) {
  // client-b has no rule at all: only a grant lets it in (both sides).
  startDaemon("enforce", allowPolicy("client-a", port_));
  ASSERT_EQ(runIn(b_, [p = port_] { return tcpConnect(AF_INET, "127.0.0.1", p); }), EPERM);
  const auto t0 = std::chrono::steady_clock::now();
  auto g = daemon_->cli({"grant", "--from", "client-b", "--to", "server", "--port", std::to_string(port_) + "/tcp",
                         "--for", "5s", "-o", "json"});
  ASSERT_EQ(g.rc, 0) << g.err;
  const uint32_t id = json::parse(g.out)["id"].get<uint32_t>();
  EXPECT_EQ(attachedPrograms(tree_.root(), BPF_CGROUP_SOCK_OPS), 1) << "a grant's connections are stamped";
  connectBoth();
  EXPECT_EQ(bEnded_.wait(msLeft(t0 + milliseconds(4500))), std::nullopt) << "alive while the grant lasts";
  // Reset at the expiry, within 1 s, with the daemon's setting `never`.
  expectOnlyBRevoked(t0 + milliseconds(5000));
  auto rec = revocationRecord("revoked");
  ASSERT_TRUE(rec) << daemon_->log();
  EXPECT_EQ((*rec)["rule"], "grant:" + std::to_string(id)) << rec->dump();
  EXPECT_EQ((*rec)["revocation"]["by"], "grant " + std::to_string(id) + " expired") << rec->dump();
  // Opened just after the grant, ended at its expiry (5 s later).
  ASSERT_TRUE((*rec)["revocation"]["connection_age_s"].is_number()) << rec->dump();
  EXPECT_GE((*rec)["revocation"]["connection_age_s"].get<double>(), 4.0) << rec->dump();
  EXPECT_LE((*rec)["revocation"]["connection_age_s"].get<double>(), 6.5) << rec->dump();
  EXPECT_EQ(runIn(b_, [p = port_] { return tcpConnect(AF_INET, "127.0.0.1", p); }), EPERM);
  // No grant active, nothing on-change: connections are no longer stamped.
  EXPECT_EQ(attachedPrograms(tree_.root(), BPF_CGROUP_SOCK_OPS), 0);
}

// The accepting end (stamped when the handshake completed there) judged
// by its own side: the server stops admitting client-b. The record names
// the change and the connection's age by the kernel's stamp, which a
// restart of the daemon in between keeps.
TEST_F(Revocation, TheRecordSaysWhatEndedTheConnectionAndHowOldItWas) {
  startDaemon("enforce", twoClients(port_, port_), {"--revoke-established", "on-change"});
  connectBoth();
  const auto opened = std::chrono::steady_clock::now();
  // A restart keeps the stamps (the pinned socket storage) and the stamping
  // program (its pinned link, adopted).
  daemon_->crash();
  ASSERT_TRUE(daemon_->start()) << daemon_->log();
  EXPECT_EQ(attachedPrograms(tree_.root(), BPF_CGROUP_SOCK_OPS), 1);
  std::this_thread::sleep_for(milliseconds(1500));
  std::string onlyA = twoClients(port_, port_);
  const std::string both = "{identity: client-a}, {identity: client-b}";
  ASSERT_NE(onlyA.find(both), std::string::npos);
  onlyA.replace(onlyA.find(both), both.size(), "{identity: client-a}");
  const auto t = reloadWith(onlyA);
  const double open = std::chrono::duration<double>(std::chrono::steady_clock::now() - opened).count();
  expectOnlyBRevoked(t);
  auto rec = daemon_->waitFlow([](const json& r) {
    return r.value("verdict", "") == "revoked" && r.value("direction", "") == "ingress" &&
           r["src"]["workload"] == "client-b";
  });
  ASSERT_TRUE(rec) << daemon_->log();
  EXPECT_EQ((*rec)["dst"]["workload"], "server");
  EXPECT_EQ((*rec)["revocation"]["by"].get<std::string>().rfind("generation ", 0), 0u) << rec->dump();
  ASSERT_TRUE((*rec)["revocation"]["connection_age_s"].is_number()) << rec->dump();
  EXPECT_GE((*rec)["revocation"]["connection_age_s"].get<double>(), 1.4) << rec->dump();
  EXPECT_LE((*rec)["revocation"]["connection_age_s"].get<double>(), open + 1.0) << rec->dump();
  // The table says it too, in the rule column.
  auto table = daemon_->cli({"flows", "--verdict", "revoked"});
  ASSERT_EQ(table.rc, 0) << table.err;
  EXPECT_NE(table.out.find("[generation "), std::string::npos) << table.out;
  EXPECT_NE(table.out.find("; open "), std::string::npos) << table.out;
}

TEST_F(Revocation, RevokingAGrantEndsItsConnectionsAtOnce) {
  startDaemon("enforce", allowPolicy("client-a", port_));
  auto g = daemon_->cli({"grant", "--from", "client-b", "--to", "server", "--port", std::to_string(port_) + "/tcp",
                         "--for", "10m", "-o", "json"});
  ASSERT_EQ(g.rc, 0) << g.err;
  const std::string id = std::to_string(json::parse(g.out)["id"].get<uint32_t>());
  connectBoth();
  auto r = daemon_->cli({"revoke", id, "-o", "json"});
  ASSERT_EQ(r.rc, 0) << r.err;
  const auto t = std::chrono::steady_clock::now();
  // Both sides refuse now, but destroying one end resets the other before
  // the iterator reaches it: one socket destroyed ends the connection.
  EXPECT_GE(json::parse(r.out).value("connections_revoked", -1), 1) << r.out;
  expectOnlyBRevoked(t);
}

}  // namespace
}  // namespace microseg::e2e
