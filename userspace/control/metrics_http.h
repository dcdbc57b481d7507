// Minimal HTTP/1.1 endpoint for Prometheus scrapes: GET /metrics only.
// Own thread, one poll loop, non-blocking clients: a slow or hostile client
// never holds up a scrape for long (head <= 8 KiB within 2 s, <= 16 clients).
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
  HttpEndpoint(std::string listenAddress, std::function<std::string()> render);
  ~HttpEndpoint();
  HttpEndpoint(const HttpEndpoint&) = delete;
  HttpEndpoint& operator=(const HttpEndpoint&) = delete;

  // "127.0.0.1:9464", "[::1]:9464"; port 0 picks a free port.
  Result<void> start();
  void stop();
  uint16_t port() const { return port_; }

 private:
  void run();
  std::string address_;
  std::function<std::string()> render_;
  UniqueFd listen_, stop_;
  std::thread thread_;
  uint16_t port_ = 0;
};

}  // namespace microseg::metrics
