#include "control/metrics_http.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <list>

namespace microseg::metrics {
namespace {

constexpr size_t kMaxHead = 8192;
constexpr int kHeadTimeoutMs = 2000;
constexpr size_t kMaxClients = 16;

int64_t nowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

std::string response(int code, const char* reason, const std::string& type, const std::string& body) {
  return "HTTP/1.1 " + std::to_string(code) + " " + reason + "\r\nContent-Type: " + type +
         "\r\nContent-Length: " + std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body;
}

}  // namespace

HttpEndpoint::HttpEndpoint(std::string listenAddress, std::function<std::string()> render)
    : address_(std::move(listenAddress)), render_(std::move(render)) {}

HttpEndpoint::~HttpEndpoint() { stop(); }

Result<void> HttpEndpoint::start() {
  // host:port or [v6]:port
  std::string host, portStr;
  if (!address_.empty() && address_[0] == '[') {
    auto close = address_.find("]:");
    if (close == std::string::npos) return Error{"parse metrics address", address_, EINVAL, "want HOST:PORT or [V6]:PORT"};
    host = address_.substr(1, close - 1);
    portStr = address_.substr(close + 2);
  } else {
    auto colon = address_.rfind(':');
    if (colon == std::string::npos) return Error{"parse metrics address", address_, EINVAL, "want HOST:PORT or [V6]:PORT"};
    host = address_.substr(0, colon);
    portStr = address_.substr(colon + 1);
  }
  if (portStr.empty() || portStr.size() > 5 || portStr.find_first_not_of("0123456789") != std::string::npos ||
      std::stoi(portStr) > 65535) {
    return Error{"parse metrics address", address_, EINVAL, "bad port"};
  }
  sockaddr_storage ss{};
  socklen_t len = 0;
  int family = AF_INET;
  auto* v4 = reinterpret_cast<sockaddr_in*>(&ss);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&ss);
  if (inet_pton(AF_INET, host.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(static_cast<uint16_t>(std::stoi(portStr)));
    len = sizeof(*v4);
  } else if (inet_pton(AF_INET6, host.c_str(), &v6->sin6_addr) == 1) {
    family = AF_INET6;
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(static_cast<uint16_t>(std::stoi(portStr)));
    len = sizeof(*v6);
  } else {
    return Error{"parse metrics address", address_, EINVAL, "host must be an IP address"};
  }
  UniqueFd fd(socket(family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd) return sysError("create metrics socket", address_);
  int one = 1;
  setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (bind(fd.get(), reinterpret_cast<sockaddr*>(&ss), len) != 0) return sysError("bind metrics endpoint", address_);
  if (listen(fd.get(), 16) != 0) return sysError("listen on metrics endpoint", address_);
  sockaddr_storage bound{};
  socklen_t blen = sizeof(bound);
  getsockname(fd.get(), reinterpret_cast<sockaddr*>(&bound), &blen);
  port_ = ntohs(family == AF_INET ? reinterpret_cast<sockaddr_in*>(&bound)->sin_port
                                  : reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port);
  listen_ = std::move(fd);
  stop_.reset(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!stop_) return sysError("create eventfd", "metrics");
  thread_ = std::thread([this] { run(); });
  return {};
}

void HttpEndpoint::stop() {
  if (!thread_.joinable()) return;
  uint64_t one = 1;
  (void)!write(stop_.get(), &one, sizeof(one));
  thread_.join();
  listen_.reset();
}

void HttpEndpoint::run() {
  struct Client {
    UniqueFd fd;
    std::string in, out;
    size_t sent = 0;
    int64_t deadline = 0;
  };
  std::list<Client> clients;
  for (;;) {
    std::vector<pollfd> fds = {{stop_.get(), POLLIN, 0}, {listen_.get(), POLLIN, 0}};
    for (auto& c : clients) fds.push_back({c.fd.get(), static_cast<short>(c.out.empty() ? POLLIN : POLLOUT), 0});
    poll(fds.data(), fds.size(), 200);
    if (fds[0].revents & POLLIN) return;
    const int64_t now = nowMs();
    size_t i = 2;
    for (auto it = clients.begin(); it != clients.end(); i++) {
      Client& c = *it;
      bool done = now > c.deadline;
      if (!done && c.out.empty() && (fds[i].revents & (POLLIN | POLLHUP | POLLERR))) {
        char buf[4096];
        ssize_t n = recv(c.fd.get(), buf, sizeof(buf), MSG_DONTWAIT);
        if (n <= 0) {
          done = n == 0 || (errno != EAGAIN && errno != EINTR);
        } else {
          c.in.append(buf, static_cast<size_t>(n));
          const auto end = c.in.find("\r\n\r\n");
          if (end == std::string::npos && c.in.size() > kMaxHead) {
            c.out = response(431, "Request Header Fields Too Large", "text/plain", "request head too large\n");
          } else if (end != std::string::npos) {
            const std::string first = c.in.substr(0, c.in.find("\r\n"));
            const auto sp1 = first.find(' '), sp2 = first.rfind(' ');
            if (sp1 == std::string::npos || sp2 == sp1 || first.compare(sp2 + 1, 5, "HTTP/") != 0) {
              c.out = response(400, "Bad Request", "text/plain", "bad request\n");
            } else if (first.substr(0, sp1) != "GET") {
              c.out = response(405, "Method Not Allowed", "text/plain", "only GET\n");
            } else if (first.substr(sp1 + 1, sp2 - sp1 - 1) != "/metrics") {
              c.out = response(404, "Not Found", "text/plain", "see /metrics\n");
            } else {
              std::string body;
              try {
                body = render_();
                c.out = response(200, "OK", "text/plain; version=0.0.4; charset=utf-8", body);
              } catch (const std::exception& e) {
                c.out = response(500, "Internal Server Error", "text/plain", std::string(e.what()) + "\n");
              }
            }
          }
        }
      }
      if (!done && !c.out.empty() && (fds[i].revents & POLLOUT)) {
        ssize_t n = send(c.fd.get(), c.out.data() + c.sent, c.out.size() - c.sent, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) c.sent += static_cast<size_t>(n);
        if (n < 0 && errno != EAGAIN && errno != EINTR) done = true;
        if (c.sent == c.out.size()) done = true;
      }
      it = done ? clients.erase(it) : std::next(it);
    }
    if (fds[1].revents & POLLIN) {
      for (int k = 0; k < 8; k++) {
        int cfd = accept4(listen_.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (cfd < 0) break;
        if (clients.size() >= kMaxClients) {
          ::close(cfd);
          continue;
        }
        Client c;
        c.fd.reset(cfd);
        // The head must arrive within 2 s; the whole exchange within 10 s.
        c.deadline = now + kHeadTimeoutMs * 5;
        clients.push_back(std::move(c));
      }
    }
    // Enforce the head timeout separately from the write budget.
    for (auto it = clients.begin(); it != clients.end();) {
      const bool headLate = it->out.empty() && now - (it->deadline - kHeadTimeoutMs * 5) > kHeadTimeoutMs;
      it = headLate ? clients.erase(it) : std::next(it);
    }
  }
}

}  // namespace microseg::metrics
