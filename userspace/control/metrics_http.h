// Minimal HTTP/1.1 endpoint for Prometheus scrapes: GET /metrics only.
// One thread, one poll loop, non-blocking sockets, so a slow or hostile
// client never holds up a scrape for long:
//  - the request head must be complete within 2 s and 8 KiB (else closed /
//    431); a malformed request line is answered 400 as soon as it is seen;
//  - at most 16 clients; when full, the oldest client still sending its
//    head makes room for the new one;
//  - one response per connection (Connection: close), then a short
//    lingering close so the client reads the response before the FIN.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <thread>

#include "common/fd.h"
#include "common/result.h"

namespace microseg::metrics {

class HttpEndpoint {
 public:
  // `render` is called on the endpoint's thread for every GET /metrics; if
  // it throws, the scrape gets a 500 with the message.
  HttpEndpoint(std::string listenAddress, std::function<std::string()> render);
  ~HttpEndpoint();  // stops
  HttpEndpoint(const HttpEndpoint&) = delete;
  HttpEndpoint& operator=(const HttpEndpoint&) = delete;

  // listenAddress: "127.0.0.1:9464" or "[::1]:9464": an IP literal (no host
  // names; the wildcard 0.0.0.0 / :: is refused: name a loopback or an
  // interface address). Port 0 picks a free port (see port()). Binds,
  // listens and starts the thread; the error names the address and errno.
  Result<void> start();
  void stop();  // idempotent; start() may be called again afterwards
  uint16_t port() const { return port_; }  // the bound port, 0 before start()

 private:
  void run();

  std::string address_;
  std::function<std::string()> render_;
  UniqueFd listen_;
  UniqueFd stop_;  // eventfd: wakes the poll loop to exit
  std::thread thread_;
  uint16_t port_ = 0;
};

}  // namespace microseg::metrics
