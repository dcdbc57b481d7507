#include "control/metrics_http.h"

#include <arpa/inet.h>
#include <civetweb.h>
#include <netinet/in.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <exception>
#include <string_view>
#include <thread>

#include "common/fd.h"

namespace microseg::metrics {
namespace {

constexpr unsigned kFeatureIpv6 = 8;  // mg_check_feature(): built with IPv6

// The address as CivetWeb's listening_ports wants it, after our own checks
// (CivetWeb would also take host names and the wildcard).
Result<std::string> listenSpec(const std::string& address) {
  auto bad = [&](std::string why, int err = EINVAL) {
    return Error{"parse metrics listen address", address, err, std::move(why)};
  };
  const std::string form = "want IPV4:PORT, e.g. 127.0.0.1:9464";
  if (address.empty()) return bad("the address is empty; " + form);
  std::string host, port;
  const bool bracketed = address[0] == '[';
  if (bracketed) {
    const auto close = address.find("]:");
    if (close == std::string::npos) return bad(form);
    host = address.substr(1, close - 1);
    port = address.substr(close + 2);
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
  in_addr v4{};
  in6_addr v6{};
  if (bracketed) {
    if (inet_pton(AF_INET6, host.c_str(), &v6) != 1) return bad("'" + host + "' is not an IPv6 address");
    if (IN6_IS_ADDR_UNSPECIFIED(&v6)) return bad("the wildcard address is refused: name a loopback or interface address");
    if (mg_check_feature(kFeatureIpv6) == 0) {
      return bad("the HTTP library (CivetWeb " + std::string(mg_version()) +
                     " as built by the distribution) has no IPv6: name an IPv4 address",
                 EAFNOSUPPORT);
    }
    return "[" + host + "]:" + port;
  }
  if (inet_pton(AF_INET, host.c_str(), &v4) != 1) {
    return bad("'" + host + "' is not an IPv4 address (IPv6 goes in brackets; host names are not resolved)");
  }
  if (v4.s_addr == htonl(INADDR_ANY)) return bad("the wildcard address is refused: name a loopback or interface address");
  return host + ":" + std::to_string(std::stoul(port));
}

// CivetWeb reports a failed bind as "cannot bind to <addr>: <errno> (<text>)".
int errnoIn(const std::string& log) {
  const auto at = log.find("cannot bind to ");
  if (at == std::string::npos) return 0;
  const auto colon = log.find(": ", at + 15);
  if (colon == std::string::npos) return 0;
  const int err = std::atoi(log.c_str() + colon + 2);
  return err > 0 && err < 4096 ? err : 0;
}

bool isTchar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

int respond(mg_connection* conn, int code, const char* reason, const char* type, const std::string& body,
            const char* extra = "") {
  mg_printf(conn,
            "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%sConnection: close\r\n\r\n", code,
            reason, type, body.size(), extra);
  mg_write(conn, body.data(), body.size());
  return code;
}

int plain(mg_connection* conn, int code, const char* reason, const std::string& body, const char* extra = "") {
  return respond(conn, code, reason, "text/plain; charset=utf-8", body, extra);
}

}  // namespace

HttpEndpoint::HttpEndpoint(std::string listenAddress, std::function<std::string()> render)
    : address_(std::move(listenAddress)), render_(std::move(render)) {}

HttpEndpoint::~HttpEndpoint() { stop(); }

int HttpEndpoint::onRequest(mg_connection* conn) {
  auto* self = static_cast<HttpEndpoint*>(mg_get_user_data(mg_get_context(conn)));
  return self->serve(conn);
}

int HttpEndpoint::onLog(const mg_connection* conn, const char* message) {
  auto* self = conn != nullptr ? static_cast<HttpEndpoint*>(mg_get_user_data(mg_get_context(conn))) : nullptr;
  if (self != nullptr) {
    std::lock_guard<std::mutex> lock(self->startMu_);
    if (self->ctx_ == nullptr) self->startLog_ += std::string(message) + "; ";
  }
  // Clients' mistakes (malformed heads, timeouts) are theirs: debug only.
  spdlog::debug("metrics: civetweb: {}", message);
  return 1;  // handled: CivetWeb writes no log of its own
}

int HttpEndpoint::serve(mg_connection* conn) {
  const mg_request_info* ri = mg_get_request_info(conn);
  const std::string_view version = ri->http_version != nullptr ? ri->http_version : "";
  if (version != "1.1" && version != "1.0") return plain(conn, 400, "Bad Request", "HTTP/1.0 or HTTP/1.1 only\n");
  for (int i = 0; i < ri->num_headers; i++) {
    const std::string_view name = ri->http_headers[i].name != nullptr ? ri->http_headers[i].name : "";
    if (name.empty() || !std::all_of(name.begin(), name.end(), isTchar)) {
      return plain(conn, 400, "Bad Request", "malformed header field\n");
    }
  }
  const std::string_view uri = ri->request_uri != nullptr ? ri->request_uri : "";
  if (uri.empty() || (uri[0] != '/' && uri != "*")) return plain(conn, 400, "Bad Request", "malformed request target\n");
  if (std::string_view(ri->request_method) != "GET") {
    return plain(conn, 405, "Method Not Allowed", "only GET is served\n", "Allow: GET\r\n");
  }
  if (ri->local_uri == nullptr || std::string_view(ri->local_uri) != "/metrics") {
    return plain(conn, 404, "Not Found", "try /metrics\n");
  }
  std::string body;
  try {
    // One render at a time, as with the single-threaded server before:
    // render_ takes the daemon's lock, and 32 scrapes at once would queue
    // 32 threads on it.
    std::lock_guard<std::mutex> lock(renderMu_);
    body = render_();
  } catch (const std::exception& e) {
    return plain(conn, 500, "Internal Server Error", std::string("rendering metrics failed: ") + e.what() + "\n");
  }
  return respond(conn, 200, "OK", "text/plain; version=0.0.4; charset=utf-8", body);
}

Result<void> HttpEndpoint::start() {
  if (ctx_ != nullptr) return Error{"start metrics endpoint", address_, EALREADY, "already started"};
  auto spec = listenSpec(address_);
  if (!spec) return spec.error();
  static std::once_flag initOnce;
  std::call_once(initOnce, [] { mg_init_library(0); });

  const std::string workers = std::to_string(kWorkers), queue = std::to_string(kQueue),
                    headMs = std::to_string(kHeadTimeoutMs), headBytes = std::to_string(kMaxHeadBytes);
  const char* options[] = {"listening_ports", spec->c_str(),
                           "num_threads", workers.c_str(),
                           "connection_queue", queue.c_str(),
                           "listen_backlog", "128",
                           "request_timeout_ms", headMs.c_str(),
                           "max_request_size", headBytes.c_str(),
                           "enable_keep_alive", "no",
                           "linger_timeout_ms", "1000",
                           "decode_url", "yes",
                           nullptr};
  mg_callbacks callbacks{};
  callbacks.begin_request = &HttpEndpoint::onRequest;  // every request ends here: no files are served
  callbacks.log_message = &HttpEndpoint::onLog;
  mg_init_data init{};
  init.callbacks = &callbacks;
  init.user_data = this;
  init.configuration_options = options;
  char text[256] = "";
  unsigned code = 0;
  mg_error_data error{&code, text, sizeof(text)};
  {
    std::lock_guard<std::mutex> lock(startMu_);
    startLog_.clear();
  }
  mg_context* ctx = mg_start2(&init, &error);
  if (ctx == nullptr) {
    std::lock_guard<std::mutex> lock(startMu_);
    std::string detail = startLog_.empty() ? std::string(text) : startLog_ + text;
    return Error{"bind metrics endpoint", address_, errnoIn(startLog_), detail};
  }
  mg_server_port ports[2]{};
  if (mg_get_server_ports(ctx, 2, ports) < 1) {
    mg_stop(ctx);
    return Error{"start metrics endpoint", address_, 0, "no listening port"};
  }
  std::lock_guard<std::mutex> lock(startMu_);
  ctx_ = ctx;
  port_ = static_cast<uint16_t>(ports[0].port);
  (void)inet_pton(AF_INET, address_.substr(0, address_.rfind(':')).c_str(), &host_);
  return {};
}

void HttpEndpoint::stop() {
  if (ctx_ == nullptr) return;
  // CivetWeb's accept thread polls in 2 s quanta and sees the stop flag only
  // between them (2 s per stop, measured). A connect wakes its poll at once;
  // once stopping it accepts nothing, and closing the listener resets these.
  std::atomic<bool> stopped{false};
  std::thread waker([this, &stopped] {
    while (!stopped) {
      UniqueFd fd(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
      sockaddr_in a{};
      a.sin_family = AF_INET;
      a.sin_port = htons(port_);
      a.sin_addr = host_;
      if (fd) (void)connect(fd.get(), reinterpret_cast<const sockaddr*>(&a), sizeof(a));
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  });
  mg_stop(ctx_);  // joins its threads
  stopped = true;
  waker.join();
  std::lock_guard<std::mutex> lock(startMu_);
  ctx_ = nullptr;
  port_ = 0;
}

}  // namespace microseg::metrics
