// The socket iterators revocation stands on (bpf/revoke.bpf.c,
// datapath/socket_iterator.h), against the real kernel: the sockets of a
// netns of the test's own are listed with the cgroup that created them,
// and destroying one connection by its cookie aborts that connection on
// both ends and nothing else. Nothing is attached to any cgroup.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <optional>
#include <vector>

#include "datapath/socket_iterator.h"
#include "harness.h"
#include "held_connections.h"

namespace microseg::e2e {
namespace {

uint64_t cgroupIdOf(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 ? st.st_ino : 0;  // a cgroup's id is its inode (cgroup2)
}

const ms_sock_record* find(const std::vector<ms_sock_record>& rs, uint64_t cgroup, uint8_t proto, uint8_t state) {
  for (const auto& r : rs) {
    if (r.cgroup_id == cgroup && r.protocol == proto && r.state == state) return &r;
  }
  return nullptr;
}

class SocketIteratorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto it = datapath::SocketIterator::open();
    ASSERT_TRUE(it) << it.error().str();
    it_ = std::move(*it);
    ASSERT_TRUE(ns_.ok());
    port_ = freePortBase();
  }
  std::unique_ptr<datapath::SocketIterator> it_;
  CgroupTree tree_;
  Netns ns_;
  int port_ = 0;
};

TEST_F(SocketIteratorTest, DestroyingAConnectionByItsCookieAbortsBothEndsAndNothingElse) {
  const std::string srvCg = tree_.create("server"), aCg = tree_.create("client-a"), bCg = tree_.create("client-b");
  Report srvEnded, aEnded, bEnded;
  Child srv = acceptingServer(srvCg, port_, 2, srvEnded, ns_.path());
  ASSERT_TRUE(srv.ready());
  Child a = tcpClient(aCg, port_, aEnded, ns_.path());
  Child b = tcpClient(bCg, port_, bEnded, ns_.path());
  ASSERT_TRUE(a.ready());
  ASSERT_TRUE(b.ready());

  auto listed = it_->list(ns_.path());
  ASSERT_TRUE(listed) << listed.error().str();
  const ms_sock_record* ra = find(*listed, cgroupIdOf(aCg), IPPROTO_TCP, 1 /* BPF_TCP_ESTABLISHED */);
  const ms_sock_record* rb = find(*listed, cgroupIdOf(bCg), IPPROTO_TCP, 1);
  const ms_sock_record* rl = find(*listed, cgroupIdOf(srvCg), IPPROTO_TCP, 10 /* BPF_TCP_LISTEN */);
  ASSERT_NE(ra, nullptr) << "client-a's connection is not listed with its cgroup";
  ASSERT_NE(rb, nullptr);
  ASSERT_NE(rl, nullptr) << "the listener is not listed";
  EXPECT_EQ(ntohs(ra->remote_port), port_);
  EXPECT_EQ(rl->local_port, htons(static_cast<uint16_t>(port_)));
  EXPECT_EQ(ra->family, AF_INET);
  const uint8_t v4lo[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 127, 0, 0, 1};
  EXPECT_EQ(std::memcmp(ra->remote.a, v4lo, 16), 0) << "IPv4 addresses are v4-mapped";
  // The accepted ends: the server's cgroup, established, on the port.
  int accepted = 0;
  for (const auto& r : *listed) {
    accepted += r.cgroup_id == cgroupIdOf(srvCg) && r.state == 1 && ntohs(r.local_port) == port_;
  }
  EXPECT_EQ(accepted, 2);

  // The test's own netns has none of them: the iterator is the netns's.
  auto here = it_->list();
  ASSERT_TRUE(here) << here.error().str();
  for (const auto& r : *here) EXPECT_NE(r.cookie, ra->cookie);

  auto gone = it_->destroy({ra->cookie}, ns_.path());
  ASSERT_TRUE(gone) << gone.error().str();
  ASSERT_EQ(gone->size(), 1u);
  EXPECT_EQ((*gone)[0].cookie, ra->cookie);
  EXPECT_EQ((*gone)[0].destroyed, 1) << "bpf_sock_destroy: " << (*gone)[0].destroy_error;
  EXPECT_EQ(aEnded.wait(2000), ECONNABORTED) << "client-a's read ends: aborted";
  EXPECT_EQ(srvEnded.wait(2000), ECONNRESET) << "the server's end of it gets the reset";
  EXPECT_EQ(bEnded.wait(300), std::nullopt) << "client-b's connection is untouched";
  EXPECT_EQ(srvEnded.wait(300), std::nullopt) << "and so is the server's end of it";

  // A cookie of nothing (closed meanwhile): no record, no error.
  auto none = it_->destroy({ra->cookie}, ns_.path());
  ASSERT_TRUE(none) << none.error().str();
  EXPECT_TRUE(none->empty());
}

TEST_F(SocketIteratorTest, AConnectedUdpSocketIsListedAndItsPendingReadFailsWhenDestroyed) {
  const std::string cg = tree_.create("udp-client");
  Report ended;
  const int port = port_;
  Child c(
      cg,
      [port]() {
        const int fd = socket(AF_INET, SOCK_DGRAM, 0);
        const sockaddr_in a = loopback(port);
        return connect(fd, reinterpret_cast<const sockaddr*>(&a), sizeof(a)) == 0 ? fd : -1;
      },
      [&ended](int fd) { readUntilEnd(fd, ended); }, ns_.path());
  ASSERT_TRUE(c.ready());
  auto listed = it_->list(ns_.path());
  ASSERT_TRUE(listed) << listed.error().str();
  const ms_sock_record* r = find(*listed, cgroupIdOf(cg), IPPROTO_UDP, 1 /* connected */);
  ASSERT_NE(r, nullptr) << "the connected UDP socket is not listed";
  EXPECT_EQ(ntohs(r->remote_port), port_);
  auto gone = it_->destroy({r->cookie}, ns_.path());
  ASSERT_TRUE(gone) << gone.error().str();
  ASSERT_EQ(gone->size(), 1u);
  EXPECT_EQ((*gone)[0].destroyed, 1) << (*gone)[0].destroy_error;
  EXPECT_EQ(ended.wait(2000), ECONNABORTED);
}

}  // namespace
}  // namespace microseg::e2e
