// End-to-end tests of the foundation: the real microsegd, the real BPF
// programs on a throwaway cgroup tree, real sockets. Workloads client-a,
// client-b, server; the policy allows only client-a -> server TCP/<port>.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>

#include "harness.h"
#include "policies.h"

namespace microseg::e2e {
namespace {

using nlohmann::json;

class Foundation : public WorkloadTest {
 protected:
  void startDaemon(const std::string& mode, const std::string& policy = "") {
    daemon_ = std::make_unique<Daemon>(tree_, policy.empty() ? allowPolicy("client-a", port_) : policy, mode);
    ASSERT_TRUE(daemon_->started()) << daemon_->log();
  }
  void startServers() {
    tcp4_ = std::make_unique<Child>(tcpServer(srv_, AF_INET, "127.0.0.1", port_));
    tcp6_ = std::make_unique<Child>(tcpServer(srv_, AF_INET6, "::1", port_));
    udp_ = std::make_unique<Child>(udpEchoServer(srv_, AF_INET, "127.0.0.1", port_ + 1));
    ASSERT_TRUE(tcp4_->ready() && tcp6_->ready() && udp_->ready()) << "servers failed to bind";
  }
  void enforce() {
    auto r = daemon_->cli({"mode", "enforce"});
    ASSERT_EQ(r.rc, 0) << r.err;
    ASSERT_EQ(daemon_->cli({"mode"}).out, "enforce\n");
  }
  int connectFrom(const std::string& cg, int port = 0) {
    const int p = port == 0 ? port_ : port;
    return runIn(cg, [p] { return tcpConnect(AF_INET, "127.0.0.1", p); });
  }
  uint64_t generation() {
    auto s = daemon_->status();
    return s ? (*s)["policy_generation"].get<uint64_t>() : 0;
  }

  // Destroyed in reverse: servers, daemon (its log is printed in TearDown
  // before), then the tree.
  std::unique_ptr<Child> tcp4_, tcp6_, udp_;
};

TEST_F(Foundation, MonitorModeAuditsWouldDenyAndLetsItPass) {
  startDaemon("monitor");
  ASSERT_NO_FATAL_FAILURE(startServers());
  EXPECT_EQ(connectFrom(b_), 0);
  auto audit = daemon_->waitFlow([&](const json& f) {
    // Both sides audit it; since the edge table the two records' lines may
    // come in either order: this is the caller's.
    return f["verdict"] == "audit" && f["src"]["workload"] == "client-b" && f["direction"] == "egress";
  });
  ASSERT_TRUE(audit) << daemon_->log();
  EXPECT_EQ((*audit)["dst"]["workload"], "server");
  EXPECT_EQ((*audit)["dst"]["port"], port_);
  EXPECT_EQ((*audit)["dst"]["addr"], "127.0.0.1");
  EXPECT_EQ((*audit)["protocol"], "tcp");
  EXPECT_EQ((*audit)["direction"], "egress");
  EXPECT_EQ((*audit)["rule"], "default-deny");
  EXPECT_EQ((*audit)["src"]["cgroup"], "/client-b");
  EXPECT_GT((*audit)["src"]["pid"].get<int>(), 0);

  EXPECT_EQ(connectFrom(a_), 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(400));
  for (const auto& f : daemon_->flows()) EXPECT_NE(f["src"]["workload"], "client-a") << f.dump();
  auto s = daemon_->status();
  ASSERT_TRUE(s);
  EXPECT_EQ((*s)["mode"], "monitor");
  EXPECT_GE((*s)["counters"]["audited"].get<int>(), 1);
  EXPECT_GE((*s)["counters"]["allowed"].get<int>(), 1);
}

TEST_F(Foundation, EnforceRefusesAtOnceWithEperm) {
  startDaemon("monitor");
  ASSERT_NO_FATAL_FAILURE(startServers());
  enforce();
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(connectFrom(b_), EPERM);
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0);
  EXPECT_LT(ms.count(), 100) << "a refused connect must fail at once, not time out";
  EXPECT_EQ(connectFrom(a_), 0);
  auto deny = daemon_->waitFlow([](const json& f) {
    return f["verdict"] == "deny" && f["src"]["workload"] == "client-b" && f["dst"]["workload"] == "server";
  });
  ASSERT_TRUE(deny) << daemon_->log();
  EXPECT_EQ((*deny)["rule"], "default-deny");
  auto st = daemon_->cli({"status", "-o", "json"});
  ASSERT_EQ(st.rc, 0) << st.err;
  auto s = json::parse(st.out);
  EXPECT_EQ(s["mode"], "enforce");
  EXPECT_GE(s["counters"]["denied"].get<int>(), 1);
  for (const char* k : {"allowed", "denied", "audited", "events_lost"}) EXPECT_TRUE(s["counters"].contains(k));
  EXPECT_TRUE(s.contains("policy_generation"));
  EXPECT_TRUE(s.contains("workloads"));

  // And back: monitor lets it through on the very next syscall.
  ASSERT_EQ(daemon_->cli({"mode", "monitor"}).rc, 0);
  EXPECT_EQ(connectFrom(b_), 0);
}

TEST_F(Foundation, UdpIsJudgedAndAnswersAreNotNewFlows) {
  startDaemon("enforce");
  ASSERT_NO_FATAL_FAILURE(startServers());
  const int udpPort = port_ + 1;
  EXPECT_EQ(runIn(b_, [&] { return udpSendto(AF_INET, "127.0.0.1", udpPort); }), EPERM);
  EXPECT_EQ(runIn(b_, [&] { return udpConnectSend(AF_INET, "127.0.0.1", udpPort); }), EPERM);
  EXPECT_EQ(runIn(a_, [&] { return udpSendto(AF_INET, "127.0.0.1", udpPort); }), EPERM)
      << "no UDP rule yet";

  daemon_->writePolicy("policy.yaml", allowPolicy("client-a", port_, /*udp=*/true));
  auto r = daemon_->cli({"policy", "reload"});
  ASSERT_EQ(r.rc, 0) << r.err;

  // The server has no egress rule: its answers pass as answers.
  EXPECT_EQ(runIn(a_, [&] { return udpRequest(AF_INET, "127.0.0.1", udpPort, false); }), 0);
  EXPECT_EQ(runIn(a_, [&] { return udpRequest(AF_INET, "127.0.0.1", udpPort, true); }), 0);
  EXPECT_EQ(runIn(b_, [&] { return udpRequest(AF_INET, "127.0.0.1", udpPort, false); }), EPERM);
  // The same over IPv6 (recvmsg6/sendmsg6 answer tracking).
  Child udp6 = udpEchoServer(srv_, AF_INET6, "::1", udpPort);
  ASSERT_TRUE(udp6.ready());
  EXPECT_EQ(runIn(a_, [&] { return udpRequest(AF_INET6, "::1", udpPort, false); }), 0);
  EXPECT_EQ(runIn(a_, [&] { return udpRequest(AF_INET6, "::1", udpPort, true); }), 0);
  EXPECT_EQ(runIn(b_, [&] { return udpRequest(AF_INET6, "::1", udpPort, false); }), EPERM);
  // The same server socket sending to a port of the client it never heard
  // from is a new flow, judged by the server's (empty) egress policy.
  EXPECT_EQ(runIn(a_, [&] { return udpAskUnsolicited(AF_INET, "127.0.0.1", udpPort, port_ + 7); }), EPERM);
  auto deny = daemon_->waitFlow([&](const json& f) {
    return f["verdict"] == "deny" && f["src"]["workload"] == "server" && f["protocol"] == "udp";
  });
  EXPECT_TRUE(deny) << daemon_->log();
}

TEST_F(Foundation, BypassAttemptsAreRefused) {
  startDaemon("enforce");
  ASSERT_NO_FATAL_FAILURE(startServers());
  // IPv4-mapped IPv6 (connect6 with ::ffff:127.0.0.1) is judged as IPv4.
  EXPECT_EQ(runIn(b_, [&] { return tcpConnectV4Mapped("127.0.0.1", port_); }), EPERM);
  // Checked before the other denies: the flow log folds events per
  // (identities, port, verdict) and shows the address of the latest event.
  auto mapped = daemon_->waitFlow([&](const json& f) {
    return f["verdict"] == "deny" && f["src"]["workload"] == "client-b" && f["dst"]["port"] == port_;
  });
  ASSERT_TRUE(mapped) << daemon_->log();
  EXPECT_EQ((*mapped)["hook"], "connect6");
  EXPECT_EQ((*mapped)["dst"]["addr"], "127.0.0.1") << "mapped destinations are logged as IPv4";
  EXPECT_EQ((*mapped)["dst"]["workload"], "server");
  EXPECT_EQ(runIn(a_, [&] { return tcpConnectV4Mapped("127.0.0.1", port_); }), 0);
  // TCP Fast Open: sendto(MSG_FASTOPEN) connects without connect(); it must
  // fire connect4 too. Needs the client bit of net.ipv4.tcp_fastopen (else
  // the kernel says EOPNOTSUPP before any hook runs).
  TcpFastOpenClient tfo;
  ASSERT_TRUE(tfo.ok()) << "cannot enable net.ipv4.tcp_fastopen for the client";
  EXPECT_EQ(runIn(b_, [&] { return tfoSendto(AF_INET, "127.0.0.1", port_); }), EPERM);
  EXPECT_EQ(runIn(a_, [&] { return tfoSendto(AF_INET, "127.0.0.1", port_); }), 0);
  // IPv6 loopback, with the server's own ::1 listener.
  EXPECT_EQ(runIn(b_, [&] { return tcpConnect(AF_INET6, "::1", port_); }), EPERM);
  EXPECT_EQ(runIn(a_, [&] { return tcpConnect(AF_INET6, "::1", port_); }), 0);
  // UDP from an AF_INET6 socket to a mapped address fires sendmsg4.
  EXPECT_EQ(runIn(b_, [&] { return udpSendto(AF_INET6, "::ffff:127.0.0.1", port_ + 1); }), EPERM);
  auto udp = daemon_->waitFlow([&](const json& f) {
    return f["verdict"] == "deny" && f["protocol"] == "udp" && f["src"]["workload"] == "client-b";
  });
  ASSERT_TRUE(udp) << daemon_->log();
  EXPECT_EQ((*udp)["dst"]["addr"], "127.0.0.1");
  EXPECT_EQ((*udp)["dst"]["port"], port_ + 1);
}

TEST_F(Foundation, SocketKeepsTheIdentityOfTheCgroupThatCreatedIt) {
  startDaemon("enforce");
  ASSERT_NO_FATAL_FAILURE(startServers());
  // Created in client-b, then the process moves to client-a and connects:
  // still client-b (identity is not laundered by changing cgroup / fd passing).
  const std::string aProcs = a_ + "/cgroup.procs";
  int rc = runIn(b_, [&] {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int p = open(aProcs.c_str(), O_WRONLY);
    std::string pid = std::to_string(getpid());
    if (p < 0 || write(p, pid.data(), pid.size()) < 0) return -3;
    close(p);
    sockaddr_in sin{};
    sin.sin_family = AF_INET;
    sin.sin_port = htons(static_cast<uint16_t>(port_));
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int r = connect(fd, reinterpret_cast<sockaddr*>(&sin), sizeof(sin)) == 0 ? 0 : errno;
    close(fd);
    return r;
  });
  EXPECT_EQ(rc, EPERM);
}

TEST_F(Foundation, ASocketPassedToAnotherCgroupKeepsItsCreatorsIdentity) {
  startDaemon("enforce");
  ASSERT_NO_FATAL_FAILURE(startServers());
  // client-b creates a socket and hands it over SCM_RIGHTS to a process in
  // client-a, which connects with it: still client-b's socket, refused.
  int sv[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sv), 0);
  // One byte with room for one descriptor, for sendmsg and recvmsg alike.
  struct FdMessage {
    char byte = 'x';
    alignas(cmsghdr) char ctl[CMSG_SPACE(sizeof(int))] = {};
    iovec iov{&byte, 1};
    msghdr m{};
    FdMessage() {
      m.msg_iov = &iov;
      m.msg_iovlen = 1;
      m.msg_control = ctl;
      m.msg_controllen = sizeof(ctl);
    }
  };
  auto sendFd = [](int over, int fd) {
    FdMessage msg;
    cmsghdr* c = CMSG_FIRSTHDR(&msg.m);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    std::memcpy(CMSG_DATA(c), &fd, sizeof(int));
    return sendmsg(over, &msg.m, 0) == 1;
  };
  auto recvFd = [](int over) {
    FdMessage msg;
    pollfd p{over, POLLIN, 0};
    if (poll(&p, 1, 3000) <= 0 || recvmsg(over, &msg.m, 0) != 1) return -1;
    cmsghdr* c = CMSG_FIRSTHDR(&msg.m);
    int fd = -1;
    if (c != nullptr && c->cmsg_type == SCM_RIGHTS) std::memcpy(&fd, CMSG_DATA(c), sizeof(int));
    return fd;
  };
  const int port = port_;
  ASSERT_EQ(runIn(b_, [&] {
              int tcp = socket(AF_INET, SOCK_STREAM, 0), udp = socket(AF_INET, SOCK_DGRAM, 0);
              return sendFd(sv[0], tcp) && sendFd(sv[0], udp) ? 0 : -1;
            }),
            0);
  const int rc = runIn(a_, [&] {
    const int tcp = recvFd(sv[1]), udp = recvFd(sv[1]);
    if (tcp < 0 || udp < 0) return -1;
    sockaddr_in sin{};
    sin.sin_family = AF_INET;
    sin.sin_port = htons(static_cast<uint16_t>(port));
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    const int t = connect(tcp, reinterpret_cast<sockaddr*>(&sin), sizeof(sin)) == 0 ? 0 : errno;
    sin.sin_port = htons(static_cast<uint16_t>(port + 1));
    const int u = sendto(udp, "x", 1, 0, reinterpret_cast<sockaddr*>(&sin), sizeof(sin)) == 1 ? 0 : errno;
    return t == EPERM && u == EPERM ? 0 : 1000 + t;
  });
  close(sv[0]);
  close(sv[1]);
  EXPECT_EQ(rc, 0) << "client-a is allowed to the server, the socket it was handed is client-b's";
  EXPECT_EQ(connectFrom(a_), 0) << "client-a's own socket is allowed";
  auto deny = daemon_->waitFlow([](const json& f) { return f["verdict"] == "deny" && f["protocol"] == "tcp"; });
  ASSERT_TRUE(deny) << daemon_->log();
  EXPECT_EQ((*deny)["src"]["workload"], "client-b");
  EXPECT_EQ((*deny)["src"]["cgroup"], "/client-b");
}

TEST_F(Foundation, NewChildCgroupIsItsWorkloadFromTheFirstConnect) {
  startDaemon("enforce");
  ASSERT_NO_FATAL_FAILURE(startServers());
  // Created after the daemon started; no sleep before the connect.
  const std::string deepA = tree_.create("client-a/sub/deeper");
  const std::string deepB = tree_.create("client-b/sub");
  EXPECT_EQ(connectFrom(deepA), 0);
  EXPECT_EQ(connectFrom(deepB), EPERM);
  auto deny = daemon_->waitFlow([](const json& f) { return f["verdict"] == "deny"; });
  ASSERT_TRUE(deny);
  EXPECT_EQ((*deny)["src"]["workload"], "client-b");
}

TEST_F(Foundation, PolicyChangesTakeEffectForTheNextConnect) {
  startDaemon("enforce");
  ASSERT_NO_FATAL_FAILURE(startServers());
  ASSERT_EQ(connectFrom(a_), 0);
  ASSERT_EQ(connectFrom(b_), EPERM);
  const uint64_t g0 = generation();

  daemon_->writePolicy("policy.yaml", allowPolicy("client-b", port_));
  ASSERT_EQ(kill(daemon_->pid(), SIGHUP), 0);
  for (int i = 0; i < 100 && generation() == g0; i++) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  ASSERT_EQ(generation(), g0 + 1);
  EXPECT_EQ(connectFrom(b_), 0);
  EXPECT_EQ(connectFrom(a_), EPERM);

  daemon_->writePolicy("policy.yaml", allowPolicy("client-a", port_));
  auto r = daemon_->cli({"policy", "reload"});
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(generation(), g0 + 2);
  EXPECT_EQ(connectFrom(a_), 0);
  EXPECT_EQ(connectFrom(b_), EPERM);
}

TEST_F(Foundation, InvalidPolicyIsRejectedAndThePreviousStaysInForce) {
  startDaemon("enforce");
  ASSERT_NO_FATAL_FAILURE(startServers());
  const uint64_t g0 = generation();
  daemon_->writePolicy("zz-bad.yaml",
                       "apiVersion: microseg.dev/v1\nkind: Policy\nmetadata: {name: bad}\nspec:\n"
                       "  selector: {identity: client-b}\n  egress:\n"
                       "    - ports: [{port: 70000, protocol: TCP}]\n");
  const std::string bad = daemon_->policyDir() + "/zz-bad.yaml";
  auto r = daemon_->cli({"policy", "reload"});
  EXPECT_EQ(r.rc, 1);
  EXPECT_NE(r.err.find(bad + ":7:22: error:"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("70000"), std::string::npos) << r.err;
  EXPECT_EQ(generation(), g0);
  EXPECT_EQ(connectFrom(a_), 0);
  EXPECT_EQ(connectFrom(b_), EPERM);
  auto s = daemon_->status();
  ASSERT_TRUE(s);
  EXPECT_FALSE((*s)["last_reload"]["ok"].get<bool>());

  auto v = daemon_->cli({"policy", "validate", bad});
  EXPECT_EQ(v.rc, 1);
  EXPECT_NE(v.err.find(bad + ":7:22: error:"), std::string::npos) << v.err;
  // SIGHUP with the bad file: rejected too, daemon still serving.
  ASSERT_EQ(kill(daemon_->pid(), SIGHUP), 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_EQ(generation(), g0);
  EXPECT_EQ(connectFrom(b_), EPERM);
}

TEST_F(Foundation, UnmanagedCgroupsAreNotGovernedAndHostListenersAreHost) {
  startDaemon("enforce");
  ASSERT_NO_FATAL_FAILURE(startServers());
  const size_t known = (*daemon_->status())["datapath"]["cgroups_known"].get<size_t>();
  const std::string other = tree_.create("not-a-workload");
  // Until the daemon has classified it (inotify: milliseconds) a new cgroup
  // that could be a workload is pending and fails closed; wait for that.
  for (int i = 0; i < 100 && (*daemon_->status())["datapath"]["cgroups_known"].get<size_t>() == known; i++) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  // Its egress is not governed, but the server's ingress is: unmanaged
  // callers are refused (the SYN is dropped) until a rule admits them.
  EXPECT_EQ(connectFrom(other), ETIMEDOUT) << "the server's ingress does not admit unmanaged callers";
  auto dropped = daemon_->waitFlow([&](const json& f) {
    return f["verdict"] == "deny" && f["direction"] == "ingress" && f["src"]["workload"] == "unmanaged";
  });
  ASSERT_TRUE(dropped) << daemon_->log();
  EXPECT_EQ((*dropped)["dst"]["workload"], "server");
  EXPECT_EQ((*dropped)["src"]["cgroup"], "/not-a-workload") << "the caller is identified by its socket's cgroup";
  EXPECT_EQ((*dropped)["hook"], "ingress");
  const uint64_t g0 = generation();
  daemon_->writePolicy("policy.yaml", allowPolicy("client-a", port_) +
                                          "---\napiVersion: microseg.dev/v1\nkind: Policy\nmetadata: {name: admit-unmanaged}\n"
                                          "spec:\n  selector: {identity: server}\n  ingress: [{from: [unmanaged]}]\n");
  for (int i = 0; i < 100 && generation() == g0; i++) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_EQ(connectFrom(other), 0) << "a cgroup matching no workload is not governed for egress";
  // A listener outside the managed tree (this test process's own cgroup).
  Child host(cgroup2Mount() + [] {
    std::ifstream in("/proc/self/cgroup");
    std::string line, path;
    while (std::getline(in, line)) {
      if (line.rfind("0::", 0) == 0) path = line.substr(3);
    }
    return path == "/" ? std::string() : path;
  }(), [&] {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    sockaddr_in sin{};
    sin.sin_family = AF_INET;
    sin.sin_port = htons(static_cast<uint16_t>(port_ + 5));
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, reinterpret_cast<sockaddr*>(&sin), sizeof(sin)) != 0 || listen(fd, 16) != 0) return -1;
    return fd;
  }, [](int) { sleep(30); });
  ASSERT_TRUE(host.ready());
  EXPECT_EQ(connectFrom(b_, port_ + 5), EPERM);
  auto deny = daemon_->waitFlow([&](const json& f) {
    return f["verdict"] == "deny" && f["dst"]["port"] == port_ + 5;
  });
  ASSERT_TRUE(deny) << daemon_->log();
  EXPECT_EQ((*deny)["dst"]["workload"], "host");
}

TEST_F(Foundation, AListenerWithoutBindIsItsWorkloadAtOnce) {
  startDaemon("enforce");
  // listen() without bind(): the kernel picks the port; no bind hook ever
  // sees it. The datapath finds the listener by the kernel's own lookup.
  int pfd[2];
  ASSERT_EQ(pipe(pfd), 0);
  Child server(srv_, [&] {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0 || listen(fd, 16) != 0) return -1;
    sockaddr_in sin{};
    socklen_t len = sizeof(sin);
    getsockname(fd, reinterpret_cast<sockaddr*>(&sin), &len);
    const int port = ntohs(sin.sin_port);
    return write(pfd[1], &port, sizeof(port)) == sizeof(port) ? fd : -1;
  }, [](int) { sleep(30); });
  ASSERT_TRUE(server.ready());
  int port = 0;
  ASSERT_EQ(read(pfd[0], &port, sizeof(port)), static_cast<ssize_t>(sizeof(port)));
  close(pfd[0]);
  close(pfd[1]);
  EXPECT_EQ(connectFrom(b_, port), EPERM);
  auto deny = daemon_->waitFlow([&](const json& f) { return f["verdict"] == "deny" && f["dst"]["port"] == port; });
  ASSERT_TRUE(deny) << daemon_->log();
  EXPECT_EQ((*deny)["dst"]["workload"], "server") << "not host: the listener's own cgroup names it";
  EXPECT_EQ((*deny)["dst"]["cgroup"], "/server");
}

TEST_F(Foundation, ListenersThatStartedBeforeTheDaemonAreIdentified) {
  ASSERT_NO_FATAL_FAILURE(startServers());  // before the daemon: found by the kernel's socket lookup at connect
  startDaemon("monitor");
  EXPECT_EQ(connectFrom(b_), 0);
  auto audit = daemon_->waitFlow([](const json& f) { return f["verdict"] == "audit"; });
  ASSERT_TRUE(audit) << daemon_->log();
  EXPECT_EQ((*audit)["dst"]["workload"], "server");
  enforce();
  EXPECT_EQ(connectFrom(a_), 0);
  EXPECT_EQ(connectFrom(b_), EPERM);
}

std::string bpftoolCgroupShow(const std::string& cgroup) {
  const std::string cmd = "bpftool cgroup show " + cgroup + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr) return "popen failed";
  char buf[4096];
  std::string out;
  while (fgets(buf, sizeof(buf), p)) out += buf;
  pclose(p);
  return out;
}

TEST_F(Foundation, SigtermKeepsEnforcingThroughPinnedLinks) {
  startDaemon("enforce");
  ASSERT_NO_FATAL_FAILURE(startServers());
  ASSERT_EQ(connectFrom(b_), EPERM);
  EXPECT_EQ(daemon_->stop(), 0);
  // No daemon: the pinned links keep enforcing the last policy and mode.
  EXPECT_EQ(connectFrom(b_), EPERM);
  EXPECT_EQ(connectFrom(a_), 0);
  EXPECT_NE(bpftoolCgroupShow(tree_.root()).find("ms_connect4"), std::string::npos);
}

TEST_F(Foundation, UninstallRemovesEverything) {
  startDaemon("enforce");
  ASSERT_NO_FATAL_FAILURE(startServers());
  ASSERT_EQ(connectFrom(b_), EPERM);
  const std::string state = daemon_->stateDir();
  ASSERT_TRUE(std::filesystem::exists(state));
  auto r = daemon_->cli({"uninstall"});
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(daemon_->stop(), 0) << "the daemon exits after uninstall";
  EXPECT_FALSE(std::filesystem::exists(state)) << "pins left behind in " << state;
  const std::string progs = bpftoolCgroupShow(tree_.root());
  EXPECT_EQ(progs.find("ms_"), std::string::npos) << progs;
  EXPECT_EQ(connectFrom(b_), 0) << "nothing is enforced after uninstall";
}

TEST_F(Foundation, CleanupFlagRemovesPinnedStateOfAStoppedDaemon) {
  startDaemon("enforce");
  ASSERT_NO_FATAL_FAILURE(startServers());
  daemon_->crash();
  ASSERT_EQ(connectFrom(b_), EPERM) << "still enforced by pinned links after a crash";
  EXPECT_EQ(daemon_->cleanup(), 0);
  EXPECT_FALSE(std::filesystem::exists(daemon_->stateDir()));
  EXPECT_EQ(bpftoolCgroupShow(tree_.root()).find("ms_"), std::string::npos);
  EXPECT_EQ(connectFrom(b_), 0);
}

}  // namespace
}  // namespace microseg::e2e
