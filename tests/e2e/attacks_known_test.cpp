// The attack suite, continued: bypass attempts the datapath already
// refused before the battery, kept covered in both modes (what
// foundation_test.cpp asserts in enforce mode only is asserted here in
// monitor mode too, and what it does not cover at all in both).
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <liburing.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <thread>

#include "attacks_util.h"
#include "harness.h"

namespace microseg::e2e {
namespace {

using nlohmann::json;

sockaddr_storage addrOf(int family, const std::string& addr, int port, socklen_t* len, uint32_t flowinfo = 0,
                        uint32_t scope = 0) {
  sockaddr_storage ss{};
  if (family == AF_INET) {
    auto* a = reinterpret_cast<sockaddr_in*>(&ss);
    a->sin_family = AF_INET;
    a->sin_port = htons(uint16_t(port));
    inet_pton(AF_INET, addr.c_str(), &a->sin_addr);
    *len = sizeof(*a);
  } else {
    auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
    a->sin6_family = AF_INET6;
    a->sin6_port = htons(uint16_t(port));
    a->sin6_flowinfo = htonl(flowinfo);
    a->sin6_scope_id = scope;
    inet_pton(AF_INET6, addr.c_str(), &a->sin6_addr);
    *len = sizeof(*a);
  }
  return ss;
}

// A blocking connect with a bounded wait: 0 or errno (ETIMEDOUT: dropped).
int connectWait(int fd, const sockaddr_storage& ss, socklen_t len, int timeoutMs = kDropMs) {
  const int fl = fcntl(fd, F_GETFL);
  fcntl(fd, F_SETFL, fl | O_NONBLOCK);
  int rc = connect(fd, reinterpret_cast<const sockaddr*>(&ss), len) == 0 ? 0 : errno;
  if (rc == EINPROGRESS) {
    pollfd p{fd, POLLOUT, 0};
    if (poll(&p, 1, timeoutMs) <= 0) return ETIMEDOUT;
    socklen_t el = sizeof(rc);
    getsockopt(fd, SOL_SOCKET, SO_ERROR, &rc, &el);
  }
  return rc;
}

int tcpConnectWith(int family, int protocol, const sockaddr_storage& ss, socklen_t len) {
  int fd = socket(family, SOCK_STREAM, protocol);
  if (fd < 0) return -errno;
  const int rc = connectWait(fd, ss, len);
  close(fd);
  return rc;
}

// One io_uring operation on a fresh ring: the completion's result (a
// negative errno on failure).
int uringOnce(const std::function<void(io_uring_sqe*)>& prep) {
  io_uring ring;
  if (int rc = io_uring_queue_init(4, &ring, 0); rc < 0) return rc;
  io_uring_sqe* sqe = io_uring_get_sqe(&ring);
  prep(sqe);
  io_uring_submit(&ring);
  io_uring_cqe* cqe = nullptr;
  int res = -ETIME;
  __kernel_timespec ts{2, 0};
  if (io_uring_wait_cqe_timeout(&ring, &cqe, &ts) == 0) {
    res = cqe->res;
    const bool more = (cqe->flags & IORING_CQE_F_MORE) != 0;
    io_uring_cqe_seen(&ring, cqe);
    if (more && io_uring_wait_cqe_timeout(&ring, &cqe, &ts) == 0) io_uring_cqe_seen(&ring, cqe);  // SEND_ZC's notification
  }
  io_uring_queue_exit(&ring);
  return res;
}

// IPv4-mapped, flowinfo and scope ids on ::1, the v4-compatible ::127.0.0.1:
// every form of the server's address is the server (or, not loopback,
// world), in both modes.
TEST_F(Attacks, AddressFormsAreJudgedByWhatTheyReach) {
  Child t4 = tcpServer(srv_, AF_INET, "127.0.0.1", P());
  Child t6 = tcpServer(srv_, AF_INET6, "::1", P());
  Child u4 = udpEchoServer(srv_, AF_INET, "127.0.0.1", U());
  Netns ns;
  ASSERT_TRUE(t4.ready() && t6.ready() && u4.ready() && ns.ok());
  ASSERT_NO_FATAL_FAILURE(start());
  for (const std::string mode : {"enforce", "monitor"}) {
    SCOPED_TRACE(mode);
    ASSERT_NO_FATAL_FAILURE(setMode(mode));
    const bool enforce = mode == "enforce";
    const long audited = counter("audited");
    auto tcp6 = [&](const std::string& addr, uint32_t flowinfo, uint32_t scope, const std::string& netns = "") {
      const int port = P();
      return runIn(b_, [=] {
        socklen_t len;
        auto ss = addrOf(AF_INET6, addr, port, &len, flowinfo, scope);
        return tcpConnectWith(AF_INET6, 0, ss, len);
      }, 5000, netns);
    };
    EXPECT_EQ(tcp6("::ffff:127.0.0.1", 0, 0), enforce ? EPERM : 0);
    EXPECT_EQ(tcp6("::1", 0x12345, 0), enforce ? EPERM : 0) << "flowinfo";
    EXPECT_EQ(tcp6("::1", 0, 1), enforce ? EPERM : 0) << "scope id of lo";
    EXPECT_EQ(tcp6("::1", 0xfffff, 7), enforce ? EPERM : 0) << "a scope id no device has";
    EXPECT_EQ(runIn(b_, [&] { return udpSendto(AF_INET6, "::ffff:127.0.0.1", U()); }), enforce ? EPERM : 0)
        << "UDP to the mapped address of the server's socket";
    // Not loopback: world, which client-b may not call on TCP (in a netns
    // of the test's own: the kernel has no route for it there).
    EXPECT_EQ(tcp6("::127.0.0.1", 0, 0, ns.path()), enforce ? EPERM : ENETUNREACH);
    if (!enforce) {
      EXPECT_GE(counter("audited") - audited, 5);
    }
    auto mapped = daemon_->waitFlow([&](const json& e) {
      return e["verdict"] == (enforce ? "deny" : "audit") && e["hook"] == "connect6" &&
             e["src"]["workload"] == "client-b" && e["dst"]["workload"] == "server";
    });
    ASSERT_TRUE(mapped) << daemon_->log();
    auto world = daemon_->waitFlow([&](const json& e) {
      return e["verdict"] == (enforce ? "deny" : "audit") && e["dst"]["addr"] == "::127.0.0.1";
    });
    ASSERT_TRUE(world) << daemon_->log();
    EXPECT_EQ((*world)["dst"]["workload"], "world");
  }
}

// Other ways into connect() and sendmsg(): MPTCP, TCP Fast Open, a UDP
// socket disconnected (AF_UNSPEC) and connected again, and io_uring's
// SOCKET, CONNECT, SENDMSG and SEND_ZC. Each meets the same hooks.
TEST_F(Attacks, OtherWaysToConnectMeetTheSameHooks) {
  Child t4 = tcpServer(srv_, AF_INET, "127.0.0.1", P());
  Child u4 = udpEchoServer(srv_, AF_INET, "127.0.0.1", U());
  Child hostUdp = udpEchoServer(ownCgroup(), AF_INET, "127.0.0.2", U());
  ASSERT_TRUE(t4.ready() && u4.ready() && hostUdp.ready());
  ASSERT_NO_FATAL_FAILURE(start());
  TcpFastOpenClient tfo;
  ASSERT_TRUE(tfo.ok());
  socklen_t len4;
  const auto server = addrOf(AF_INET, "127.0.0.1", P(), &len4);
  const auto serverUdp = addrOf(AF_INET, "127.0.0.1", U(), &len4);
  const auto hostUdpAddr = addrOf(AF_INET, "127.0.0.2", U(), &len4);
  for (const std::string mode : {"enforce", "monitor"}) {
    SCOPED_TRACE(mode);
    ASSERT_NO_FATAL_FAILURE(setMode(mode));
    const bool enforce = mode == "enforce";
    const int refused = enforce ? EPERM : 0;
    const long audited = counter("audited");
    EXPECT_EQ(runIn(b_, [&] { return tcpConnectWith(AF_INET, 262 /* IPPROTO_MPTCP */, server, len4); }), refused)
        << "MPTCP";
    EXPECT_EQ(runIn(a_, [&] { return tcpConnectWith(AF_INET, 262, server, len4); }), 0) << "MPTCP, allowed";
    EXPECT_EQ(runIn(b_, [&] { return tfoSendto(AF_INET, "127.0.0.1", P()); }), refused) << "TCP Fast Open";
    // Connected to the host (allowed), disconnected, then to the server.
    EXPECT_EQ(runIn(b_, [&] {
      int fd = socket(AF_INET, SOCK_DGRAM, 0);
      sockaddr unspec{};
      unspec.sa_family = AF_UNSPEC;
      int rc = connect(fd, reinterpret_cast<const sockaddr*>(&hostUdpAddr), len4) == 0 ? 0 : 1000 + errno;
      if (rc == 0 && send(fd, "x", 1, 0) != 1) rc = 2000 + errno;
      if (rc == 0 && connect(fd, &unspec, sizeof(unspec)) != 0) rc = 3000 + errno;
      if (rc == 0) rc = connect(fd, reinterpret_cast<const sockaddr*>(&serverUdp), len4) == 0 ? 0 : errno;
      if (rc == 0 || rc == EPERM) {
        // ... and sendto() on the disconnected socket is judged too.
        const int again = connect(fd, &unspec, sizeof(unspec)) == 0 &&
                                  sendto(fd, "x", 1, 0, reinterpret_cast<const sockaddr*>(&serverUdp), len4) == 1
                              ? 0
                              : errno;
        if (again != rc) rc = 4000 + again;
      }
      close(fd);
      return rc;
    }), refused) << "AF_UNSPEC reconnect";
    // io_uring: the socket it makes is the caller's cgroup's; its connect
    // and sends meet the hooks.
    EXPECT_EQ(runIn(b_, [&] {
      const int fd = uringOnce([](io_uring_sqe* s) { io_uring_prep_socket(s, AF_INET, SOCK_STREAM, 0, 0); });
      if (fd < 0) return 1000 - fd;
      const int rc = connectWait(fd, server, len4);
      close(fd);
      return rc;
    }), refused) << "IORING_OP_SOCKET";
    EXPECT_EQ(runIn(b_, [&] {
      int fd = socket(AF_INET, SOCK_STREAM, 0);
      const int res = uringOnce([&](io_uring_sqe* s) {
        io_uring_prep_connect(s, fd, reinterpret_cast<const sockaddr*>(&server), len4);
      });
      close(fd);
      return -res;
    }), refused) << "IORING_OP_CONNECT";
    EXPECT_EQ(runIn(b_, [&] {
      int fd = socket(AF_INET, SOCK_DGRAM, 0);
      char byte = 'x';
      iovec iov{&byte, 1};
      msghdr m{};
      m.msg_name = const_cast<sockaddr_storage*>(&serverUdp);
      m.msg_namelen = len4;
      m.msg_iov = &iov;
      m.msg_iovlen = 1;
      const int res = uringOnce([&](io_uring_sqe* s) { io_uring_prep_sendmsg(s, fd, &m, 0); });
      close(fd);
      return res == 1 ? 0 : -res;
    }), refused) << "IORING_OP_SENDMSG";
    EXPECT_EQ(runIn(b_, [&] {
      int fd = socket(AF_INET, SOCK_DGRAM, 0);
      static const char byte = 'x';
      const int res = uringOnce([&](io_uring_sqe* s) {
        io_uring_prep_send_zc(s, fd, &byte, 1, 0, 0);
        io_uring_prep_send_set_addr(s, reinterpret_cast<const sockaddr*>(&serverUdp), uint16_t(len4));
      });
      close(fd);
      return res == 1 ? 0 : -res;
    }), refused) << "IORING_OP_SEND_ZC";
    if (!enforce) {
      EXPECT_GE(counter("audited") - audited, 7);
    }
  }
}

// A socket is its creator cgroup's: passed to another workload, or its
// process moved out of the managed tree altogether, or used from a network
// namespace the workload made for itself (unshare -n).
TEST_F(Attacks, SocketsKeepTheirCreatorsIdentityWhereverTheyGo) {
  Child t4 = tcpServer(srv_, AF_INET, "127.0.0.1", P());
  ASSERT_TRUE(t4.ready());
  ASSERT_NO_FATAL_FAILURE(start());
  const std::string hostProcs = ownCgroup() + "/cgroup.procs";
  socklen_t len4;
  const auto server = addrOf(AF_INET, "127.0.0.1", P(), &len4);
  for (const std::string mode : {"enforce", "monitor"}) {
    SCOPED_TRACE(mode);
    ASSERT_NO_FATAL_FAILURE(setMode(mode));
    const bool enforce = mode == "enforce";
    // Made in client-b, connected from the test's own cgroup (host).
    EXPECT_EQ(runIn(b_, [&] {
      int fd = socket(AF_INET, SOCK_STREAM, 0);
      std::ofstream(hostProcs) << getpid() << std::flush;
      const int rc = connectWait(fd, server, len4);
      close(fd);
      return rc;
    }), enforce ? EPERM : 0) << "moved out of the tree";
    auto moved = daemon_->waitFlow([&](const json& e) {
      return e["verdict"] == (enforce ? "deny" : "audit") && e["direction"] == "egress" &&
             e["dst"]["port"] == P() && e["src"]["workload"] == "client-b";
    });
    ASSERT_TRUE(moved) << daemon_->log();
    EXPECT_EQ((*moved)["src"]["cgroup"], "/client-b");
    // Passed over a Unix socket to client-a (allowed to the server).
    int sv[2];
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sv), 0);
    ASSERT_EQ(runIn(b_, [&] {
      int fd = socket(AF_INET, SOCK_STREAM, 0);
      char byte = 'x';
      iovec iov{&byte, 1};
      alignas(cmsghdr) char ctl[CMSG_SPACE(sizeof(int))] = {};
      msghdr m{};
      m.msg_iov = &iov;
      m.msg_iovlen = 1;
      m.msg_control = ctl;
      m.msg_controllen = sizeof(ctl);
      cmsghdr* c = CMSG_FIRSTHDR(&m);
      c->cmsg_level = SOL_SOCKET;
      c->cmsg_type = SCM_RIGHTS;
      c->cmsg_len = CMSG_LEN(sizeof(int));
      std::memcpy(CMSG_DATA(c), &fd, sizeof(int));
      return sendmsg(sv[0], &m, 0) == 1 ? 0 : errno;
    }), 0);
    EXPECT_EQ(runIn(a_, [&] {
      char byte;
      iovec iov{&byte, 1};
      alignas(cmsghdr) char ctl[CMSG_SPACE(sizeof(int))] = {};
      msghdr m{};
      m.msg_iov = &iov;
      m.msg_iovlen = 1;
      m.msg_control = ctl;
      m.msg_controllen = sizeof(ctl);
      if (recvmsg(sv[1], &m, 0) != 1) return -1;
      int fd = -1;
      std::memcpy(&fd, CMSG_DATA(CMSG_FIRSTHDR(&m)), sizeof(int));
      const int rc = connectWait(fd, server, len4);
      close(fd);
      return rc;
    }), enforce ? EPERM : 0) << "passed to client-a";
    close(sv[0]);
    close(sv[1]);
    // unshare -n: a network namespace of its own, its own listener there;
    // still client-b's sockets, judged by client-b's policy (client-b may
    // not call client-b).
    EXPECT_EQ(runIn(b_, [&] {
      if (unshare(CLONE_NEWNET) != 0) return 1000 + errno;
      if (system("/usr/sbin/ip link set lo up") != 0) return 2000;
      int l = socket(AF_INET, SOCK_STREAM, 0);
      if (bind(l, reinterpret_cast<const sockaddr*>(&server), len4) != 0 || listen(l, 4) != 0) return 3000 + errno;
      int fd = socket(AF_INET, SOCK_STREAM, 0);
      const int rc = connectWait(fd, server, len4);
      close(fd);
      close(l);
      return rc;
    }), enforce ? EPERM : 0) << "unshare -n";
    auto self = daemon_->waitFlow([&](const json& e) {
      return e["verdict"] == (enforce ? "deny" : "audit") && e["direction"] == "egress" &&
             e["src"]["workload"] == "client-b" && e["dst"]["workload"] == "client-b";
    });
    ASSERT_TRUE(self) << daemon_->log();
  }
}

// SO_REUSEPORT: client-b joins the server's listening group to take the
// connections meant for it. The egress lookup names the port by the socket
// the group gives it (README "Known limits"), each SYN is judged by the
// socket it reaches: client-b's policy admits nobody, so in enforce mode it
// accepts nothing (client-a is refused at once or its SYN dropped when the
// group picks client-b); in monitor mode it is audited.
TEST_F(Attacks, AReuseportGroupCannotHijackAServer) {
  int accepted[2];
  ASSERT_EQ(pipe2(accepted, O_CLOEXEC | O_NONBLOCK), 0);
  auto reuseportListener = [&](const std::string& cg, int report) {
    const int port = P();
    return Child(cg, [port] {
      int fd = socket(AF_INET, SOCK_STREAM, 0);
      int one = 1;
      setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
      socklen_t len;
      auto ss = addrOf(AF_INET, "127.0.0.1", port, &len);
      if (bind(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0 || listen(fd, 64) != 0) return -1;
      return fd;
    }, [report](int fd) {
      for (;;) {
        int c = accept(fd, nullptr, nullptr);
        if (c < 0) continue;
        if (report >= 0) (void)!write(report, "a", 1);
        close(c);
      }
    });
  };
  Child server = reuseportListener(srv_, -1);
  Child hijacker = reuseportListener(b_, accepted[1]);
  ASSERT_TRUE(server.ready() && hijacker.ready());
  ASSERT_NO_FATAL_FAILURE(start());
  auto drain = [&] {
    char buf[64];
    int n = 0;
    for (ssize_t r; (r = read(accepted[0], buf, sizeof(buf))) > 0;) n += int(r);
    return n;
  };
  for (const std::string mode : {"enforce", "monitor"}) {
    SCOPED_TRACE(mode);
    ASSERT_NO_FATAL_FAILURE(setMode(mode));
    const bool enforce = mode == "enforce";
    drain();
    int ok = 0, refused = 0, dropped = 0;
    for (int i = 0; i < 12; i++) {
      const int rc = tcpFrom(a_, AF_INET, "127.0.0.1", P());
      ok += rc == 0;
      refused += rc == EPERM;
      dropped += rc == ETIMEDOUT;
    }
    EXPECT_EQ(ok + refused + dropped, 12);
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    const int taken = drain();
    if (enforce) {
      EXPECT_EQ(taken, 0) << "client-b accepted client-a's connections";
      EXPECT_GT(refused + dropped, 0) << "the group gave client-b some";
    } else {
      EXPECT_EQ(ok, 12);
    }
    auto f = daemon_->waitFlow([&](const json& e) {
      return e["verdict"] == (enforce ? "deny" : "audit") && e["src"]["workload"] == "client-a" &&
             e["dst"]["workload"] == "client-b" && e["dst"]["port"] == P();
    });
    ASSERT_TRUE(f) << daemon_->log();
  }
  close(accepted[0]);
  close(accepted[1]);
}

}  // namespace
}  // namespace microseg::e2e
