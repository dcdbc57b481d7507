#include "control/metrics_http.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <exception>
#include <list>
#include <string_view>
#include <vector>

namespace microseg::metrics {
namespace {

constexpr size_t kMaxHead = 8192;        // request line + headers
constexpr int64_t kHeadMs = 2000;        // to send the whole head
constexpr int64_t kWriteMs = 10000;      // to take the whole response
constexpr int64_t kLingerMs = 1000;      // to close after the response
constexpr size_t kLingerBytes = 65536;   // drained at most while lingering
constexpr size_t kMaxClients = 16;
constexpr int kMaxAcceptsPerWake = 64;

int64_t nowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

struct ListenAddress {
  sockaddr_storage ss{};
  socklen_t len = 0;
  int family = AF_INET;
};

Result<ListenAddress> parseListenAddress(const std::string& address) {
  auto bad = [&](std::string why) { return Error{"parse metrics listen address", address, EINVAL, std::move(why)}; };
  const std::string form = "want IPV4:PORT or [IPV6]:PORT, e.g. 127.0.0.1:9464 or [::1]:9464";
  if (address.empty()) return bad("the address is empty; " + form);
  std::string host, port;
  bool bracketed = false;
  if (!address.empty() && address[0] == '[') {
    const auto close = address.find("]:");
    if (close == std::string::npos) return bad(form);
    host = address.substr(1, close - 1);
    port = address.substr(close + 2);
    bracketed = true;
  } else {
    const auto colon = address.rfind(':');
    if (colon == std::string::npos) return bad(form);
    host = address.substr(0, colon);
    port = address.substr(colon + 1);
  }
  if (port.empty() || port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos ||
      std::stoul(port) > 65535) {
    return bad("port '" + port + "' is not a number in 0..65535");
  }
  const auto portN = htons(static_cast<uint16_t>(std::stoul(port)));
  ListenAddress a;
  auto* v4 = reinterpret_cast<sockaddr_in*>(&a.ss);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&a.ss);
  if (!bracketed && inet_pton(AF_INET, host.c_str(), &v4->sin_addr) == 1) {
    if (v4->sin_addr.s_addr == htonl(INADDR_ANY)) {
      return bad("the wildcard address is refused: name a loopback or interface address");
    }
    v4->sin_family = AF_INET;
    v4->sin_port = portN;
    a.len = sizeof(*v4);
  } else if (bracketed && inet_pton(AF_INET6, host.c_str(), &v6->sin6_addr) == 1) {
    if (IN6_IS_ADDR_UNSPECIFIED(&v6->sin6_addr)) {
      return bad("the wildcard address is refused: name a loopback or interface address");
    }
    a.family = AF_INET6;
    v6->sin6_family = AF_INET6;
    v6->sin6_port = portN;
    a.len = sizeof(*v6);
  } else {
    return bad(bracketed ? "'" + host + "' is not an IPv6 address"
                         : "'" + host + "' is not an IPv4 address (IPv6 goes in brackets; host names are not resolved)");
  }
  return a;
}

std::string response(int code, std::string_view reason, std::string_view type, const std::string& body,
                     std::string_view extra = {}) {
  std::string r = "HTTP/1.1 " + std::to_string(code) + " ";
  r += reason;
  r += "\r\nContent-Type: ";
  r += type;
  r += "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n";
  r += extra;
  r += "Connection: close\r\n\r\n";
  r += body;
  return r;
}

std::string errorResponse(int code, std::string_view reason, const std::string& body, std::string_view extra = {}) {
  return response(code, reason, "text/plain; charset=utf-8", body, extra);
}

bool isTchar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

// "METHOD SP target SP HTTP/1.x" (without its line end).
bool parseRequestLine(std::string_view line, std::string_view& method, std::string_view& target) {
  const auto sp1 = line.find(' ');
  if (sp1 == 0 || sp1 == std::string_view::npos) return false;
  const auto sp2 = line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos || sp2 == sp1 + 1) return false;
  method = line.substr(0, sp1);
  target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  const auto version = line.substr(sp2 + 1);
  if (!std::all_of(method.begin(), method.end(), isTchar)) return false;
  if (target[0] != '/' && target != "*") return false;
  for (char c : target) {
    if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f) return false;
  }
  return version == "HTTP/1.1" || version == "HTTP/1.0";
}

std::string_view firstLine(std::string_view head) {
  auto line = head.substr(0, head.find('\n'));
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  return line;
}

// The response to the bytes received so far, or "" while the head is incomplete.
std::string examine(const std::string& in, const std::function<std::string()>& render) {
  const auto crlf = in.find("\r\n\r\n");
  const auto lf = in.find("\n\n");
  const size_t end = std::min(crlf == std::string::npos ? std::string::npos : crlf + 4,
                              lf == std::string::npos ? std::string::npos : lf + 2);
  std::string_view method, target;
  const bool lineDone = in.find('\n') != std::string::npos;
  if (lineDone && !parseRequestLine(firstLine(in), method, target)) {
    return errorResponse(400, "Bad Request", "malformed request line\n");
  }
  if ((end == std::string::npos && in.size() > kMaxHead) || (end != std::string::npos && end > kMaxHead)) {
    return errorResponse(431, "Request Header Fields Too Large", "request head over 8 KiB\n");
  }
  if (end == std::string::npos) return {};
  // Header fields: "name: value" each.
  std::string_view rest = std::string_view(in).substr(0, end);
  rest.remove_prefix(rest.find('\n') + 1);
  while (!rest.empty()) {
    auto nl = rest.find('\n');
    auto field = rest.substr(0, nl);
    rest.remove_prefix(nl + 1);
    if (!field.empty() && field.back() == '\r') field.remove_suffix(1);
    if (field.empty()) break;
    const auto colon = field.find(':');
    if (colon == 0 || colon == std::string_view::npos ||
        !std::all_of(field.begin(), field.begin() + static_cast<std::ptrdiff_t>(colon), isTchar)) {
      return errorResponse(400, "Bad Request", "malformed header field\n");
    }
  }
  if (method != "GET") return errorResponse(405, "Method Not Allowed", "only GET is served\n", "Allow: GET\r\n");
  if (target.substr(0, target.find('?')) != "/metrics") return errorResponse(404, "Not Found", "try /metrics\n");
  try {
    return response(200, "OK", "text/plain; version=0.0.4; charset=utf-8", render());
  } catch (const std::exception& e) {
    return errorResponse(500, "Internal Server Error", std::string("rendering metrics failed: ") + e.what() + "\n");
  }
}

}  // namespace

HttpEndpoint::HttpEndpoint(std::string listenAddress, std::function<std::string()> render)
    : address_(std::move(listenAddress)), render_(std::move(render)) {}

HttpEndpoint::~HttpEndpoint() { stop(); }

Result<void> HttpEndpoint::start() {
  if (thread_.joinable()) return Error{"start metrics endpoint", address_, EALREADY, "already started"};
  auto addr = parseListenAddress(address_);
  if (!addr) return addr.error();
  UniqueFd fd(socket(addr->family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd) return sysError("create socket for metrics endpoint", address_);
  int one = 1;
  (void)setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (addr->family == AF_INET6) (void)setsockopt(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
  if (bind(fd.get(), reinterpret_cast<const sockaddr*>(&addr->ss), addr->len) != 0) {
    return sysError("bind metrics endpoint", address_);
  }
  if (listen(fd.get(), 64) != 0) return sysError("listen on metrics endpoint", address_);
  sockaddr_storage bound{};
  socklen_t blen = sizeof(bound);
  if (getsockname(fd.get(), reinterpret_cast<sockaddr*>(&bound), &blen) != 0) {
    return sysError("getsockname of metrics endpoint", address_);
  }
  UniqueFd stopFd(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!stopFd) return sysError("create eventfd for metrics endpoint", address_);
  port_ = ntohs(addr->family == AF_INET ? reinterpret_cast<sockaddr_in*>(&bound)->sin_port
                                        : reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port);
  listen_ = std::move(fd);
  stop_ = std::move(stopFd);
  thread_ = std::thread([this] { run(); });
  return {};
}

void HttpEndpoint::stop() {
  if (!thread_.joinable()) return;
  const uint64_t one = 1;
  (void)!write(stop_.get(), &one, sizeof(one));
  thread_.join();
  listen_.reset();
  stop_.reset();
  port_ = 0;
}

void HttpEndpoint::run() {
  enum class Phase { Head, Write, Linger };
  struct Client {
    UniqueFd fd;
    Phase phase = Phase::Head;
    std::string in, out;
    size_t sent = 0, drained = 0;
    int64_t deadline = 0;
  };
  std::list<Client> clients;  // in accept order
  std::vector<pollfd> fds;
  for (;;) {
    fds.assign({{stop_.get(), POLLIN, 0}, {listen_.get(), POLLIN, 0}});
    int64_t now = nowMs();
    int timeout = -1;
    for (const auto& c : clients) {
      fds.push_back({c.fd.get(), static_cast<short>(c.phase == Phase::Write ? POLLOUT : POLLIN), 0});
      const int left = static_cast<int>(std::max<int64_t>(0, c.deadline - now));
      timeout = timeout < 0 ? left : std::min(timeout, left);
    }
    if (poll(fds.data(), fds.size(), timeout) < 0) {
      for (auto& p : fds) p.revents = 0;  // nothing to act on; deadlines still apply
      if (errno != EINTR) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    if (fds[0].revents & POLLIN) return;
    now = nowMs();

    size_t i = 2;
    for (auto it = clients.begin(); it != clients.end(); i++) {
      Client& c = *it;
      const short re = fds[i].revents;
      bool done = now >= c.deadline;
      bool justAnswered = false;
      if (!done && c.phase == Phase::Head && (re & (POLLIN | POLLHUP | POLLERR))) {
        char buf[4096];
        const ssize_t n = recv(c.fd.get(), buf, sizeof(buf), MSG_DONTWAIT);
        if (n > 0) {
          c.in.append(buf, static_cast<size_t>(n));
          c.out = examine(c.in, render_);
          if (!c.out.empty()) {
            c.phase = Phase::Write;
            c.deadline = now + kWriteMs;
            justAnswered = true;
          }
        } else {
          done = n == 0 || (errno != EAGAIN && errno != EINTR);
        }
      }
      if (!done && c.phase == Phase::Write && (justAnswered || (re & (POLLOUT | POLLHUP | POLLERR)))) {
        const ssize_t n = send(c.fd.get(), c.out.data() + c.sent, c.out.size() - c.sent, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) c.sent += static_cast<size_t>(n);
        if (n < 0 && errno != EAGAIN && errno != EINTR) {
          done = true;
        } else if (c.sent == c.out.size()) {
          // Lingering close: unread request bytes would turn close() into a
          // RST that can destroy the response before the client reads it.
          (void)shutdown(c.fd.get(), SHUT_WR);
          c.phase = Phase::Linger;
          c.deadline = now + kLingerMs;
          c.in.clear();
          c.out.clear();
        }
      } else if (!done && c.phase == Phase::Linger && (re & (POLLIN | POLLHUP | POLLERR))) {
        char buf[4096];
        const ssize_t n = recv(c.fd.get(), buf, sizeof(buf), MSG_DONTWAIT);
        if (n > 0) c.drained += static_cast<size_t>(n);
        done = n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR) || c.drained > kLingerBytes;
      }
      it = done ? clients.erase(it) : std::next(it);
    }

    if (fds[1].revents & POLLIN) {
      for (int k = 0; k < kMaxAcceptsPerWake; k++) {
        UniqueFd cfd(accept4(listen_.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK));
        if (!cfd) break;
        if (clients.size() >= kMaxClients) {
          // Full: the oldest client still dawdling over its head makes room;
          // clients being answered are never dropped for a newcomer.
          auto idle = std::find_if(clients.begin(), clients.end(), [](const Client& c) { return c.phase == Phase::Head; });
          if (idle == clients.end()) continue;  // cfd closes
          clients.erase(idle);
        }
        Client c;
        c.fd = std::move(cfd);
        c.deadline = now + kHeadMs;
        clients.push_back(std::move(c));
      }
    }
  }
}

}  // namespace microseg::metrics
