// Harness for end-to-end tests: throwaway cgroup trees, the real microsegd,
// processes placed in cgroups, real sockets. Everything a test creates is
// removed by RAII, also when an assertion fails.
#pragma once

#include <sys/socket.h>
#include <sys/types.h>

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace microseg::e2e {

// Where cgroup2 is mounted (from /proc/mounts; hybrid layouts put it at
// /sys/fs/cgroup/unified, so it is never assumed). Empty if none.
std::string cgroup2Mount();

// Mounts bpffs at /sys/fs/bpf unless one is mounted there; false on failure.
bool ensureBpffs();

// How many programs are attached to the cgroup `path` at the hook `type`
// (an enum bpf_attach_type; BPF_PROG_QUERY), -1 if it cannot be asked.
int attachedPrograms(const std::string& path, int type);

// Installs the SIGINT/SIGTERM/SIGHUP/SIGQUIT/SIGABRT path that kills the
// processes the tests forked, detaches the daemons' pinned state and removes
// the test cgroups and temp dirs before the test binary dies. Called by main().
void installCleanupOnSignal();

// For harness extensions (etcd_harness.h): a server process and a temp dir
// of the test's own, which the signal path kills (SIGKILL, reaped) and
// removes too. Untrack once removed normally.
void trackServer(pid_t pid);
void untrackServer(pid_t pid);
void trackTempDir(const std::string& path);
void untrackTempDir(const std::string& path);

// Sets the client bit of net.ipv4.tcp_fastopen for its lifetime (restored on
// destruction, also from the signal path).
class TcpFastOpenClient {
 public:
  TcpFastOpenClient();
  ~TcpFastOpenClient();
  TcpFastOpenClient(const TcpFastOpenClient&) = delete;
  TcpFastOpenClient& operator=(const TcpFastOpenClient&) = delete;
  bool ok() const { return ok_; }

 private:
  int original_ = -1;
  bool ok_ = false;
};

// <cgroup2>/microseg-test-<pid>-<n> with children, removed on destruction.
// The destructor kills (SIGKILL) the worker processes the test forked that are
// still alive (tracked by pid, never "whatever is in the cgroup"), reaps them
// and removes the directories deepest first.
class CgroupTree {
 public:
  CgroupTree();
  ~CgroupTree();
  CgroupTree(const CgroupTree&) = delete;
  CgroupTree& operator=(const CgroupTree&) = delete;
  const std::string& root() const { return root_; }
  std::string path(const std::string& rel) const { return rel.empty() ? root_ : root_ + "/" + rel; }
  std::string create(const std::string& rel);  // mkdir -p, returns the absolute path

 private:
  std::string root_;
};

// A network namespace of the test's own (`ip netns add microseg-test-<pid>-<n>`),
// with loopback up; deleted on destruction and from the signal path, and
// with it every link and address in it.
class Netns {
 public:
  Netns();
  ~Netns();
  Netns(const Netns&) = delete;
  Netns& operator=(const Netns&) = delete;
  bool ok() const { return ok_; }
  const std::string& name() const { return name_; }
  std::string path() const { return "/run/netns/" + name_; }
  // `ip -n <name> <args>`; true on success.
  bool ip(const std::vector<std::string>& args) const;

 private:
  std::string name_;
  bool ok_ = false;
};

// A veth pair from `a` to `b`, named <prefix>a / <prefix>b, up, with the
// given addresses ("10.1.0.1/24", "fd00:1::1/64"); IPv6 without DAD, so the
// addresses work at once.
bool vethPair(const Netns& a, const std::vector<std::string>& aAddrs, const Netns& b,
              const std::vector<std::string>& bAddrs, const std::string& prefix);

// `addr`:`port` of `family` as a socket address; its length.
socklen_t makeAddr(int family, const std::string& addr, int port, sockaddr_storage& ss);

// The cgroup of this test process (outside every test's managed tree): a
// process there is "host" to microseg.
std::string ownCgroup();

// A forked process that moved itself into `cgroup` (and, if given, the netns
// at `netnsPath`) before running `fn`. Runs `fn` and reports its int result.
int runIn(const std::string& cgroup, const std::function<int()>& fn, int timeoutMs = 5000,
          const std::string& netnsPath = "");

// A long-running child in `cgroup` (and netns, if given): a server. `setup`
// runs first and returns an fd (or -1 on failure); readiness is signalled
// after it; then `serve` loops until killed. Killed (SIGKILL) and reaped on
// destruction.
class Child {
 public:
  Child(const std::string& cgroup, const std::function<int()>& setup,
        const std::function<void(int)>& serve, const std::string& netnsPath = "");
  ~Child();
  Child(Child&& o) noexcept : pid_(o.pid_), ready_(o.ready_) { o.pid_ = -1; }
  Child& operator=(Child&&) = delete;
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;
  bool ready() const { return ready_; }
  pid_t pid() const { return pid_; }

 private:
  pid_t pid_ = -1;
  bool ready_ = false;
};

Child tcpServer(const std::string& cgroup, int family, const std::string& addr, int port,
                const std::string& netnsPath = "");
Child udpEchoServer(const std::string& cgroup, int family, const std::string& addr, int port,
                    const std::string& netnsPath = "");

// Socket operations, each returning 0 or the errno of the failing call.
// tcpConnect waits `timeoutMs` for the handshake (ETIMEDOUT: the SYN was
// dropped); `srcAddr` binds the client first.
int tcpConnect(int family, const std::string& addr, int port, int timeoutMs = 2000,
               const std::string& srcAddr = "");
int tcpConnectV4Mapped(const std::string& v4, int port);  // AF_INET6 socket to ::ffff:v4
// An IPv6 connect whose packets carry an extension header: `optname` is
// IPV6_HOPOPTS (hop-by-hop options) or IPV6_DSTOPTS (destination options).
int tcpConnectWithIpv6Options(const std::string& addr, int port, int optname, int timeoutMs = 2000);
int tfoSendto(int family, const std::string& addr, int port);
int udpSendto(int family, const std::string& addr, int port, int srcPort = 0);
int udpConnectSend(int family, const std::string& addr, int port);
// sendto then wait up to `timeoutMs` for the echo (ETIMEDOUT if none)
int udpRequest(int family, const std::string& addr, int port, bool connected, int timeoutMs = 1000,
               const std::string& srcAddr = "");
// Asks the echo server to send a datagram from its socket to `targetPort` of
// our address (a port it never heard from); returns the server's errno, or a
// negative errno if the question itself failed.
int udpAskUnsolicited(int family, const std::string& addr, int port, int targetPort);

struct CliResult {
  int rc = -1;
  std::string out, err;
};

// How a test daemon runs beyond its tree, policy and mode.
struct DaemonOptions {
  std::vector<std::string> extraArgs;
  // The daemon runs in this network namespace (setns before exec; the mount
  // namespace is the test's: cgroup2 and bpffs stay where they are): a
  // "host" of a cluster test.
  std::string netnsPath;
  // `--policy etcd` (cluster mode's pushed policy) instead of the test's
  // policy directory.
  bool policyFromEtcd = false;
};

class Daemon {
 public:
  // `extraArgs` follow the harness's own; a `--policy` among them (such as
  // `--policy etcd`) replaces the harness's policy directory.
  Daemon(const CgroupTree& tree, const std::string& policyYaml, const std::string& mode,
         const std::vector<std::string>& extraArgs = {});
  Daemon(const CgroupTree& tree, const std::string& policyYaml, const std::string& mode,
         const DaemonOptions& options);
  ~Daemon();
  Daemon(const Daemon&) = delete;
  Daemon& operator=(const Daemon&) = delete;
  bool started() const { return started_; }
  pid_t pid() const { return pid_; }
  const std::string& policyDir() const { return policyDir_; }
  const std::string& stateDir() const { return stateDir_; }
  const std::string& socketPath() const { return socket_; }
  void writePolicy(const std::string& file, const std::string& yaml);
  // Sends SIGTERM and waits; returns the exit status (or -1). Pinned state
  // stays (that is the daemon's contract); the destructor removes it.
  int stop();
  // SIGKILL (a crash): nothing of the daemon's shutdown path runs.
  void crash();
  // Starts the daemon again with the same arguments; true when it serves.
  bool start();
  // `microsegd --cleanup` on this daemon's state dir; returns the exit code.
  int cleanup() const;
  // Runs MS_BUILD_DIR/microseg --socket <this daemon's socket> args...
  CliResult cli(const std::vector<std::string>& args) const;
  std::optional<nlohmann::json> status() const;
  // Any control command (e.g. "cluster.status"), with the request's other
  // fields: its result, or nullopt if the daemon did not answer ok.
  std::optional<nlohmann::json> request(const std::string& command,
                                        const nlohmann::json& fields = nlohmann::json::object()) const;
  // Waits (bounded) for a flow-log line matching `pred`.
  std::optional<nlohmann::json> waitFlow(const std::function<bool(const nlohmann::json&)>& pred,
                                         int timeoutMs = 3000) const;
  std::vector<nlohmann::json> flows() const;
  // The daemon's stderr and the flow log, for failure messages.
  std::string log() const;

 private:
  std::string dir_, policyDir_, socket_, stateDir_, flowLog_, logFile_;
  std::vector<std::string> args_;
  std::string netnsPath_;
  pid_t pid_ = -1;
  bool started_ = false;
};

int freePortBase();

// Connects a stream socket to `addr`, sends `bytes` whole, then reads until
// the peer closes (3 s receive timeout). "connect failed" if it cannot connect.
std::string streamExchange(const sockaddr* addr, unsigned addrLen, int family, const std::string& bytes);
std::string unixExchange(const std::string& path, const std::string& bytes);
std::string loopbackExchange(int port, const std::string& bytes);  // a base for up to 20 consecutive ports for this test

}  // namespace microseg::e2e
