// Control-socket server: a thread with one poll() loop over non-blocking
// clients, so a slow, silent or hostile client never blocks the daemon or
// other clients. Every request carries the caller's SO_PEERCRED.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <thread>

#include <nlohmann/json.hpp>

#include "common/fd.h"
#include "common/result.h"
#include "control/protocol.h"

namespace microseg::control {

struct PeerCred {
  pid_t pid = 0;
  uid_t uid = 0;
  gid_t gid = 0;
};

struct Request {
  std::string command;
  nlohmann::json body;  // the whole request object
  PeerCred peer;
};

// Returns the `result` object; throws ControlError for a failure reply.
using Handler = std::function<nlohmann::json(const Request&)>;

class ControlServer {
 public:
  struct Options {
    std::string path;
    std::optional<gid_t> group;  // socket 0660 + this group may mutate; else 0600
    int idleTimeoutMs = 5000;
    size_t maxClients = 64;
  };

  explicit ControlServer(Options options);
  ~ControlServer();
  ControlServer(const ControlServer&) = delete;
  ControlServer& operator=(const ControlServer&) = delete;

  // Mutating commands need uid 0 or membership of Options::group.
  void registerCommand(const std::string& name, Handler handler, bool mutating);
  Result<void> start();
  void stop();

  // Pure request handling (no I/O), exposed for tests.
  nlohmann::json handle(const std::string& line, const PeerCred& peer);

 private:
  struct Command {
    Handler handler;
    bool mutating = false;
  };
  struct Client {
    UniqueFd fd;
    PeerCred peer;
    std::string buf;
    int64_t lastActivityMs = 0;
  };
  void run();
  bool mayMutate(const PeerCred& peer) const;
  void reply(Client& c, const nlohmann::json& msg);

  Options options_;
  std::map<std::string, Command> commands_;
  UniqueFd listenFd_;
  UniqueFd stopFd_;  // eventfd
  std::thread thread_;
  bool started_ = false;
};

}  // namespace microseg::control
