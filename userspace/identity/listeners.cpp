#include "identity/listeners.h"

#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>

#include "common/fd.h"

namespace microseg::identity {
namespace {

constexpr uint32_t kTcpListen = 10;  // TCP_LISTEN in the kernel's state enum

Result<void> dumpOne(int fd, uint64_t netns, uint8_t family, uint8_t protocol, std::vector<Listener>& out) {
  struct {
    nlmsghdr nlh;
    inet_diag_req_v2 req;
  } msg{};
  msg.nlh.nlmsg_len = sizeof(msg);
  msg.nlh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
  msg.nlh.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
  msg.req.sdiag_family = family;
  msg.req.sdiag_protocol = protocol;
  msg.req.idiag_states = protocol == IPPROTO_TCP ? (1u << kTcpListen) : ~0u;
  sockaddr_nl sa{};
  sa.nl_family = AF_NETLINK;
  if (sendto(fd, &msg, sizeof(msg), 0, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) < 0) {
    return sysError("send sock_diag request", "netlink");
  }
  alignas(nlmsghdr) char buf[32768];
  for (;;) {
    ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      return sysError("read sock_diag reply", "netlink");
    }
    int len = static_cast<int>(n);
    for (auto* h = reinterpret_cast<nlmsghdr*>(buf); NLMSG_OK(h, len); h = NLMSG_NEXT(h, len)) {
      if (h->nlmsg_type == NLMSG_DONE) return {};
      if (h->nlmsg_type == NLMSG_ERROR) {
        auto* err = static_cast<nlmsgerr*>(NLMSG_DATA(h));
        return Error{"sock_diag dump", protocol == IPPROTO_TCP ? "tcp" : "udp", -err->error, {}};
      }
      auto* d = static_cast<inet_diag_msg*>(NLMSG_DATA(h));
      if (d->id.idiag_sport == 0) continue;  // not bound
      Listener l;
      l.key.netns_cookie = netns;
      if (d->idiag_family == AF_INET) {
        l.key.addr.a[10] = 0xff;
        l.key.addr.a[11] = 0xff;
        std::memcpy(l.key.addr.a + 12, d->id.idiag_src, 4);
      } else {
        std::memcpy(l.key.addr.a, d->id.idiag_src, 16);
      }
      l.key.port = d->id.idiag_sport;  // network order, as in ms_bind_key
      l.key.protocol = protocol;
      l.cookie = uint64_t(d->id.idiag_cookie[0]) | (uint64_t(d->id.idiag_cookie[1]) << 32);
      int alen = static_cast<int>(h->nlmsg_len - NLMSG_LENGTH(sizeof(*d)));
      for (auto* a = reinterpret_cast<rtattr*>(d + 1); RTA_OK(a, alen); a = RTA_NEXT(a, alen)) {
        if (a->rta_type == INET_DIAG_CGROUP_ID && RTA_PAYLOAD(a) >= sizeof(uint64_t)) {
          std::memcpy(&l.cgroupId, RTA_DATA(a), sizeof(uint64_t));
        }
      }
      out.push_back(l);
    }
  }
}

}  // namespace

Result<std::vector<Listener>> dumpListeners(uint64_t netnsCookie) {
  UniqueFd fd(socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG));
  if (!fd) return sysError("open netlink socket", "NETLINK_SOCK_DIAG");
  timeval tv{2, 0};
  setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  std::vector<Listener> out;
  for (uint8_t family : {AF_INET, AF_INET6}) {
    for (uint8_t proto : {IPPROTO_TCP, IPPROTO_UDP}) {
      if (auto r = dumpOne(fd.get(), netnsCookie, family, proto, out); !r) return r.error();
    }
  }
  return out;
}

}  // namespace microseg::identity
