#include "control/server.h"

#include <fcntl.h>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace microseg::control {

struct ControlServer::Client {
  UniqueFd fd;
  PeerCred peer;
  std::string in;
  std::string out;       // the reply, once there is one; then nothing more is read
  size_t outOff = 0;
  bool replying = false;
  bool done = false;
  int64_t lastActivityMs = 0;
  int64_t acceptedMs = 0;
};

namespace {

constexpr int kListenBacklog = 128;
constexpr int kMaxPollMs = 1000;
constexpr int kAcceptPauseMs = 100;  // after EMFILE/ENFILE, so poll does not spin

int64_t nowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

std::optional<std::vector<gid_t>> peerGroups(int fd) {
  std::vector<gid_t> groups(64);
  for (int attempt = 0; attempt < 2; attempt++) {
    socklen_t len = static_cast<socklen_t>(groups.size() * sizeof(gid_t));
    if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups.data(), &len) == 0) {
      groups.resize(len / sizeof(gid_t));
      return groups;
    }
    if (errno != ERANGE) return std::nullopt;
    groups.resize(len / sizeof(gid_t) + 1);  // the kernel says how many it needs
  }
  return std::nullopt;
}

// Fallback for kernels without SO_PEERGROUPS. The pid may have been reused
// since connect(), so the process must still have the peer's effective uid.
bool procHasGroup(const PeerCred& peer, gid_t group) {
  std::ifstream in("/proc/" + std::to_string(peer.pid) + "/status");
  std::string line;
  bool uidMatches = false;
  while (std::getline(in, line)) {
    if (line.rfind("Uid:", 0) == 0) {
      std::istringstream ss(line.substr(4));
      unsigned real = 0, effective = 0;
      uidMatches = (ss >> real >> effective) && effective == peer.uid;
    } else if (line.rfind("Groups:", 0) == 0) {
      if (!uidMatches) return false;
      std::istringstream ss(line.substr(7));
      unsigned g;
      while (ss >> g) {
        if (g == group) return true;
      }
      return false;
    }
  }
  return false;
}

// Sends what fits now. Returns false when the connection is broken.
bool flush(int fd, const std::string& out, size_t& off) {
  while (off < out.size()) {
    ssize_t n = send(fd, out.data() + off, out.size() - off, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      off += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
  }
  return true;
}

}  // namespace

ControlServer::ControlServer(Options options) : options_(std::move(options)) {}

ControlServer::~ControlServer() { stop(); }

void ControlServer::registerCommand(const std::string& name, Handler handler, bool mutating) {
  commands_[name] = Command{std::move(handler), {}, mutating};
}

void ControlServer::registerTextCommand(const std::string& name, TextHandler handler, bool mutating) {
  commands_[name] = Command{{}, std::move(handler), mutating};
}

bool ControlServer::mayMutate(const PeerCred& peer) const {
  if (peer.uid == 0) return true;
  if (!options_.group) return false;
  const gid_t group = *options_.group;
  if (peer.gid == group) return true;
  if (peer.groups) return std::find(peer.groups->begin(), peer.groups->end(), group) != peer.groups->end();
  return procHasGroup(peer, group);
}

nlohmann::json ControlServer::handle(const std::string& line, const PeerCred& peer) {
  return nlohmann::json::parse(reply(line, peer));
}

std::string ControlServer::reply(const std::string& line, const PeerCred& peer) {
  auto failure = [](auto&&... args) { return encodeMessage(errorReply(args...)); };
  nlohmann::json req;
  try {
    req = nlohmann::json::parse(line);
  } catch (const nlohmann::json::parse_error& e) {
    return failure(kErrBadRequest, std::string("malformed JSON: ") + e.what());
  }
  if (!req.is_object()) return failure(kErrBadRequest, "request must be a JSON object");
  const auto version = req.find("version");
  if (version == req.end()) return failure(kErrBadRequest, "field 'version' is required");
  if (!version->is_number_integer() || version->get<int64_t>() != kProtocolVersion) {
    return failure(kErrUnsupportedVersion,
                      "protocol version " + encodeMessage(*version).substr(0, 32) + " is not supported (this daemon speaks " +
                          std::to_string(kProtocolVersion) + ")");
  }
  const auto command = req.find("command");
  if (command == req.end() || !command->is_string()) {
    return failure(kErrBadRequest, "field 'command' (string) is required");
  }
  const std::string name = command->get<std::string>();
  auto it = commands_.find(name);
  if (it == commands_.end()) {
    std::string known;
    for (const auto& [n, c] : commands_) known += (known.empty() ? "" : ", ") + n;
    // Quoted, escaped and cut short: the name is the client's text.
    return failure(kErrUnknownCommand, "unknown command " + encodeMessage(name).substr(0, 80) +
                                              " (known: " + known + ")");
  }
  if (it->second.mutating) {
    if (!mayMutate(peer)) {
      spdlog::warn("control: {} refused for uid={} pid={} (needs root or the socket group)", name,
                   peer.uid, peer.pid);
      return failure(kErrPermissionDenied,
                        "'" + name + "' changes the daemon's state: needs root or the socket group");
    }
    spdlog::info("control: {} by uid={} pid={}", name, peer.uid, peer.pid);
  }
  try {
    if (it->second.text) {
      // The same message successReply() and encodeMessage() make, with the
      // result written by the handler in place.
      std::string out = "{\"ok\":true,\"result\":";
      it->second.text(Request{name, std::move(req), peer}, out);
      out += ",\"version\":" + std::to_string(kProtocolVersion) + "}";
      return out;
    }
    return encodeMessage(successReply(it->second.handler(Request{name, std::move(req), peer})));
  } catch (const ControlError& e) {
    if (it->second.mutating) spdlog::info("control: {} failed: {}", name, e.what());
    return failure(e);
  } catch (const std::exception& e) {
    spdlog::error("control: {} failed: {}", name, e.what());
    return failure(kErrInternal, e.what());
  } catch (...) {
    spdlog::error("control: {} failed with a non-standard exception", name);
    return failure(kErrInternal, "'" + name + "' failed");
  }
}

Result<void> ControlServer::start() {
  namespace fs = std::filesystem;
  const std::string& path = options_.path;
  if (started_) return Error{"start control server", path, EALREADY, {}};
  sockaddr_un addr{};
  if (path.empty() || path.size() >= sizeof(addr.sun_path)) {
    return Error{"bind control socket", path, path.empty() ? EINVAL : ENAMETOOLONG, {}};
  }
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);

  std::error_code ec;
  if (fs::path parent = fs::path(path).parent_path(); !parent.empty()) fs::create_directories(parent, ec);
  struct stat st {};
  if (lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) {
      return Error{"bind control socket", path, EEXIST, "exists and is not a socket"};
    }
    // Stale only if nobody answers: never steal a running daemon's socket.
    UniqueFd probe(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (probe && connect(probe.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0) {
      return Error{"bind control socket", path, EADDRINUSE, "another microsegd is listening there"};
    }
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) return sysError("remove stale control socket", path);
  }

  UniqueFd fd(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd) return sysError("create socket", path);
  const mode_t mode = options_.group ? 0660 : 0600;
  // bind() creates the file with the socket inode's mode (minus umask), so
  // this closes the window before chmod() without touching the process-wide
  // umask. chmod() below is what guarantees the final mode.
  (void)fchmod(fd.get(), mode);
  if (bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    return sysError("bind control socket", path);
  }
  auto fail = [&](const char* op) {
    Error e = sysError(op, path);
    ::unlink(path.c_str());
    return e;
  };
  if (options_.group && chown(path.c_str(), static_cast<uid_t>(-1), *options_.group) != 0) {
    return fail("chown control socket");
  }
  if (chmod(path.c_str(), mode) != 0) return fail("chmod control socket");
  if (stat(path.c_str(), &st) != 0) return fail("stat control socket");
  socketDev_ = st.st_dev;
  socketIno_ = st.st_ino;
  if (listen(fd.get(), kListenBacklog) != 0) return fail("listen on control socket");
  stopFd_.reset(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!stopFd_) return fail("create eventfd for control socket");
  listenFd_ = std::move(fd);
  thread_ = std::thread([this] { run(); });
  started_ = true;
  return {};
}

void ControlServer::stop() {
  if (!started_) return;
  uint64_t one = 1;
  (void)!write(stopFd_.get(), &one, sizeof(one));
  if (thread_.joinable()) thread_.join();
  listenFd_.reset();
  stopFd_.reset();
  struct stat st {};
  if (lstat(options_.path.c_str(), &st) == 0 && st.st_dev == socketDev_ && st.st_ino == socketIno_) {
    ::unlink(options_.path.c_str());
  }
  started_ = false;
}

void ControlServer::acceptClients(std::vector<Client>& clients, int64_t now) {
  // Bounded per round so a connect flood cannot starve clients already in.
  for (int k = 0; k < 16; k++) {
    int cfd = accept4(listenFd_.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (cfd < 0) {
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
        spdlog::warn("control: accept failed: {}; pausing", std::strerror(errno));
        acceptPausedUntilMs_ = now + kAcceptPauseMs;
      }
      return;
    }
    Client c;
    c.fd.reset(cfd);
    c.lastActivityMs = c.acceptedMs = now;
    ucred cred{};
    socklen_t len = sizeof(cred);
    if (getsockopt(cfd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) continue;  // closes it
    c.peer = PeerCred{cred.pid, cred.uid, cred.gid, std::nullopt};
    if (options_.group) c.peer.groups = peerGroups(cfd);
    if (clients.size() >= options_.maxClients) {
      spdlog::warn("control: {} clients already connected; refusing uid={} pid={}", clients.size(),
                   cred.uid, cred.pid);
      // A fresh socket's send buffer is empty: the small reply fits at once.
      std::string out = encodeMessage(errorReply(kErrInternal, "too many concurrent control clients; retry")) + "\n";
      size_t off = 0;
      (void)flush(cfd, out, off);
      continue;
    }
    clients.push_back(std::move(c));
  }
}

void ControlServer::serviceClient(Client& c, short revents, int64_t now) {
  if (!c.replying && (revents & (POLLIN | POLLHUP | POLLERR))) {
    char buf[16384];
    for (;;) {
      ssize_t r = recv(c.fd.get(), buf, sizeof(buf), MSG_DONTWAIT);
      if (r > 0) {
        c.lastActivityMs = now;
        const size_t scanFrom = c.in.size();
        c.in.append(buf, static_cast<size_t>(r));
        const size_t nl = c.in.find('\n', scanFrom);
        if (nl != std::string::npos && nl <= kMaxMessageBytes) {
          c.in.resize(nl);
          c.out = reply(c.in, c.peer);
          c.out += '\n';
          c.replying = true;
          break;
        }
        if (c.in.size() > kMaxMessageBytes) {
          spdlog::debug("control: oversized request from uid={} pid={}", c.peer.uid, c.peer.pid);
          c.out = encodeMessage(errorReply(kErrBadRequest, "message exceeds " +
                                                               std::to_string(kMaxMessageBytes) + " bytes")) +
                  "\n";
          c.replying = true;
          break;
        }
        continue;
      }
      if (r == 0) {
        // EOF without a newline: what came is the whole request.
        if (c.in.empty()) {
          c.done = true;
        } else {
          c.out = reply(c.in, c.peer);
          c.out += '\n';
          c.replying = true;
        }
      } else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        c.done = true;
      }
      break;
    }
  }
  if (c.replying && !c.done) {
    const size_t before = c.outOff;
    if (!flush(c.fd.get(), c.out, c.outOff)) {
      c.done = true;  // peer went away; nothing more to do
    } else if (c.outOff == c.out.size()) {
      c.done = true;
    } else if (c.outOff != before) {
      c.lastActivityMs = now;
    }
  }
  if (!c.done && (now - c.lastActivityMs > options_.idleTimeoutMs ||
                  now - c.acceptedMs > options_.maxConnectionMs)) {
    spdlog::debug("control: dropping {} client uid={} pid={}", c.replying ? "non-reading" : "idle",
                  c.peer.uid, c.peer.pid);
    c.done = true;
  }
}

void ControlServer::run() {
  std::vector<Client> clients;
  clients.reserve(options_.maxClients);
  std::vector<pollfd> fds;
  for (;;) {
    int64_t now = nowMs();
    int64_t wake = now + kMaxPollMs;
    fds.clear();
    fds.push_back({stopFd_.get(), POLLIN, 0});
    const bool accepting = now >= acceptPausedUntilMs_;
    fds.push_back({listenFd_.get(), static_cast<short>(accepting ? POLLIN : 0), 0});
    if (!accepting) wake = std::min(wake, acceptPausedUntilMs_);
    for (const auto& c : clients) {
      fds.push_back({c.fd.get(), static_cast<short>(c.replying ? POLLOUT : POLLIN), 0});
      wake = std::min({wake, c.lastActivityMs + options_.idleTimeoutMs + 1,
                       c.acceptedMs + options_.maxConnectionMs + 1});
    }
    const int timeout = static_cast<int>(std::clamp<int64_t>(wake - now, 0, kMaxPollMs));
    if (poll(fds.data(), fds.size(), timeout) < 0 && errno != EINTR) {
      // Cannot happen with valid fds; back off rather than spin or die.
      spdlog::error("control: poll failed: {}", std::strerror(errno));
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      continue;
    }
    if (fds[0].revents & POLLIN) return;  // stop(); clients are closed with the vector

    now = nowMs();
    for (size_t i = 0; i < clients.size(); i++) {
      // Nothing a client sends may take the thread (and with it the daemon) down.
      try {
        serviceClient(clients[i], fds[i + 2].revents, now);
      } catch (const std::exception& e) {
        spdlog::error("control: dropping client uid={} pid={}: {}", clients[i].peer.uid, clients[i].peer.pid,
                      e.what());
        clients[i].done = true;
      }
    }
    size_t largest = 0;
    std::erase_if(clients, [&largest](const Client& c) {
      if (c.done) largest = std::max(largest, c.out.size());
      return c.done;
    });
    if (largest > 0 && options_.repliesFreed) options_.repliesFreed(largest);
    if (fds[1].revents & POLLIN) acceptClients(clients, now);
  }
}

}  // namespace microseg::control
