// Control-socket server. One I/O thread polls the listening socket, the
// clients (non-blocking) and two eventfds (stop, finished replies); requests
// are parsed and checked on worker pools and their handlers run there too:
// read-only commands on a few workers,
// mutations on one of their own, so a reload in progress does not hold up
// `status` (the daemon's own locking decides what waits for what) and no
// handler ever holds up the I/O of other clients; the uids with requests
// waiting take turns for the workers. What a client can take:
//  - a whole request must arrive within requestTimeoutMs of the connect
//    (a byte every few seconds does not keep a slot);
//  - at most maxClientsPerUid connections per uid, root included, and
//    maxClients in all, of which maxClientsPerUid (at most half) are kept for root (other
//    uids together hold at most the rest, so no number of socket-group
//    members can lock root out); beyond any of these, the newcomer gets a
//    "busy" error at once and is closed;
//  - a reply must be read with progress at least every idleTimeoutMs, and
//    no connection lives longer than maxConnectionMs.
// Every request carries the caller's credentials from SO_PEERCRED, taken at
// connect time.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/fd.h"
#include "common/result.h"
#include "control/protocol.h"
#include "control/worker_pool.h"

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
    int requestTimeoutMs = 2000;     // from connect to the request's last byte
    int idleTimeoutMs = 5000;        // a client not reading its reply this long is dropped
    int maxConnectionMs = 30000;     // whatever it does, no connection lives longer
    size_t maxClients = 64;          // beyond: accepted, answered "busy", closed; root's share kept (see above)
    size_t maxClientsPerUid = 8;     // the same, per uid (root included)
    size_t readWorkers = 3;          // threads for read-only commands (mutations have one)
    // Called on the I/O thread once replies are done with and freed, with
    // the size of the largest (the daemon gives memory back after big ones).
    std::function<void(size_t replyBytes)> repliesFreed;
  };

  explicit ControlServer(Options options);
  ~ControlServer();  // stop()
  ControlServer(const ControlServer&) = delete;
  ControlServer& operator=(const ControlServer&) = delete;

  // Call before start(). Handlers run on worker threads, several at a time
  // (read-only ones alongside each other and alongside one mutation), so a
  // handler must lock whatever it shares with the rest of the daemon.
  // Mutating commands need uid 0 or membership of Options::group, and are
  // logged with the caller's uid and pid.
  void registerCommand(const std::string& name, Handler handler, bool mutating);
  void registerTextCommand(const std::string& name, TextHandler handler, bool mutating);

  // Removes a stale socket file (only a socket nobody listens on), binds,
  // sets owner/mode, starts the threads. Fails if another server is listening
  // on the path or the path exists and is not a socket.
  Result<void> start();
  // Lets running handlers finish and their replies go out (up to 0.5 s),
  // joins the threads and removes the socket file (if it is still ours).
  // Idempotent.
  void stop();

  // One request line -> reply message (without its "\n"), no I/O, the
  // handler run on the calling thread. The socket path does the same in two
  // steps; handle() parses the reply back, so tests can exercise the
  // protocol with made-up peers.
  std::string reply(const std::string& line, const PeerCred& peer);
  nlohmann::json handle(const std::string& line, const PeerCred& peer);

  // Connections turned away or cut since construction (fail closed, and say so).
  struct Stats {
    uint64_t refusedFull = 0;    // maxClients reached
    uint64_t refusedPerUid = 0;  // maxClientsPerUid reached
    uint64_t requestTimeouts = 0;  // no whole request within requestTimeoutMs
    uint64_t replyTimeouts = 0;    // reply not read in time / connection too long
  };
  Stats stats() const;

 private:
  struct Command {
    Handler handler;   // one of the two
    TextHandler text;
    bool mutating = false;
  };
  struct Client;
  // A request that passed the protocol's checks, ready for its handler.
  struct Call {
    const Command* command = nullptr;
    Request request;
  };

  // The protocol's checks (JSON, version, command, permission): a Call, or
  // the failure reply.
  std::variant<Call, std::string> prepare(const std::string& line, const PeerCred& peer) const;
  std::string execute(Call& call) const;
  void run();
  bool mayMutate(const PeerCred& peer) const;
  void acceptClients(std::vector<Client>& clients, int64_t now);
  void serviceClient(Client& c, short revents, int64_t now);
  void requestComplete(Client& c, std::string line);
  void finish(uint64_t clientId, std::string reply);  // on a worker: hands the reply to the I/O thread
  void takeFinished(std::vector<Client>& clients, int64_t now);
  void sendLastReplies(std::vector<Client>& clients);
  void logRefusal(const char* why, const PeerCred& peer, int64_t now);

  Options options_;
  std::map<std::string, Command> commands_;
  UniqueFd listenFd_;
  UniqueFd stopFd_;  // eventfd
  UniqueFd doneFd_;  // eventfd: a worker finished a reply
  std::unique_ptr<WorkerPool> readers_, mutators_;
  std::mutex doneMu_;
  std::vector<std::pair<uint64_t, std::string>> done_;  // client id, reply
  uint64_t nextClientId_ = 1;
  std::atomic<uint64_t> refusedFull_{0}, refusedPerUid_{0}, requestTimeouts_{0}, replyTimeouts_{0};
  int64_t lastRefusalLogMs_ = 0;
  uint64_t refusalsNotLogged_ = 0;
  std::thread thread_;
  dev_t socketDev_ = 0;  // identity of the file we bound, so stop() never
  ino_t socketIno_ = 0;  // unlinks a successor's socket
  int64_t acceptPausedUntilMs_ = 0;
  bool started_ = false;
};

}  // namespace microseg::control
