#include "attacks_util.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/ip_icmp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <thread>

namespace microseg::e2e {
namespace {

std::string doc(const std::string& kind, const std::string& name, const std::string& spec) {
  return "---\napiVersion: microseg.dev/v1\nkind: " + kind + "\nmetadata: {name: " + name + "}\nspec:\n" + spec;
}

std::string ports(std::initializer_list<std::pair<int, const char*>> list) {
  std::string s = "[";
  for (const auto& [port, proto] : list) {
    s += std::string(s.size() > 1 ? ", " : "") + "{port: " + std::to_string(port) + ", protocol: " + proto + "}";
  }
  return s + "]";
}

socklen_t sockaddrOf(int family, const std::string& addr, int port, const std::string& dev, sockaddr_storage& ss) {
  const socklen_t len = makeAddr(family, addr, port, ss);
  auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
  if (family == AF_INET6 && !dev.empty() &&
      (IN6_IS_ADDR_LINKLOCAL(&a->sin6_addr) || IN6_IS_ADDR_MULTICAST(&a->sin6_addr))) {
    a->sin6_scope_id = if_nametoindex(dev.c_str());
  }
  return len;
}

int bindToDevice(int fd, const std::string& dev) {
  if (dev.empty()) return 0;
  return setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, dev.c_str(), socklen_t(dev.size())) == 0 ? 0 : errno;
}

// Waits for a datagram on `fd`: 0, or ETIMEDOUT.
int awaitEcho(int fd, int timeoutMs) {
  pollfd p{fd, POLLIN, 0};
  char buf[256];
  return poll(&p, 1, timeoutMs) > 0 && recv(fd, buf, sizeof(buf), 0) > 0 ? 0 : ETIMEDOUT;
}

}  // namespace

std::string Attacks::policy() const {
  const std::string host = "    - to: [host]\n      ports: " + ports({{P(), "TCP"}, {U(), "UDP"}}) + "\n";
  return workloads() +
         doc("Policy", "b-out",
             "  selector: {identity: client-b}\n  egress:\n" + host + "    - to: [world]\n      ports: " +
                 ports({{U(), "UDP"}}) + "\n    - to: [{identity: server}]\n      ports: " +
                 ports({{P2(), "TCP"}, {P4(), "UDP"}}) + "\n") +
         doc("Policy", "a-out",
             "  selector: {identity: client-a}\n  egress:\n    - to: [{identity: server}]\n      ports: " +
                 ports({{P(), "TCP"}, {U(), "UDP"}, {P4(), "UDP"}}) + "\n    - ports: " + ports({{M(), "UDP"}}) +
                 "\n") +
         doc("Policy", "server-in",
             "  selector: {identity: server}\n  ingress:\n    - from: [{identity: client-a}]\n      ports: " +
                 ports({{P(), "TCP"}, {U(), "UDP"}, {P4(), "UDP"}, {M(), "UDP"}}) +
                 "\n    - from: [host]\n      ports: " + ports({{P(), "TCP"}, {U(), "UDP"}, {P2(), "TCP"}, {P4(), "UDP"}}) +
                 "\n");
}

void Attacks::start(const std::vector<std::string>& extra) {
  daemon_ = std::make_unique<Daemon>(tree_, policy(), "enforce", extra);
  ASSERT_TRUE(daemon_->started()) << daemon_->log();
}

void Attacks::setMode(const std::string& mode) {
  auto r = daemon_->cli({"mode", mode});
  ASSERT_EQ(r.rc, 0) << r.err;
}

long Attacks::counter(const std::string& name) const {
  auto s = daemon_->status();
  if (!s || !(*s)["counters"].contains(name)) return -1;
  return (*s)["counters"][name].get<long>();
}

int Attacks::tcpFrom(const std::string& cg, int family, const std::string& addr, int port) const {
  return runIn(cg, [=] { return tcpConnect(family, addr, port, kDropMs); });
}

bool Attacks::knows(const std::string& workload, const std::string& addr) const {
  for (int i = 0; i < 150; i++) {
    if (auto s = daemon_->status(); s) {
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

DeepChain::DeepChain(const std::string& parent, const std::string& tag, int depth) {
  std::string dir = parent + "/deep-" + tag;
  for (int i = 0; i < depth; i++) {
    if (mkdir(dir.c_str(), 0755) != 0) return;
    dirs_.push_back(dir);
    dir += "/d" + std::to_string(i + 1);
  }
  ok_ = true;
}

DeepChain::~DeepChain() {
  // The processes the test forked in the chain are reaped by then (runIn,
  // Child destructors run before this one).
  for (auto it = dirs_.rbegin(); it != dirs_.rend(); ++it) {
    for (int i = 0; i < 50 && rmdir(it->c_str()) != 0 && errno == EBUSY; i++) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
}

std::pair<std::string, std::string> hostAddress() {
  ifaddrs* ifa = nullptr;
  std::pair<std::string, std::string> out;
  if (getifaddrs(&ifa) != 0) return out;
  for (ifaddrs* i = ifa; i != nullptr; i = i->ifa_next) {
    if (i->ifa_addr == nullptr || i->ifa_addr->sa_family != AF_INET || (i->ifa_flags & IFF_UP) == 0 ||
        (i->ifa_flags & IFF_LOOPBACK) != 0) {
      continue;
    }
    char buf[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(i->ifa_addr)->sin_addr, buf, sizeof(buf));
    out = {buf, i->ifa_name};
    break;
  }
  freeifaddrs(ifa);
  return out;
}

int udpSendtoDev(int family, const std::string& addr, int port, const std::string& dev, bool broadcast) {
  int fd = socket(family, SOCK_DGRAM, 0);
  if (fd < 0) return errno;
  int one = 1;
  if (broadcast) setsockopt(fd, SOL_SOCKET, SO_BROADCAST, &one, sizeof(one));
  sockaddr_storage ss;
  const socklen_t len = sockaddrOf(family, addr, port, dev, ss);
  const int rc = sendto(fd, "ping", 4, 0, reinterpret_cast<sockaddr*>(&ss), len) < 0 ? errno : 0;
  close(fd);
  return rc;
}

int tcpConnectDev(const std::string& addr, int port, const std::string& dev, int timeoutMs) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  if (fd < 0) return errno;
  int rc = bindToDevice(fd, dev);
  sockaddr_storage ss;
  const socklen_t len = sockaddrOf(AF_INET, addr, port, "", ss);
  if (rc == 0 && connect(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0) {
    rc = errno;
    if (rc == EINPROGRESS) {
      pollfd p{fd, POLLOUT, 0};
      if (poll(&p, 1, timeoutMs) <= 0) {
        rc = ETIMEDOUT;
      } else {
        socklen_t el = sizeof(rc);
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &rc, &el);
      }
    }
  }
  close(fd);
  return rc;
}

int udpRequestDev(const std::string& addr, int port, const std::string& dev, int timeoutMs) {
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  if (fd < 0) return errno;
  int rc = bindToDevice(fd, dev);
  sockaddr_storage ss;
  const socklen_t len = sockaddrOf(AF_INET, addr, port, "", ss);
  if (rc == 0 && sendto(fd, "ping", 4, 0, reinterpret_cast<sockaddr*>(&ss), len) < 0) rc = errno;
  if (rc == 0) rc = awaitEcho(fd, timeoutMs);
  close(fd);
  return rc;
}

int udpBoundSocket(int port) {
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  if (fd < 0) return -1;
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_storage ss;
  const socklen_t len = sockaddrOf(AF_INET, "127.0.0.1", port, "", ss);
  if (bind(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

int udpExchange(int fd, int port, int timeoutMs) {
  sockaddr_storage ss;
  const socklen_t len = sockaddrOf(AF_INET, "127.0.0.1", port, "", ss);
  if (sendto(fd, "ping", 4, 0, reinterpret_cast<sockaddr*>(&ss), len) < 0) return errno;
  return awaitEcho(fd, timeoutMs);
}

int udpRequestFrom(int srcPort, int port, int timeoutMs) {
  const int fd = udpBoundSocket(srcPort);
  if (fd < 0) return errno;
  const int rc = udpExchange(fd, port, timeoutMs);
  close(fd);
  return rc;
}

Child udpLiteEchoServer(const std::string& cgroup, int port) {
  return Child(
      cgroup,
      [=] {
        int fd = socket(AF_INET, SOCK_DGRAM, IPPROTO_UDPLITE);
        sockaddr_storage ss;
        const socklen_t len = sockaddrOf(AF_INET, "127.0.0.1", port, "", ss);
        if (fd < 0 || bind(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0) return -1;
        return fd;
      },
      [](int fd) {
        char buf[256];
        for (;;) {
          sockaddr_storage from;
          socklen_t flen = sizeof(from);
          const ssize_t n = recvfrom(fd, buf, sizeof(buf), 0, reinterpret_cast<sockaddr*>(&from), &flen);
          if (n > 0) sendto(fd, buf, size_t(n), 0, reinterpret_cast<sockaddr*>(&from), flen);
        }
      });
}

int udpLiteRequest(int port, int timeoutMs) {
  int fd = socket(AF_INET, SOCK_DGRAM, IPPROTO_UDPLITE);
  if (fd < 0) return errno;
  sockaddr_storage ss;
  const socklen_t len = sockaddrOf(AF_INET, "127.0.0.1", port, "", ss);
  int rc = sendto(fd, "ping", 4, 0, reinterpret_cast<sockaddr*>(&ss), len) < 0 ? errno : 0;
  if (rc == 0) rc = awaitEcho(fd, timeoutMs);
  close(fd);
  return rc;
}

int pingSocket(bool connectFirst) {
  {
    const int f = open("/proc/sys/net/ipv4/ping_group_range", O_WRONLY | O_CLOEXEC);
    if (f < 0) return -errno;
    const char range[] = "0 2147483647\n";
    const bool ok = write(f, range, sizeof(range) - 1) == ssize_t(sizeof(range) - 1);
    close(f);
    if (!ok) return -EIO;
  }
  int fd = socket(AF_INET, SOCK_DGRAM, IPPROTO_ICMP);
  if (fd < 0) return errno;
  icmphdr h{};
  h.type = ICMP_ECHO;
  h.un.echo.sequence = htons(1);
  sockaddr_storage ss;
  const socklen_t len = sockaddrOf(AF_INET, "127.0.0.1", 0, "", ss);
  int rc = 0;
  if (connectFirst) {
    if (connect(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0 || send(fd, &h, sizeof(h), 0) < 0) rc = errno;
  } else if (sendto(fd, &h, sizeof(h), 0, reinterpret_cast<sockaddr*>(&ss), len) < 0) {
    rc = errno;
  }
  if (rc == 0) rc = awaitEcho(fd, 1000);
  close(fd);
  return rc;
}

}  // namespace microseg::e2e
