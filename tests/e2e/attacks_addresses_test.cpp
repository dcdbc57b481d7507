// Attacks on the addresses that name workloads (README "Workload network
// namespaces"): an unprivileged process cannot give an address an identity,
// and a namespace with thousands of addresses neither stalls the daemon nor
// names more than it may. Real kernel, throwaway cgroups and namespaces.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sched.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <memory>
#include <thread>

#include "harness.h"
#include "policies.h"

namespace microseg::e2e {
namespace {

using nlohmann::json;

constexpr int kDropMs = 500;

std::string doc(const std::string& kind, const std::string& name, const std::string& spec) {
  return "---\napiVersion: microseg.dev/v1\nkind: " + kind + "\nmetadata: {name: " + name + "}\nspec:\n" + spec;
}

bool writeFile(const std::string& path, const std::string& text) {
  int fd = open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return false;
  const bool ok = write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  close(fd);
  return ok;
}

// A process of `cgroup` that, as an unprivileged user (nobody), makes a
// user and network namespace of its own and puts `addrs` on its loopback:
// what any process of a workload can do.
Child unprivilegedClaim(const std::string& cgroup, const std::vector<std::string>& addrs) {
  return Child(
      cgroup,
      [addrs]() {
        if (setresgid(65534, 65534, 65534) != 0 || setresuid(65534, 65534, 65534) != 0) return -1;
        // A uid change makes the process non-dumpable: its /proc files would be root's.
        prctl(PR_SET_DUMPABLE, 1);
        if (unshare(CLONE_NEWUSER | CLONE_NEWNET) != 0) return -1;
        if (!writeFile("/proc/self/setgroups", "deny") || !writeFile("/proc/self/uid_map", "0 65534 1") ||
            !writeFile("/proc/self/gid_map", "0 65534 1")) {
          return -1;
        }
        std::string cmd = "ip link set lo up";
        for (const auto& a : addrs) cmd += " && ip addr add " + a + " dev lo";
        return std::system(cmd.c_str()) == 0 ? 0 : -1;
      },
      [](int) { std::this_thread::sleep_for(std::chrono::seconds(60)); });
}

class AttacksAddresses : public WorkloadTest {
 protected:
  void SetUp() override {
    WorkloadTest::SetUp();
    ASSERT_TRUE(nsS_.ok() && nsR_.ok());
    ASSERT_TRUE(vethPair(nsS_, {"10.79.0.1/24", "fd00:79::1/64"}, nsR_, {"10.79.0.2/24", "fd00:79::2/64"},
                         "ms" + std::to_string(getpid() % 100000) + "q"));
  }
  void startDaemon(const std::string& policy) {
    daemon_ = std::make_unique<Daemon>(tree_, policy, "enforce");
    ASSERT_TRUE(daemon_->started()) << daemon_->log();
  }
  // The netns entries the daemon lists for `workload`.
  json netnsOf(const std::string& workload) {
    auto s = daemon_->status();
    if (!s) return json::array();
    for (const auto& w : (*s)["workloads"]) {
      if (w["name"] == workload) return w["netns"];
    }
    return json::array();
  }
  int tcpFrom(const std::string& cg, int family, const std::string& addr, int port, const std::string& ns,
              const std::string& src) {
    return runIn(cg, [=] { return tcpConnect(family, addr, port, kDropMs, src); }, 5000, ns);
  }
  Netns nsS_, nsR_;  // the server's netns, and a "remote host" on a veth
};

// A process of client-a makes its own user+network namespace and claims the
// remote host's addresses. The server admits client-a; traffic from the
// real remote host must not be admitted as client-a.
TEST_F(AttacksAddresses, AnUnprivilegedNamespaceCannotClaimAnAddress) {
  const int p = port_;
  Child s4 = tcpServer(srv_, AF_INET, "0.0.0.0", p, nsS_.path());
  Child s6 = tcpServer(srv_, AF_INET6, "::", p, nsS_.path());
  ASSERT_TRUE(s4.ready() && s6.ready());
  Child claim = unprivilegedClaim(a_, {"10.79.0.2/32", "fd00:79::2/128"});
  ASSERT_TRUE(claim.ready()) << "an unprivileged user and network namespace with addresses";
  startDaemon(workloads() + doc("Policy", "server-in",
                                "  selector: {identity: server}\n  ingress:\n    - from: [{identity: client-a}]\n"
                                "      ports: [{port: " + std::to_string(p) + ", protocol: TCP}]\n"));

  // Give the daemon time to find client-a's namespace (it looks every second).
  for (int i = 0; i < 150 && netnsOf("client-a").empty(); i++) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  // The real remote host is world to the server, over IPv4 and IPv6.
  const std::string remote = ownCgroup(), R = nsR_.path();
  EXPECT_EQ(tcpFrom(remote, AF_INET, "10.79.0.1", p, R, "10.79.0.2"), ETIMEDOUT);
  EXPECT_EQ(tcpFrom(remote, AF_INET6, "fd00:79::1", p, R, "fd00:79::2"), ETIMEDOUT);
  auto deny = daemon_->waitFlow([&](const json& f) {
    return f["direction"] == "ingress" && f["verdict"] == "deny" && f["src"]["addr"] == "10.79.0.2";
  });
  ASSERT_TRUE(deny) << daemon_->log();
  EXPECT_EQ((*deny)["src"]["workload"], "world");
  auto deny6 = daemon_->waitFlow([&](const json& f) {
    return f["direction"] == "ingress" && f["verdict"] == "deny" && f["src"]["addr"] == "fd00:79::2";
  });
  ASSERT_TRUE(deny6) << daemon_->log();
  EXPECT_EQ((*deny6)["src"]["workload"], "world");

  // The daemon sees client-a's namespace, and does not trust it.
  const json seen = netnsOf("client-a");
  ASSERT_EQ(seen.size(), 1u) << seen.dump();
  EXPECT_EQ(seen[0]["trusted"], false) << seen.dump();
  EXPECT_TRUE(seen[0]["addresses"].empty()) << seen.dump();
  EXPECT_NE(seen[0].value("distrust", "").find("user namespace"), std::string::npos) << seen.dump();

  // Monitor mode: it passes, audited as world.
  ASSERT_EQ(daemon_->cli({"mode", "monitor"}).rc, 0);
  EXPECT_EQ(tcpFrom(remote, AF_INET, "10.79.0.1", p, R, "10.79.0.2"), 0);
  auto audit = daemon_->waitFlow([&](const json& f) {
    return f["direction"] == "ingress" && f["verdict"] == "audit" && f["src"]["addr"] == "10.79.0.2";
  });
  ASSERT_TRUE(audit) << daemon_->log();
  EXPECT_EQ((*audit)["src"]["workload"], "world");
}

// A trusted namespace (made by root, as a container runtime does) given
// 20,000 addresses while the daemon runs: a new cgroup is still classified
// at once, status answers, and only the first addresses name the workload.
TEST_F(AttacksAddresses, ANamespaceWithManyAddressesStallsNothing) {
  const std::string ctr = tree_.create("ctr");
  Child c(ctr, [] { return 0; }, [](int) { std::this_thread::sleep_for(std::chrono::seconds(120)); }, nsS_.path());
  ASSERT_TRUE(c.ready());
  startDaemon(workloads() + doc("Workload", "ctr", "  cgroups: [\"ctr\"]\n  labels: {app: ctr}\n") +
              doc("Workload", "pods", "  cgroups: [\"pods/*\"]\n  labels: {app: pods}\n"));
  for (int i = 0; i < 150 && netnsOf("ctr").empty(); i++) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  ASSERT_FALSE(netnsOf("ctr").empty());

  // 20,000 addresses, added by one `ip -batch` (a few seconds of netlink events).
  const std::string batch = "/tmp/microseg-e2e-addrs-" + std::to_string(getpid());
  {
    std::ofstream out(batch);
    for (int i = 0; i < 20000; i++) {
      out << "addr add 10.90." << (i / 250) << "." << (i % 250 + 1) << "/32 dev lo\n";
    }
  }
  // Through `ip netns exec` in a thread: Netns::ip() gives a tool 5 s.
  std::atomic<double> stormMs{0};
  std::thread storm([&] {
    const auto from = std::chrono::steady_clock::now();
    const std::string cmd = "/usr/sbin/ip -n " + nsS_.name() + " -batch " + batch;
    EXPECT_EQ(std::system(cmd.c_str()), 0);
    stormMs = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - from).count();
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(300));

  // Meanwhile pods appear, one every 250 ms for as long as the storm lasts:
  // each is classified (not pending) within a second, and status answers
  // within a second each time.
  tree_.create("pods");
  double slowestClassifyMs = 0, slowestStatusMs = 0;
  int pods = 0;
  auto msSince = [](auto t) {
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t).count();
  };
  while (stormMs == 0 && pods < 200) {
    const std::string pod = "pods/p" + std::to_string(pods++);
    const auto t0 = std::chrono::steady_clock::now();
    tree_.create(pod);
    bool classified = false;
    while (!classified && msSince(t0) < 3000) {
      const auto q = std::chrono::steady_clock::now();
      auto s = daemon_->status();
      slowestStatusMs = std::max(slowestStatusMs, msSince(q));
      ASSERT_TRUE(s) << "status must answer during the storm";
      for (const auto& w : (*s)["workloads"]) {
        if (w["name"] != "pods") continue;
        for (const auto& cg : w["cgroups"]) classified |= cg == "/" + pod;
      }
      if (!classified) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    slowestClassifyMs = std::max(slowestClassifyMs, msSince(t0));
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
  }
  storm.join();
  std::remove(batch.c_str());
  EXPECT_LT(slowestClassifyMs, 1000.0) << "a new cgroup waited for the address storm";
  EXPECT_LT(slowestStatusMs, 1000.0);

  // Settled: the first kMaxNetnsAddresses (64) addresses name ctr, the rest are counted.
  json n;
  for (int i = 0; i < 500; i++) {
    n = netnsOf("ctr");
    if (!n.empty() && n[0]["addresses"].size() + n[0].value("addresses_dropped", 0) >= 20000) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_EQ(n.size(), 1u);
  EXPECT_EQ(n[0]["addresses"].size(), 64u) << n.dump();
  EXPECT_GE(n[0].value("addresses_dropped", 0), 20000 + 2 - 64) << "veth v4 + v6 (+ link-local) + 20,000 on lo";
  std::cerr << pods << " pods classified, the slowest in " << slowestClassifyMs << " ms; slowest status "
            << slowestStatusMs << " ms; 20,000 addresses added in " << stormMs << " ms\n";
}

}  // namespace
}  // namespace microseg::e2e
