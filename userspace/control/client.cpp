#include "control/client.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstring>

#include "common/fd.h"
#include "control/protocol.h"

namespace microseg::control {

Result<nlohmann::json> call(const std::string& socketPath, nlohmann::json request, int timeoutMs) {
  using Clock = std::chrono::steady_clock;
  const auto deadline = Clock::now() + std::chrono::milliseconds(timeoutMs);
  auto left = [&] {
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    return static_cast<int>(std::max<int64_t>(ms, 0));
  };
  if (!request.contains("version")) request["version"] = kProtocolVersion;

  sockaddr_un addr{};
  if (socketPath.size() >= sizeof(addr.sun_path)) {
    return Error{"connect to daemon", socketPath, ENAMETOOLONG, {}};
  }
  UniqueFd fd(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return sysError("create socket", socketPath);
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, socketPath.c_str(), socketPath.size() + 1);
  if (connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    Error e = sysError("connect to daemon", socketPath);
    if (e.err == ENOENT || e.err == ECONNREFUSED) e.detail = "is microsegd running?";
    return e;
  }
  const std::string out = request.dump() + "\n";
  size_t off = 0;
  while (off < out.size()) {
    pollfd p{fd.get(), POLLOUT, 0};
    if (poll(&p, 1, left()) <= 0) return Error{"send request", socketPath, ETIMEDOUT, {}};
    ssize_t n = send(fd.get(), out.data() + off, out.size() - off, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      return sysError("send request", socketPath);
    }
    off += static_cast<size_t>(n);
  }
  std::string in;
  for (;;) {
    pollfd p{fd.get(), POLLIN, 0};
    int pr = poll(&p, 1, left());
    if (pr == 0) return Error{"read reply", socketPath, ETIMEDOUT, {}};
    if (pr < 0) {
      if (errno == EINTR) continue;
      return sysError("read reply", socketPath);
    }
    char buf[65536];
    ssize_t n = recv(fd.get(), buf, sizeof(buf), 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      return sysError("read reply", socketPath);
    }
    if (n == 0) break;
    in.append(buf, static_cast<size_t>(n));
    if (in.find('\n') != std::string::npos) break;
    if (in.size() > (64u << 20)) return Error{"read reply", socketPath, EMSGSIZE, {}};
  }
  try {
    return nlohmann::json::parse(in.substr(0, in.find('\n')));
  } catch (const nlohmann::json::parse_error& e) {
    return Error{"parse reply", socketPath, 0, e.what()};
  }
}

}  // namespace microseg::control
