// microseg-bench-cluster: bench.sh section 5, cluster mode.
//
//   run     be a fake node ("B") of the fleet next to the bench's microsegd
//           ("A"): publish, through the real cluster::Agent, one host address
//           with a real listener behind a veth in the bench's netns plus N
//           other addresses and M other listeners; then measure, on A,
//             - connect4's cost for a loopback destination and for B's
//               listener, in alternating rounds (kernel per-program stats);
//             - K single-address changes on B: the time from B's agent being
//               told until A's control socket reports the new count (the
//               reply waits for the daemon's lock, which the tick writing
//               the kernel holds), and what A's write of the other nodes'
//               endpoints took (cluster.status endpoints_apply_us_last);
//           one JSON record a line on stdout.
//   report  print section 5 with its targets from the raw records and add
//           it to the JSON file microseg-bench report wrote.
//
// Safety: connects go only to 127.0.0.1 and to the address given with
// --remote, which bench.sh puts in a netns of its own; the connect loop's
// child joins only the --cgroup given (checked to be below the root);
// nothing is attached or pinned here; B's keys live under B's lease in the
// bench's own etcd and are revoked on exit.
#include <arpa/inet.h>
#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <thread>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "cluster/agent.h"
#include "cluster_connect.h"
#include "cluster_util.h"
#include "control/client.h"
#include "policy/cidr.h"

using nlohmann::json;
using namespace microseg;
using namespace microseg::bench;

namespace {

struct Args {
  std::map<std::string, std::string> kv;
  std::string get(const std::string& k, const std::string& def = "") const {
    auto it = kv.find(k);
    return it == kv.end() ? def : it->second;
  }
  std::string need(const std::string& k) const {
    auto it = kv.find(k);
    if (it == kv.end() || it->second.empty()) die("--" + k + " is required");
    return it->second;
  }
  long num(const std::string& k, long def) const {
    auto v = get(k);
    return v.empty() ? def : std::stol(v);
  }
};

Args parseArgs(int argc, char** argv) {
  Args a;
  for (int i = 2; i < argc; i++) {
    std::string k = argv[i];
    if (k.rfind("--", 0) != 0 || i + 1 >= argc) die("expected --key value, got '" + k + "'");
    a.kv[k.substr(2)] = argv[++i];
  }
  return a;
}

// ---- connect loops, in a helper forked before any thread exists ----------
// The agent runs gRPC threads; forking the loop's children from a process
// with threads could deadlock them on a lock another thread held. The helper
// is forked first and does every fork of the loops.
struct ConnectJob {
  int which;  // 0 local, 1 remote, 2 remote on a port not allowed
  uint64_t iters;
};

class ConnectHelper {
 public:
  ConnectHelper(std::vector<ConnectTarget> targets, std::string cgroup, uint64_t iters, double seconds,
                std::string statsDir) {
    int req[2], rep[2];
    if (pipe2(req, O_CLOEXEC) != 0 || pipe2(rep, O_CLOEXEC) != 0) die("pipe failed");
    pid_ = fork();
    if (pid_ < 0) die("fork failed");
    if (pid_ == 0) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      close(req[1]);
      close(rep[0]);
      ConnectJob job;
      while (read(req[0], &job, sizeof(job)) == ssize_t(sizeof(job))) {
        const std::string out =
            measureConnects(cgroup, targets.at(size_t(job.which)), job.iters ? job.iters : iters, seconds, statsDir).dump();
        const uint32_t n = uint32_t(out.size());
        if (write(rep[1], &n, sizeof(n)) != ssize_t(sizeof(n)) || write(rep[1], out.data(), n) != ssize_t(n)) _exit(2);
      }
      _exit(0);
    }
    close(req[0]);
    close(rep[1]);
    req_ = req[1];
    rep_ = rep[0];
  }
  ~ConnectHelper() {
    close(req_);
    close(rep_);
    waitpid(pid_, nullptr, 0);
  }
  json measure(int which, uint64_t iters = 0) {
    ConnectJob job{which, iters};
    if (write(req_, &job, sizeof(job)) != ssize_t(sizeof(job))) die("the connect helper vanished");
    uint32_t n = 0;
    if (!readAll(&n, sizeof(n))) die("the connect helper failed (see its message above)");
    std::string s(n, '\0');
    if (!readAll(s.data(), n)) die("the connect helper failed");
    return json::parse(s);
  }

 private:
  bool readAll(void* p, size_t n) {
    auto* c = static_cast<char*>(p);
    while (n > 0) {
      ssize_t k = read(rep_, c, n);
      if (k <= 0) return false;
      c += k;
      n -= size_t(k);
    }
    return true;
  }
  pid_t pid_ = -1;
  int req_ = -1, rep_ = -1;
};

sockaddr_in ipv4(const std::string& text, int port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(uint16_t(port));
  if (inet_pton(AF_INET, text.c_str(), &a.sin_addr) != 1) die("not an IPv4 address: " + text);
  return a;
}

ms_addr msAddr(const std::string& text) {
  auto a = policy::parseAddress(text);
  if (!a) die("not an address: " + text);
  return *a;
}

// The fake node's endpoints: addresses in 198.19.0.0/17 (RFC 2544's
// benchmarking range, never routed here), listeners on 198.19.128.0/17
// port 8080, over 16 label sets; a change is one more address in
// 198.19.64.0/18.
std::string fillAddress(size_t i, int base) {
  return "198.19." + std::to_string(base + int(i / 256)) + "." + std::to_string(i % 256);
}
policy::Labels fillLabels(size_t i) { return {{"app", "bench-fill-" + std::to_string(i % 16)}}; }

json clusterStatus(const std::string& sock) {
  auto r = control::call(sock, json{{"command", "cluster.status"}}, 10000);
  if (!r) die("cluster.status: " + r.error().str());
  if (!(*r)["ok"].get<bool>()) die("cluster.status refused: " + r->dump());
  return (*r)["result"]["this_node"];
}

// Polls A until `done(status)`; returns the status that met it.
template <typename F>
json waitStatus(const std::string& sock, F done, int timeoutMs, const std::string& what) {
  const uint64_t end = nowNs() + uint64_t(timeoutMs) * 1000000ull;
  for (;;) {
    json s = clusterStatus(sock);
    if (done(s)) return s;
    if (nowNs() > end) die("timed out waiting for " + what + "; A reports " + s.dump());
    // Each cluster.status also asks etcd for its health and takes the
    // daemon's lock: every 2 ms keeps that load off what is measured.
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
}

int cmdRun(const Args& a) {
  const std::string sock = a.need("socket");
  const size_t nAddr = size_t(a.num("addresses", 5000)), nListen = size_t(a.num("listeners", 5000));
  if (nAddr > 16384 || nListen > 32768) die("--addresses <= 16384, --listeners <= 32768");
  const int changes = int(a.num("changes", 50)), rounds = int(a.num("rounds", 3));
  const std::string remote = a.need("remote");
  const int remotePort = int(a.num("remote-port", 0)), localPort = int(a.num("local-port", 0));
  if (remotePort <= 0 || localPort <= 0) die("--remote-port and --local-port are required");
  const std::string cgroup = a.need("cgroup");

  // Fork the loops' helper now, while this process has one thread.
  std::vector<ConnectTarget> targets(2);
  targets[0].addr = ipv4("127.0.0.1", localPort);
  targets[0].listenerCgroup = cgroup;  // policy: the bench workload admits itself on this port
  targets[1].addr = ipv4(remote, remotePort);
  targets[1].listenerNetns = a.need("remote-netns");
  // The same listener address on a port the policy does not allow: connect4
  // must refuse it (a check that the remote verdict is the policy's).
  targets.push_back(targets[1]);
  targets[2].addr.sin_port = htons(uint16_t(remotePort + 1));
  ConnectHelper helper(targets, cgroup, uint64_t(a.num("iters", 20000)), std::stod(a.get("seconds", "0")),
                       a.need("stats-pin-dir"));

  spdlog::set_level(spdlog::level::warn);
  cluster::AgentOptions o;
  o.etcd.endpoints = {a.need("etcd")};
  o.nodeName = a.get("node-name", "bench-b");
  o.dataDir = a.need("data-dir");
  o.version = "microseg-bench";
  cluster::LocalState local;
  local.hostAddresses = {msAddr(remote)};
  const policy::Labels remoteLabels{{"app", "bench-remote"}};
  local.listeners.push_back({msAddr(remote), uint16_t(remotePort), IPPROTO_TCP, "bench-remote", remoteLabels});
  for (size_t i = 0; i < nAddr; i++) {
    local.netnsAddresses.push_back({msAddr(fillAddress(i, 0)), "fill-" + std::to_string(i % 16), fillLabels(i)});
  }
  for (size_t i = 0; i < nListen; i++) {
    local.listeners.push_back(
        {msAddr(fillAddress(i, 128)), 8080, IPPROTO_TCP, "fill-" + std::to_string(i % 16), fillLabels(i)});
  }
  local.labelSets.push_back(remoteLabels);
  for (size_t i = 0; i < 16; i++) local.labelSets.push_back(fillLabels(i));
  local.workloads = 17;
  auto agent = cluster::Agent::start(o);
  if (!agent) die("fake node: " + agent.error().str());
  const uint64_t t0 = nowNs();
  (*agent)->setLocal(local);

  // B is in place once A's kernel has all of it: every address (and B's
  // host address), every listener (and the real one).
  json s = waitStatus(
      sock,
      [&](const json& st) {
        return st["remote_addresses"].get<size_t>() == nAddr + 1 && st["remote_listeners"].get<size_t>() == nListen + 1;
      },
      180000, std::to_string(nAddr + 1) + " remote addresses and " + std::to_string(nListen + 1) + " listeners on A");
  std::cout << json{{"section", "cluster_setup"},
                    {"addresses", nAddr},
                    {"listeners", nListen},
                    {"remote_addresses", s["remote_addresses"]},
                    {"remote_listeners", s["remote_listeners"]},
                    {"publish_to_kernel_s", double(nowNs() - t0) / 1e9},
                    {"full_apply_us", s["endpoints_apply_us_last"]}}
                   .dump()
            << std::endl;

  // 1. connect4: local and remote in turn, the order swapped every round.
  for (int r = 0; r < rounds; r++) {
    for (int j = 0; j < 2; j++) {
      const int which = (j + r) % 2;
      json m = helper.measure(which);
      m["section"] = "cluster_connect";
      m["round"] = r;
      m["target"] = which == 0 ? "local" : "remote";
      std::cout << m.dump() << std::endl;
    }
  }

  // Refused where the policy says so: B's listener's identity, not "any
  // remote", is what allowed the loop above.
  json deny = helper.measure(2, 20);
  const bool refused = deny["errors"] == deny["iters"] && deny["errno"] == std::strerror(EPERM);
  std::cout << json{{"section", "cluster_deny_check"}, {"dest", deny["dest"]}, {"iters", deny["iters"]},
                    {"errors", deny["errors"]}, {"errno", deny["errno"]}, {"refused", refused}}
                   .dump()
            << std::endl;
  if (!refused) die("connects to " + deny["dest"].get<std::string>() + " (a port of B the policy does not allow) were not all refused: " + deny.dump());

  // 2./3. single-address changes on B: one address appears, then goes.
  // Where the time goes: B's key is also looked for in etcd (a client of
  // this tool's own), so B -> etcd and etcd -> A's kernel are told apart.
  const size_t base = nAddr + 1;
  auto probe = cluster::EtcdClient::connect(o.etcd);
  if (!probe) die("etcd: " + probe.error().str());
  const cluster::Keys keys(o.prefix);
  for (int k = 0; k < changes; k++) {
    for (const char* op : {"add", "remove"}) {
      const bool add = op[0] == 'a';
      if (add) {
        local.netnsAddresses.push_back({msAddr(fillAddress(size_t(k), 64)), "fill-0", fillLabels(0)});
      } else {
        local.netnsAddresses.pop_back();
      }
      const size_t want = add ? base + 1 : base;
      const uint64_t applied0 = clusterStatus(sock)["endpoints_applied"].get<uint64_t>();
      const std::string key = keys.addressEndpoint(o.nodeName, msAddr(fillAddress(size_t(k), 64)));
      uint64_t inEtcd = 0;
      const uint64_t c0 = nowNs();
      (*agent)->setLocal(local);
      json st = waitStatus(
          sock,
          [&](const json& x) {
            if (!inEtcd) {
              auto r = (*probe)->get(key);
              if (r && r->kvs.empty() != add) inEtcd = nowNs();
            }
            return x["remote_addresses"].get<size_t>() == want;
          },
          30000, std::to_string(want) + " remote addresses on A (change " + std::to_string(k) + " " + op + ")");
      const uint64_t c1 = nowNs();
      if (!inEtcd) {  // A was quicker than the probe's first look
        auto r = (*probe)->get(key);
        if (r && r->kvs.empty() != add) inEtcd = c1;
      }
      std::cout << json{{"section", "cluster_change"},
                        {"k", k},
                        {"op", op},
                        {"propagation_ms", double(c1 - c0) / 1e6},
                        {"b_to_etcd_ms", inEtcd ? json(double(inEtcd - c0) / 1e6) : json(nullptr)},
                        {"apply_us", st["endpoints_apply_us_last"]},
                        {"applies", st["endpoints_applied"].get<uint64_t>() - applied0}}
                       .dump()
                << std::endl;
      // Let the poll's load go before the next change.
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
  (*agent)->leave();  // B's keys vanish at once
  agent->reset();
  return 0;
}

}  // namespace

int cmdReport(int argc, char** argv);  // cluster_report.cpp

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << "usage: microseg-bench-cluster run|report --key value...\n";
    return 2;
  }
  const std::string cmd = argv[1];
  if (cmd == "run") return cmdRun(parseArgs(argc, argv));
  if (cmd == "report") return cmdReport(argc, argv);
  die("unknown command '" + cmd + "'");
}
