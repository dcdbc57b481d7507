// The attack suite: the bypasses of an adversarial battery against the
// datapath, each asserted with its exact outcome in enforce mode (refused:
// EPERM at the syscall, or the packet dropped) and in monitor mode (it
// passes, and an audit event or a counter says it would have been refused).
// Real kernel, real daemon, throwaway cgroups and network namespaces.
//
// The policy of the battery: client-b may call `host` (TCP P, UDP U) and
// `world` (UDP U) but the server only on P2 (TCP) and P4 (UDP); client-a may
// call the server on P, U and P4, and any peer on UDP M; the server admits
// client-a (P, U, P4, M) and `host` (P, U, P2, P4), never client-b.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/ip_icmp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <thread>

#include "attacks_util.h"
#include "bpf/abi.h"
#include "control/metrics_text.h"
#include "harness.h"
#include "policies.h"

namespace microseg::e2e {
namespace {

using nlohmann::json;

TEST_F(Attacks, UnspecifiedDestinationIsJudgedAsTheLoopbackItReaches) {
  Child t4 = tcpServer(srv_, AF_INET, "127.0.0.1", P());
  Child t6 = tcpServer(srv_, AF_INET6, "::1", P());
  Child u4 = udpEchoServer(srv_, AF_INET, "127.0.0.1", U());
  Child u6 = udpEchoServer(srv_, AF_INET6, "::1", U());
  ASSERT_TRUE(t4.ready() && t6.ready() && u4.ready() && u6.ready());
  ASSERT_NO_FATAL_FAILURE(start());
  for (const std::string mode : {"enforce", "monitor"}) {
    SCOPED_TRACE(mode);
    ASSERT_NO_FATAL_FAILURE(setMode(mode));
    const bool enforce = mode == "enforce";
    const long audited = counter("audited");
    // The kernel sends a connect or datagram to an unspecified address to
    // loopback: the server's listener, not `host`.
    EXPECT_EQ(tcpFrom(b_, AF_INET, "127.0.0.1", P()), enforce ? EPERM : 0);
    EXPECT_EQ(tcpFrom(b_, AF_INET, "0.0.0.0", P()), enforce ? EPERM : 0);
    EXPECT_EQ(tcpFrom(b_, AF_INET6, "::", P()), enforce ? EPERM : 0);
    EXPECT_EQ(tcpFrom(b_, AF_INET6, "::ffff:0.0.0.0", P()), enforce ? EPERM : 0);
    EXPECT_EQ(runIn(b_, [&] { return udpSendto(AF_INET, "0.0.0.0", U()); }), enforce ? EPERM : 0);
    EXPECT_EQ(runIn(b_, [&] { return udpSendto(AF_INET6, "::", U()); }), enforce ? EPERM : 0);
    EXPECT_EQ(runIn(b_, [&] { return udpSendto(AF_INET6, "::ffff:0.0.0.0", U()); }), enforce ? EPERM : 0);
    // client-a may call the server: to it, 0.0.0.0 is the server too, and
    // the echo comes back as the answer to what it sent (the exchange is
    // with 127.0.0.1, where the answer comes from).
    EXPECT_EQ(tcpFrom(a_, AF_INET, "0.0.0.0", P()), 0);
    EXPECT_EQ(tcpFrom(a_, AF_INET6, "::", P()), 0);
    EXPECT_EQ(runIn(a_, [&] { return udpRequest(AF_INET, "0.0.0.0", U(), false, kDropMs); }), 0);
    EXPECT_EQ(runIn(a_, [&] { return udpRequest(AF_INET6, "::", U(), false, kDropMs); }), 0);
    if (!enforce) {
      EXPECT_GE(counter("audited") - audited, 7) << daemon_->log();
    }
    // The flow record shows the destination the kernel used.
    auto f = daemon_->waitFlow([&](const json& e) {
      return e["verdict"] == (enforce ? "deny" : "audit") && e["direction"] == "egress" &&
             e["src"]["workload"] == "client-b" && e["protocol"] == "udp" && e["dst"]["port"] == U();
    });
    ASSERT_TRUE(f) << daemon_->log();
    EXPECT_EQ((*f)["dst"]["workload"], "server");
    EXPECT_TRUE((*f)["dst"]["addr"] == "127.0.0.1" || (*f)["dst"]["addr"] == "::1") << f->dump();
    auto t = daemon_->waitFlow([&](const json& e) {
      return e["verdict"] == (enforce ? "deny" : "audit") && e["direction"] == "egress" &&
             e["src"]["workload"] == "client-b" && e["protocol"] == "tcp" && e["dst"]["port"] == P();
    });
    ASSERT_TRUE(t) << daemon_->log();
    EXPECT_EQ((*t)["dst"]["workload"], "server");
    EXPECT_EQ((*t)["dst"]["cgroup"], "/server");
  }
}

// A broadcast or multicast destination reaches every local socket on the
// port: it is never `world` (a remote unicast peer). It is `multicast`, which
// no rule names (the policy language has no reserved name for it yet), so
// only rules for any peer allow it. The receivers judge such a datagram by
// the sender's socket.
TEST_F(Attacks, BroadcastAndMulticastAreNeverAUnicastPeer) {
  Netns nsA, nsB;
  ASSERT_TRUE(nsA.ok() && nsB.ok());
  const std::string prefix = "ms" + std::to_string(getpid() % 100000) + "m";
  ASSERT_TRUE(vethPair(nsA, {"10.78.0.1/24", "fd00:78::1/64"}, nsB, {"10.78.0.2/24", "fd00:78::2/64"}, prefix));
  const std::string dev = prefix + "a";
  ASSERT_TRUE(nsA.ip({"route", "add", "default", "dev", dev}));
  const std::string A = nsA.path();
  Child u4 = udpEchoServer(srv_, AF_INET, "0.0.0.0", U(), A);
  Child m4 = udpEchoServer(srv_, AF_INET, "0.0.0.0", M(), A);
  Child m6 = udpEchoServer(srv_, AF_INET6, "::", M(), A);
  Child remote = udpEchoServer(ownCgroup(), AF_INET, "0.0.0.0", U(), nsB.path());
  ASSERT_TRUE(u4.ready() && m4.ready() && m6.ready() && remote.ready());
  ASSERT_NO_FATAL_FAILURE(start({"--log-allowed"}));
  ASSERT_TRUE(knows("server", "10.78.0.1")) << (*daemon_->status())["workloads"].dump();
  auto send = [&](const std::string& cg, int family, const std::string& addr, int port) {
    return runIn(cg, [=] { return udpSendtoDev(family, addr, port, dev, /*broadcast=*/true); }, 5000, A);
  };
  for (const std::string mode : {"enforce", "monitor"}) {
    SCOPED_TRACE(mode);
    ASSERT_NO_FATAL_FAILURE(setMode(mode));
    const bool enforce = mode == "enforce";
    const long audited = counter("audited"), multicast = counter("multicast");
    // client-b may send to world on U, not to the server: a broadcast or a
    // multicast group would reach the server's socket on U.
    EXPECT_EQ(send(b_, AF_INET, "10.78.0.255", U()), enforce ? EPERM : 0) << "subnet-directed broadcast";
    EXPECT_EQ(send(b_, AF_INET, "255.255.255.255", U()), enforce ? EPERM : 0) << "limited broadcast";
    EXPECT_EQ(send(b_, AF_INET, "224.0.0.1", U()), enforce ? EPERM : 0) << "IPv4 all-hosts group";
    EXPECT_EQ(send(b_, AF_INET6, "ff02::1", U()), enforce ? EPERM : 0) << "IPv6 link-local all-nodes";
    EXPECT_EQ(send(b_, AF_INET6, "::ffff:224.0.0.1", U()), enforce ? EPERM : 0) << "v4-mapped group";
    // A unicast address of the other end is world: allowed.
    EXPECT_EQ(send(b_, AF_INET, "10.78.0.2", U()), 0);
    EXPECT_EQ(counter("multicast") - multicast, 5);
    if (!enforce) {
      EXPECT_GE(counter("audited") - audited, 5) << "and the receivers' ingress";
    }
    auto f = daemon_->waitFlow([&](const json& e) {
      return e["verdict"] == (enforce ? "deny" : "audit") && e["direction"] == "egress" &&
             e["src"]["workload"] == "client-b" && e["dst"]["port"] == U();
    });
    ASSERT_TRUE(f) << daemon_->log();
    EXPECT_EQ((*f)["dst"]["workload"], "multicast");
    EXPECT_EQ((*f)["dst"]["identity"], MS_IDENTITY_MULTICAST);
    if (!enforce) {
      // It was delivered: the server's ingress judged it by client-b's socket.
      auto in = daemon_->waitFlow([&](const json& e) {
        return e["verdict"] == "audit" && e["direction"] == "ingress" && e["dst"]["workload"] == "server" &&
               e["dst"]["port"] == U();
      });
      ASSERT_TRUE(in) << daemon_->log();
      EXPECT_EQ((*in)["src"]["workload"], "client-b");
      EXPECT_EQ((*in)["src"]["cgroup"], "/client-b");
    }
  }
  // A rule for any peer allows a group (client-a on M); the receiver admits
  // client-a by its socket, and a host process (not judged at its egress)
  // is `host` to it, which it does not admit on M.
  ASSERT_NO_FATAL_FAILURE(setMode("enforce"));
  EXPECT_EQ(send(a_, AF_INET, "224.0.0.1", M()), 0);
  EXPECT_EQ(send(a_, AF_INET6, "ff02::1", M()), 0);
  EXPECT_EQ(send(ownCgroup(), AF_INET, "224.0.0.1", M()), 0);
  auto admitted = daemon_->waitFlow([&](const json& e) {
    return e["verdict"] == "allow" && e["direction"] == "ingress" && e["dst"]["port"] == M() &&
           e["src"]["workload"] == "client-a";
  });
  ASSERT_TRUE(admitted) << daemon_->log();
  auto refused = daemon_->waitFlow([&](const json& e) {
    return e["verdict"] == "deny" && e["direction"] == "ingress" && e["dst"]["port"] == M();
  });
  ASSERT_TRUE(refused) << daemon_->log();
  EXPECT_EQ((*refused)["src"]["workload"], "host") << "by its socket, not world";
}

// UDP-Lite sockets live in a table of their own, which the socket lookups
// do not search: a governed UDP-Lite socket is refused (not policed).
TEST_F(Attacks, UdpLiteIsRefusedForGovernedSockets) {
  Child server = udpLiteEchoServer(srv_, U());
  Child hostServer = udpLiteEchoServer(ownCgroup(), U() + 20);
  ASSERT_TRUE(server.ready() && hostServer.ready());
  const int metricsPort = port_ + 15;
  ASSERT_NO_FATAL_FAILURE(start({"--metrics-listen", "127.0.0.1:" + std::to_string(metricsPort)}));
  const std::string host = ownCgroup();
  for (const std::string mode : {"enforce", "monitor"}) {
    SCOPED_TRACE(mode);
    ASSERT_NO_FATAL_FAILURE(setMode(mode));
    const bool enforce = mode == "enforce";
    const long refused = counter("unsupported_protocol");
    EXPECT_EQ(runIn(b_, [&] { return udpLiteRequest(U(), kDropMs); }), enforce ? EPERM : 0) << "client-b";
    EXPECT_EQ(runIn(a_, [&] { return udpLiteRequest(U(), kDropMs); }), enforce ? EPERM : 0) << "client-a";
    // Nobody judges the host's egress; the server's ingress drops it.
    EXPECT_EQ(runIn(host, [&] { return udpLiteRequest(U(), kDropMs); }), enforce ? ETIMEDOUT : 0) << "host";
    // Not governed at either end: not ours to refuse.
    EXPECT_EQ(runIn(host, [&] { return udpLiteRequest(U() + 20, kDropMs); }), 0);
    // enforce: two egress refusals, one ingress drop; monitor: and the
    // server's echoes (egress) and the clients' receiving sockets.
    EXPECT_GE(counter("unsupported_protocol") - refused, enforce ? 3 : 6) << daemon_->log();
  }
  // The metric says the same as status.
  const std::string out = loopbackExchange(metricsPort, "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
  const auto body = out.find("\r\n\r\n");
  ASSERT_NE(body, std::string::npos) << out;
  auto fams = metrics::parse(out.substr(body + 4));
  ASSERT_TRUE(fams) << fams.error().str();
  double scraped = -1;
  for (const auto& f : *fams) {
    if (f.name != "microseg_failed_closed_total") continue;
    for (const auto& smp : f.samples) {
      if (smp.labels == std::map<std::string, std::string>{{"reason", "unsupported_protocol"}}) scraped = smp.value;
    }
  }
  EXPECT_EQ(scraped, double(counter("unsupported_protocol")));
}

// A socket bound to a device (SO_BINDTODEVICE needs no privilege) that sends
// to a local address is not found by the receiving side's lookup (made on
// the loopback device): it is `unattributed`, which no rule names, never
// `host`. Combined with an unspecified destination it defeated both sides.
TEST_F(Attacks, DeviceBoundSendersAreAttributedOrFailClosed) {
  const auto [hostAddr, dev] = hostAddress();
  ASSERT_FALSE(hostAddr.empty()) << "no IPv4 address on an interface that is up";
  Child s2 = tcpServer(srv_, AF_INET, hostAddr, P2());
  Child s1 = tcpServer(srv_, AF_INET, hostAddr, P());
  Child u = udpEchoServer(srv_, AF_INET, hostAddr, P4());
  ASSERT_TRUE(s1.ready() && s2.ready() && u.ready());
  ASSERT_NO_FATAL_FAILURE(start());
  const std::string host = ownCgroup();
  auto tcpDev = [&](const std::string& cg, const std::string& addr, int port, const std::string& d) {
    return runIn(cg, [=] { return tcpConnectDev(addr, port, d, kDropMs); });
  };
  for (const std::string mode : {"enforce", "monitor"}) {
    SCOPED_TRACE(mode);
    ASSERT_NO_FATAL_FAILURE(setMode(mode));
    const bool enforce = mode == "enforce";
    const long unattributed = counter("unattributed");
    // client-b's egress allows the server on P2; the server admits host,
    // never client-b.
    EXPECT_EQ(tcpDev(b_, hostAddr, P2(), ""), enforce ? ETIMEDOUT : 0) << "client-b, by its socket";
    EXPECT_EQ(tcpDev(b_, hostAddr, P2(), dev), enforce ? ETIMEDOUT : 0) << "client-b bound to " << dev;
    EXPECT_EQ(runIn(b_, [&] { return udpRequestDev(hostAddr, P4(), dev, kDropMs); }), enforce ? ETIMEDOUT : 0);
    // Both sides at once: 0.0.0.0 from a socket bound to a device goes to
    // that device's address, which the egress hook cannot know: refused.
    EXPECT_EQ(tcpDev(b_, "0.0.0.0", P(), dev), enforce ? EPERM : 0);
    // The cost of failing closed: a host process bound to a device is no
    // longer `host` to a local server.
    EXPECT_EQ(tcpDev(host, hostAddr, P2(), dev), enforce ? ETIMEDOUT : 0);
    EXPECT_EQ(tcpDev(host, hostAddr, P2(), ""), 0) << "the host, unbound, is admitted";
    EXPECT_GE(counter("unattributed") - unattributed, 3);
    auto f = daemon_->waitFlow([&](const json& e) {
      return e["verdict"] == (enforce ? "deny" : "audit") && e["direction"] == "ingress" &&
             e["dst"]["port"] == P2() && e["src"]["workload"] == "unattributed";
    });
    ASSERT_TRUE(f) << daemon_->log();
    EXPECT_EQ((*f)["src"]["identity"], MS_IDENTITY_UNATTRIBUTED);
    EXPECT_EQ((*f)["dst"]["workload"], "server");
  }
}

// A process 40 cgroups below its workload's (delegation allows any depth) is
// that workload, before the daemon has seen the chain and after (the scan
// stops 32 levels below the root), never `host`.
TEST_F(Attacks, DeepCgroupsAreTheirWorkload) {
  Child s = tcpServer(srv_, AF_INET, "127.0.0.1", P());
  ASSERT_TRUE(s.ready());
  ASSERT_NO_FATAL_FAILURE(start());
  for (const std::string mode : {"enforce", "monitor"}) {
    SCOPED_TRACE(mode);
    ASSERT_NO_FATAL_FAILURE(setMode(mode));
    const bool enforce = mode == "enforce";
    DeepChain chain(b_, mode, 40);
    ASSERT_TRUE(chain.ok());
    // At once: nobody has classified any of the 40.
    EXPECT_EQ(tcpFrom(chain.bottom(), AF_INET, "127.0.0.1", P()), enforce ? EPERM : 0);
    auto f = daemon_->waitFlow([&](const json& e) {
      return e["verdict"] == (enforce ? "deny" : "audit") && e["direction"] == "egress" && e["dst"]["port"] == P();
    });
    ASSERT_TRUE(f) << daemon_->log();
    EXPECT_EQ((*f)["src"]["workload"], "client-b");
    EXPECT_EQ((*f)["dst"]["workload"], "server");
    // After the daemon's scan (inotify, and the 1 s rescan).
    std::this_thread::sleep_for(std::chrono::milliseconds(1500));
    const long before = counter(enforce ? "denied" : "audited");
    EXPECT_EQ(tcpFrom(chain.bottom(), AF_INET, "127.0.0.1", P()), enforce ? EPERM : 0);
    EXPECT_EQ(counter(enforce ? "denied" : "audited") - before, enforce ? 1 : 2)
        << "client-b's egress (and, in monitor, the server's ingress)";
    // A chain below the server: its listener is the server's too.
    DeepChain srvChain(srv_, mode, 40);
    ASSERT_TRUE(srvChain.ok());
    Child deepServer = tcpServer(srvChain.bottom(), AF_INET, "127.0.0.1", P() + 9);
    ASSERT_TRUE(deepServer.ready());
    EXPECT_EQ(tcpFrom(ownCgroup(), AF_INET, "127.0.0.1", P() + 9), enforce ? ETIMEDOUT : 0)
        << "the host is not admitted on this port";
    auto in = daemon_->waitFlow([&](const json& e) {
      return e["verdict"] == (enforce ? "deny" : "audit") && e["direction"] == "ingress" &&
             e["dst"]["port"] == P() + 9;
    });
    ASSERT_TRUE(in) << daemon_->log();
    EXPECT_EQ((*in)["dst"]["workload"], "server");
  }
}

// A UDP exchange is the socket's with a peer socket, not with an address:
// a workload that takes the port another workload's socket used is not
// that socket to the server (its datagram is no answer), whether it took
// the port after the first closed or shares it (SO_REUSEADDR).
TEST_F(Attacks, UdpExchangesBelongToTheSocketsThatMadeThem) {
  Child echo = udpEchoServer(srv_, AF_INET, "127.0.0.1", P4());
  ASSERT_TRUE(echo.ready());
  ASSERT_NO_FATAL_FAILURE(start());
  const int x = port_ + 6;
  for (const std::string mode : {"enforce", "monitor"}) {
    SCOPED_TRACE(mode);
    ASSERT_NO_FATAL_FAILURE(setMode(mode));
    const bool enforce = mode == "enforce";
    // client-a's socket on port x talks to the server (both sides allow).
    ASSERT_EQ(runIn(a_, [&] { return udpRequestFrom(x, P4(), kDropMs); }), 0);
    // Closed; client-b binds x and sends to the server (its own egress
    // allows that; the server does not admit client-b).
    EXPECT_EQ(runIn(b_, [&] { return udpRequestFrom(x, P4(), kDropMs); }), enforce ? ETIMEDOUT : 0);
    auto f = daemon_->waitFlow([&](const json& e) {
      return e["verdict"] == (enforce ? "deny" : "audit") && e["direction"] == "ingress" &&
             e["dst"]["port"] == P4() && e["src"]["workload"] == "client-b";
    });
    EXPECT_TRUE(f) << daemon_->log();
    if (f) {
      EXPECT_EQ((*f)["rule"], "default-deny");
    }
    // Shared: client-a keeps its socket on x open while client-b binds it too.
    const int y = port_ + 7;
    Child holder(a_, [&] {
      int fd = udpBoundSocket(y);
      if (fd < 0 || udpExchange(fd, P4(), kDropMs) != 0) return -1;
      return fd;
    }, [&](int) { sleep(30); });
    ASSERT_TRUE(holder.ready());
    EXPECT_EQ(runIn(b_, [&] { return udpRequestFrom(y, P4(), kDropMs); }), enforce ? ETIMEDOUT : 0);
    // The other way round: client-a's socket talked to the server's socket
    // on 127.0.0.2:P4; that one closes, a host process (nobody judges its
    // egress) binds it and sends to client-a's socket: it is no answer of
    // the server's, client-a's ingress (it admits nobody) judges it.
    const int c = port_ + 10 + (enforce ? 0 : 1);
    sockaddr_in z{};
    z.sin_family = AF_INET;
    z.sin_port = htons(uint16_t(P4()));
    inet_pton(AF_INET, "127.0.0.2", &z.sin_addr);
    int heard[2];
    ASSERT_EQ(pipe2(heard, O_CLOEXEC | O_NONBLOCK), 0);
    auto zServer = std::make_unique<Child>(udpEchoServer(srv_, AF_INET, "127.0.0.2", P4()));
    ASSERT_TRUE(zServer->ready());
    Child client(a_, [&] {
      int fd = udpBoundSocket(c);
      pollfd p{fd, POLLIN, 0};
      char buf[64];
      if (fd < 0 || sendto(fd, "ping", 4, 0, reinterpret_cast<const sockaddr*>(&z), sizeof(z)) != 4 ||
          poll(&p, 1, kDropMs) <= 0 || recv(fd, buf, sizeof(buf), 0) <= 0) {
        return -1;
      }
      return fd;
    }, [&](int fd) {
      char buf[64];
      for (;;) {
        if (recv(fd, buf, sizeof(buf), 0) > 0) (void)!write(heard[1], "h", 1);
      }
    });
    ASSERT_TRUE(client.ready());
    zServer.reset();
    EXPECT_EQ(runIn(ownCgroup(), [&] {
      int fd = socket(AF_INET, SOCK_DGRAM, 0);
      sockaddr_in to{};
      to.sin_family = AF_INET;
      to.sin_port = htons(uint16_t(c));
      to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      int rc = bind(fd, reinterpret_cast<const sockaddr*>(&z), sizeof(z)) == 0 ? 0 : 1000 + errno;
      if (rc == 0) rc = sendto(fd, "spoof", 5, 0, reinterpret_cast<sockaddr*>(&to), sizeof(to)) == 5 ? 0 : errno;
      close(fd);
      return rc;
    }), 0);
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    char got[8];
    EXPECT_EQ(read(heard[0], got, sizeof(got)), enforce ? -1 : 1) << "client-a heard the host on the server's port";
    auto in = daemon_->waitFlow([&](const json& e) {
      return e["verdict"] == (enforce ? "deny" : "audit") && e["direction"] == "ingress" &&
             e["dst"]["workload"] == "client-a" && e["src"]["workload"] == "host" && e["src"]["port"] == P4();
    });
    ASSERT_TRUE(in) << daemon_->log();
    close(heard[0]);
    close(heard[1]);
  }
}

// Ping sockets: neither connect() nor sendto() is judged (ICMP is out of
// scope; README "Known limits"), so both behave alike.
TEST_F(Attacks, IcmpPingSocketsAreConsistentlyNotJudged) {
  Netns ns;
  ASSERT_TRUE(ns.ok());
  ASSERT_NO_FATAL_FAILURE(start());
  for (const std::string mode : {"enforce", "monitor"}) {
    SCOPED_TRACE(mode);
    ASSERT_NO_FATAL_FAILURE(setMode(mode));
    const long denied = counter("denied"), audited = counter("audited");
    for (const char* cg : {"client-a", "client-b"}) {
      SCOPED_TRACE(cg);
      EXPECT_EQ(runIn(tree_.path(cg), [] { return pingSocket(/*connectFirst=*/true); }, 5000, ns.path()), 0);
      EXPECT_EQ(runIn(tree_.path(cg), [] { return pingSocket(/*connectFirst=*/false); }, 5000, ns.path()), 0);
    }
    EXPECT_EQ(counter("denied"), denied);
    EXPECT_EQ(counter("audited"), audited);
  }
}

}  // namespace
}  // namespace microseg::e2e
