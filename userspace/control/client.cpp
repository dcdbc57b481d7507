#include "control/client.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <thread>

#include "common/fd.h"
#include "control/protocol.h"

namespace microseg::control {
namespace {

// Replies carry whole status objects; far above any real one, far below harm.
constexpr size_t kMaxReplyBytes = 64u << 20;

Error connectError(const std::string& path, int err) {
  Error e = sysError("connect to control socket", path, err);
  switch (err) {
    case ENOENT:
      e.detail = "microsegd is not running at this path, or uses another --socket";
      break;
    case ECONNREFUSED:
      e.detail = "microsegd is not running at this path";
      break;
    case EACCES:
    case EPERM:
      e.detail = "permission denied: needs root or the socket's group";
      break;
    case EAGAIN:
      e.err = ETIMEDOUT;
      e.detail = "microsegd is not accepting connections";
      break;
    default:
      break;
  }
  return e;
}

Result<nlohmann::json> callOnce(const std::string& socketPath, const nlohmann::json& request, int timeoutMs) {
  using Clock = std::chrono::steady_clock;
  const auto deadline = Clock::now() + std::chrono::milliseconds(std::max(timeoutMs, 0));
  auto left = [&] {
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    return static_cast<int>(std::max<int64_t>(ms, 0));
  };
  if (!request.is_object()) {
    return Error{"send request", socketPath, EINVAL, "request must be a JSON object"};
  }
  std::string out;
  if (request.contains("version")) {
    out = encodeMessage(request);
  } else {
    nlohmann::json versioned = request;
    versioned["version"] = kProtocolVersion;
    out = encodeMessage(versioned);
  }
  if (out.size() > kMaxMessageBytes) {
    return Error{"send request", socketPath, EMSGSIZE,
                 std::to_string(out.size()) + " bytes, limit " + std::to_string(kMaxMessageBytes)};
  }
  out += "\n";

  sockaddr_un addr{};
  if (socketPath.empty() || socketPath.size() >= sizeof(addr.sun_path)) {
    return Error{"connect to control socket", socketPath, socketPath.empty() ? EINVAL : ENAMETOOLONG, {}};
  }
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, socketPath.c_str(), socketPath.size() + 1);
  UniqueFd fd(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return sysError("create socket", socketPath);
  // A Unix connect() blocks while the listener's backlog is full; the send
  // timeout bounds that wait (it then fails with EAGAIN).
  timeval tv{};
  tv.tv_sec = std::max(left(), 1) / 1000;
  tv.tv_usec = (std::max(left(), 1) % 1000) * 1000;
  setsockopt(fd.get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  while (connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    if (errno == EINTR && left() > 0) continue;
    return connectError(socketPath, errno);
  }

  auto timedOut = [&](const char* op) {
    Error e{op, socketPath, ETIMEDOUT, {}};
    e.detail = "no reply from microsegd within " + std::to_string(timeoutMs) + " ms";
    return e;
  };
  size_t off = 0;
  while (off < out.size()) {
    pollfd p{fd.get(), POLLOUT, 0};
    int pr = poll(&p, 1, left());
    if (pr < 0 && errno == EINTR) continue;
    if (pr <= 0) return timedOut("send request");
    ssize_t n = send(fd.get(), out.data() + off, out.size() - off, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK) continue;
      // The server may refuse early (too many clients) and close: its reply,
      // if any, is still readable below.
      if (errno == EPIPE || errno == ECONNRESET) break;
      return sysError("send request", socketPath);
    }
    off += static_cast<size_t>(n);
  }

  std::string in;
  for (;;) {
    pollfd p{fd.get(), POLLIN, 0};
    int pr = poll(&p, 1, left());
    if (pr < 0 && errno == EINTR) continue;
    if (pr < 0) return sysError("read reply", socketPath);
    if (pr == 0) return timedOut("read reply");
    char buf[65536];
    ssize_t n = recv(fd.get(), buf, sizeof(buf), MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK) continue;
      if (errno == ECONNRESET) break;
      return sysError("read reply", socketPath);
    }
    if (n == 0) break;
    in.append(buf, static_cast<size_t>(n));
    if (in.find('\n', in.size() - static_cast<size_t>(n)) != std::string::npos) break;
    if (in.size() > kMaxReplyBytes) return Error{"read reply", socketPath, EMSGSIZE, {}};
  }
  if (in.empty()) {
    return Error{"read reply", socketPath, 0, "microsegd closed the connection without replying"};
  }
  nlohmann::json reply;
  try {
    reply = nlohmann::json::parse(in.substr(0, in.find('\n')));
  } catch (const nlohmann::json::parse_error& e) {
    return Error{"parse reply", socketPath, 0, e.what()};
  }
  if (!reply.is_object() || !reply.contains("ok") || !reply["ok"].is_boolean()) {
    return Error{"parse reply", socketPath, 0, "not a protocol reply (no boolean 'ok')"};
  }
  return reply;
}

}  // namespace

Result<nlohmann::json> call(const std::string& socketPath, const nlohmann::json& request, int timeoutMs) {
  using Clock = std::chrono::steady_clock;
  const auto deadline = Clock::now() + std::chrono::milliseconds(std::max(timeoutMs, 0));
  auto left = [&] {
    return static_cast<int>(std::max<int64_t>(
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count(), 0));
  };
  // "busy": every slot, or every slot of our uid, is taken; slots free up
  // within the server's request deadline, so a burst of calls is served
  // in turn instead of failing.
  for (int attempt = 1;; attempt++) {
    auto reply = callOnce(socketPath, request, left());
    if (!reply || (*reply)["ok"].get<bool>()) return reply;
    const auto error = reply->find("error");
    const bool busy = error != reply->end() && error->is_object() && error->contains("code") &&
                      (*error)["code"] == kErrBusy;
    if (!busy) return reply;
    const int pause = std::min(20 * attempt, 200);
    if (left() <= pause) return reply;
    std::this_thread::sleep_for(std::chrono::milliseconds(pause));
  }
}

}  // namespace microseg::control
