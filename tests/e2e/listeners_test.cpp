// identity/listeners.h against real sockets: every listener and bound UDP
// socket of the netns, with the cgroup that created it.
#include <gtest/gtest.h>
#include <sys/socket.h>

#include "common/cgroup.h"
#include "harness.h"
#include "identity/listeners.h"
#include "policy/cidr.h"

namespace microseg::e2e {
namespace {

TEST(Listeners, EveryListenerIsFoundWithItsCreatorsCgroup) {
  CgroupTree tree;
  const std::string cg = tree.create("svc");
  const int port = freePortBase();
  Child t4 = tcpServer(cg, AF_INET, "127.0.0.1", port);
  Child t6 = tcpServer(cg, AF_INET6, "::", port + 1);
  Child u4 = udpEchoServer(cg, AF_INET, "0.0.0.0", port + 2);
  ASSERT_TRUE(t4.ready() && t6.ready() && u4.ready());
  auto id = cgroupId(cg);
  ASSERT_TRUE(id);
  auto all = identity::listeningSockets();
  ASSERT_TRUE(all) << all.error().str();
  int found = 0;
  for (const auto& s : *all) {
    if (s.cgroupId != *id) continue;
    found++;
    if (s.port == port) {
      EXPECT_EQ(s.proto, MS_PROTO_TCP);
      EXPECT_EQ(policy::formatAddress(s.addr), "127.0.0.1");
    } else if (s.port == port + 1) {
      EXPECT_EQ(s.proto, MS_PROTO_TCP);
      EXPECT_TRUE(identity::isWildcard(s.addr));
      EXPECT_TRUE(s.v6only) << "the harness's IPv6 servers are v6-only";
    } else {
      EXPECT_EQ(s.port, port + 2);
      EXPECT_EQ(s.proto, MS_PROTO_UDP);
      EXPECT_TRUE(identity::isWildcard(s.addr));
    }
  }
  EXPECT_EQ(found, 3);
}

}  // namespace
}  // namespace microseg::e2e
