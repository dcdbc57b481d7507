// End-to-end tests of FQDN peers (#27): a workload may reach `{fqdn: NAME}`
// at the addresses a DNS answer to its own query gave for NAME, for the
// answer's TTL (clamped into --fqdn-min-ttl/--fqdn-max-ttl), and nowhere
// else; another workload that did not ask gets nothing, and neither does an
// answer nobody asked for. Real kernel, real daemon, a DNS responder
// (dns_responder.h) in a "remote" network namespace.
//
// Topology: `client` in netns C (10.93.0.1, fd00:93::1) and `other` in netns
// O (10.93.1.1, routed through R), both veth'd to the remote netns R, which
// holds the resolver (10.93.0.53:53, UDP) and TCP listeners on :8080 at
// 10.93.0.2-.5 and fd00:93::2-3. The processes in R are outside the
// managed tree.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <sched.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "dns_responder.h"
#include "harness.h"
#include "policies.h"

namespace microseg::e2e {
namespace {

using dns::kTypeA;
using dns::kTypeAaaa;
using dns::Via;

constexpr int kPort = 8080;       // the TCP port the fqdn rules allow
constexpr int kApiPort = 8443;    // a TCP port only api.example.test is allowed
constexpr int kCatchPort = 9053;  // client's UDP port an unsolicited answer is sent to
const char* const kResolver = "10.93.0.53";       // the trusted one (--fqdn-resolvers)
const char* const kOtherResolver = "10.93.0.54";  // allowed by policy, not trusted

std::string doc(const std::string& kind, const std::string& name, const std::string& spec) {
  return "---\napiVersion: microseg.dev/v1\nkind: " + kind + "\nmetadata: {name: " + name + "}\nspec:\n" + spec;
}

// `client` and `other` (both `tier: app`) get the same policy: DNS to the
// resolvers (10.93.0.52/30), TCP/8080 to api.example.test and *.svc.example.test, TCP/8443
// to api.example.test only; and UDP from the resolver to kCatchPort, so
// that an unsolicited answer is delivered (and could only be refused a
// binding, not the packet). `tcpPeers` and `apiPeer` replace the peers of
// the 8080 and 8443 rules.
const char* const kTcpPeers = "{fqdn: api.example.test}, {fqdn: \"*.svc.example.test\"}";
const char* const kWildcardPeer = "{fqdn: \"*.svc.example.test\"}";
std::string policy(const std::string& tcpPeers = kTcpPeers, const std::string& apiPeer = "{fqdn: api.example.test}") {
  std::string y;
  for (const char* w : {"client", "other"}) {
    y += doc("Workload", w, std::string("  cgroups: [\"") + w + "\"]\n  labels: {app: " + w + ", tier: app}\n");
  }
  return y + doc("Policy", "app-out",
                 "  selector: {matchLabels: {tier: app}}\n  egress:\n"
                 "    - to: [{cidr: 10.93.0.52/30}]\n      ports: [{port: 53, protocol: UDP}]\n"
                 "    - to: [" + tcpPeers + "]\n"
                 "      ports: [{port: " + std::to_string(kPort) + ", protocol: TCP}]\n"
                 "    - to: [" + apiPeer + "]\n"
                 "      ports: [{port: " + std::to_string(kApiPort) + ", protocol: TCP}]\n"
                 "  ingress:\n"
                 "    - from: [{cidr: " + std::string(kResolver) + "/32}]\n"
                 "      ports: [{port: " + std::to_string(kCatchPort) + ", protocol: UDP}]\n");
}

// What the resolver serves; `apiTtl` is api.example.test's TTL (A and AAAA).
dns::Zone zone(uint32_t apiTtl = 30) {
  dns::Zone z;
  z.a("api.example.test", "10.93.0.2", apiTtl)
      .aaaa("api.example.test", "fd00:93::2", apiTtl)
      .a("a.svc.example.test", "10.93.0.3")
      .a("deep.a.svc.example.test", "10.93.0.5")
      .a("svc.example.test", "10.93.0.4")
      .cname("www.svc.example.test", "lb.cdn.test")
      .a("lb.cdn.test", "10.93.0.4")
      .cname("alias.other.test", "api.example.test")
      .a("evil.test", "10.93.0.3")
      .a("api.example.test.evil.test", "10.93.0.3")
      .a("zero.svc.example.test", "10.93.0.3", 0)
      .a("shared.svc.example.test", "10.93.0.2")
      .flood("flood.svc.example.test")
      .a("tc.svc.example.test", "10.93.0.4")
      .flags("tc.svc.example.test", dns::kFlagTc)
      .a("nx.svc.example.test", "10.93.0.5")
      .flags("nx.svc.example.test", dns::kRcodeNxdomain);
  return z;
}

class Fqdn : public WorkloadTest {
 protected:
  void SetUp() override {
    WorkloadTest::SetUp();
    client_ = tree_.create("client");
    other_ = tree_.create("other");
    ASSERT_TRUE(nsC_.ok() && nsO_.ok() && nsR_.ok());
    const std::string prefix = "ms" + std::to_string(getpid() % 100000);
    ASSERT_TRUE(vethPair(nsC_, {"10.93.0.1/24", "fd00:93::1/64"}, nsR_,
                         {"10.93.0.2/24", "10.93.0.3/24", "10.93.0.4/24", "10.93.0.5/24", "10.93.0.53/24", "10.93.0.54/24",
                          "fd00:93::2/64", "fd00:93::3/64"},
                         prefix + "f"));
    ASSERT_TRUE(vethPair(nsO_, {"10.93.1.1/24"}, nsR_, {"10.93.1.254/24"}, prefix + "g"));
    ASSERT_TRUE(nsO_.ip({"route", "add", "10.93.0.0/24", "via", "10.93.1.254"}));
    remote_ = ownCgroup();  // outside the managed tree: nobody judges R's side
    servers_.push_back(tcpServer(remote_, AF_INET, "0.0.0.0", kPort, nsR_.path()));
    servers_.push_back(tcpServer(remote_, AF_INET6, "::", kPort, nsR_.path()));
    servers_.push_back(tcpServer(remote_, AF_INET, "0.0.0.0", kApiPort, nsR_.path()));
    for (const auto& s : servers_) ASSERT_TRUE(s.ready());
  }

  void TearDown() override {
    if (HasFailure() && daemon_ && daemon_->started()) {
      auto b = daemon_->request("fqdn");
      std::cerr << "---- fqdn bindings ----\n" << (b ? b->dump() : "(no answer)") << "\n";
      auto st = daemon_->status();
      if (st) std::cerr << "---- counters ----\n" << (*st)["counters"].dump() << "\n";
    }
    WorkloadTest::TearDown();
  }

  // The daemon's `fqdn` bindings (microseg fqdn), [] if it does not answer.
  nlohmann::json bindings() {
    auto b = daemon_->request("fqdn");
    return b ? (*b)["bindings"] : nlohmann::json::array();
  }

  // Starts the resolvers with `z` and the daemon (enforce) with the TTL
  // flags, trusting kResolver's answers only.
  void start(const dns::Zone& z = zone(), const std::vector<std::string>& ttlFlags = {"--fqdn-min-ttl", "1s",
                                                                                       "--fqdn-max-ttl", "1h"}) {
    resolver_ = std::make_unique<Child>(dns::responder(remote_, AF_INET, kResolver, z, nsR_.path()));
    otherResolver_ = std::make_unique<Child>(dns::responder(remote_, AF_INET, kOtherResolver, z, nsR_.path()));
    ASSERT_TRUE(resolver_->ready() && otherResolver_->ready());
    std::vector<std::string> args = ttlFlags;
    args.insert(args.end(), {"--fqdn-resolvers", kResolver});
    daemon_ = std::make_unique<Daemon>(tree_, policy(), "enforce", args);
    ASSERT_TRUE(daemon_->started()) << daemon_->log();
  }

  uint64_t generation() {
    auto s = daemon_->status();
    return s ? (*s)["policy_generation"].get<uint64_t>() : 0;
  }
  // Replaces the policy and waits until the daemon has applied it.
  void apply(const std::string& yaml) {
    const uint64_t g0 = generation();
    daemon_->writePolicy("policy.yaml", yaml);
    for (int i = 0; i < 150 && generation() == g0; i++) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    ASSERT_GT(generation(), g0) << daemon_->log();
  }

  // `cg` (in `ns`) asks the resolver; 0 if the answer's addresses are `expected`.
  int resolveIn(const std::string& cg, const std::string& ns, const std::string& name, uint16_t type, Via via,
                const std::vector<std::string>& expected, const std::string& resolver = kResolver) {
    return runIn(cg, [=] { return dns::resolveExpect(AF_INET, resolver, name, type, via, expected); }, 5000, ns);
  }
  int resolveAsClient(const std::string& name, const std::vector<std::string>& expected, Via via = Via::Sendto,
                      uint16_t type = kTypeA) {
    return resolveIn(client_, nsC_.path(), name, type, via, expected);
  }
  int tcpIn(const std::string& cg, const std::string& ns, const std::string& addr, int port = kPort) {
    const int family = addr.find(':') == std::string::npos ? AF_INET : AF_INET6;
    return runIn(cg, [=] { return tcpConnect(family, addr, port, 2000); }, 5000, ns);
  }
  int clientTcp(const std::string& addr, int port = kPort) { return tcpIn(client_, nsC_.path(), addr, port); }
  int otherTcp(const std::string& addr) { return tcpIn(other_, nsO_.path(), addr); }

  // A resolution with `via`, then: the answer's address is reachable on
  // the rule's port, nothing else is.
  void resolvedNameIsReachable(Via via) {
    ASSERT_NO_FATAL_FAILURE(start());
    EXPECT_EQ(clientTcp("10.93.0.2"), EPERM) << "nothing bound before the answer";
    ASSERT_EQ(resolveAsClient("api.example.test", {"10.93.0.2"}, via), 0);
    EXPECT_EQ(clientTcp("10.93.0.2"), 0) << "bound to api.example.test by the answer\n" << daemon_->log();
    EXPECT_EQ(clientTcp("10.93.0.3"), EPERM) << "never resolved";
    EXPECT_EQ(clientTcp("10.93.0.2", kPort + 1), EPERM) << "the rule's port only";
    EXPECT_EQ(runIn(client_, [] { return tcpConnectV4Mapped("10.93.0.2", kPort); }, 5000, nsC_.path()), 0)
        << "IPv4-mapped IPv6 is the IPv4 address";
    EXPECT_EQ(runIn(client_, [] { return tcpConnectV4Mapped("10.93.0.3", kPort); }, 5000, nsC_.path()), EPERM);
    // What `microseg fqdn` shows: one binding, the client's.
    const auto b = bindings();
    ASSERT_EQ(b.size(), 1u) << b.dump();
    EXPECT_EQ(b[0]["workload"], "client");
    EXPECT_EQ(b[0]["name"], "api.example.test");
    EXPECT_EQ(b[0]["address"], "10.93.0.2");
    EXPECT_EQ(b[0]["ttl_s"], 30);
  }

  std::string client_, other_, remote_;
  Netns nsC_, nsO_, nsR_;
  std::vector<Child> servers_;
  std::unique_ptr<Child> resolver_, otherResolver_;
};

// The baseline, without fqdn peers (a cidr peer for 10.93.0.2 instead): the
// network, the resolver, the listeners and the catcher work, and under the
// daemon the DNS exchange and the ingress rule pass. A failure of the other
// tests is then the feature's, not the set-up's.
TEST_F(Fqdn, TheTestNetworkWorksUnderACidrPolicy) {
  resolver_ = std::make_unique<Child>(dns::responder(remote_, AF_INET, kResolver, zone(), nsR_.path()));
  ASSERT_TRUE(resolver_->ready());
  EXPECT_EQ(resolveAsClient("api.example.test", {"10.93.0.9"}), ENOENT) << "the helper checks the answer";
  for (const char* a : {"10.93.0.2", "10.93.0.3", "10.93.0.4", "10.93.0.5", "fd00:93::2", "fd00:93::3"}) {
    EXPECT_EQ(clientTcp(a), 0) << a << " (no daemon yet)";
  }
  daemon_ = std::make_unique<Daemon>(tree_, policy("{cidr: 10.93.0.2/32}", "{cidr: 10.93.0.2/32}"), "enforce");
  ASSERT_TRUE(daemon_->started()) << daemon_->log();
  for (Via via : {Via::Sendto, Via::Connected}) {
    SCOPED_TRACE(via == Via::Sendto ? "sendto" : "connected");
    EXPECT_EQ(resolveAsClient("api.example.test", {"10.93.0.2"}, via), 0);
    EXPECT_EQ(resolveAsClient("www.svc.example.test", {"10.93.0.4"}, via), 0) << "a CNAME chain";
    EXPECT_EQ(resolveAsClient("api.example.test", {"fd00:93::2"}, via, kTypeAaaa), 0);
    EXPECT_EQ(resolveIn(other_, nsO_.path(), "api.example.test", kTypeA, via, {"10.93.0.2"}), 0);
  }
  EXPECT_EQ(clientTcp("10.93.0.2"), 0);
  EXPECT_EQ(otherTcp("10.93.0.2"), 0) << "other reaches R through its route";
  EXPECT_EQ(clientTcp("10.93.0.3"), EPERM);
  dns::UdpCatcher catcher(client_, AF_INET, "0.0.0.0", kCatchPort, nsC_.path());
  ASSERT_TRUE(catcher.ready());
  const auto msg = dns::buildResponse(1, "api.example.test", kTypeA, {{"api.example.test", kTypeA, 30, "10.93.0.3"}});
  auto sendFrom = [&](const char* from) {
    return runIn(remote_, [&] { return dns::sendFrom53(AF_INET, from, "10.93.0.1", kCatchPort, msg); }, 5000,
                 nsR_.path());
  };
  ASSERT_EQ(sendFrom(kResolver), 0);
  EXPECT_TRUE(catcher.received(2000)) << "from the resolver: admitted by the ingress rule";
  ASSERT_EQ(sendFrom("10.93.0.2"), 0);
  EXPECT_FALSE(catcher.received(500)) << "from elsewhere: dropped";
}

TEST_F(Fqdn, AnAnswerToAnUnconnectedQueryBindsItsAddress) { resolvedNameIsReachable(Via::Sendto); }

TEST_F(Fqdn, AnAnswerToAConnectedQueryBindsItsAddress) { resolvedNameIsReachable(Via::Connected); }

// The binding is the resolving workload's: `other` has the same policy but
// did not ask, so api.example.test's address is nothing to it, until it
// asks itself.
TEST_F(Fqdn, AWorkloadThatDidNotResolveTheNameIsRefused) {
  ASSERT_NO_FATAL_FAILURE(start());
  ASSERT_EQ(resolveAsClient("api.example.test", {"10.93.0.2"}), 0);
  EXPECT_EQ(clientTcp("10.93.0.2"), 0);
  EXPECT_EQ(otherTcp("10.93.0.2"), EPERM) << "client's answer binds nothing for other";
  ASSERT_EQ(resolveIn(other_, nsO_.path(), "api.example.test", kTypeA, Via::Sendto, {"10.93.0.2"}), 0);
  EXPECT_EQ(otherTcp("10.93.0.2"), 0) << "its own answer does (the same policy allows it)";
}

// TTL 2 s (above --fqdn-min-ttl 1s): bound at once and at half the TTL,
// gone a second after it ran out.
TEST_F(Fqdn, ABindingEndsWithTheAnswersTtl) {
  ASSERT_NO_FATAL_FAILURE(start(zone(/*apiTtl=*/2)));
  ASSERT_EQ(resolveAsClient("api.example.test", {"10.93.0.2"}), 0);
  const auto answered = std::chrono::steady_clock::now();
  EXPECT_EQ(clientTcp("10.93.0.2"), 0);
  std::this_thread::sleep_until(answered + std::chrono::milliseconds(1000));
  EXPECT_EQ(clientTcp("10.93.0.2"), 0) << "still within the TTL (not cut to --fqdn-min-ttl)";
  // No readiness signal for an expiry: wait it out.
  std::this_thread::sleep_until(answered + std::chrono::milliseconds(3000));
  EXPECT_EQ(clientTcp("10.93.0.2"), EPERM) << "the TTL ran out";
  // Asking again binds again.
  ASSERT_EQ(resolveAsClient("api.example.test", {"10.93.0.2"}), 0);
  EXPECT_EQ(clientTcp("10.93.0.2"), 0);
}

// The TTL is clamped into [min, max]: with both 2 s, a TTL of 0 still binds
// (for 2 s) and a TTL of 3600 binds for 2 s only.
TEST_F(Fqdn, TtlsAreClampedIntoTheDaemonsBounds) {
  ASSERT_NO_FATAL_FAILURE(start(zone(/*apiTtl=*/3600), {"--fqdn-min-ttl", "2s", "--fqdn-max-ttl", "2s"}));
  ASSERT_EQ(resolveAsClient("api.example.test", {"10.93.0.2"}), 0);
  ASSERT_EQ(resolveAsClient("zero.svc.example.test", {"10.93.0.3"}), 0);
  const auto answered = std::chrono::steady_clock::now();
  EXPECT_EQ(clientTcp("10.93.0.2"), 0);
  EXPECT_EQ(clientTcp("10.93.0.3"), 0) << "TTL 0 raised to --fqdn-min-ttl";
  std::this_thread::sleep_until(answered + std::chrono::milliseconds(3000));
  EXPECT_EQ(clientTcp("10.93.0.2"), EPERM) << "TTL 3600 cut to --fqdn-max-ttl";
  EXPECT_EQ(clientTcp("10.93.0.3"), EPERM);
}

// `*.svc.example.test` matches one or more labels before the suffix, never
// the suffix itself.
TEST_F(Fqdn, AWildcardMatchesNamesBelowItsSuffixOnly) {
  ASSERT_NO_FATAL_FAILURE(start());
  ASSERT_EQ(resolveAsClient("a.svc.example.test", {"10.93.0.3"}), 0);
  EXPECT_EQ(clientTcp("10.93.0.3"), 0);
  ASSERT_EQ(resolveAsClient("deep.a.svc.example.test", {"10.93.0.5"}), 0);
  EXPECT_EQ(clientTcp("10.93.0.5"), 0) << "two labels below the suffix";
  ASSERT_EQ(resolveAsClient("svc.example.test", {"10.93.0.4"}), 0);
  EXPECT_EQ(clientTcp("10.93.0.4"), EPERM) << "the suffix is not matched by *.svc.example.test";
}

// www.svc.example.test -> CNAME lb.cdn.test -> A 10.93.0.4: the address
// belongs to the question's name, which the wildcard matches.
TEST_F(Fqdn, AnAddressAtTheEndOfACnameChainBelongsToTheQuestion) {
  ASSERT_NO_FATAL_FAILURE(start());
  EXPECT_EQ(clientTcp("10.93.0.4"), EPERM);
  ASSERT_EQ(resolveAsClient("www.svc.example.test", {"10.93.0.4"}), 0);
  EXPECT_EQ(clientTcp("10.93.0.4"), 0);
}

// The other way round: alias.other.test -> CNAME api.example.test -> A
// 10.93.0.2. The address is alias.other.test's (the question's), which no
// policy names: the chain's last name lends it nothing.
TEST_F(Fqdn, ACnameChainToAPolicyNameDoesNotLendThatName) {
  ASSERT_NO_FATAL_FAILURE(start());
  ASSERT_EQ(resolveAsClient("alias.other.test", {"10.93.0.2"}), 0);
  EXPECT_EQ(clientTcp("10.93.0.2"), EPERM);
}

// DNS names are case-insensitive: a question written in mixed case (and
// answered so, the question copied) binds the policy's lowercase name.
TEST_F(Fqdn, ANameInMixedCaseIsTheSameName) {
  ASSERT_NO_FATAL_FAILURE(start());
  ASSERT_EQ(resolveAsClient("API.Example.TEST", {"10.93.0.2"}), 0);
  EXPECT_EQ(clientTcp("10.93.0.2"), 0);
  ASSERT_EQ(resolveAsClient("B.SVC.example.test", {}), 0) << "no records: binds nothing, allows nothing";
  EXPECT_EQ(clientTcp("10.93.0.3"), EPERM);
}

// Names no policy uses bind their addresses to nothing: a name of its own,
// and one that merely starts with a policy's name.
TEST_F(Fqdn, ANameNoPolicyUsesAllowsNothing) {
  ASSERT_NO_FATAL_FAILURE(start());
  ASSERT_EQ(resolveAsClient("evil.test", {"10.93.0.3"}), 0);
  EXPECT_EQ(clientTcp("10.93.0.3"), EPERM);
  ASSERT_EQ(resolveAsClient("api.example.test.evil.test", {"10.93.0.3"}), 0);
  EXPECT_EQ(clientTcp("10.93.0.3"), EPERM);
}

// An answer from the resolver's address and port 53 that no query of the
// client's asked for: delivered (the ingress rule admits it), yet it binds
// nothing.
TEST_F(Fqdn, AnUnsolicitedAnswerBindsNothing) {
  ASSERT_NO_FATAL_FAILURE(start());
  dns::UdpCatcher catcher(client_, AF_INET, "0.0.0.0", kCatchPort, nsC_.path());
  ASSERT_TRUE(catcher.ready());
  const auto forged = dns::buildResponse(0x4242, "api.example.test", kTypeA,
                                         {{"api.example.test", kTypeA, 30, "10.93.0.3"}});
  ASSERT_EQ(runIn(remote_, [&] { return dns::sendFrom53(AF_INET, kResolver, "10.93.0.1", kCatchPort, forged); },
                  5000, nsR_.path()),
            0);
  ASSERT_TRUE(catcher.received(2000)) << "the forged answer reached the client's socket";
  EXPECT_EQ(clientTcp("10.93.0.3"), EPERM) << "an answer nobody asked for binds nothing";
  EXPECT_EQ(bindings().size(), 0u) << bindings().dump();
  // The real exchange still binds (so the refusal above is not a broken path).
  ASSERT_EQ(resolveAsClient("api.example.test", {"10.93.0.2"}), 0);
  EXPECT_EQ(clientTcp("10.93.0.2"), 0);
  EXPECT_EQ(clientTcp("10.93.0.3"), EPERM);
}

// Answers the parser refuses bind nothing, though they carry an A record
// of a name the wildcard matches: one with TC set (the full answer would
// come over TCP, which is not parsed) and an NXDOMAIN.
TEST_F(Fqdn, TruncatedAndFailedAnswersBindNothing) {
  ASSERT_NO_FATAL_FAILURE(start());
  ASSERT_EQ(resolveAsClient("tc.svc.example.test", {"10.93.0.4"}), 0);
  EXPECT_EQ(clientTcp("10.93.0.4"), EPERM) << "truncated";
  ASSERT_EQ(resolveAsClient("nx.svc.example.test", {"10.93.0.5"}), 0);
  EXPECT_EQ(clientTcp("10.93.0.5"), EPERM) << "RCODE 3";
}

// The same answer from a resolver the policy lets the client ask but the
// daemon does not trust (--fqdn-resolvers names only kResolver) binds
// nothing: a workload could otherwise ask a server of its own.
TEST_F(Fqdn, AnAnswerFromAnUntrustedResolverBindsNothing) {
  ASSERT_NO_FATAL_FAILURE(start());
  for (Via via : {Via::Sendto, Via::Connected}) {
    SCOPED_TRACE(via == Via::Sendto ? "sendto" : "connected");
    ASSERT_EQ(resolveIn(client_, nsC_.path(), "api.example.test", kTypeA, via, {"10.93.0.2"}, kOtherResolver), 0)
        << "the answer reaches the client";
    EXPECT_EQ(clientTcp("10.93.0.2"), EPERM);
  }
  EXPECT_EQ(bindings().size(), 0u) << bindings().dump();
  ASSERT_EQ(resolveAsClient("api.example.test", {"10.93.0.2"}), 0);
  EXPECT_EQ(clientTcp("10.93.0.2"), 0) << "the trusted resolver's answer binds";
}

// An answer from the trusted resolver's address and port to a socket that
// did ask, but not that: another id, another question. The socket's real
// exchange binds (api.example.test); the other answer, which a stub
// resolver would throw away as not its own, binds nothing. (More than
// policies/README.md promises: it counts any datagram from port 53 of the
// peer the socket asked, within --answer-ttl, as an answer.)
// DISABLED: a known limit of this version (policies/README.md, FQDN peers,
// Limits; issue #27): the kernel does not see the query (no egress packet hook), so an answer is matched to the socket that asked, not to its id and question. The test is what the fix must pass.
TEST_F(Fqdn, DISABLED_AnAnswerToAQuestionTheSocketDidNotAskBindsNothing) {
  ASSERT_NO_FATAL_FAILURE(start());
  struct Case {
    Via via;
    int port;
    const char* forgedAddr;
  };
  for (const Case& c : {Case{Via::Sendto, 9054, "10.93.0.3"}, Case{Via::Connected, 9055, "10.93.0.4"}}) {
    SCOPED_TRACE(c.via == Via::Sendto ? "sendto" : "connected");
    dns::UdpCatcher asker(client_, AF_INET, "10.93.0.1", c.port, nsC_.path(),
                          {dns::buildQuery(0x0101, "api.example.test", kTypeA), kResolver, 53, c.via});
    ASSERT_TRUE(asker.ready());
    ASSERT_TRUE(asker.received(2000)) << "the real answer";
    const auto other = dns::buildResponse(0x0202, "a.svc.example.test", kTypeA,
                                          {{"a.svc.example.test", kTypeA, 30, c.forgedAddr}});
    ASSERT_EQ(runIn(remote_, [&] { return dns::sendFrom53(AF_INET, kResolver, "10.93.0.1", c.port, other); }, 5000,
                    nsR_.path()),
              0);
    ASSERT_TRUE(asker.received(2000)) << "delivered: it comes from the peer the socket asked";
    EXPECT_EQ(clientTcp("10.93.0.2"), 0) << "the real answer bound";
    EXPECT_EQ(clientTcp(c.forgedAddr), EPERM) << "an answer to a question not asked binds nothing";
  }
}

// One address, two names: api.example.test (allowed on 8080 and 8443) and
// shared.svc.example.test (8080 only) both resolve to 10.93.0.2. Resolving
// the second does not take the first's binding away: 8443 stays allowed
// while api.example.test's TTL runs.
TEST_F(Fqdn, TwoNamesOfOneAddressBothHold) {
  ASSERT_NO_FATAL_FAILURE(start());
  ASSERT_EQ(resolveAsClient("api.example.test", {"10.93.0.2"}), 0);
  EXPECT_EQ(clientTcp("10.93.0.2", kApiPort), 0);
  ASSERT_EQ(resolveAsClient("shared.svc.example.test", {"10.93.0.2"}), 0);
  EXPECT_EQ(clientTcp("10.93.0.2", kPort), 0);
  EXPECT_EQ(clientTcp("10.93.0.2", kApiPort), 0) << "api.example.test's binding still holds";
}

// One workload cannot take another's bindings away: `other` resolves more
// names (each with 8 addresses, all under its wildcard) than the bindings
// table holds (MS_MAX_FQDN_BINDINGS, 65536) between client's answer and
// client's connect, and client's binding, well within its TTL, still holds.
// The answers are parsed on the CPU that sends them (veth), and the LRU
// table evicts per CPU: the resolver sends a share from each CPU in turn,
// so the outcome does not depend on where the scheduler put it.
// DISABLED: a known limit of this version (policies/README.md, FQDN peers,
// Limits; issue #27): ms_fqdn_bindings is one LRU for every workload: no per-workload quota yet. The test is what the fix must pass.
TEST_F(Fqdn, DISABLED_AnotherWorkloadsManyAnswersDoNotEvictABinding) {
  ASSERT_NO_FATAL_FAILURE(start());
  ASSERT_EQ(resolveAsClient("api.example.test", {"10.93.0.2"}), 0);
  const int cpus = int(sysconf(_SC_NPROCESSORS_ONLN));
  constexpr int kNames = 9000;  // 72000 addresses per CPU
  for (int cpu = 0; cpu < cpus; cpu++) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    ASSERT_EQ(sched_setaffinity(resolver_->pid(), sizeof(set), &set), 0) << std::strerror(errno);
    ASSERT_EQ(runIn(other_, [=] {
      return dns::resolveFlood(AF_INET, kResolver, "flood.svc.example.test", cpu * kNames, kNames);
    }, 90000, nsO_.path()), 0);
  }
  EXPECT_EQ(clientTcp("10.93.0.2"), 0) << "client's binding (TTL 30) evicted by other's answers";
}

// A new policy generation keeps the bindings of the names it still names
// and drops those of a name no rule names any more.
TEST_F(Fqdn, APolicyChangeKeepsTheBindingsOfTheNamesItKeeps) {
  ASSERT_NO_FATAL_FAILURE(start());
  ASSERT_EQ(resolveAsClient("api.example.test", {"10.93.0.2"}), 0);
  ASSERT_EQ(resolveAsClient("a.svc.example.test", {"10.93.0.3"}), 0);
  EXPECT_EQ(clientTcp("10.93.0.2"), 0);
  EXPECT_EQ(clientTcp("10.93.0.3"), 0);
  ASSERT_NO_FATAL_FAILURE(apply(policy(kWildcardPeer, kWildcardPeer)));
  EXPECT_EQ(clientTcp("10.93.0.2"), EPERM) << "api.example.test is no peer any more";
  EXPECT_EQ(clientTcp("10.93.0.3"), 0) << "*.svc.example.test's binding is kept";
  for (const auto& b : bindings()) EXPECT_NE(b["name"], "api.example.test") << b.dump();
}

// Precedence (policies/README.md, FQDN peers): a bound address is judged
// as its name and as its address, and a deny of either wins. An admin deny
// of 10.93.0.2 closes what api.example.test's allow opens; a deny of the
// name closes what an allow of the address's cidr opens. The flow record
// of a flow a name decided says so and names the name the caller resolved.
TEST_F(Fqdn, ADenyOfTheAddressOrOfTheNameWins) {
  const std::string adminDeny = doc("Policy", "no-10-93-0-2",
                                    "  tier: admin\n  priority: 10\n  selector: {matchLabels: {tier: app}}\n"
                                    "  egress:\n    - action: deny\n      to: [{cidr: 10.93.0.2/32}]\n"
                                    "      ports: [{port: " + std::to_string(kPort) + ", protocol: TCP}]\n");
  ASSERT_NO_FATAL_FAILURE(start());
  ASSERT_NO_FATAL_FAILURE(apply(policy("{fqdn: api.example.test}") + adminDeny));
  ASSERT_EQ(resolveAsClient("api.example.test", {"10.93.0.2"}), 0);
  EXPECT_EQ(clientTcp("10.93.0.2"), EPERM) << "the admin deny of the address beats the name's allow";
  EXPECT_EQ(clientTcp("10.93.0.2", kApiPort), 0) << "the name's allow on another port";

  const std::string nameDeny = doc("Policy", "no-api",
                                   "  selector: {matchLabels: {tier: app}}\n"
                                   "  egress:\n    - action: deny\n      to: [{fqdn: api.example.test}]\n"
                                   "      ports: [{port: " + std::to_string(kPort) + ", protocol: TCP}]\n");
  ASSERT_NO_FATAL_FAILURE(apply(policy("{cidr: 10.93.0.0/29}") + nameDeny));
  EXPECT_EQ(clientTcp("10.93.0.3"), 0) << "the cidr allows an address no name binds";
  EXPECT_EQ(clientTcp("10.93.0.2"), EPERM) << "the name's deny beats the cidr's allow";

  auto r = daemon_->cli({"flows", "--verdict", "allow", "--to", "fqdn:api.example.test", "-o", "json"});
  ASSERT_EQ(r.rc, 0) << r.err;
  bool named = false;
  const auto reply = nlohmann::json::parse(r.out);
  for (const auto& f : reply["records"]) {
    if (f["dst"]["port"] != kApiPort || f["direction"] != "egress") continue;
    EXPECT_EQ(f["peer_via"], "fqdn") << f.dump();
    EXPECT_EQ(f["dst"]["name"], "api.example.test") << f.dump();
    named = true;
  }
  EXPECT_TRUE(named) << "a flow record of the name's allow on " << kApiPort << ":\n" << r.out;
}

// Bindings are pinned: a restarted daemon finds them and they still hold.
TEST_F(Fqdn, BindingsOutliveADaemonRestart) {
  ASSERT_NO_FATAL_FAILURE(start());
  ASSERT_EQ(resolveAsClient("api.example.test", {"10.93.0.2"}), 0);
  ASSERT_EQ(daemon_->stop(), 0);
  ASSERT_TRUE(daemon_->start()) << daemon_->log();
  EXPECT_EQ(clientTcp("10.93.0.2"), 0);
  EXPECT_EQ(clientTcp("10.93.0.3"), EPERM);
  EXPECT_EQ(bindings().size(), 1u) << bindings().dump();
}

// AAAA: the IPv6 address binds and is reached over IPv6 (the query itself
// goes over IPv4).
TEST_F(Fqdn, AnAaaaAnswerBindsAnIpv6Address) {
  ASSERT_NO_FATAL_FAILURE(start());
  EXPECT_EQ(clientTcp("fd00:93::2"), EPERM);
  ASSERT_EQ(resolveAsClient("api.example.test", {"fd00:93::2"}, Via::Sendto, kTypeAaaa), 0);
  EXPECT_EQ(clientTcp("fd00:93::2"), 0);
  EXPECT_EQ(clientTcp("fd00:93::3"), EPERM);
  EXPECT_EQ(clientTcp("10.93.0.2"), EPERM) << "the AAAA answer binds no IPv4 address";
}

}  // namespace
}  // namespace microseg::e2e

