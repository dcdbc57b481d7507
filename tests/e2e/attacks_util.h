// The attack suite's fixture (the battery's policy, both modes, counters)
// and the sockets its attacks need beyond harness.h.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "harness.h"
#include "policies.h"

namespace microseg::e2e {

constexpr int kDropMs = 500;  // a dropped SYN or datagram: no answer within this

class Attacks : public WorkloadTest {
 protected:
  int P() const { return port_; }        // client-b -> host (TCP), client-a -> server
  int U() const { return port_ + 1; }    // UDP: client-b -> host and world, client-a -> server
  int P2() const { return port_ + 2; }   // TCP: client-b -> server (the server admits host only)
  int P4() const { return port_ + 4; }   // UDP: client-b and client-a -> server (admits client-a, host)
  int M() const { return port_ + 5; }    // UDP: client-a -> any peer, the server admits client-a
  std::string policy() const;
  void start(const std::vector<std::string>& extra = {});
  void setMode(const std::string& mode);
  // A counter of `status` (-1 if the daemon has no such counter).
  long counter(const std::string& name) const;
  int tcpFrom(const std::string& cg, int family, const std::string& addr, int port) const;
  // Waits until the daemon has `addr` among `workload`'s netns addresses.
  bool knows(const std::string& workload, const std::string& addr) const;
};

// A chain of `depth` nested cgroups below `parent` (d1/d2/...), removed
// deepest first on destruction (the harness's cleanup stops at 64 levels).
class DeepChain {
 public:
  DeepChain(const std::string& parent, const std::string& tag, int depth);
  ~DeepChain();
  DeepChain(const DeepChain&) = delete;
  DeepChain& operator=(const DeepChain&) = delete;
  bool ok() const { return ok_; }
  const std::string& bottom() const { return dirs_.back(); }

 private:
  std::vector<std::string> dirs_;
  bool ok_ = false;
};

// An IPv4 address of this host on a device that is up (not loopback), and
// the device: {"", ""} if none.
std::pair<std::string, std::string> hostAddress();

// sendto() from a fresh UDP socket (SO_BROADCAST if `broadcast`); IPv6
// link-local and multicast destinations get `dev`'s scope. 0 or errno.
int udpSendtoDev(int family, const std::string& addr, int port, const std::string& dev, bool broadcast);
// TCP connect from a socket bound to `dev` (none if empty); 0 or errno
// (ETIMEDOUT: no handshake within timeoutMs).
int tcpConnectDev(const std::string& addr, int port, const std::string& dev, int timeoutMs);
// sendto + wait for the echo from a UDP socket bound to `dev`.
int udpRequestDev(const std::string& addr, int port, const std::string& dev, int timeoutMs);
// A UDP socket bound to 127.0.0.1:`port` with SO_REUSEADDR, -1 on failure.
int udpBoundSocket(int port);
// sendto 127.0.0.1:`port` from `fd` and wait for the echo: 0 or errno.
int udpExchange(int fd, int port, int timeoutMs);
// udpExchange() from a fresh udpBoundSocket(srcPort), closed after.
int udpRequestFrom(int srcPort, int port, int timeoutMs);

// A UDP-Lite echo server on 127.0.0.1:`port`; a UDP-Lite request to it.
Child udpLiteEchoServer(const std::string& cgroup, int port);
int udpLiteRequest(int port, int timeoutMs);

// An ICMP echo from a ping socket (SOCK_DGRAM, IPPROTO_ICMP) to 127.0.0.1,
// connect()ed first or sendto(); allows ping sockets for every group in the
// calling process's netns first (run it in a netns of the test's own).
int pingSocket(bool connectFirst);

}  // namespace microseg::e2e
