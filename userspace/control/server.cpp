#include "control/server.h"

#include <fcntl.h>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <list>
#include <sstream>

namespace microseg::control {
namespace {

int64_t nowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

bool inSupplementaryGroups(pid_t pid, gid_t group) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("Groups:", 0) != 0) continue;
    std::istringstream ss(line.substr(7));
    unsigned g;
    while (ss >> g) {
      if (g == group) return true;
    }
  }
  return false;
}

}  // namespace

ControlServer::ControlServer(Options options) : options_(std::move(options)) {}

ControlServer::~ControlServer() { stop(); }

void ControlServer::registerCommand(const std::string& name, Handler handler, bool mutating) {
  commands_[name] = Command{std::move(handler), mutating};
}

bool ControlServer::mayMutate(const PeerCred& peer) const {
  if (peer.uid == 0) return true;
  if (!options_.group) return false;
  return peer.gid == *options_.group || inSupplementaryGroups(peer.pid, *options_.group);
}

nlohmann::json ControlServer::handle(const std::string& line, const PeerCred& peer) {
  nlohmann::json req;
  try {
    req = nlohmann::json::parse(line);
  } catch (const nlohmann::json::parse_error& e) {
    return errorReply(kErrBadRequest, std::string("malformed JSON: ") + e.what());
  }
  if (!req.is_object()) return errorReply(kErrBadRequest, "request must be a JSON object");
  if (!req.contains("version")) return errorReply(kErrBadRequest, "field 'version' is required");
  if (!req["version"].is_number_integer() || req["version"].get<int64_t>() != kProtocolVersion) {
    return errorReply(kErrUnsupportedVersion, "protocol version " + req["version"].dump() +
                                                  " is not supported (this daemon speaks 1)");
  }
  if (!req.contains("command") || !req["command"].is_string()) {
    return errorReply(kErrBadRequest, "field 'command' (string) is required");
  }
  const std::string name = req["command"].get<std::string>();
  auto it = commands_.find(name);
  if (it == commands_.end()) {
    std::string known;
    for (const auto& [n, c] : commands_) known += (known.empty() ? "" : ", ") + n;
    return errorReply(kErrUnknownCommand, "unknown command '" + name + "' (known: " + known + ")");
  }
  if (it->second.mutating && !mayMutate(peer)) {
    spdlog::warn("control: {} refused for uid={} pid={} (needs root or the socket group)", name,
                 peer.uid, peer.pid);
    return errorReply(kErrPermissionDenied,
                      "'" + name + "' changes the daemon's state: needs root or the socket group");
  }
  if (it->second.mutating) {
    spdlog::info("control: {} by uid={} pid={}", name, peer.uid, peer.pid);
  }
  try {
    return successReply(it->second.handler(Request{name, req, peer}));
  } catch (const ControlError& e) {
    return errorReply(e.code, e.what(), e.details);
  } catch (const std::exception& e) {
    spdlog::error("control: {} failed: {}", name, e.what());
    return errorReply(kErrInternal, e.what());
  }
}

Result<void> ControlServer::start() {
  namespace fs = std::filesystem;
  const std::string& path = options_.path;
  sockaddr_un addr{};
  if (path.size() >= sizeof(addr.sun_path)) {
    return Error{"bind control socket", path, ENAMETOOLONG, {}};
  }
  std::error_code ec;
  fs::create_directories(fs::path(path).parent_path(), ec);
  struct stat st {};
  if (lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) {
      return Error{"bind control socket", path, EEXIST, "exists and is not a socket"};
    }
    ::unlink(path.c_str());  // stale socket from an earlier run
  }
  UniqueFd fd(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd) return sysError("create socket", path);
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  // Create it with no permissions for others from the first instant.
  mode_t old = umask(0177);
  int rc = bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  umask(old);
  if (rc != 0) return sysError("bind control socket", path);
  if (options_.group) {
    if (chown(path.c_str(), 0, *options_.group) != 0) return sysError("chown control socket", path);
    if (chmod(path.c_str(), 0660) != 0) return sysError("chmod control socket", path);
  } else if (chmod(path.c_str(), 0600) != 0) {
    return sysError("chmod control socket", path);
  }
  if (listen(fd.get(), 64) != 0) return sysError("listen on control socket", path);
  listenFd_ = std::move(fd);
  stopFd_.reset(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!stopFd_) return sysError("create eventfd", "control");
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
  ::unlink(options_.path.c_str());
  started_ = false;
}

void ControlServer::reply(Client& c, const nlohmann::json& msg) {
  std::string out = msg.dump() + "\n";
  // Replies are small; give a client that does not read 1 s in total.
  const int64_t deadline = nowMs() + 1000;
  size_t off = 0;
  while (off < out.size()) {
    ssize_t n = send(c.fd.get(), out.data() + off, out.size() - off, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      off += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
      const int64_t left = deadline - nowMs();
      if (left <= 0) break;
      pollfd p{c.fd.get(), POLLOUT, 0};
      poll(&p, 1, static_cast<int>(left));
      continue;
    }
    break;
  }
}

void ControlServer::run() {
  std::list<Client> clients;
  for (;;) {
    std::vector<pollfd> fds;
    fds.push_back({stopFd_.get(), POLLIN, 0});
    fds.push_back({listenFd_.get(), POLLIN, 0});
    for (auto& c : clients) fds.push_back({c.fd.get(), POLLIN, 0});
    int n = poll(fds.data(), fds.size(), 500);
    if (n < 0 && errno != EINTR) {
      spdlog::error("control: poll failed: {}", std::strerror(errno));
      return;
    }
    if (fds[0].revents & POLLIN) return;

    const int64_t now = nowMs();
    size_t i = 2;
    for (auto it = clients.begin(); it != clients.end(); i++) {
      Client& c = *it;
      bool done = false;
      if (fds[i].revents & (POLLIN | POLLHUP | POLLERR)) {
        char buf[16384];
        for (;;) {
          ssize_t r = recv(c.fd.get(), buf, sizeof(buf), MSG_DONTWAIT);
          if (r > 0) {
            c.lastActivityMs = now;
            c.buf.append(buf, static_cast<size_t>(r));
            auto nl = c.buf.find('\n');
            if (nl != std::string::npos) {
              reply(c, handle(c.buf.substr(0, nl), c.peer));
              done = true;
              break;
            }
            if (c.buf.size() > kMaxMessageBytes) {
              reply(c, errorReply(kErrBadRequest, "message exceeds " +
                                                      std::to_string(kMaxMessageBytes) + " bytes"));
              done = true;
              break;
            }
            continue;
          }
          if (r == 0) {
            // EOF without newline: treat what we have as the request.
            if (!c.buf.empty()) reply(c, handle(c.buf, c.peer));
            done = true;
          } else if (errno != EAGAIN && errno != EINTR) {
            done = true;
          }
          break;
        }
      }
      if (!done && now - c.lastActivityMs > options_.idleTimeoutMs) done = true;
      it = done ? clients.erase(it) : std::next(it);
    }

    if (fds[1].revents & POLLIN) {
      for (int k = 0; k < 16; k++) {
        int cfd = accept4(listenFd_.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (cfd < 0) break;
        Client c;
        c.fd.reset(cfd);
        c.lastActivityMs = now;
        ucred cred{};
        socklen_t len = sizeof(cred);
        if (getsockopt(cfd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) continue;
        c.peer = PeerCred{cred.pid, cred.uid, cred.gid};
        if (clients.size() >= options_.maxClients) {
          reply(c, errorReply(kErrInternal, "too many concurrent clients; retry"));
          continue;
        }
        clients.push_back(std::move(c));
      }
    }
  }
}

}  // namespace microseg::control
