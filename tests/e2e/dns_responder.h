// DNS for the FQDN peer tests (#27): a small authoritative responder over
// UDP (a harness Child, in a network namespace of the test's), the
// resolving side a forked workload runs (a query, sent on a connected or an
// unconnected socket, and the addresses of the answer), and an answer sent
// from port 53 to a workload that never asked. Plain sockets, no resolver
// library: the tests decide every byte the kernel's parser sees.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "harness.h"

namespace microseg::e2e::dns {

inline constexpr uint16_t kTypeA = 1;
inline constexpr uint16_t kTypeCname = 5;
inline constexpr uint16_t kTypeAaaa = 28;
inline constexpr uint16_t kFlagTc = 0x0200;       // truncated
inline constexpr uint16_t kRcodeNxdomain = 3;
inline constexpr int kFloodAddresses = 8;

// How a workload sends its query: connect() then send(), or sendto().
enum class Via { Connected, Sendto };

struct Record {
  std::string name;  // owner, without the trailing dot
  uint16_t type = kTypeA;
  uint32_t ttl = 30;
  std::string data;  // an address for A/AAAA, the target name for CNAME
};

// The records a responder serves. An answer to (name, type) is the CNAME
// chain from `name` (each link its record), then the A or AAAA records of
// the chain's last name; names are matched case-insensitively.
class Zone {
 public:
  Zone& a(const std::string& name, const std::string& addr, uint32_t ttl = 30);
  Zone& aaaa(const std::string& name, const std::string& addr, uint32_t ttl = 30);
  Zone& cname(const std::string& name, const std::string& target, uint32_t ttl = 30);
  // Header flags added to every answer for `name`: kFlagTc, an RCODE...
  Zone& flags(const std::string& name, uint16_t flags);
  uint16_t flagsFor(const std::string& name) const;
  // Names n<K>.<suffix> (K a number below 2^19) have kFloodAddresses A
  // records each, 100.64.0.0 + K * 8 + i, TTL 3600: many names with many
  // addresses, none written out.
  Zone& flood(const std::string& suffix);
  // The answer section for a question (empty: the name has no such records).
  std::vector<Record> answer(const std::string& name, uint16_t type) const;

 private:
  std::vector<Record> records_;
  std::vector<std::pair<std::string, uint16_t>> flags_;
  std::string flood_;
};

// A query: one question (IN class), RD set.
std::vector<uint8_t> buildQuery(uint16_t id, const std::string& name, uint16_t type);
// A response (QR, AA, RD, RA; RCODE 0; or'ed with `flags`) with the
// question copied and `answers` in the answer section. Owner names and
// CNAME targets are compressed against names written before (the
// question's is 0xC00C).
std::vector<uint8_t> buildResponse(uint16_t id, const std::string& name, uint16_t type,
                                   const std::vector<Record>& answers, uint16_t flags = 0);

// What a response says: its id, question, and the A/AAAA addresses of its
// answer section (any owner), as text. ok is false for a message that does
// not parse.
struct Parsed {
  bool ok = false;
  uint16_t id = 0;
  std::string question;
  uint16_t type = 0;
  std::vector<std::string> addresses;
};
Parsed parseResponse(const uint8_t* msg, size_t len);

// A responder on UDP `addr`:53 in `cgroup` (and the netns at `netnsPath`),
// answering every query from `zone` until killed. Its socket has
// SO_REUSEADDR, so sendUnsolicited() can use the same address and port.
Child responder(const std::string& cgroup, int family, const std::string& addr, const Zone& zone,
                const std::string& netnsPath);

// For a forked workload (runIn): sends a query for `name`/`type` to
// `resolver`:53 (connect()+send() or sendto()), waits up to `timeoutMs` for
// the answer with the query's id and returns 0 with its addresses, or the
// errno of the failing call (ETIMEDOUT: no answer; EBADMSG: one that does
// not parse or answers another question).
int resolve(int family, const std::string& resolver, const std::string& name, uint16_t type, Via via,
            std::vector<std::string>& addresses, int timeoutMs = 2000);
// resolve(), then 0 only if the addresses are exactly `expected` (in answer
// order); ENOENT if they differ.
int resolveExpect(int family, const std::string& resolver, const std::string& name, uint16_t type, Via via,
                  const std::vector<std::string>& expected, int timeoutMs = 2000);

// For a forked workload: resolves n<first>.<suffix> ... n<first+count-1>.
// <suffix> (a Zone::flood()) one after the other on one connected socket;
// 0 when every answer came with its kFloodAddresses addresses, else the
// errno.
int resolveFlood(int family, const std::string& resolver, const std::string& suffix, int first, int count,
                 int timeoutMs = 2000);

// Sends `msg` from `from`:53 (SO_REUSEADDR, beside a responder()) to
// `to`:`toPort`; 0 or the errno. For a process in the responder's netns.
int sendFrom53(int family, const std::string& from, const std::string& to, int toPort,
               const std::vector<uint8_t>& msg);

// A UDP socket of a workload bound to `addr`:`port` that waits for
// datagrams (a Child in `cgroup` and the netns at `netnsPath`): received()
// says whether one arrived, so a test knows an unsolicited answer was
// delivered, not dropped on the way. With `first.msg`, the socket sends it
// before it is ready (connect()+send() or sendto()): a query whose socket
// stays open for what else comes.
struct FirstSend {
  std::vector<uint8_t> msg;
  std::string to;
  int port = 53;
  Via via = Via::Sendto;
};
class UdpCatcher {
 public:
  UdpCatcher(const std::string& cgroup, int family, const std::string& addr, int port,
             const std::string& netnsPath, const FirstSend& first = {});
  ~UdpCatcher();
  UdpCatcher(const UdpCatcher&) = delete;
  UdpCatcher& operator=(const UdpCatcher&) = delete;
  bool ready() const { return child_ && child_->ready(); }
  // Waits up to `timeoutMs` for the next datagram to have arrived.
  bool received(int timeoutMs);

 private:
  int pipe_[2] = {-1, -1};  // the child writes a byte per datagram
  std::unique_ptr<Child> child_;
};

}  // namespace microseg::e2e::dns
