// Which connections a policy change revokes, from socket records as the
// iterator lists them (revoke/revocation_plan.h).
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>

#include <map>
#include <set>

#include "revoke/revocation_plan.h"

namespace microseg::revoke {
namespace {

constexpr uint8_t kEstablished = 1, kListen = 10, kClose = 7, kTimeWait = 6;

ms_addr v4(const char* text) {
  ms_addr a{};
  a.a[10] = a.a[11] = 0xff;
  inet_pton(AF_INET, text, a.a + 12);
  return a;
}

uint64_t gCookie = 1;

ms_sock_record sock(uint64_t cgroup, uint8_t proto, uint8_t state, const char* local, uint16_t lport,
                    const char* remote, uint16_t rport) {
  ms_sock_record r{};
  r.cookie = gCookie++;
  r.cgroup_id = cgroup;
  r.protocol = proto;
  r.state = state;
  r.family = AF_INET;
  r.local = v4(local);
  r.remote = v4(remote);
  r.local_port = htons(lport);
  r.remote_port = htons(rport);
  return r;
}

// Workloads by cgroup id: 100 client (identity 10), 200 server (20),
// 300 other (30); cgroup 999 is not a workload's.
struct World {
  std::map<uint64_t, uint32_t> workloads{{100, 10}, {200, 20}, {300, 30}};
  std::map<std::string, uint32_t> remote{{"10.9.0.1", 2 /* world */}};
  std::set<std::tuple<uint32_t, uint32_t, int, uint16_t>> allowed;  // subject, peer, dir, port
  std::vector<std::tuple<uint32_t, uint32_t, int, uint16_t>> asked;
  Resolver resolver() {
    Resolver r;
    r.subjectOf = [this](uint64_t cg) -> std::optional<uint32_t> {
      auto it = workloads.find(cg);
      if (it == workloads.end()) return std::nullopt;
      return it->second;
    };
    r.peerOf = [this](const ms_addr& a, uint16_t, uint8_t, policy::Direction) -> std::optional<uint32_t> {
      char text[INET_ADDRSTRLEN];
      inet_ntop(AF_INET, a.a + 12, text, sizeof(text));
      auto it = remote.find(text);
      if (it == remote.end()) return std::nullopt;
      return it->second;
    };
    r.allows = [this](uint32_t s, uint32_t p, policy::Direction d, uint8_t, uint16_t port, std::string* why) {
      asked.emplace_back(s, p, int(d), port);
      const bool ok = allowed.count({s, p, int(d), port}) != 0;
      *why = ok ? "allow-rule" : "default-deny";
      return ok;
    };
    return r;
  }
};

TEST(RevocationPlan, EachEndOfALocalConnectionIsJudgedForItsOwnSide) {
  World w;
  // client (100) -> server (200) on 127.0.0.1:8080, both ends in the list.
  const auto lis = sock(200, IPPROTO_TCP, kListen, "0.0.0.0", 8080, "0.0.0.0", 0);
  const auto cli = sock(100, IPPROTO_TCP, kEstablished, "127.0.0.1", 40000, "127.0.0.1", 8080);
  const auto acc = sock(200, IPPROTO_TCP, kEstablished, "127.0.0.1", 8080, "127.0.0.1", 40000);
  w.allowed.insert({10, 20, int(policy::Direction::Egress), 8080});  // the client may still call
  // The server no longer admits the client: only its accepted socket goes.
  const Plan p = planRevocation({lis, cli, acc}, w.resolver());
  ASSERT_EQ(p.revoke.size(), 1u);
  EXPECT_EQ(p.revoke[0].socket.cookie, acc.cookie);
  EXPECT_EQ(p.revoke[0].direction, policy::Direction::Ingress);
  EXPECT_EQ(p.revoke[0].subject, 20u);
  EXPECT_EQ(p.revoke[0].peer, 10u) << "the peer is the client's socket's workload, not its address";
  EXPECT_EQ(p.revoke[0].port, 8080) << "judged on the server's port, not the client's ephemeral one";
  EXPECT_TRUE(p.revoke[0].peerIsLocalSocket);
  EXPECT_EQ(p.revoke[0].why, "default-deny");
  EXPECT_EQ(p.judged, 2u);
  EXPECT_EQ(p.allowed, 1u);
  // The client was judged by its egress on the server's port.
  EXPECT_EQ(std::count(w.asked.begin(), w.asked.end(), std::tuple{10u, 20u, int(policy::Direction::Egress), uint16_t(8080)}), 1);
}

TEST(RevocationPlan, NothingIsRevokedWhileBothSidesAllow) {
  World w;
  const auto lis = sock(200, IPPROTO_TCP, kListen, "127.0.0.1", 8080, "0.0.0.0", 0);
  const auto cli = sock(100, IPPROTO_TCP, kEstablished, "127.0.0.1", 40000, "127.0.0.1", 8080);
  const auto acc = sock(200, IPPROTO_TCP, kEstablished, "127.0.0.1", 8080, "127.0.0.1", 40000);
  w.allowed.insert({10, 20, int(policy::Direction::Egress), 8080});
  w.allowed.insert({20, 10, int(policy::Direction::Ingress), 8080});
  const Plan p = planRevocation({lis, cli, acc}, w.resolver());
  EXPECT_TRUE(p.revoke.empty());
  EXPECT_EQ(p.judged, 2u);
}

TEST(RevocationPlan, ListenersClosingAndUnmanagedSocketsAreNeverJudged) {
  World w;
  const auto lis = sock(200, IPPROTO_TCP, kListen, "0.0.0.0", 8080, "0.0.0.0", 0);
  const auto closed = sock(100, IPPROTO_TCP, kClose, "127.0.0.1", 40001, "127.0.0.1", 8080);
  const auto tw = sock(100, IPPROTO_TCP, kTimeWait, "127.0.0.1", 40002, "127.0.0.1", 8080);
  const auto host = sock(999, IPPROTO_TCP, kEstablished, "127.0.0.1", 40003, "127.0.0.1", 8080);
  const auto udpUnconnected = sock(100, IPPROTO_UDP, kClose, "0.0.0.0", 5353, "0.0.0.0", 0);
  const Plan p = planRevocation({lis, closed, tw, host, udpUnconnected}, w.resolver());
  EXPECT_TRUE(p.revoke.empty());
  EXPECT_EQ(p.judged, 0u);
  EXPECT_TRUE(w.asked.empty());
}

TEST(RevocationPlan, ALocalPeerOutsideEveryWorkloadIsWhatTheResolverSays) {
  World w;
  // The server (200) accepted a connection from a socket of cgroup 999,
  // which is no workload's: host without a resolver for it, else its answer
  // (the daemon's: unmanaged below the managed root).
  const auto lis = sock(200, IPPROTO_TCP, kListen, "0.0.0.0", 8080, "0.0.0.0", 0);
  const auto cli = sock(999, IPPROTO_TCP, kEstablished, "127.0.0.1", 40000, "127.0.0.1", 8080);
  const auto acc = sock(200, IPPROTO_TCP, kEstablished, "127.0.0.1", 8080, "127.0.0.1", 40000);
  Plan p = planRevocation({lis, cli, acc}, w.resolver());
  ASSERT_EQ(p.revoke.size(), 1u);
  EXPECT_EQ(p.revoke[0].peer, uint32_t{MS_IDENTITY_HOST});
  Resolver r = w.resolver();
  r.localPeerOf = [](uint64_t cg) { return cg == 999 ? uint32_t{MS_IDENTITY_UNMANAGED} : 0u; };
  p = planRevocation({lis, cli, acc}, r);
  ASSERT_EQ(p.revoke.size(), 1u);
  EXPECT_EQ(p.revoke[0].peer, uint32_t{MS_IDENTITY_UNMANAGED});
  EXPECT_TRUE(p.revoke[0].peerIsLocalSocket);
}

TEST(RevocationPlan, ARemotePeerIsKnownByItsAddressOrLeftAlone) {
  World w;
  const auto out = sock(100, IPPROTO_TCP, kEstablished, "10.0.0.2", 40000, "10.9.0.1", 443);
  const auto unknown = sock(100, IPPROTO_TCP, kEstablished, "10.0.0.2", 40001, "10.9.0.7", 443);
  const Plan p = planRevocation({out, unknown}, w.resolver());
  ASSERT_EQ(p.revoke.size(), 1u);
  EXPECT_EQ(p.revoke[0].socket.cookie, out.cookie);
  EXPECT_EQ(p.revoke[0].peer, 2u);
  EXPECT_FALSE(p.revoke[0].peerIsLocalSocket);
  EXPECT_EQ(p.unknownPeer, 1u) << "a peer whose identity cannot be known now is never revoked";
}

TEST(RevocationPlan, AConnectedUdpSocketsLocalPeerIsTheSocketBoundToThePort) {
  World w;
  const auto server = sock(200, IPPROTO_UDP, kClose, "0.0.0.0", 53, "0.0.0.0", 0);
  const auto client = sock(100, IPPROTO_UDP, kEstablished, "127.0.0.1", 40000, "127.0.0.1", 53);
  // A wildcard-bound socket does not answer for a remote address.
  const auto remote = sock(300, IPPROTO_UDP, kEstablished, "10.0.0.2", 40001, "10.9.0.1", 53);
  const Plan p = planRevocation({server, client, remote}, w.resolver());
  ASSERT_EQ(p.revoke.size(), 2u);
  EXPECT_EQ(p.revoke[0].peer, 20u);
  EXPECT_TRUE(p.revoke[0].peerIsLocalSocket);
  EXPECT_EQ(p.revoke[0].direction, policy::Direction::Egress);
  EXPECT_EQ(p.revoke[1].peer, 2u) << "by its address";
}

}  // namespace
}  // namespace microseg::revoke
