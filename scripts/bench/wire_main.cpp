// microseg-bench-wire: bench.sh section 6, the wire identity (README "Wire
// identity") between two real microsegd nodes of one cluster.
//
//   run     with node A's daemon in this netns and node B's in the netns
//           --netns, and a listener of B's workload (its cgroup, B's netns)
//           started here and kept for the run: rounds of, in turn (ABAB,
//           the order swapped every round), signing ON (both nodes sign, as
//           their daemons set it up: ms_config wire_key_id, and the sockops
//           sender attached to each node's cgroup root) and OFF (the state of
//           a node that does not sign, made here as its daemon makes it:
//           wire_key_id 0 and the sender detached on both nodes: the datapath
//           as it is without the feature), each
//             - a TCP connect+accept+close loop from A's workload cgroup,
//             - the same loop from an unmanaged cgroup (not under A's root),
//             - a UDP sendto loop from A's workload cgroup,
//           with the kernel's per-program stats of both nodes' programs and
//           both daemons' wire_identity_* counters around each loop; fails
//           when the counters say the SYNs did not carry the option in ON
//           rounds, or did in OFF rounds or from the unmanaged caller. The
//           daemons' state (key ids, senders) is put back at the end (on
//           every exit). One JSON record a line on stdout.
//   report  print section 6 with its target (sum of the programs' ns per
//           connect, ON / OFF <= 1.5) from the raw records, and add it to
//           the JSON file microseg-bench report wrote ("wire", "targets").
//
// Safety: traffic goes only to --dest, which bench.sh puts in a netns of its
// own; the loops' children join only the cgroups given; the only programs
// attached are the daemons' own sockops programs, to the cgroup roots the
// daemons manage (--a-root, --b-root), pinned where the daemons pin them;
// the maps written are the nodes' ms_config (key 0), field wire_key_id.
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <thread>

#include "bpf/abi.h"
#include "cluster_util.h"
#include "control/client.h"
#include "wire_loop.h"

using nlohmann::json;
using namespace microseg;
using namespace microseg::bench;

int cmdWireReport(int argc, char** argv);  // wire_report.cpp

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

// ---- each node's signing state: what this tool changes ---------------------
// A node signs when its ms_config.wire_key_id is set and its sender (the
// sockops program) is attached; its daemon keeps both in step
// (datapath/bpf_datapath.cpp, syncSigner), and so does this tool.
struct Node {
  std::string name;
  int configFd = -1;
  int cgroupFd = -1;
  int progFd = -1;        // the daemon's sockops program
  std::string senderPin;  // <pin dir>/link_ms_sockops
  uint32_t daemonKeyId = 0;
};
Node gNodes[2];
bool gRestore = false;

ms_config readConfig(const Node& n) {
  const uint32_t zero = 0;
  ms_config c{};
  if (bpf_map_lookup_elem(n.configFd, &zero, &c) != 0) {
    die("cannot read " + n.name + "'s ms_config: " + std::string(strerror(errno)));
  }
  return c;
}

// 0 or errno; no die(): the restore path uses it too.
int writeKeyId(const Node& n, uint32_t id) {
  const uint32_t zero = 0;
  ms_config c{};
  if (bpf_map_lookup_elem(n.configFd, &zero, &c) != 0) return errno;
  c.wire_key_id = id;  // read-modify-write of the live struct: only this field
  return bpf_map_update_elem(n.configFd, &zero, &c, BPF_EXIST) == 0 ? 0 : errno;
}

bool senderAttached(const Node& n) {
  const int fd = bpf_obj_get(n.senderPin.c_str());
  if (fd >= 0) close(fd);
  return fd >= 0;
}

// 0 or errno. The order of the daemon's: key id then attach; key id 0
// then detach.
int setSigning(const Node& n, bool on) {
  if (int e = on ? 0 : writeKeyId(n, 0)) return e;
  if (on && !senderAttached(n)) {
    const int lfd = bpf_link_create(n.progFd, n.cgroupFd, BPF_CGROUP_SOCK_OPS, nullptr);
    if (lfd < 0) return errno;
    const int e = bpf_obj_pin(lfd, n.senderPin.c_str()) == 0 ? 0 : errno;
    if (e != 0) bpf_link_detach(lfd);
    close(lfd);
    if (e != 0) return e;
  } else if (!on) {
    const int lfd = bpf_obj_get(n.senderPin.c_str());
    if (lfd >= 0) {
      bpf_link_detach(lfd);
      close(lfd);
      unlink(n.senderPin.c_str());
    }
  }
  return on ? writeKeyId(n, n.daemonKeyId) : 0;
}

void signing(bool on) {
  for (const Node& n : gNodes) {
    if (int e = setSigning(n, on)) die("cannot switch " + n.name + "'s signing " + (on ? "on" : "off") + ": " + strerror(e));
  }
}

void restoreSigning() {
  if (!gRestore) return;
  gRestore = false;  // die() below would come back here
  for (const Node& n : gNodes) {
    if (setSigning(n, true) != 0) std::cerr << "microseg-bench-wire: could not restore " << n.name << "'s signing\n";
  }
}

// bench.sh's cleanup stops the tool with SIGTERM: put the signing state
// back first (a few bpf syscalls), so the daemons' state is their own again.
void onSignal(int sig) {
  restoreSigning();
  _exit(128 + sig);
}

// A node as its daemon set it up: signing, with the sender attached.
Node openNode(const std::string& name, const std::string& pinDir, const std::string& root) {
  Node n;
  n.name = name;
  n.configFd = bpf_obj_get((pinDir + "/ms_config").c_str());
  if (n.configFd < 0) die("cannot open " + pinDir + "/ms_config: " + strerror(errno));
  // The first daemon of a cluster generates the key: each writes its id
  // once it has read it back from etcd, and attaches its sender then.
  n.senderPin = pinDir + "/link_ms_sockops";
  for (int k = 0; k < 300 && ((n.daemonKeyId = readConfig(n).wire_key_id) == 0 || !senderAttached(n)); k++) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  if (n.daemonKeyId == 0 || !senderAttached(n)) {
    die(name + "'s daemon does not sign (ms_config.wire_key_id " + std::to_string(n.daemonKeyId) +
        ", sender " + (senderAttached(n) ? "attached" : "not attached") + " after 30 s)");
  }
  const int lfd = bpf_obj_get(n.senderPin.c_str());
  bpf_link_info li{};
  uint32_t len = sizeof(li);
  if (lfd < 0 || bpf_obj_get_info_by_fd(lfd, &li, &len) != 0) die("cannot read " + n.senderPin);
  close(lfd);
  n.progFd = bpf_prog_get_fd_by_id(li.prog_id);
  if (n.progFd < 0) die("cannot open " + name + "'s sockops program: " + strerror(errno));
  n.cgroupFd = open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (n.cgroupFd < 0) die("cannot open " + name + "'s cgroup root " + root + ": " + strerror(errno));
  return n;
}

json counters(const std::string& sock) {
  auto r = control::call(sock, json{{"command", "status"}}, 10000);
  if (!r) die("status from " + sock + ": " + r.error().str());
  if (!(*r)["ok"].get<bool>()) die("status refused by " + sock + ": " + r->dump());
  return (*r)["result"]["counters"];
}

json counterDelta(const json& before, const json& after) {
  json d = json::object();
  for (const char* k : {"wire_identity_sent", "wire_identity_unsent", "wire_identity_verified", "wire_identity_invalid",
                        "wire_identity_absent", "denied"}) {
    d[k] = after[k].get<int64_t>() - before[k].get<int64_t>();
  }
  return d;
}

sockaddr_in ipv4(const std::string& t, int port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(uint16_t(port));
  if (inet_pton(AF_INET, t.c_str(), &a.sin_addr) != 1) die("not an IPv4 address: " + t);
  return a;
}

// B's listener in A's ms_remote_listeners: A learned it through etcd.
void waitRemoteListener(const std::string& sockA, const std::string& listener) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  for (;;) {
    auto r = control::call(sockA, json{{"command", "status"}}, 10000);
    if (r && (*r)["ok"].get<bool>()) {
      for (const auto& w : (*r)["result"]["remote_workloads"]) {
        for (const auto& l : w["listeners"]) {
          if (l == listener) return;
        }
      }
    }
    if (std::chrono::steady_clock::now() > end) die("A did not learn B's listener " + listener + " within 60 s");
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

int cmdRun(const Args& a) {
  // The daemon pins under <state dir>/abi-<MS_ABI_VERSION> (datapath/bpf_datapath.cpp).
  const std::string abi = "/abi-" + std::to_string(MS_ABI_VERSION);
  const std::string stateA = a.need("a-state") + abi, stateB = a.need("b-state") + abi;
  const std::string sockA = a.need("a-socket"), sockB = a.need("b-socket");
  const std::string caller = a.need("cgroup"), unmanaged = a.need("unmanaged-cgroup");
  const int port = int(a.num("port", 0));
  if (port <= 0) die("--port is required");
  const sockaddr_in dest = ipv4(a.need("dest"), port);
  const int rounds = int(a.num("rounds", 5));
  const uint64_t iters = uint64_t(a.num("iters", 20000)), udpIters = uint64_t(a.num("udp-iters", 50000));
  const double seconds = std::stod(a.get("seconds", "0"));
  const std::map<std::string, std::string> dirs{{"a", stateA}, {"b", stateB}};

  gNodes[0] = openNode("A", stateA, a.need("a-root"));
  gNodes[1] = openNode("B", stateB, a.need("b-root"));
  gRestore = true;
  std::atexit(restoreSigning);
  signal(SIGTERM, onSignal);
  signal(SIGINT, onSignal);

  // The kernel's per-program accounting, on while this fd is open.
  const int statsFd = bpf_enable_stats(BPF_STATS_RUN_TIME);
  if (statsFd < 0) die("BPF_ENABLE_STATS failed (kernel >= 5.8 needed)");

  const pid_t listener = startWireListener(dest, a.need("listener-cgroup"), a.need("netns"));
  waitRemoteListener(sockA, a.need("dest") + ":" + std::to_string(port) + "/tcp");
  std::cout << json{{"section", "wire_setup"}, {"daemon_key_id", gNodes[0].daemonKeyId}, {"dest", a.need("dest")},
                    {"port", port}}
                   .dump()
            << std::endl;

  struct Job {
    const char* caller;
    LoopKind kind;
  };
  const Job jobs[] = {{"workload", LoopKind::Tcp}, {"unmanaged", LoopKind::Tcp}, {"workload", LoopKind::Udp}};
  // A first short ON pass warms A's and B's caches and checks the path.
  // Until B accepts A's key (B reads it from etcd too), its ingress drops
  // A's signed SYNs: connects time out. Bounded retries.
  signing(true);
  for (int k = 0;; k++) {
    const json cb0 = counters(sockB);
    json warm = runLoop(LoopKind::Tcp, caller, dest, 200, 5, dirs);
    const json db = counterDelta(cb0, counters(sockB));
    if (warm["errors"] == 0 && db["wire_identity_verified"] >= 200) break;
    if (k == 10) die("warm-up connects from " + caller + " failed or were not verified by B: " + warm.dump() +
                     " B counters " + db.dump());
    std::this_thread::sleep_for(std::chrono::seconds(1));
  }
  std::string failures;
  for (int r = 0; r < rounds; r++) {
    for (int j = 0; j < 2; j++) {
      const bool on = (j + r) % 2 == 0;
      signing(on);
      for (const Job& job : jobs) {
        const json ca0 = counters(sockA), cb0 = counters(sockB);
        json m = runLoop(job.kind, job.caller[0] == 'w' ? caller : unmanaged, dest,
                         job.kind == LoopKind::Tcp ? iters : udpIters, seconds, dirs);
        const json da = counterDelta(ca0, counters(sockA)), db = counterDelta(cb0, counters(sockB));
        m["section"] = "wire";
        m["round"] = r;
        m["signing"] = on ? "on" : "off";
        m["caller"] = job.caller;
        m["a_counters"] = da;
        m["b_counters"] = db;
        // What the SYNs carried, by the daemons' own counters.
        const int64_t n = m["iters"].get<int64_t>();
        std::string bad;
        if (m["errors"] != 0) bad = "errors (" + m["errno"].get<std::string>() + ")";
        if (job.kind == LoopKind::Tcp && job.caller[0] == 'w' && on &&
            (da["wire_identity_sent"] < n || db["wire_identity_verified"] < n)) {
          bad = "ON: not every SYN was signed by A and verified by B";
        }
        if (job.kind == LoopKind::Tcp && !(on && job.caller[0] == 'w') &&
            (da["wire_identity_sent"] != 0 || db["wire_identity_verified"] != 0 || db["wire_identity_absent"] < n)) {
          bad = std::string(on ? "unmanaged caller" : "OFF") + ": SYNs carried the option (or B did not see them)";
        }
        if (job.kind == LoopKind::Udp && (da["wire_identity_sent"] != 0 || db["wire_identity_verified"] != 0)) {
          bad = "UDP: a wire identity counter moved";
        }
        if (db["wire_identity_invalid"] != 0) bad = "B counted invalid wire identities";
        m["check"] = bad.empty() ? "ok" : bad;
        std::cout << m.dump() << std::endl;
        if (!bad.empty()) failures += " [round " + std::to_string(r) + " " + m["signing"].get<std::string>() + " " +
                                      job.caller + " " + m["kind"].get<std::string>() + ": " + bad + "]";
      }
    }
  }
  restoreSigning();
  bool restored = true;
  for (const Node& n : gNodes) restored = restored && readConfig(n).wire_key_id == n.daemonKeyId && senderAttached(n);
  std::cout << json{{"section", "wire_restore"}, {"restored", restored}}.dump() << std::endl;
  close(statsFd);
  kill(listener, SIGKILL);
  waitpid(listener, nullptr, 0);
  if (!failures.empty()) die("the daemons' counters disagree with what was measured:" + failures);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  gToolName = "microseg-bench-wire";
  if (argc < 2) {
    std::cerr << "usage: microseg-bench-wire run|report --key value...\n";
    return 2;
  }
  const std::string cmd = argv[1];
  if (cmd == "run") return cmdRun(parseArgs(argc, argv));
  if (cmd == "report") return cmdWireReport(argc, argv);
  die("unknown command '" + cmd + "'");
}
