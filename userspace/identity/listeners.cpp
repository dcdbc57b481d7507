#include "identity/listeners.h"

#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstring>
#include <tuple>

#include "common/fd.h"

namespace microseg::identity {
namespace {

constexpr int kTcpListen = 10;  // TCP_LISTEN
constexpr int kTcpClose = 7;    // TCP_CLOSE: a UDP socket that is not connected

bool sortKey(const ListeningSocket& x, const ListeningSocket& y) {
  return std::tie(x.proto, x.port, x.cgroupId, x.v6only) < std::tie(y.proto, y.port, y.cgroupId, y.v6only) ||
         (std::tie(x.proto, x.port, x.cgroupId, x.v6only) == std::tie(y.proto, y.port, y.cgroupId, y.v6only) &&
          std::memcmp(&x.addr, &y.addr, sizeof(x.addr)) < 0);
}

Result<void> dump(int fd, uint8_t family, uint8_t protocol, uint32_t states, std::vector<ListeningSocket>& out) {
  struct {
    nlmsghdr nlh;
    inet_diag_req_v2 req;
  } msg{};
  msg.nlh.nlmsg_len = sizeof(msg);
  msg.nlh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
  msg.nlh.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
  msg.req.sdiag_family = family;
  msg.req.sdiag_protocol = protocol;
  msg.req.idiag_states = states;
  sockaddr_nl sa{};
  sa.nl_family = AF_NETLINK;
  if (sendto(fd, &msg, sizeof(msg), 0, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) < 0) {
    return sysError("ask sock_diag", protocol == IPPROTO_TCP ? "tcp" : "udp");
  }
  alignas(nlmsghdr) char buf[32768];
  for (;;) {
    ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      return sysError("read sock_diag", protocol == IPPROTO_TCP ? "tcp" : "udp");
    }
    for (auto* h = reinterpret_cast<nlmsghdr*>(buf); NLMSG_OK(h, static_cast<unsigned>(n)); h = NLMSG_NEXT(h, n)) {
      if (h->nlmsg_type == NLMSG_DONE) return {};
      if (h->nlmsg_type == NLMSG_ERROR) {
        const auto* e = static_cast<const nlmsgerr*>(NLMSG_DATA(h));
        return sysError("read sock_diag", protocol == IPPROTO_TCP ? "tcp" : "udp", -e->error);
      }
      const auto* m = static_cast<const inet_diag_msg*>(NLMSG_DATA(h));
      ListeningSocket s;
      s.proto = protocol == IPPROTO_TCP ? MS_PROTO_TCP : MS_PROTO_UDP;
      s.port = ntohs(m->id.idiag_sport);
      if (m->idiag_family == AF_INET) {
        s.addr.a[10] = 0xff;
        s.addr.a[11] = 0xff;
        std::memcpy(s.addr.a + 12, &m->id.idiag_src[0], 4);
      } else {
        std::memcpy(s.addr.a, m->id.idiag_src, 16);
      }
      // Attributes the kernel always adds: the creator cgroup, IPV6_V6ONLY.
      int len = static_cast<int>(h->nlmsg_len - NLMSG_LENGTH(sizeof(*m)));
      for (auto* a = reinterpret_cast<const rtattr*>(m + 1); RTA_OK(a, len); a = RTA_NEXT(a, len)) {
        if (a->rta_type == INET_DIAG_CGROUP_ID && RTA_PAYLOAD(a) >= sizeof(uint64_t)) {
          std::memcpy(&s.cgroupId, RTA_DATA(a), sizeof(uint64_t));
        } else if (a->rta_type == INET_DIAG_SKV6ONLY && RTA_PAYLOAD(a) >= 1) {
          s.v6only = *static_cast<const uint8_t*>(RTA_DATA(a)) != 0;
        }
      }
      // A UDP socket counts when it is bound to a port (an unbound one has none).
      if (s.port != 0) out.push_back(s);
    }
  }
}

}  // namespace

bool operator==(const ListeningSocket& x, const ListeningSocket& y) {
  return std::memcmp(&x.addr, &y.addr, sizeof(x.addr)) == 0 && x.port == y.port && x.proto == y.proto &&
         x.v6only == y.v6only && x.cgroupId == y.cgroupId;
}

bool isWildcard(const ms_addr& a) {
  static const uint8_t kAny6[16] = {};
  static const uint8_t kAny4[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 0, 0};
  return std::memcmp(a.a, kAny6, 16) == 0 || std::memcmp(a.a, kAny4, 16) == 0;
}

Result<std::vector<ListeningSocket>> listeningSockets() {
  UniqueFd fd(socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG));
  if (!fd) return sysError("open netlink socket", "NETLINK_SOCK_DIAG");
  std::vector<ListeningSocket> out;
  for (uint8_t family : {uint8_t(AF_INET), uint8_t(AF_INET6)}) {
    if (auto r = dump(fd.get(), family, IPPROTO_TCP, 1u << kTcpListen, out); !r) return r.error();
    if (auto r = dump(fd.get(), family, IPPROTO_UDP, 1u << kTcpClose, out); !r) return r.error();
  }
  std::sort(out.begin(), out.end(), sortKey);
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

}  // namespace microseg::identity
