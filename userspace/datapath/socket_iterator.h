// The TCP and UDP sockets of a network namespace, listed and destroyed by
// the kernel's socket iterators (bpf/revoke.bpf.c; abi.h: ms_sock_record):
// what revoking established connections stands on. Which sockets to
// destroy is the caller's decision, from the records.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "bpf/abi.h"
#include "common/result.h"
#include "datapath/sockets.h"

struct revoke_bpf;  // generated skeleton (revoke.skel.h)

namespace microseg::datapath {

class SocketIterator : public Sockets {
 public:
  // Loads the iterators. Fails on a kernel without socket iterators or
  // bpf_sock_destroy() (Linux >= 6.5): revocation is then unavailable,
  // and the error says why. `pinDir`: the datapath's pin dir, whose
  // ms_sockets tells each connection's age (ms_sock_record.since_ns); ""
  // or a dir without it (logged): every age is unknown (0).
  static Result<std::unique_ptr<SocketIterator>> open(const std::string& pinDir = "");
  ~SocketIterator() override;
  SocketIterator(const SocketIterator&) = delete;
  SocketIterator& operator=(const SocketIterator&) = delete;

  // Sockets: what they do.
  Result<std::vector<ms_sock_record>> list(const std::string& netnsPath = "") override;
  Result<std::vector<ms_sock_record>> destroy(const std::vector<uint64_t>& cookies,
                                             const std::string& netnsPath = "") override;

 private:
  SocketIterator() = default;
  Result<std::vector<ms_sock_record>> run(bool destroyPass, const std::string& netnsPath);

  struct SkelDeleter { void operator()(::revoke_bpf* s) const; };
  std::unique_ptr<::revoke_bpf, SkelDeleter> skel_;
  std::mutex mu_;  // one pass at a time: the pass flag and cookie map are shared
};

}  // namespace microseg::datapath
