// End-to-end tests of the receiving side: cgroup_skb/ingress judges callers
// whose egress nobody checked (processes outside the managed tree, other
// network namespaces), both sides of local traffic must consent, replies are
// not new flows, and `--default-enforcement selected` behaves like Kubernetes
// NetworkPolicy. Real kernel, throwaway cgroups and network namespaces.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <memory>
#include <thread>

#include "bpf/abi.h"
#include "harness.h"
#include "policies.h"

namespace microseg::e2e {
namespace {

using nlohmann::json;

constexpr int kDropMs = 500;  // a dropped SYN: no handshake within this

std::string doc(const std::string& kind, const std::string& name, const std::string& spec) {
  return "---\napiVersion: microseg.dev/v1\nkind: " + kind + "\nmetadata: {name: " + name + "}\nspec:\n" + spec;
}

std::string workload(const std::string& name, const std::string& cgroup) {
  return doc("Workload", name, "  cgroups: [\"" + cgroup + "\"]\n  labels: {app: " + name + "}\n");
}

class Ingress : public WorkloadTest {
 protected:
  void startDaemon(const std::string& policy, const std::string& mode = "enforce",
                   const std::vector<std::string>& extra = {}) {
    daemon_ = std::make_unique<Daemon>(tree_, policy, mode, extra);
    ASSERT_TRUE(daemon_->started()) << daemon_->log();
  }
  uint64_t generation() {
    auto s = daemon_->status();
    return s ? (*s)["policy_generation"].get<uint64_t>() : 0;
  }
  // Replaces the policy and waits until the daemon has applied it.
  void apply(const std::string& policy) {
    const uint64_t g0 = generation();
    daemon_->writePolicy("policy.yaml", policy);
    for (int i = 0; i < 150 && generation() == g0; i++) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    ASSERT_GT(generation(), g0) << daemon_->log();
  }
  int tcpFrom(const std::string& cg, int family, const std::string& addr, int port, const std::string& ns = "",
              const std::string& src = "") {
    return runIn(cg, [=] { return tcpConnect(family, addr, port, kDropMs, src); }, 5000, ns);
  }
  int udpFrom(const std::string& cg, int family, const std::string& addr, int port, bool connected,
              const std::string& ns = "", const std::string& src = "") {
    return runIn(cg, [=] { return udpRequest(family, addr, port, connected, kDropMs, src); }, 5000, ns);
  }
  std::optional<json> flow(const std::string& direction, const std::string& verdict, const std::string& src,
                           const std::string& dst, int port) {
    return daemon_->waitFlow([=](const json& f) {
      return f["direction"] == direction && f["verdict"] == verdict && f["src"]["workload"] == src &&
             f["dst"]["workload"] == dst && f["dst"]["port"] == port;
    });
  }
};

TEST_F(Ingress, AHostProcessIsRefusedByTheServerUnlessAdmitted) {
  Child s4 = tcpServer(srv_, AF_INET, "127.0.0.1", port_);
  Child s6 = tcpServer(srv_, AF_INET6, "::1", port_);
  ASSERT_TRUE(s4.ready() && s6.ready());
  startDaemon(allowPolicy("client-a", port_));
  const std::string host = ownCgroup();

  // Its egress is nobody's to judge, but the server's ingress is: the SYN is
  // dropped, the caller sees no connection (not a reset, not EPERM).
  EXPECT_EQ(tcpFrom(host, AF_INET, "127.0.0.1", port_), ETIMEDOUT);
  EXPECT_EQ(tcpFrom(host, AF_INET6, "::1", port_), ETIMEDOUT);
  EXPECT_EQ(runIn(host, [&] { return tcpConnect(AF_INET6, "::ffff:127.0.0.1", port_, kDropMs); }), ETIMEDOUT)
      << "IPv4-mapped IPv6 is IPv4";
  EXPECT_EQ(tcpFrom(a_, AF_INET, "127.0.0.1", port_), 0) << "client-a is admitted";
  auto deny = flow("ingress", "deny", "host", "server", port_);
  ASSERT_TRUE(deny) << daemon_->log();
  EXPECT_EQ((*deny)["hook"], "ingress");
  EXPECT_EQ((*deny)["rule"], "default-deny");
  EXPECT_EQ((*deny)["src"]["identity"], MS_IDENTITY_HOST);
  EXPECT_EQ((*deny)["src"]["addr"], "127.0.0.1");
  EXPECT_GT((*deny)["src"]["port"].get<int>(), 0);
  EXPECT_EQ((*deny)["dst"]["cgroup"], "/server");

  // Monitor: logged as an ingress audit, and it passes.
  ASSERT_EQ(daemon_->cli({"mode", "monitor"}).rc, 0);
  EXPECT_EQ(tcpFrom(host, AF_INET, "127.0.0.1", port_), 0);
  ASSERT_TRUE(flow("ingress", "audit", "host", "server", port_)) << daemon_->log();

  // Enforce again, with a rule admitting this host's processes.
  ASSERT_EQ(daemon_->cli({"mode", "enforce"}).rc, 0);
  ASSERT_NO_FATAL_FAILURE(apply(allowPolicy("client-a", port_) +
                                doc("Policy", "admit-host",
                                    "  selector: {identity: server}\n  ingress:\n    - from: [host]\n"
                                    "      ports: [{port: " + std::to_string(port_) + ", protocol: TCP}]\n")));
  EXPECT_EQ(tcpFrom(host, AF_INET, "127.0.0.1", port_), 0);
  EXPECT_EQ(tcpFrom(host, AF_INET6, "::1", port_), 0);
  EXPECT_EQ(tcpFrom(b_, AF_INET, "127.0.0.1", port_), EPERM) << "client-b's own egress still refuses";
}

// A SYN behind IPv6 extension headers is still a SYN: it is judged (a host
// caller is dropped), and parsed, not merely refused as unreadable (once
// the host is admitted, it passes).
TEST_F(Ingress, ASynBehindIpv6ExtensionHeadersIsJudged) {
  Child s6 = tcpServer(srv_, AF_INET6, "::1", port_);
  ASSERT_TRUE(s6.ready());
  startDaemon(allowPolicy("client-a", port_));
  const std::string host = ownCgroup();
  for (int opt : {IPV6_HOPOPTS, IPV6_DSTOPTS}) {
    SCOPED_TRACE(opt == IPV6_HOPOPTS ? "hop-by-hop options" : "destination options");
    EXPECT_EQ(runIn(host, [&] { return tcpConnectWithIpv6Options("::1", port_, opt, kDropMs); }), ETIMEDOUT);
  }
  auto deny = flow("ingress", "deny", "host", "server", port_);
  ASSERT_TRUE(deny) << daemon_->log();
  EXPECT_EQ((*deny)["src"]["addr"], "::1");
  ASSERT_NO_FATAL_FAILURE(apply(allowPolicy("client-a", port_) +
                                doc("Policy", "admit-host",
                                    "  selector: {identity: server}\n  ingress:\n    - from: [host]\n"
                                    "      ports: [{port: " + std::to_string(port_) + ", protocol: TCP}]\n")));
  for (int opt : {IPV6_HOPOPTS, IPV6_DSTOPTS}) {
    SCOPED_TRACE(opt == IPV6_HOPOPTS ? "hop-by-hop options" : "destination options");
    EXPECT_EQ(runIn(host, [&] { return tcpConnectWithIpv6Options("::1", port_, opt, 2000); }), 0);
  }
  auto status = daemon_->status();
  ASSERT_TRUE(status);
  EXPECT_EQ((*status)["counters"]["unparsed"], 0) << "every SYN was parsed: " << status->dump();
}

TEST_F(Ingress, BothSidesMustConsent) {
  Child s4 = tcpServer(srv_, AF_INET, "127.0.0.1", port_);
  ASSERT_TRUE(s4.ready());
  const std::string p = std::to_string(port_);
  // client-b's egress allows the server, the server admits only client-a.
  std::string policy = allowPolicy("client-a", port_) +
                       doc("Policy", "b-out", "  selector: {identity: client-b}\n  egress:\n"
                                              "    - to: [{identity: server}]\n      ports: [{port: " + p + "}]\n");
  startDaemon(policy);
  EXPECT_EQ(tcpFrom(a_, AF_INET, "127.0.0.1", port_), 0);
  EXPECT_EQ(tcpFrom(b_, AF_INET, "127.0.0.1", port_), ETIMEDOUT) << "the server's ingress refuses client-b";
  auto deny = flow("ingress", "deny", "client-b", "server", port_);
  ASSERT_TRUE(deny) << daemon_->log();
  EXPECT_EQ((*deny)["src"]["cgroup"], "/client-b") << "a local caller is identified by its socket, not its IP";
  EXPECT_EQ((*deny)["src"]["pid"], nullptr) << "judged in softirq: no caller process to name";

  // The other way round: the server admits client-b, client-b's egress does not allow.
  policy = allowPolicy("client-a", port_) +
           doc("Policy", "admit-b", "  selector: {identity: server}\n  ingress:\n"
                                    "    - from: [{identity: client-b}]\n      ports: [{port: " + p + "}]\n");
  ASSERT_NO_FATAL_FAILURE(apply(policy));
  EXPECT_EQ(tcpFrom(b_, AF_INET, "127.0.0.1", port_), EPERM) << "client-b's egress refuses at once";
}

TEST_F(Ingress, UdpAnswersNeedOnlyTheInboundRule) {
  const int u = port_ + 1;
  Child e4 = udpEchoServer(srv_, AF_INET, "127.0.0.1", u);
  Child e6 = udpEchoServer(srv_, AF_INET6, "::1", u);
  ASSERT_TRUE(e4.ready() && e6.ready());
  // client-a may send to the server's UDP port and the server admits it; no
  // rule covers the answers (server egress, client-a ingress: default deny).
  startDaemon(allowPolicy("client-a", port_, /*udp=*/true));
  for (int family : {AF_INET, AF_INET6}) {
    const std::string addr = family == AF_INET ? "127.0.0.1" : "::1";
    SCOPED_TRACE(addr);
    EXPECT_EQ(udpFrom(a_, family, addr, u, /*connected=*/false), 0) << "unconnected: the echo comes back";
    EXPECT_EQ(udpFrom(a_, family, addr, u, /*connected=*/true), 0) << "connected: the echo comes back";
    EXPECT_EQ(udpFrom(b_, family, addr, u, false), EPERM) << "client-b has no egress rule";
    // The server may answer the peer it heard from, not another port of it.
    EXPECT_EQ(runIn(a_, [&] { return udpAskUnsolicited(family, addr, u, port_ + 7); }), EPERM);
  }
  auto s = daemon_->status();
  ASSERT_TRUE(s);
  EXPECT_GE((*s)["counters"]["udp_answers"].get<int>(), 4) << "answers and replies passed as such";

  // A DNS-style server for callers outside the tree: only its inbound rule.
  const std::string host = ownCgroup();
  EXPECT_EQ(udpFrom(host, AF_INET, "127.0.0.1", u, false), ETIMEDOUT) << "not admitted yet";
  ASSERT_TRUE(flow("ingress", "deny", "host", "server", u)) << daemon_->log();
  ASSERT_NO_FATAL_FAILURE(apply(allowPolicy("client-a", port_, true) +
                                doc("Policy", "dns-like", "  selector: {identity: server}\n  ingress:\n"
                                                          "    - from: [host]\n      ports: [{port: " +
                                                              std::to_string(u) + ", protocol: UDP}]\n")));
  EXPECT_EQ(udpFrom(host, AF_INET, "127.0.0.1", u, false), 0);
  EXPECT_EQ(udpFrom(host, AF_INET6, "::1", u, true), 0);

  // A managed socket that never talked to a peer does not hear from it:
  // client-a's ingress judges a datagram nobody asked for.
  Child aSock = udpEchoServer(a_, AF_INET, "127.0.0.1", port_ + 3);
  ASSERT_TRUE(aSock.ready());
  EXPECT_EQ(udpFrom(host, AF_INET, "127.0.0.1", port_ + 3, false), ETIMEDOUT);
  ASSERT_TRUE(flow("ingress", "deny", "host", "client-a", port_ + 3)) << daemon_->log();
}

// Entries of the daemon's pinned ms_udp_flows (bpftool's dump), -1 if unreadable.
long udpFlowEntries(const Daemon& d) {
  const std::string path = d.stateDir() + "/abi-" + std::to_string(MS_ABI_VERSION) + "/ms_udp_flows";
  FILE* p = popen(("bpftool -j map dump pinned " + path + " 2>/dev/null").c_str(), "r");
  if (p == nullptr) return -1;
  std::string out;
  char buf[4096];
  for (size_t n; (n = fread(buf, 1, sizeof(buf), p)) > 0;) out.append(buf, n);
  if (pclose(p) != 0) return -1;
  const json dump = json::parse(out, nullptr, /*allow_exceptions=*/false);
  return dump.is_array() ? long(dump.size()) : -1;
}

TEST_F(Ingress, ConnectedUdpClientsLeaveNoExchangeEntry) {
  const int u = port_ + 1;
  Child echo = udpEchoServer(srv_, AF_INET, "127.0.0.1", u);
  ASSERT_TRUE(echo.ready());
  startDaemon(allowPolicy("client-a", port_, /*udp=*/true));
  const long before = udpFlowEntries(*daemon_);
  ASSERT_GE(before, 0);
  // A connected client: its replies pass by the socket's mark; only the
  // server's side (it heard from the client, so it may answer) is recorded.
  for (int i = 0; i < 5; i++) ASSERT_EQ(udpFrom(a_, AF_INET, "127.0.0.1", u, /*connected=*/true), 0);
  // (At most: two clients may get the same ephemeral port, one server key.)
  const long connected = udpFlowEntries(*daemon_);
  EXPECT_GE(connected - before, 1);
  EXPECT_LE(connected - before, 5) << "one entry per request, the server's: none for the connected clients";
  // An unconnected client needs its own entry (its socket's) to hear the answer.
  for (int i = 0; i < 5; i++) ASSERT_EQ(udpFrom(a_, AF_INET, "127.0.0.1", u, /*connected=*/false), 0);
  EXPECT_GE(udpFlowEntries(*daemon_) - connected, 6) << "the five clients' and the server's";
}

TEST_F(Ingress, TheDaemonExpiresSilentUdpExchanges) {
  const int u = port_ + 1;
  Child echo = udpEchoServer(srv_, AF_INET, "127.0.0.1", u);
  ASSERT_TRUE(echo.ready());
  // TTL 1 s: swept every second, an entry goes 2 s (TTL + slack) after its
  // last datagram.
  startDaemon(allowPolicy("client-a", port_, /*udp=*/true), "enforce", {"--answer-ttl", "1"});
  const long before = udpFlowEntries(*daemon_);
  ASSERT_GE(before, 0);
  ASSERT_EQ(udpFrom(a_, AF_INET, "127.0.0.1", u, /*connected=*/false), 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(1200));
  EXPECT_EQ(udpFlowEntries(*daemon_) - before, 2) << "a sweep has run: younger entries stay";
  long left = -1;
  for (int i = 0; i < 60 && (left = udpFlowEntries(*daemon_)) != 0; i++) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_EQ(left, 0) << daemon_->log();
  auto s = daemon_->status();
  ASSERT_TRUE(s);
  EXPECT_GE((*s)["counters"]["udp_exchanges_expired"].get<int>(), 2);

  // More than a sweep step (4096 entries) and many batches: a sender that
  // opens a socket per datagram.
  constexpr int kSenders = 5000;
  ASSERT_EQ(runIn(a_, [&] {
    for (int i = 0; i < kSenders; i++) {
      if (int rc = udpSendto(AF_INET, "127.0.0.1", u); rc != 0) return rc;
    }
    return 0;
  }, 60000), 0);
  EXPECT_GE(udpFlowEntries(*daemon_), kSenders);
  for (int i = 0; i < 80 && (left = udpFlowEntries(*daemon_)) != 0; i++) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_EQ(left, 0);
  s = daemon_->status();
  ASSERT_TRUE(s);
  EXPECT_GE((*s)["counters"]["udp_exchanges_expired"].get<int>(), 2 + kSenders);
}

// Kubernetes NetworkPolicy semantics (`selected`) against zero trust
// (`always`), on the same policies.
struct K8sCase {
  const char* what;
  std::string policy;  // in addition to the workloads
  int aToServer;       // expected results under `selected`
  int bToServer;
  int aToOtherPort;
};

class IngressK8s : public Ingress {
 protected:
  std::vector<K8sCase> cases() const {
    const std::string p = std::to_string(port_), q = std::to_string(port_ + 2);
    const std::string serverIn = "  selector: {matchLabels: {app: server}}\n  ingress:\n";
    return {
        {"default deny ingress", doc("Policy", "deny-all-in", "  selector: {identity: server}\n  ingress: []\n"),
         ETIMEDOUT, ETIMEDOUT, ETIMEDOUT},
        {"allow from a label",
         doc("Policy", "from-a", serverIn + "    - from: [{matchLabels: {app: client-a}}]\n      ports: [{port: " + p + "}]\n"),
         0, ETIMEDOUT, ETIMEDOUT},
        {"egress-only policy",
         doc("Policy", "a-out", "  selector: {identity: client-a}\n  egress:\n    - to: [{identity: server}]\n"
                                "      ports: [{port: " + p + ", protocol: TCP}]\n"),
         0, 0, EPERM},
        {"two policies add up",
         doc("Policy", "from-a", serverIn + "    - from: [{identity: client-a}]\n      ports: [{port: " + p + "}]\n") +
             doc("Policy", "from-b", serverIn + "    - from: [{identity: client-b}]\n      ports: [{port: " + p + "}]\n"),
         0, 0, ETIMEDOUT},
    };
  }
  void run(const std::string& enforcement) {
    Child s1 = tcpServer(srv_, AF_INET, "127.0.0.1", port_);
    Child s2 = tcpServer(srv_, AF_INET, "127.0.0.1", port_ + 2);
    ASSERT_TRUE(s1.ready() && s2.ready());
    const auto all = cases();
    startDaemon(workloads() + all[0].policy, "enforce", {"--default-enforcement", enforcement});
    for (size_t i = 0; i < all.size(); i++) {
      const auto& c = all[i];
      SCOPED_TRACE(std::string(c.what) + " (" + enforcement + ")");
      if (i > 0) {
        ASSERT_NO_FATAL_FAILURE(apply(workloads() + c.policy));
      }
      const int a = tcpFrom(a_, AF_INET, "127.0.0.1", port_);
      const int b = tcpFrom(b_, AF_INET, "127.0.0.1", port_);
      const int other = tcpFrom(a_, AF_INET, "127.0.0.1", port_ + 2);
      if (enforcement == "selected") {
        EXPECT_EQ(a, c.aToServer);
        EXPECT_EQ(b, c.bToServer);
        EXPECT_EQ(other, c.aToOtherPort);
      } else {
        // Zero trust: nothing passes that both sides do not allow; none of
        // these policies allows both sides of anything.
        EXPECT_NE(a, 0);
        EXPECT_NE(b, 0);
        EXPECT_NE(other, 0);
      }
    }
  }
};

TEST_F(IngressK8s, SelectedModeIsKubernetesNetworkPolicy) { run("selected"); }
TEST_F(IngressK8s, AlwaysModeDeniesAllOfThemUntilBothSidesAllow) {
  run("always");
  // ... and passes once both sides allow.
  Child s1 = tcpServer(srv_, AF_INET, "127.0.0.1", port_ + 4);
  ASSERT_TRUE(s1.ready());
  ASSERT_NO_FATAL_FAILURE(apply(allowPolicy("client-a", port_ + 4)));
  EXPECT_EQ(tcpFrom(a_, AF_INET, "127.0.0.1", port_ + 4), 0);
}

// Two "containers": each a netns + a cgroup of its own, linked by a veth
// pair, talking by their own addresses.
class Containers : public Ingress {
 protected:
  void SetUp() override {
    Ingress::SetUp();
    ctrA_ = tree_.create("ctr-a");
    ctrB_ = tree_.create("ctr-b");
    ASSERT_TRUE(nsA_.ok() && nsB_.ok());
    ASSERT_TRUE(vethPair(nsA_, {"10.77.0.1/24", "fd00:77::1/64"}, nsB_, {"10.77.0.2/24", "fd00:77::2/64"},
                         "ms" + std::to_string(getpid() % 100000) + "c"));
  }
  std::string policy(int p, int q) const {
    const std::string ps = std::to_string(p), qs = std::to_string(q);
    // a -> b on p (both sides); b's egress allows a:q but a does not admit b.
    return workload("ctr-a", "ctr-a") + workload("ctr-b", "ctr-b") +
           doc("Policy", "a-out", "  selector: {identity: ctr-a}\n  egress:\n    - to: [{identity: ctr-b}]\n"
                                  "      ports: [{port: " + ps + "}]\n") +
           doc("Policy", "b-in", "  selector: {identity: ctr-b}\n  ingress:\n    - from: [{identity: ctr-a}]\n"
                                 "      ports: [{port: " + ps + "}]\n") +
           doc("Policy", "b-out", "  selector: {identity: ctr-b}\n  egress:\n    - to: [{identity: ctr-a}]\n"
                                  "      ports: [{port: " + qs + "}]\n");
  }
  // Waits until the daemon has the workload's netns addresses.
  bool knows(const std::string& workload, const std::string& addr) {
    for (int i = 0; i < 150; i++) {
      auto s = daemon_->status();
      if (s) {
        for (const auto& w : (*s)["workloads"]) {
          if (w["name"] != workload) continue;
          for (const auto& n : w["netns"]) {
            for (const auto& a : n["addresses"]) {
              if (a == addr) return true;
            }
          }
        }
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return false;
  }
  Netns nsA_, nsB_;
  std::string ctrA_, ctrB_;
};

TEST_F(Containers, VerdictsFollowTheirIdentitiesBothWays) {
  const int p = port_, q = port_ + 1, r = port_ + 2;
  Child b4 = tcpServer(ctrB_, AF_INET, "0.0.0.0", p, nsB_.path());
  Child br = tcpServer(ctrB_, AF_INET, "0.0.0.0", r, nsB_.path());
  Child b6 = tcpServer(ctrB_, AF_INET6, "::", p, nsB_.path());
  Child bu = udpEchoServer(ctrB_, AF_INET, "0.0.0.0", p, nsB_.path());
  Child bu6 = udpEchoServer(ctrB_, AF_INET6, "::", p, nsB_.path());
  Child a4 = tcpServer(ctrA_, AF_INET, "0.0.0.0", q, nsA_.path());
  Child a6 = tcpServer(ctrA_, AF_INET6, "::", q, nsA_.path());
  Child au = udpEchoServer(ctrA_, AF_INET, "0.0.0.0", q, nsA_.path());
  Child au6 = udpEchoServer(ctrA_, AF_INET6, "::", q, nsA_.path());
  ASSERT_TRUE(b4.ready() && br.ready() && b6.ready() && bu.ready() && bu6.ready() && a4.ready() && a6.ready() &&
              au.ready() && au6.ready());
  startDaemon(policy(p, q));
  ASSERT_TRUE(knows("ctr-a", "10.77.0.1") && knows("ctr-b", "10.77.0.2") && knows("ctr-b", "fd00:77::2"))
      << (*daemon_->status())["workloads"].dump();

  // a -> b: a's egress and b's ingress allow it, over IPv4 and IPv6, TCP and UDP.
  EXPECT_EQ(tcpFrom(ctrA_, AF_INET, "10.77.0.2", p, nsA_.path()), 0);
  EXPECT_EQ(tcpFrom(ctrA_, AF_INET6, "fd00:77::2", p, nsA_.path()), 0);
  EXPECT_EQ(udpFrom(ctrA_, AF_INET, "10.77.0.2", p, false, nsA_.path()), 0) << "and the answer gets back in";
  EXPECT_EQ(udpFrom(ctrA_, AF_INET, "10.77.0.2", p, true, nsA_.path()), 0);
  EXPECT_EQ(udpFrom(ctrA_, AF_INET6, "fd00:77::2", p, false, nsA_.path()), 0);
  EXPECT_EQ(udpFrom(ctrA_, AF_INET6, "fd00:77::2", p, true, nsA_.path()), 0);
  // a -> b on another port: a's egress refuses.
  EXPECT_EQ(tcpFrom(ctrA_, AF_INET, "10.77.0.2", r, nsA_.path()), EPERM);
  // b -> a: b's egress allows, a's ingress does not admit b.
  EXPECT_EQ(tcpFrom(ctrB_, AF_INET, "10.77.0.1", q, nsB_.path()), ETIMEDOUT);
  EXPECT_EQ(tcpFrom(ctrB_, AF_INET6, "fd00:77::1", q, nsB_.path()), ETIMEDOUT);
  EXPECT_EQ(udpFrom(ctrB_, AF_INET, "10.77.0.1", q, false, nsB_.path()), ETIMEDOUT) << "UDP the other way too";
  EXPECT_EQ(udpFrom(ctrB_, AF_INET6, "fd00:77::1", q, false, nsB_.path()), ETIMEDOUT);

  auto in = flow("ingress", "deny", "ctr-b", "ctr-a", q);
  ASSERT_TRUE(in) << daemon_->log();
  EXPECT_EQ((*in)["src"]["addr"], "10.77.0.2") << "known by its container's address";
  auto out = daemon_->waitFlow([&](const json& f) {
    return f["direction"] == "egress" && f["verdict"] == "deny" && f["src"]["workload"] == "ctr-a" && f["dst"]["port"] == r;
  });
  ASSERT_TRUE(out) << daemon_->log();
  EXPECT_EQ((*out)["dst"]["workload"], "ctr-b") << "the destination container is identified by its address";
  EXPECT_EQ((*out)["dst"]["cgroup"], nullptr) << "its socket is in another netns: not looked up";

  // A new address of b's is known at once (netlink), and judged as b.
  ASSERT_TRUE(nsB_.ip({"addr", "add", "10.77.0.12/24", "dev", "ms" + std::to_string(getpid() % 100000) + "cb"}));
  ASSERT_TRUE(knows("ctr-b", "10.77.0.12"));
  EXPECT_EQ(tcpFrom(ctrA_, AF_INET, "10.77.0.12", p, nsA_.path()), 0);
  EXPECT_EQ(tcpFrom(ctrB_, AF_INET, "10.77.0.1", q, nsB_.path(), "10.77.0.12"), ETIMEDOUT);

  // Something in b's netns outside the managed tree is still b's address to
  // a: a container's address is its identity (documented limit).
  EXPECT_EQ(tcpFrom(ownCgroup(), AF_INET, "10.77.0.1", q, nsB_.path()), ETIMEDOUT);
}

}  // namespace
}  // namespace microseg::e2e

namespace microseg::e2e {
namespace {

// A "remote host": a netns of its own linked to the server's netns by a
// veth pair; its processes are outside the managed tree (nobody judges
// their egress). It has addresses in a partner range, in a hole of that
// range (`except`), and in no range at all (world).
class RemoteHost : public Ingress {
 protected:
  void SetUp() override {
    Ingress::SetUp();
    ASSERT_TRUE(nsS_.ok() && nsR_.ok());
    ASSERT_TRUE(vethPair(nsS_, {"10.79.0.1/24", "10.80.0.1/24", "fd00:79::1/64"}, nsR_,
                         {"10.79.0.2/24", "10.79.0.200/24", "10.80.0.2/24", "fd00:79::2/64", "fd00:79::8000:2/64"},
                         "ms" + std::to_string(getpid() % 100000) + "r"));
  }
  std::string policy(int p, int q) const {
    const std::string ps = std::to_string(p), qs = std::to_string(q), ws = std::to_string(p + 2);
    return workloads() +
           doc("External", "partner",
               "  labels: {zone: partner}\n  cidrs: [\"10.79.0.0/24\", \"fd00:79::/64\"]\n"
               "  except: [\"10.79.0.128/25\", \"fd00:79::8000:0/97\"]\n") +
           doc("Policy", "server-in", "  selector: {identity: server}\n  ingress:\n"
                                      "    - from: [{identity: partner}]\n      ports: [{port: " + ps + ", protocol: TCP}]\n"
                                      "    - from: [{matchLabels: {zone: partner}}]\n      ports: [{port: " + ps + ", protocol: UDP}]\n"
                                      "    - from: [world]\n      ports: [{port: " + ws + ", protocol: TCP}]\n") +
           doc("Policy", "server-out", "  selector: {identity: server}\n  egress:\n"
                                       "    - to: [{cidr: 10.79.0.0/24, except: [10.79.0.128/25]}]\n"
                                       "      ports: [{port: " + qs + ", protocol: TCP}]\n");
  }
  Netns nsS_, nsR_;
};

TEST_F(RemoteHost, ExternalCidrsAdmitARemoteHostExceptItsHoles) {
  const int p = port_, q = port_ + 1;
  Child s4 = tcpServer(srv_, AF_INET, "0.0.0.0", p, nsS_.path());
  Child s6 = tcpServer(srv_, AF_INET6, "::", p, nsS_.path());
  Child su = udpEchoServer(srv_, AF_INET, "0.0.0.0", p, nsS_.path());
  Child sw = tcpServer(srv_, AF_INET, "0.0.0.0", p + 2, nsS_.path());
  const std::string remote = ownCgroup();  // outside the managed tree
  Child r4 = tcpServer(remote, AF_INET, "0.0.0.0", q, nsR_.path());
  ASSERT_TRUE(s4.ready() && s6.ready() && su.ready() && sw.ready() && r4.ready());
  startDaemon(policy(p, q));
  const std::string R = nsR_.path(), S = nsS_.path();

  // From inside the partner range: admitted, TCP and UDP (the echo comes back).
  EXPECT_EQ(tcpFrom(remote, AF_INET, "10.79.0.1", p, R, "10.79.0.2"), 0);
  EXPECT_EQ(tcpFrom(remote, AF_INET6, "fd00:79::1", p, R, "fd00:79::2"), 0);
  EXPECT_EQ(udpFrom(remote, AF_INET, "10.79.0.1", p, false, R, "10.79.0.2"), 0);
  // From the hole: dropped; from outside every range (world): dropped.
  EXPECT_EQ(tcpFrom(remote, AF_INET, "10.79.0.1", p, R, "10.79.0.200"), ETIMEDOUT);
  EXPECT_EQ(tcpFrom(remote, AF_INET6, "fd00:79::1", p, R, "fd00:79::8000:2"), ETIMEDOUT);
  EXPECT_EQ(tcpFrom(remote, AF_INET, "10.80.0.1", p, R, "10.80.0.2"), ETIMEDOUT);
  EXPECT_EQ(udpFrom(remote, AF_INET, "10.79.0.1", p, false, R, "10.79.0.200"), ETIMEDOUT);

  auto hole = daemon_->waitFlow([&](const json& f) {
    return f["direction"] == "ingress" && f["verdict"] == "deny" && f["src"]["addr"] == "10.79.0.200";
  });
  ASSERT_TRUE(hole) << daemon_->log();
  EXPECT_EQ((*hole)["src"]["workload"], "world") << "an except hole is not the partner";
  EXPECT_EQ((*hole)["dst"]["workload"], "server");
  auto world = daemon_->waitFlow([&](const json& f) {
    return f["direction"] == "ingress" && f["verdict"] == "deny" && f["src"]["addr"] == "10.80.0.2";
  });
  ASSERT_TRUE(world) << daemon_->log();
  EXPECT_EQ((*world)["src"]["workload"], "world");

  // `world` is everything remote, the partner's range included.
  for (const char* src : {"10.79.0.2", "10.79.0.200", "10.80.0.2"}) {
    const std::string dst = std::string(src).rfind("10.79.", 0) == 0 ? "10.79.0.1" : "10.80.0.1";
    EXPECT_EQ(tcpFrom(remote, AF_INET, dst, p + 2, R, src), 0) << src;
  }

  // The server's egress by inline cidr: the range, not its hole.
  EXPECT_EQ(tcpFrom(srv_, AF_INET, "10.79.0.2", q, S), 0);
  EXPECT_EQ(tcpFrom(srv_, AF_INET, "10.79.0.200", q, S), EPERM);
  EXPECT_EQ(tcpFrom(srv_, AF_INET, "10.80.0.2", q, S), EPERM);

  // explain knows the remote ends by address (and by name where that is one identity).
  auto ex = daemon_->cli({"explain", "--from", "10.79.0.2", "--to", "server", "--port", std::to_string(p) + "/tcp", "-o", "json"});
  ASSERT_EQ(ex.rc, 0) << ex.err;
  auto exj = json::parse(ex.out);
  EXPECT_EQ(exj["verdict"], "allow") << ex.out;
  EXPECT_NE(exj["from"]["workload"].get<std::string>().find("partner"), std::string::npos) << ex.out;
  auto hx = daemon_->cli({"explain", "--from", "10.79.0.200", "--to", "server", "--port", std::to_string(p) + "/tcp", "-o", "json"});
  ASSERT_EQ(hx.rc, 0) << hx.err;
  EXPECT_EQ(json::parse(hx.out)["verdict"], "deny") << hx.out;
  EXPECT_EQ(json::parse(hx.out)["from"]["workload"], "world") << hx.out;
  auto v6 = daemon_->cli({"explain", "--from", "partner", "--to", "server", "--port", std::to_string(p) + "/tcp"});
  EXPECT_EQ(v6.rc, 1) << "partner's IPv4 part overlaps the inline cidr peer: two identities";
  EXPECT_NE(v6.err.find("name an address in it"), std::string::npos) << v6.err;
}

}  // namespace
}  // namespace microseg::e2e
