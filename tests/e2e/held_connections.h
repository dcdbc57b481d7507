// Connections a test holds open to see how they end (revocation): a
// server that accepts and keeps its connections, clients that block in
// read(), each reporting through a pipe the errno its connection ended
// with (0: end of file). Used by the socket iterator and revocation tests.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <optional>
#include <string>
#include <vector>

#include "harness.h"

namespace microseg::e2e {

inline sockaddr_in loopback(int port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return a;
}

// A pipe a child reports one int on (the errno its blocking read ended
// with; 0 for end of file).
struct Report {
  int fd[2] = {-1, -1};
  Report() { EXPECT_EQ(pipe2(fd, O_CLOEXEC), 0); }
  ~Report() {
    close(fd[0]);
    close(fd[1]);
  }
  void send(int v) const { (void)!write(fd[1], &v, sizeof(v)); }
  // The reported value, or nothing within `ms`.
  std::optional<int> wait(int ms) const {
    pollfd p{fd[0], POLLIN, 0};
    int v = 0;
    if (poll(&p, 1, ms) == 1 && read(fd[0], &v, sizeof(v)) == sizeof(v)) return v;
    return std::nullopt;
  }
};

// Blocks reading `fd` until the connection ends; reports how.
inline void readUntilEnd(int fd, const Report& r) {
  char b[64];
  for (;;) {
    const ssize_t n = read(fd, b, sizeof(b));
    if (n > 0) continue;
    r.send(n == 0 ? 0 : errno);
    for (;;) pause();
  }
}

// A TCP server on 127.0.0.1:port that accepts `n` connections, then
// reports how each ended (one process: nothing forked beyond the tracked
// child).
inline Child acceptingServer(const std::string& cgroup, int port, int n, const Report& ended, const std::string& netns) {
  return Child(
      cgroup,
      [port]() {
        const int fd = socket(AF_INET, SOCK_STREAM, 0);
        const int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        const sockaddr_in a = loopback(port);
        if (bind(fd, reinterpret_cast<const sockaddr*>(&a), sizeof(a)) != 0 || listen(fd, 16) != 0) return -1;
        return fd;
      },
      [&ended, n](int lfd) {
        std::vector<pollfd> conns;
        while (int(conns.size()) < n) {
          const int c = accept(lfd, nullptr, nullptr);
          if (c >= 0) conns.push_back(pollfd{c, POLLIN, 0});
        }
        for (;;) {
          if (poll(conns.data(), conns.size(), -1) <= 0) continue;
          for (auto& p : conns) {
            if (p.fd < 0 || p.revents == 0) continue;
            char b[64];
            const ssize_t got = read(p.fd, b, sizeof(b));
            if (got > 0) continue;
            ended.send(got == 0 ? 0 : errno);
            close(p.fd);
            p.fd = -1;
          }
        }
      },
      netns);
}

inline Child tcpClient(const std::string& cgroup, int port, const Report& ended, const std::string& netns) {
  return Child(
      cgroup,
      [port]() {
        const int fd = socket(AF_INET, SOCK_STREAM, 0);
        const sockaddr_in a = loopback(port);
        return connect(fd, reinterpret_cast<const sockaddr*>(&a), sizeof(a)) == 0 ? fd : -1;
      },
      [&ended](int fd) { readUntilEnd(fd, ended); }, netns);
}

}  // namespace microseg::e2e
