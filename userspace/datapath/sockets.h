// The established connections of a network namespace, as revocation needs
// them (README "Revocation"): list every TCP and UDP socket, destroy some.
// The kernel's implementation is datapath/socket_iterator.h; the daemon
// sees only this interface (its unit tests run without one).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "bpf/abi.h"
#include "common/result.h"

namespace microseg::datapath {

class Sockets {
 public:
  virtual ~Sockets() = default;
  // Every full TCP socket (listeners included; time-wait and request
  // sockets are not) and every UDP socket of the netns `netnsPath` ("" for
  // the caller's own).
  virtual Result<std::vector<ms_sock_record>> list(const std::string& netnsPath) = 0;
  // Destroys the sockets of that netns whose cookies are given: a TCP
  // connection is aborted (the local end's calls fail with ECONNABORTED,
  // the peer gets a reset). Returns a record for each socket found, with
  // `destroyed` or `destroy_error`; a cookie not found (closed meanwhile,
  // or of another netns) has none.
  virtual Result<std::vector<ms_sock_record>> destroy(const std::vector<uint64_t>& cookies,
                                                     const std::string& netnsPath) = 0;
};

}  // namespace microseg::datapath
