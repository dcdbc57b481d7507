#include "dns_responder.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <cerrno>
#include <cstring>
#include <utility>

namespace microseg::e2e::dns {
namespace {

constexpr int kResponderLifetimeMs = 120000;  // ends by itself even if never killed
constexpr size_t kMaxPointerHops = 16;

int64_t nowMs() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

std::string lower(std::string s) {
  for (char& c : s) c = char(std::tolower(static_cast<unsigned char>(c)));
  return s;
}


// A message being written, with the offsets of the names written so far
// (for compression pointers).
class Writer {
 public:
  std::vector<uint8_t> m;
  void u8(uint8_t v) { m.push_back(v); }
  void u16(uint16_t v) {
    u8(uint8_t(v >> 8));
    u8(uint8_t(v));
  }
  void u32(uint32_t v) {
    u16(uint16_t(v >> 16));
    u16(uint16_t(v));
  }
  // A name: a pointer to the same name written before, else its labels.
  void name(const std::string& n, bool compress = true) {
    const std::string key = lower(n);
    if (compress) {
      for (const auto& [written, off] : names_) {
        if (written == key) {
          u16(uint16_t(0xc000 | off));
          return;
        }
      }
    }
    names_.emplace_back(key, uint16_t(m.size()));
    size_t s = 0;
    while (s < n.size()) {
      size_t e = n.find('.', s);
      if (e == std::string::npos) e = n.size();
      u8(uint8_t(e - s));
      for (size_t i = s; i < e; i++) u8(uint8_t(n[i]));
      s = e + 1;
    }
    u8(0);
  }

 private:
  std::vector<std::pair<std::string, uint16_t>> names_;
};

void header(Writer& w, uint16_t id, uint16_t flags, uint16_t answers) {
  w.u16(id);
  w.u16(flags);
  w.u16(1);  // QDCOUNT
  w.u16(answers);
  w.u16(0);
  w.u16(0);
}

// Reads the name at `off` (following pointers) into `out`; `next` is the
// offset after the name where it starts. False if it runs past the end or
// loops.
bool readName(const uint8_t* m, size_t len, size_t off, std::string& out, size_t& next) {
  out.clear();
  bool jumped = false;
  size_t hops = 0;
  while (true) {
    if (off >= len) return false;
    const uint8_t l = m[off];
    if ((l & 0xc0) == 0xc0) {
      if (off + 1 >= len || ++hops > kMaxPointerHops) return false;
      if (!jumped) next = off + 2;
      jumped = true;
      off = size_t((l & 0x3f) << 8 | m[off + 1]);
      continue;
    }
    if (l == 0) {
      if (!jumped) next = off + 1;
      return true;
    }
    if ((l & 0xc0) != 0 || off + 1 + l > len) return false;
    if (!out.empty()) out.push_back('.');
    out.append(reinterpret_cast<const char*>(m + off + 1), l);
    off += 1 + size_t(l);
  }
}

uint16_t rd16(const uint8_t* p) { return uint16_t(p[0] << 8 | p[1]); }

// The question of a query: its id, name and type; false if it is not one.
bool parseQuery(const uint8_t* m, size_t len, uint16_t& id, std::string& name, uint16_t& type) {
  if (len < 12 || (m[2] & 0x80) != 0 || rd16(m + 4) != 1) return false;
  id = rd16(m);
  size_t next = 0;
  if (!readName(m, len, 12, name, next) || next + 4 > len) return false;
  type = rd16(m + next);
  return true;
}

}  // namespace

Zone& Zone::a(const std::string& name, const std::string& addr, uint32_t ttl) {
  records_.push_back({name, kTypeA, ttl, addr});
  return *this;
}

Zone& Zone::aaaa(const std::string& name, const std::string& addr, uint32_t ttl) {
  records_.push_back({name, kTypeAaaa, ttl, addr});
  return *this;
}

Zone& Zone::cname(const std::string& name, const std::string& target, uint32_t ttl) {
  records_.push_back({name, kTypeCname, ttl, target});
  return *this;
}

Zone& Zone::flags(const std::string& name, uint16_t flags) {
  flags_.emplace_back(lower(name), flags);
  return *this;
}

uint16_t Zone::flagsFor(const std::string& name) const {
  uint16_t f = 0;
  for (const auto& [n, v] : flags_) {
    if (n == lower(name)) f = uint16_t(f | v);
  }
  return f;
}

Zone& Zone::flood(const std::string& suffix) {
  flood_ = lower(suffix);
  return *this;
}

std::vector<Record> Zone::answer(const std::string& name, uint16_t type) const {
  std::vector<Record> out;
  const std::string n = lower(name), tail = "." + flood_;
  if (!flood_.empty() && type == kTypeA && n.size() > tail.size() + 1 && n[0] == 'n' &&
      n.compare(n.size() - tail.size(), tail.size(), tail) == 0) {
    const uint32_t k = uint32_t(std::strtoul(n.c_str() + 1, nullptr, 10)) & 0x7ffff;
    for (uint32_t i = 0; i < kFloodAddresses; i++) {
      const uint32_t a = (100u << 24 | 64u << 16) + k * kFloodAddresses + i;
      out.push_back({name, kTypeA, 3600,
                     std::to_string(a >> 24) + "." + std::to_string(a >> 16 & 255) + "." +
                         std::to_string(a >> 8 & 255) + "." + std::to_string(a & 255)});
    }
    return out;
  }
  std::string cur = lower(name);
  for (size_t links = 0; links < 8; links++) {
    auto it = std::find_if(records_.begin(), records_.end(),
                           [&](const Record& r) { return r.type == kTypeCname && lower(r.name) == cur; });
    if (it == records_.end()) break;
    out.push_back(*it);
    cur = lower(it->data);
  }
  for (const auto& r : records_) {
    if (r.type == type && lower(r.name) == cur) out.push_back(r);
  }
  return out;
}

std::vector<uint8_t> buildQuery(uint16_t id, const std::string& name, uint16_t type) {
  Writer w;
  header(w, id, 0x0100, 0);  // RD
  w.name(name, false);
  w.u16(type);
  w.u16(1);  // IN
  return w.m;
}

std::vector<uint8_t> buildResponse(uint16_t id, const std::string& name, uint16_t type,
                                   const std::vector<Record>& answers, uint16_t flags) {
  Writer w;
  header(w, id, uint16_t(0x8580 | flags), uint16_t(answers.size()));  // QR AA RD RA, NOERROR
  w.name(name, false);
  w.u16(type);
  w.u16(1);
  for (const auto& r : answers) {
    w.name(r.name);
    w.u16(r.type);
    w.u16(1);
    w.u32(r.ttl);
    if (r.type == kTypeCname) {
      const size_t lenAt = w.m.size();
      w.u16(0);
      w.name(r.data);
      const uint16_t rdlen = uint16_t(w.m.size() - lenAt - 2);
      w.m[lenAt] = uint8_t(rdlen >> 8);
      w.m[lenAt + 1] = uint8_t(rdlen);
    } else {
      uint8_t a[16] = {};
      const bool v4 = r.type == kTypeA;
      inet_pton(v4 ? AF_INET : AF_INET6, r.data.c_str(), a);
      w.u16(v4 ? 4 : 16);
      for (int i = 0; i < (v4 ? 4 : 16); i++) w.u8(a[i]);
    }
  }
  return w.m;
}

Parsed parseResponse(const uint8_t* m, size_t len) {
  Parsed p;
  if (len < 12 || (m[2] & 0x80) == 0 || rd16(m + 4) != 1) return p;
  p.id = rd16(m);
  const uint16_t an = rd16(m + 6);
  size_t off = 0;
  if (!readName(m, len, 12, p.question, off) || off + 4 > len) return p;
  p.type = rd16(m + off);
  off += 4;
  for (uint16_t i = 0; i < an; i++) {
    std::string owner;
    if (!readName(m, len, off, owner, off) || off + 10 > len) return p;
    const uint16_t type = rd16(m + off), rdlen = rd16(m + off + 8);
    off += 10;
    if (off + rdlen > len) return p;
    char text[INET6_ADDRSTRLEN] = {};
    if (type == kTypeA && rdlen == 4) {
      p.addresses.emplace_back(inet_ntop(AF_INET, m + off, text, sizeof(text)));
    } else if (type == kTypeAaaa && rdlen == 16) {
      p.addresses.emplace_back(inet_ntop(AF_INET6, m + off, text, sizeof(text)));
    }
    off += rdlen;
  }
  p.ok = true;
  return p;
}

Child responder(const std::string& cgroup, int family, const std::string& addr, const Zone& zone,
                const std::string& netnsPath) {
  return Child(
      cgroup,
      [=]() {
        int fd = socket(family, SOCK_DGRAM, 0);
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (family == AF_INET6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
        sockaddr_storage ss;
        const socklen_t len = makeAddr(family, addr, 53, ss);
        if (bind(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0) return -1;
        return fd;
      },
      [zone](int fd) {
        const int64_t end = nowMs() + kResponderLifetimeMs;
        uint8_t buf[1500];
        while (nowMs() < end) {
          pollfd p{fd, POLLIN, 0};
          if (poll(&p, 1, 200) <= 0) continue;
          sockaddr_storage from;
          socklen_t fl = sizeof(from);
          const ssize_t n = recvfrom(fd, buf, sizeof(buf), 0, reinterpret_cast<sockaddr*>(&from), &fl);
          uint16_t id = 0, type = 0;
          std::string name;
          if (n <= 0 || !parseQuery(buf, size_t(n), id, name, type)) continue;
          const auto answer = buildResponse(id, name, type, zone.answer(name, type), zone.flagsFor(name));
          sendto(fd, answer.data(), answer.size(), 0, reinterpret_cast<sockaddr*>(&from), fl);
        }
      },
      netnsPath);
}

int resolve(int family, const std::string& resolver, const std::string& name, uint16_t type, Via via,
            std::vector<std::string>& addresses, int timeoutMs) {
  addresses.clear();
  int fd = socket(family, SOCK_DGRAM, 0);
  if (fd < 0) return errno;
  sockaddr_storage ss;
  const socklen_t sl = makeAddr(family, resolver, 53, ss);
  const uint16_t id = uint16_t(getpid() ^ nowMs());
  const auto q = buildQuery(id, name, type);
  int rc = 0;
  if (via == Via::Connected) {
    if (connect(fd, reinterpret_cast<sockaddr*>(&ss), sl) != 0 || send(fd, q.data(), q.size(), 0) < 0) rc = errno;
  } else if (sendto(fd, q.data(), q.size(), 0, reinterpret_cast<sockaddr*>(&ss), sl) < 0) {
    rc = errno;
  }
  const int64_t end = nowMs() + timeoutMs;
  while (rc == 0) {
    const int64_t left = end - nowMs();
    pollfd p{fd, POLLIN, 0};
    if (left <= 0 || poll(&p, 1, int(left)) <= 0) {
      rc = ETIMEDOUT;
      break;
    }
    uint8_t buf[1500];
    const ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n < 0) {
      rc = errno;
      break;
    }
    Parsed r = parseResponse(buf, size_t(n));
    if (r.ok && r.id != id) continue;  // not ours
    if (!r.ok || lower(r.question) != lower(name) || r.type != type) {
      rc = EBADMSG;
      break;
    }
    addresses = std::move(r.addresses);
    break;
  }
  close(fd);
  return rc;
}

int resolveExpect(int family, const std::string& resolver, const std::string& name, uint16_t type, Via via,
                  const std::vector<std::string>& expected, int timeoutMs) {
  std::vector<std::string> got;
  const int rc = resolve(family, resolver, name, type, via, got, timeoutMs);
  if (rc != 0) return rc;
  return got == expected ? 0 : ENOENT;
}

int resolveFlood(int family, const std::string& resolver, const std::string& suffix, int first, int count,
                 int timeoutMs) {
  int fd = socket(family, SOCK_DGRAM, 0);
  if (fd < 0) return errno;
  sockaddr_storage ss;
  const socklen_t sl = makeAddr(family, resolver, 53, ss);
  int rc = connect(fd, reinterpret_cast<sockaddr*>(&ss), sl) == 0 ? 0 : errno;
  for (int k = first; rc == 0 && k < first + count; k++) {
    const auto q = buildQuery(uint16_t(k), "n" + std::to_string(k) + "." + suffix, kTypeA);
    if (send(fd, q.data(), q.size(), 0) < 0) {
      rc = errno;
      break;
    }
    uint8_t buf[1500];
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, timeoutMs) <= 0) {
      rc = ETIMEDOUT;
      break;
    }
    const ssize_t n = recv(fd, buf, sizeof(buf), 0);
    const Parsed r = n > 0 ? parseResponse(buf, size_t(n)) : Parsed{};
    if (!r.ok || r.id != uint16_t(k) || r.addresses.size() != size_t(kFloodAddresses)) rc = EBADMSG;
  }
  close(fd);
  return rc;
}

int sendFrom53(int family, const std::string& from, const std::string& to, int toPort,
               const std::vector<uint8_t>& msg) {
  int fd = socket(family, SOCK_DGRAM, 0);
  if (fd < 0) return errno;
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (family == AF_INET6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
  sockaddr_storage src, dst;
  const socklen_t sl = makeAddr(family, from, 53, src);
  const socklen_t dl = makeAddr(family, to, toPort, dst);
  int rc = 0;
  if (bind(fd, reinterpret_cast<sockaddr*>(&src), sl) != 0 ||
      sendto(fd, msg.data(), msg.size(), 0, reinterpret_cast<sockaddr*>(&dst), dl) < 0) {
    rc = errno;
  }
  close(fd);
  return rc;
}

UdpCatcher::UdpCatcher(const std::string& cgroup, int family, const std::string& addr, int port,
                       const std::string& netnsPath, const FirstSend& first) {
  if (pipe2(pipe_, O_CLOEXEC) != 0) return;
  const int signal = pipe_[1];
  child_ = std::make_unique<Child>(
      cgroup,
      [=]() {
        int fd = socket(family, SOCK_DGRAM, 0);
        int one = 1;
        if (family == AF_INET6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
        sockaddr_storage ss;
        const socklen_t len = makeAddr(family, addr, port, ss);
        if (bind(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0) return -1;
        if (first.msg.empty()) return fd;
        sockaddr_storage to;
        const socklen_t tl = makeAddr(family, first.to, first.port, to);
        if (first.via == Via::Connected) {
          if (connect(fd, reinterpret_cast<sockaddr*>(&to), tl) != 0) return -1;
          if (send(fd, first.msg.data(), first.msg.size(), 0) < 0) return -1;
        } else if (sendto(fd, first.msg.data(), first.msg.size(), 0, reinterpret_cast<sockaddr*>(&to), tl) < 0) {
          return -1;
        }
        return fd;
      },
      [signal](int fd) {
        const int64_t end = nowMs() + kResponderLifetimeMs;
        uint8_t buf[1500];
        while (nowMs() < end) {
          pollfd p{fd, POLLIN, 0};
          if (poll(&p, 1, 200) > 0 && recv(fd, buf, sizeof(buf), 0) >= 0) (void)!write(signal, "d", 1);
        }
      },
      netnsPath);
}

UdpCatcher::~UdpCatcher() {
  child_.reset();  // kills and reaps it first
  for (int fd : pipe_) {
    if (fd >= 0) close(fd);
  }
}

bool UdpCatcher::received(int timeoutMs) {
  if (pipe_[0] < 0) return false;
  pollfd p{pipe_[0], POLLIN, 0};
  char c;
  return poll(&p, 1, timeoutMs) > 0 && read(pipe_[0], &c, 1) == 1;
}

}  // namespace microseg::e2e::dns
