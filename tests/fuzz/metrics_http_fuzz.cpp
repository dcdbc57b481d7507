// The metrics endpoint's request handling: what is ours of it is
// HttpEndpoint::serve() (HTTP version, header names, request target, the
// method, the path) and the bounds it gives CivetWeb (head size and time,
// one request per connection). CivetWeb's parser cannot be driven in
// process (Debian ships it as a library with no entry point below the
// socket: its request parsing is internal), so every input goes over a
// loopback connection to one endpoint started for the run: sent whole, the
// write side shut, the reply read to its end. Slower than the other
// targets (thousands of inputs a second, not hundreds of thousands), and
// only our side is instrumented (the library is the distribution's), so
// its budget in scripts/fuzz.sh is smaller.
//
// Properties: a reply is HTTP, or nothing (the connection closed by
// CivetWeb); the metrics are rendered exactly when the
// reply is a 200, once, and only for a GET; a 200 carries exactly the
// rendered text.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <string>

#include "control/metrics_http.h"
#include "fuzz_util.h"

using namespace microseg;

namespace {

constexpr size_t kMaxInput = 16 << 10;
const std::string kBody = "# HELP ms_up up\n# TYPE ms_up gauge\nms_up 1\n";
std::atomic<int> gRenders{0};
metrics::HttpEndpoint* gEndpoint = nullptr;

std::string exchange(const uint8_t* data, size_t size) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) fuzz::fail("socket() failed");
  // The client closes first (it shuts its side once the request is sent),
  // so each exchange leaves a TIME-WAIT socket behind for a minute: at a
  // thousand exchanges a second one source address runs out of ports. Each
  // exchange comes from another address of 127.0.0.0/8 (all loopback).
  static uint32_t next = 0;
  sockaddr_in from{};
  from.sin_family = AF_INET;
  from.sin_addr.s_addr = htonl(0x7f010000u + (next++ % 0xfeffffu));  // 127.1.0.0 and up
  // The port is chosen by connect(), for the whole address pair (bind()
  // would take one no other socket of any address holds).
  const int one = 1;
  (void)setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
  if (bind(fd, reinterpret_cast<sockaddr*>(&from), sizeof(from)) != 0) {
    fuzz::fail(std::string("bind to a loopback address failed: ") + std::strerror(errno));
  }
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(gEndpoint->port());
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  // libFuzzer's timer (SIGALRM, once a second) interrupts system calls.
  while (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
    if (errno == EISCONN) break;
    if (errno != EINTR && errno != EALREADY) {
      fuzz::fail(std::string("connect to the endpoint failed: ") + std::strerror(errno));
    }
    pollfd p{fd, POLLOUT, 0};
    (void)poll(&p, 1, 100);
  }
  size_t sent = 0;
  while (sent < size) {
    const ssize_t n = send(fd, data + sent, size - sent, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;  // the server may close before it read everything
    sent += static_cast<size_t>(n);
  }
  (void)shutdown(fd, SHUT_WR);
  std::string reply;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  char buf[4096];
  while (std::chrono::steady_clock::now() < deadline) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 100) <= 0) continue;
    const ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;  // EOF, or a reset (unread request bytes at the server's close)
    reply.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return reply;
}

// The request's method as CivetWeb reads it: the first token after any
// leading white space (blank lines, spaces).
std::string methodOf(std::string_view req) {
  size_t i = req.find_first_not_of(" \t\r\n");
  if (i == std::string_view::npos) return "";
  const size_t end = req.find_first_of(" \t\r\n", i);
  return std::string(req.substr(i, end == std::string_view::npos ? std::string_view::npos : end - i));
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  fuzz::quietLogs();
  gEndpoint = new metrics::HttpEndpoint("127.0.0.1:0", [] {
    gRenders++;
    return kBody;
  });
  if (auto r = gEndpoint->start(); !r) fuzz::fail("the metrics endpoint did not start", r.error().str());
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > kMaxInput) return 0;
  const int before = gRenders.load();
  const std::string reply = exchange(data, size);
  const int renders = gRenders.load() - before;
  const std::string request(reinterpret_cast<const char*>(data), size);

  if (reply.empty()) {
    fuzz::check(renders == 0, "metrics rendered for a request that got no reply", request);
    return 0;
  }
  // Our replies are "HTTP/1.1 ddd". CivetWeb's own refusals of a version it
  // does not serve repeat the request's version as it came, whatever its
  // bytes ("HTTP/HTTP/1\xf01\r\n 400 ..."): those are checked for what
  // matters, that nothing was rendered for them.
  const bool ours = reply.size() >= 12 && reply.compare(0, 9, "HTTP/1.1 ") == 0 &&
                    std::isdigit(static_cast<unsigned char>(reply[9])) &&
                    std::isdigit(static_cast<unsigned char>(reply[10])) &&
                    std::isdigit(static_cast<unsigned char>(reply[11])) && reply[12] == ' ';
  if (!ours) {
    fuzz::check(reply.compare(0, 4, "HTTP") == 0, "a reply that is not HTTP", reply.substr(0, 200));
    fuzz::check(renders == 0, "metrics rendered for a reply that is not a 200", request);
    return 0;
  }
  const int status = std::stoi(reply.substr(9, 3));
  fuzz::check(renders == (status == 200 ? 1 : 0),
              "rendered " + std::to_string(renders) + " times for a " + std::to_string(status), request);
  if (status == 200) {
    fuzz::check(methodOf(request) == "GET", "a 200 for a method other than GET", request);
    const size_t head = reply.find("\r\n\r\n");
    fuzz::check(head != std::string::npos && reply.substr(head + 4) == kBody, "a 200 without exactly the metrics",
                reply);
  }
  return 0;
}
