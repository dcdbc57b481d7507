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
#include <optional>
#include <set>
#include <sstream>

namespace microseg::control {

struct ControlServer::Client {
  enum class State { Reading, Handling, Replying, Done };
  uint64_t id = 0;
  UniqueFd fd;
  PeerCred peer;
  State state = State::Reading;
  std::string in;
  std::string out;       // the reply, once there is one; nothing more is read
  size_t outOff = 0;
  int64_t lastActivityMs = 0;  // of the reply's writing
  int64_t acceptedMs = 0;
};

namespace {

constexpr int kListenBacklog = 128;
constexpr int kMaxPollMs = 1000;
constexpr int kAcceptPauseMs = 100;  // after EMFILE/ENFILE, so poll does not spin
constexpr int64_t kRefusalLogEveryMs = 1000;  // a connect flood is one line a second
constexpr size_t kMaxQuotedChars = 80;
constexpr int64_t kLastRepliesMs = 500;  // stop() waits this long at most for replies to go out

// A client's text in a reply: JSON-quoted, escaped, cut short.
std::string clientText(const std::string& s) { return encodeMessage(s).substr(0, kMaxQuotedChars); }

// The request as a document, or the reason it is not one. Stricter than
// nlohmann::json::parse(): a key given twice in one object is an error
// (which one counts would be a guess, and a check that reads the first
// could be bypassed by a handler that reads the last).
std::variant<nlohmann::json, std::string> parseStrict(const std::string& line) {
  if (!text::isUtf8(line)) return std::string("request is not valid UTF-8");
  std::vector<std::set<std::string>> keys;  // per open object (a set: 64 KiB of keys stays cheap)
  std::optional<std::string> duplicate;  // the first key given twice ("" is a key too)
  auto check = [&](int, nlohmann::json::parse_event_t event, nlohmann::json& parsed) {
    using E = nlohmann::json::parse_event_t;
    if (event == E::object_start) {
      keys.emplace_back();
    } else if (event == E::object_end && !keys.empty()) {
      keys.pop_back();
    } else if (event == E::key && !keys.empty()) {
      const std::string& k = parsed.get_ref<const std::string&>();
      if (!keys.back().insert(k).second && !duplicate) duplicate = k;
    }
    return true;
  };
  try {
    nlohmann::json req = nlohmann::json::parse(line, check);
    if (duplicate) return "duplicate key " + clientText(*duplicate) + " in the request";
    return req;
  } catch (const nlohmann::json::parse_error& e) {
    return std::string("malformed JSON: ") + e.what();
  } catch (const nlohmann::json::out_of_range& e) {
    // 406: a number no double can hold ("1e400").
    return std::string("a number is out of range: ") + e.what();
  } catch (const nlohmann::json::exception& e) {
    return std::string("malformed JSON: ") + e.what();
  }
}

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
  auto prepared = prepare(line, peer);
  if (auto* failed = std::get_if<std::string>(&prepared)) return std::move(*failed);
  return execute(std::get<Call>(prepared));
}

ControlServer::Stats ControlServer::stats() const {
  return Stats{refusedFull_.load(), refusedPerUid_.load(), requestTimeouts_.load(), replyTimeouts_.load()};
}

std::variant<ControlServer::Call, std::string> ControlServer::prepare(const std::string& line,
                                                                      const PeerCred& peer) const {
  auto failure = [](auto&&... args) { return encodeMessage(errorReply(args...)); };
  auto parsed = parseStrict(line);
  if (auto* why = std::get_if<std::string>(&parsed)) return failure(kErrBadRequest, *why);
  nlohmann::json& req = std::get<nlohmann::json>(parsed);
  if (!req.is_object()) return failure(kErrBadRequest, "request must be a JSON object");
  const auto version = req.find("version");
  if (version == req.end()) return failure(kErrBadRequest, "field 'version' is required");
  if (!version->is_number_integer() || version->get<int64_t>() != kProtocolVersion) {
    return failure(kErrUnsupportedVersion, "protocol version " + encodeMessage(*version).substr(0, 32) +
                                               " is not supported (this daemon speaks " +
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
    return failure(kErrUnknownCommand, "unknown command " + clientText(name) + " (known: " + known + ")");
  }
  if (it->second.mutating) {
    if (!mayMutate(peer)) {
      spdlog::warn("control: {} refused for uid={} pid={} (needs root or the socket group)", name, peer.uid,
                   peer.pid);
      return failure(kErrPermissionDenied, "'" + name + "' changes the daemon's state: needs root or the socket group");
    }
    spdlog::info("control: {} by uid={} pid={}", name, peer.uid, peer.pid);
  }
  return Call{&it->second, Request{name, std::move(req), peer}};
}

std::string ControlServer::execute(Call& call) const {
  const Command& cmd = *call.command;
  const std::string& name = call.request.command;
  auto failure = [](auto&&... args) { return encodeMessage(errorReply(args...)); };
  try {
    if (cmd.text) {
      // The same message successReply() and encodeMessage() make, with the
      // result written by the handler in place.
      std::string out = "{\"ok\":true,\"result\":";
      cmd.text(call.request, out);
      out += ",\"version\":" + std::to_string(kProtocolVersion) + "}";
      return out;
    }
    return encodeMessage(successReply(cmd.handler(call.request)));
  } catch (const ControlError& e) {
    if (cmd.mutating) spdlog::info("control: {} failed: {}", name, e.what());
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
  doneFd_.reset(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!stopFd_ || !doneFd_) return fail("create eventfd for control socket");
  listenFd_ = std::move(fd);
  readers_ = std::make_unique<WorkerPool>(options_.readWorkers, "ms-ctl-read");
  mutators_ = std::make_unique<WorkerPool>(1, "ms-ctl-mutate");
  thread_ = std::thread([this] { run(); });
  started_ = true;
  return {};
}

void ControlServer::stop() {
  if (!started_) return;
  // Handlers already running finish first (one may be waiting for the
  // daemon's lock), and the I/O thread sends what they answered before it
  // exits: `uninstall` wakes the daemon to shut down while its reply is
  // still on its way to the I/O thread.
  if (readers_) readers_->stop();
  if (mutators_) mutators_->stop();
  uint64_t one = 1;
  (void)!write(stopFd_.get(), &one, sizeof(one));
  if (thread_.joinable()) thread_.join();
  readers_.reset();
  mutators_.reset();
  done_.clear();
  listenFd_.reset();
  stopFd_.reset();
  doneFd_.reset();
  struct stat st {};
  if (lstat(options_.path.c_str(), &st) == 0 && st.st_dev == socketDev_ && st.st_ino == socketIno_) {
    ::unlink(options_.path.c_str());
  }
  started_ = false;
}

void ControlServer::logRefusal(const char* why, const PeerCred& peer, int64_t now) {
  if (now - lastRefusalLogMs_ < kRefusalLogEveryMs) {
    refusalsNotLogged_++;
    return;
  }
  spdlog::warn("control: refusing uid={} pid={}: {}{}", peer.uid, peer.pid, why,
               refusalsNotLogged_ == 0 ? std::string()
                                       : " (and " + std::to_string(refusalsNotLogged_) + " more refused since the last such line)");
  lastRefusalLogMs_ = now;
  refusalsNotLogged_ = 0;
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
    std::string refusal;
    const size_t sameUid = static_cast<size_t>(
        std::count_if(clients.begin(), clients.end(), [&](const Client& o) { return o.peer.uid == cred.uid; }));
    const size_t others = static_cast<size_t>(
        std::count_if(clients.begin(), clients.end(), [](const Client& o) { return o.peer.uid != 0; }));
    // Root's share is kept free of other uids: members of the socket group,
    // however many, cannot lock root out.
    const size_t forOthers = options_.maxClients - std::min(options_.maxClientsPerUid, options_.maxClients / 2);
    if (clients.size() >= options_.maxClients) {
      refusedFull_++;
      refusal = "too many concurrent control clients (" + std::to_string(options_.maxClients) + "); retry";
    } else if (cred.uid != 0 && others >= forOthers) {
      refusedFull_++;
      refusal = "too many concurrent control clients (" + std::to_string(forOthers) +
                " of uids other than root); retry";
    } else if (sameUid >= options_.maxClientsPerUid) {
      refusedPerUid_++;
      refusal = "too many concurrent control connections of uid " + std::to_string(cred.uid) + " (limit " +
                std::to_string(options_.maxClientsPerUid) + "); retry";
    }
    if (!refusal.empty()) {
      logRefusal(refusal.c_str(), c.peer, now);
      // A fresh socket's send buffer is empty: the small reply fits at once.
      std::string out = encodeMessage(errorReply(kErrBusy, refusal)) + "\n";
      size_t off = 0;
      (void)flush(cfd, out, off);
      continue;
    }
    if (options_.group) c.peer.groups = peerGroups(cfd);
    c.id = nextClientId_++;
    clients.push_back(std::move(c));
  }
}

void ControlServer::requestComplete(Client& c, std::string line) {
  c.in.clear();
  c.in.shrink_to_fit();
  c.state = Client::State::Handling;
  // Even the protocol's checks run on a worker: parsing a 64 KiB request
  // takes ~10 ms (measured), which the I/O thread owes other clients.
  readers_->post(c.peer.uid, [this, id = c.id, peer = c.peer, line = std::move(line)] {
    auto prepared = prepare(line, peer);
    if (auto* failed = std::get_if<std::string>(&prepared)) {
      finish(id, std::move(*failed));
      return;
    }
    auto call = std::make_shared<Call>(std::move(std::get<Call>(prepared)));
    if (call->command->mutating) {
      mutators_->post(peer.uid, [this, id, call] { finish(id, execute(*call)); });
    } else {
      finish(id, execute(*call));
    }
  });
}

void ControlServer::finish(uint64_t clientId, std::string reply) {
  reply += '\n';
  {
    std::lock_guard<std::mutex> lock(doneMu_);
    done_.emplace_back(clientId, std::move(reply));
  }
  const uint64_t one = 1;
  (void)!write(doneFd_.get(), &one, sizeof(one));
}

void ControlServer::serviceClient(Client& c, short revents, int64_t now) {
  if (c.state == Client::State::Reading && (revents & (POLLIN | POLLHUP | POLLERR))) {
    char buf[16384];
    for (;;) {
      ssize_t r = recv(c.fd.get(), buf, sizeof(buf), MSG_DONTWAIT);
      if (r > 0) {
        const size_t scanFrom = c.in.size();
        c.in.append(buf, static_cast<size_t>(r));
        const size_t nl = c.in.find('\n', scanFrom);
        if (nl != std::string::npos && nl <= kMaxMessageBytes) {
          requestComplete(c, c.in.substr(0, nl));
          break;
        }
        if (c.in.size() > kMaxMessageBytes) {
          spdlog::debug("control: oversized request from uid={} pid={}", c.peer.uid, c.peer.pid);
          c.out = encodeMessage(errorReply(kErrBadRequest, "message exceeds " + std::to_string(kMaxMessageBytes) +
                                                               " bytes")) +
                  "\n";
          c.state = Client::State::Replying;
          c.lastActivityMs = now;
          break;
        }
        continue;
      }
      if (r == 0) {
        // EOF without a newline: what came is the whole request.
        if (c.in.empty()) {
          c.state = Client::State::Done;
        } else {
          requestComplete(c, std::string(c.in));
        }
      } else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        c.state = Client::State::Done;
      }
      break;
    }
  }
  if (c.state == Client::State::Replying) {
    const size_t before = c.outOff;
    if (!flush(c.fd.get(), c.out, c.outOff) || c.outOff == c.out.size()) {
      c.state = Client::State::Done;  // all sent, or the peer went away
    } else if (c.outOff != before) {
      c.lastActivityMs = now;
    }
  }
  if (c.state == Client::State::Reading && now - c.acceptedMs > options_.requestTimeoutMs) {
    // Counted from the connect, not from the last byte: a client sending a
    // byte every few seconds keeps no slot.
    spdlog::debug("control: no whole request from uid={} pid={} within {} ms; dropped", c.peer.uid, c.peer.pid,
                  options_.requestTimeoutMs);
    requestTimeouts_++;
    c.state = Client::State::Done;
  } else if (c.state != Client::State::Done &&
             ((c.state == Client::State::Replying && now - c.lastActivityMs > options_.idleTimeoutMs) ||
              now - c.acceptedMs > options_.maxConnectionMs)) {
    spdlog::debug("control: dropping {} client uid={} pid={}",
                  c.state == Client::State::Replying ? "non-reading" : "long-running", c.peer.uid, c.peer.pid);
    replyTimeouts_++;
    c.state = Client::State::Done;
  }
}

void ControlServer::takeFinished(std::vector<Client>& clients, int64_t now) {
  uint64_t n;
  (void)!read(doneFd_.get(), &n, sizeof(n));
  std::vector<std::pair<uint64_t, std::string>> finished;
  {
    std::lock_guard<std::mutex> lock(doneMu_);
    finished.swap(done_);
  }
  size_t orphaned = 0;
  for (auto& [id, out] : finished) {
    auto it = std::find_if(clients.begin(), clients.end(), [id = id](const Client& c) { return c.id == id; });
    if (it == clients.end() || it->state != Client::State::Handling) {
      orphaned = std::max(orphaned, out.size());  // its client was dropped meanwhile
      continue;
    }
    it->out = std::move(out);
    it->state = Client::State::Replying;
    it->lastActivityMs = now;
    serviceClient(*it, 0, now);  // most replies fit in the socket buffer at once
  }
  finished.clear();
  if (orphaned > 0 && options_.repliesFreed) options_.repliesFreed(orphaned);
}

void ControlServer::sendLastReplies(std::vector<Client>& clients) {
  int64_t now = nowMs();
  takeFinished(clients, now);
  const int64_t until = now + kLastRepliesMs;
  std::vector<pollfd> fds;
  for (;;) {
    fds.clear();
    for (const auto& c : clients) {
      if (c.state == Client::State::Replying) fds.push_back({c.fd.get(), POLLOUT, 0});
    }
    now = nowMs();
    if (fds.empty() || now >= until) return;
    if (poll(fds.data(), fds.size(), static_cast<int>(until - now)) <= 0) return;
    for (auto& c : clients) {
      if (c.state == Client::State::Replying) serviceClient(c, POLLOUT, nowMs());
    }
  }
}

void ControlServer::run() {
  std::vector<Client> clients;
  clients.reserve(options_.maxClients);
  std::vector<pollfd> fds;
  constexpr size_t kFixed = 3;  // stop, done, listen
  for (;;) {
    int64_t now = nowMs();
    int64_t wake = now + kMaxPollMs;
    fds.clear();
    fds.push_back({stopFd_.get(), POLLIN, 0});
    fds.push_back({doneFd_.get(), POLLIN, 0});
    const bool accepting = now >= acceptPausedUntilMs_;
    fds.push_back({listenFd_.get(), static_cast<short>(accepting ? POLLIN : 0), 0});
    if (!accepting) wake = std::min(wake, acceptPausedUntilMs_);
    for (const auto& c : clients) {
      short events = 0;
      if (c.state == Client::State::Reading) {
        events = POLLIN;
        wake = std::min(wake, c.acceptedMs + options_.requestTimeoutMs + 1);
      } else if (c.state == Client::State::Replying) {
        events = POLLOUT;
        wake = std::min(wake, c.lastActivityMs + options_.idleTimeoutMs + 1);
      }
      fds.push_back({c.fd.get(), events, 0});
      wake = std::min(wake, c.acceptedMs + options_.maxConnectionMs + 1);
    }
    const int timeout = static_cast<int>(std::clamp<int64_t>(wake - now, 0, kMaxPollMs));
    if (poll(fds.data(), fds.size(), timeout) < 0 && errno != EINTR) {
      // Cannot happen with valid fds; back off rather than spin or die.
      spdlog::error("control: poll failed: {}", std::strerror(errno));
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      continue;
    }
    if (fds[0].revents & POLLIN) {  // stop(); clients are closed with the vector
      sendLastReplies(clients);
      return;
    }

    now = nowMs();
    if (fds[1].revents & POLLIN) takeFinished(clients, now);
    for (size_t i = 0; i < clients.size(); i++) {
      // Nothing a client sends may take the thread (and with it the daemon) down.
      try {
        serviceClient(clients[i], fds[i + kFixed].revents, now);
      } catch (const std::exception& e) {
        spdlog::error("control: dropping client uid={} pid={}: {}", clients[i].peer.uid, clients[i].peer.pid,
                      e.what());
        clients[i].state = Client::State::Done;
      }
    }
    size_t largest = 0;
    std::erase_if(clients, [&largest](const Client& c) {
      if (c.state == Client::State::Done) largest = std::max(largest, c.out.size());
      return c.state == Client::State::Done;
    });
    if (largest > 0 && options_.repliesFreed) options_.repliesFreed(largest);
    if (fds[2].revents & POLLIN) acceptClients(clients, now);
  }
}

}  // namespace microseg::control
