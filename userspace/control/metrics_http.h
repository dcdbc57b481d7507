// The HTTP endpoint for Prometheus scrapes, GET /metrics only, served by
// CivetWeb (Debian's libcivetweb 1.15): its parser, limits and timeouts,
// configured here.
//  - Threads: one thread accepts; kWorkers workers each serve one
//    connection at a time; accepted connections wait in a queue of
//    kQueue, and beyond it in the kernel's listen backlog (accepting stops
//    while the queue is full), so a connect flood costs no memory here.
//  - Slowloris: the whole request head must arrive within 2 s of its first
//    byte being awaited (CivetWeb's request_timeout_ms counts from the start
//    of the request, not from the last byte), else the connection is closed
//    (400 if part of a head came). The head is at most 8 KiB (else 413).
//    While more than kWorkers clients dawdle, a scrape waits for a worker:
//    at most one head timeout per kWorkers dawdlers ahead of it.
//  - One request per connection (no keep-alive); everything but GET is 405,
//    every path but /metrics 404; a head CivetWeb accepts but HTTP does not
//    (a version other than 1.0/1.1, a header name that is not a token) 400.
//  - IPv6: Debian builds CivetWeb without it, so "[::1]:9464" is refused
//    with an error that says so (mg_check_feature(8)).
#pragma once

#include <netinet/in.h>

#include <cstdint>
#include <functional>
#include <mutex>
#include <string>

#include "common/result.h"

struct mg_context;
struct mg_connection;

namespace microseg::metrics {

class HttpEndpoint {
 public:
  static constexpr int kWorkers = 32;
  static constexpr int kQueue = 32;
  static constexpr int kHeadTimeoutMs = 2000;
  static constexpr int kMaxHeadBytes = 8192;

  // `render` is called on a worker thread for every GET /metrics, one call
  // at a time; if it throws, the scrape gets a 500 with the message.
  HttpEndpoint(std::string listenAddress, std::function<std::string()> render);
  ~HttpEndpoint();  // stops
  HttpEndpoint(const HttpEndpoint&) = delete;
  HttpEndpoint& operator=(const HttpEndpoint&) = delete;

  // listenAddress: "127.0.0.1:9464" (an IPv4 literal: no host names; the
  // wildcard 0.0.0.0 is refused: name a loopback or an interface address).
  // Port 0 picks a free port (see port()). The error names the address and,
  // where the kernel gave one, the errno.
  Result<void> start();
  // Idempotent; start() may be called again afterwards. Takes up to the head
  // timeout while a client is in the middle of a request head (its worker
  // sees the stop between CivetWeb's 2 s poll quanta), else a few ms.
  void stop();
  uint16_t port() const { return port_; }  // the bound port, 0 before start()

 private:
  static int onRequest(mg_connection* conn);
  static int onLog(const mg_connection* conn, const char* message);
  int serve(mg_connection* conn);

  std::string address_;
  std::function<std::string()> render_;
  mg_context* ctx_ = nullptr;
  uint16_t port_ = 0;
  in_addr host_{};              // the address listened on (IPv4 only, see above)
  std::mutex renderMu_;
  std::mutex startMu_;          // guards startLog_ while mg_start runs
  std::string startLog_;        // CivetWeb's messages during start()
};

}  // namespace microseg::metrics
