#include "identity/netns.h"

#include <fcntl.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <thread>

#ifndef SO_NETNS_COOKIE
#define SO_NETNS_COOKIE 71
#endif

namespace microseg::identity {

Result<uint64_t> currentNetnsCookie() {
  UniqueFd fd(socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!fd) return sysError("open socket", "netns cookie");
  uint64_t cookie = 0;
  socklen_t len = sizeof(cookie);
  if (getsockopt(fd.get(), SOL_SOCKET, SO_NETNS_COOKIE, &cookie, &len) != 0) {
    return sysError("getsockopt SO_NETNS_COOKIE", "netns (needs Linux >= 5.14)");
  }
  return cookie;
}

uint64_t netnsInodeOf(pid_t pid) {
  struct stat st {};
  const std::string path = "/proc/" + std::to_string(pid) + "/ns/net";
  if (::stat(path.c_str(), &st) != 0) return 0;
  return st.st_ino;
}

uint64_t ownNetnsInode() {
  struct stat st {};
  if (::stat("/proc/thread-self/ns/net", &st) != 0) return 0;
  return st.st_ino;
}

std::vector<pid_t> cgroupPids(const std::string& cgroupDir, size_t max) {
  std::vector<pid_t> out;
  std::ifstream in(cgroupDir + "/cgroup.procs");
  pid_t pid;
  while (out.size() < max && in >> pid) out.push_back(pid);
  return out;
}

std::vector<ms_addr> interfaceAddrs() {
  std::vector<ms_addr> out;
  ifaddrs* ifa = nullptr;
  if (getifaddrs(&ifa) != 0) return out;
  for (ifaddrs* i = ifa; i != nullptr; i = i->ifa_next) {
    if (i->ifa_addr == nullptr) continue;
    ms_addr a{};
    if (i->ifa_addr->sa_family == AF_INET) {
      a.a[10] = 0xff;
      a.a[11] = 0xff;
      std::memcpy(a.a + 12, &reinterpret_cast<sockaddr_in*>(i->ifa_addr)->sin_addr, 4);
    } else if (i->ifa_addr->sa_family == AF_INET6) {
      std::memcpy(a.a, &reinterpret_cast<sockaddr_in6*>(i->ifa_addr)->sin6_addr, 16);
    } else {
      continue;
    }
    out.push_back(a);
  }
  freeifaddrs(ifa);
  auto less = [](const ms_addr& x, const ms_addr& y) { return std::memcmp(&x, &y, sizeof(x)) < 0; };
  auto same = [](const ms_addr& x, const ms_addr& y) { return std::memcmp(&x, &y, sizeof(x)) == 0; };
  std::sort(out.begin(), out.end(), less);
  out.erase(std::unique(out.begin(), out.end(), same), out.end());
  return out;
}

std::vector<ms_addr> interfaceBroadcasts() {
  std::vector<ms_addr> out;
  ifaddrs* ifa = nullptr;
  if (getifaddrs(&ifa) != 0) return out;
  auto add = [&](uint32_t be) {
    ms_addr a{};
    a.a[10] = 0xff;
    a.a[11] = 0xff;
    std::memcpy(a.a + 12, &be, 4);
    out.push_back(a);
  };
  for (ifaddrs* i = ifa; i != nullptr; i = i->ifa_next) {
    if (i->ifa_addr == nullptr || i->ifa_addr->sa_family != AF_INET || (i->ifa_flags & IFF_LOOPBACK) != 0) {
      continue;
    }
    // The kernel routes the subnet's last address as a broadcast (a
    // "broadcast" route in the local table) for prefixes shorter than /31,
    // whether or not the address was given one (`brd`). (getifaddrs()'s
    // ifa_broadaddr is no help: without `brd` it holds the address itself.)
    if (i->ifa_netmask != nullptr && i->ifa_netmask->sa_family == AF_INET) {
      const uint32_t addr = reinterpret_cast<sockaddr_in*>(i->ifa_addr)->sin_addr.s_addr;
      const uint32_t mask = reinterpret_cast<sockaddr_in*>(i->ifa_netmask)->sin_addr.s_addr;
      if (__builtin_popcount(mask) < 31) add(addr | ~mask);
    }
  }
  freeifaddrs(ifa);
  auto less = [](const ms_addr& x, const ms_addr& y) { return std::memcmp(&x, &y, sizeof(x)) < 0; };
  auto same = [](const ms_addr& x, const ms_addr& y) { return std::memcmp(&x, &y, sizeof(x)) == 0; };
  std::sort(out.begin(), out.end(), less);
  out.erase(std::unique(out.begin(), out.end(), same), out.end());
  return out;
}

namespace {

Result<UniqueFd> subscribeAddrs() {
  UniqueFd fd(socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, NETLINK_ROUTE));
  if (!fd) return sysError("open netlink socket", "NETLINK_ROUTE");
  sockaddr_nl sa{};
  sa.nl_family = AF_NETLINK;
  sa.nl_groups = RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR;
  if (bind(fd.get(), reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) != 0) {
    return sysError("subscribe to address changes", "NETLINK_ROUTE");
  }
  return fd;
}

// Everything about the calling thread's netns.
Result<NetnsView> inspectHere(UniqueFd* subscribe) {
  NetnsView v;
  // Subscribe before reading, so no change falls between the two.
  if (subscribe != nullptr) {
    auto fd = subscribeAddrs();
    if (!fd) return fd.error();
    *subscribe = std::move(*fd);
  }
  auto cookie = currentNetnsCookie();
  if (!cookie) return cookie.error();
  v.cookie = *cookie;
  v.addrs = interfaceAddrs();
  v.broadcasts = interfaceBroadcasts();
  return v;
}

}  // namespace

Result<NetnsView> inspectOwnNetns(UniqueFd* subscribe) { return inspectHere(subscribe); }

Result<UniqueFd> openNetnsOf(pid_t pid) {
  const std::string path = "/proc/" + std::to_string(pid) + "/ns/net";
  UniqueFd ns(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!ns) return sysError("open netns", path);
  return ns;
}

Result<NetnsView> inspectNetns(int nsFd, UniqueFd* subscribe) {
  // setns() changes only the calling thread's netns: do it in a thread of
  // its own that ends right after, so the daemon's threads never move.
  Result<NetnsView> out = Error{"inspect netns", "fd " + std::to_string(nsFd), 0, "not run"};
  std::thread t([&] {
    if (setns(nsFd, CLONE_NEWNET) != 0) {
      out = sysError("enter netns", "fd " + std::to_string(nsFd));
      return;
    }
    out = inspectHere(subscribe);
  });
  t.join();
  return out;
}

bool drainSubscription(int fd) {
  alignas(nlmsghdr) char buf[8192];
  bool any = false;
  for (;;) {
    if (recv(fd, buf, sizeof(buf), MSG_DONTWAIT) > 0) {
      any = true;
      continue;
    }
    // ENOBUFS: the socket overflowed, changes were lost: re-read all.
    if (errno == ENOBUFS) any = true;
    if (errno == EINTR || errno == ENOBUFS) continue;
    return any;
  }
}

}  // namespace microseg::identity
