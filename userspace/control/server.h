// Control-socket server: its own thread with one poll() loop over a listening
// socket, non-blocking clients and an eventfd for stop(), so a slow, silent or
// hostile client never blocks the daemon or other clients. Every request
// carries the caller's credentials from SO_PEERCRED, taken at connect time.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/fd.h"
#include "common/result.h"
#include "control/protocol.h"

namespace microseg::control {

struct PeerCred {
  pid_t pid = 0;
  uid_t uid = 0;
  gid_t gid = 0;
  // Supplementary groups at connect time (SO_PEERGROUPS). nullopt when not
  // asked for (no socket group configured) or the kernel could not tell; the
  // server then falls back to /proc/<pid>/status.
  std::optional<std::vector<gid_t>> groups;
};

struct Request {
  std::string command;
  nlohmann::json body;  // the whole request object, "version" and "command" included
  PeerCred peer;
};

// Returns the `result` object of a success reply; throws ControlError for a
// failure reply (any other exception becomes code "internal").
using Handler = std::function<nlohmann::json(const Request&)>;
// For a result too big to hold as a JSON document (a row per rule: at 100k
// rules the document took 250 MB and seconds): appends the result's JSON
// text to `out` itself (appendJsonString() for strings). Errors as Handler.
using TextHandler = std::function<void(const Request&, std::string& out)>;

class ControlServer {
 public:
  struct Options {
    std::string path;
    // Unset: socket mode 0600, only root may connect. Set: mode 0660 and this
    // group; its members (primary or supplementary) may also mutate.
    std::optional<gid_t> group;
    int idleTimeoutMs = 5000;        // a client silent (or not reading) this long is dropped
    int maxConnectionMs = 30000;     // whatever it does, no connection lives longer
    size_t maxClients = 64;          // beyond: accepted, answered with an error, closed
    // Called on the server thread once replies are done with and freed, with
    // the size of the largest (the daemon gives memory back after big ones).
    std::function<void(size_t replyBytes)> repliesFreed;
  };

  explicit ControlServer(Options options);
  ~ControlServer();  // stop()
  ControlServer(const ControlServer&) = delete;
  ControlServer& operator=(const ControlServer&) = delete;

  // Call before start(). Handlers run on the server thread, one at a time, so
  // a handler must lock whatever it shares with the rest of the daemon.
  // Mutating commands need uid 0 or membership of Options::group, and are
  // logged with the caller's uid and pid.
  void registerCommand(const std::string& name, Handler handler, bool mutating);
  void registerTextCommand(const std::string& name, TextHandler handler, bool mutating);

  // Removes a stale socket file (only a socket nobody listens on), binds,
  // sets owner/mode, starts the thread. Fails if another server is listening
  // on the path or the path exists and is not a socket.
  Result<void> start();
  // Joins the thread and removes the socket file (if it is still ours).
  // Idempotent.
  void stop();

  // One request line -> reply message (without its "\n"), no I/O. Used by
  // the poll loop; handle() parses it back, so tests can exercise the
  // protocol with made-up peers.
  std::string reply(const std::string& line, const PeerCred& peer);
  nlohmann::json handle(const std::string& line, const PeerCred& peer);

 private:
  struct Command {
    Handler handler;   // one of the two
    TextHandler text;
    bool mutating = false;
  };
  struct Client;

  void run();
  bool mayMutate(const PeerCred& peer) const;
  void acceptClients(std::vector<Client>& clients, int64_t now);
  void serviceClient(Client& c, short revents, int64_t now);

  Options options_;
  std::map<std::string, Command> commands_;
  UniqueFd listenFd_;
  UniqueFd stopFd_;  // eventfd
  std::thread thread_;
  dev_t socketDev_ = 0;  // identity of the file we bound, so stop() never
  ino_t socketIno_ = 0;  // unlinks a successor's socket
  int64_t acceptPausedUntilMs_ = 0;
  bool started_ = false;
};

}  // namespace microseg::control
