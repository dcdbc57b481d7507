// `microseg import k8s` end to end: Kubernetes objects for three
// namespaces of three pods, imported by the real CLI, enforced by one
// microsegd with --default-enforcement selected. Each pod is a cgroup (the
// kubelet's slice for its QoS class, its processes in a container scope
// below) and a network namespace of its own on a shared bridge (a node's
// pod network); every pod probes every other over TCP and UDP and gets exactly
// the reachability Kubernetes gives the objects: a named port that means
// a different number on each pod, an ipBlock with a hole (matching pods by
// their IP), an egress-isolated pod.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <thread>

#include "harness.h"

namespace microseg::e2e {
namespace {

using nlohmann::json;

constexpr int kProbeMs = 800;  // a dropped SYN or datagram: no answer within this (generous: builds share the VM)
const char* kNs[] = {"x", "y", "z"};
const char* kPods[] = {"a", "b", "c"};

// Pod a is Guaranteed, b Burstable, c BestEffort: the kubelet (systemd
// driver) puts them in these slices, under the daemon's cgroup root, and
// their containers' processes in a scope below.
const char* kQos[] = {"Guaranteed", "Burstable", "BestEffort"};

struct PodRef {
  int ns, pod;
  std::string ip() const { return "10.66.0." + std::to_string(10 * (ns + 1) + pod + 1); }
  std::string name() const { return std::string(kNs[ns]) + "/" + kPods[pod]; }
  std::string uid() const { return "5f0c2a1e-0000-4000-8000-0000000000" + std::to_string(10 * (ns + 1) + pod + 1); }
  std::string containerCgroup() const {
    std::string u = uid();
    for (char& c : u) c = c == '-' ? '_' : c;
    const std::string slice = pod == 0   ? "kubepods.slice/kubepods-pod" + u + ".slice"
                              : pod == 1 ? "kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + u + ".slice"
                                         : "kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" + u + ".slice";
    return slice + "/cri-containerd-" + std::to_string(ns) + std::to_string(pod) + ".scope";
  }
};

class K8sImport : public ::testing::Test {
 protected:
  void SetUp() override {
    port_ = freePortBase();
    ASSERT_TRUE(hub_.ok());
    ASSERT_TRUE(hub_.ip({"link", "add", "br0", "type", "bridge"}) && hub_.ip({"link", "set", "br0", "up"}));
    const std::string prefix = "ms" + std::to_string(getpid() % 100000) + "k";
    for (int n = 0; n < 3; n++) {
      for (int p = 0; p < 3; p++) {
        const int i = 3 * n + p;
        netns_[i] = std::make_unique<Netns>();
        ASSERT_TRUE(netns_[i]->ok());
        ASSERT_TRUE(vethPair(*netns_[i], {PodRef{n, p}.ip() + "/24"}, hub_, {}, prefix + std::to_string(i)));
        ASSERT_TRUE(hub_.ip({"link", "set", prefix + std::to_string(i) + "b", "master", "br0"}));
        cgroups_[i] = tree_.create(PodRef{n, p}.containerCgroup());
      }
    }
    // Something on the pod network that is no pod of this node (another
    // node's pod, a load balancer): outside the managed tree, in a netns
    // of no workload, so microseg knows it by its address only.
    ASSERT_TRUE(remote_.ok());
    ASSERT_TRUE(vethPair(remote_, {std::string(kRemoteIp) + "/24"}, hub_, {}, prefix + "r"));
    ASSERT_TRUE(hub_.ip({"link", "set", prefix + "rb", "master", "br0"}));
  }
  static constexpr const char* kRemoteIp = "10.66.0.99";
  void TearDown() override {
    if (HasFailure() && daemon_) std::cerr << "---- microsegd log ----\n" << daemon_->log().substr(0, 20000) << "\n";
  }

  // The objects, as kubectl would print them: the named port "serve" is
  // TCP P on a, TCP Q on b, UDP Q on c.
  std::string objects() const {
    const std::string P = std::to_string(port_), Q = std::to_string(port_ + 1);
    std::string s = "apiVersion: v1\nkind: List\nitems:\n";
    for (int n = 0; n < 3; n++) {
      s += "- {apiVersion: v1, kind: Namespace, metadata: {name: " + std::string(kNs[n]) + ", labels: {team: t" +
           kNs[n] + "}}}\n";
      for (int p = 0; p < 3; p++) {
        const PodRef r{n, p};
        s += "- apiVersion: v1\n  kind: Pod\n  metadata: {name: " + std::string(kPods[p]) + ", namespace: " + kNs[n] +
             ", uid: " + r.uid() + ", labels: {pod: " + kPods[p] + "}}\n  spec:\n    containers:\n    - name: c\n" +
             "      ports:\n      - {name: serve, containerPort: " + (p == 0 ? P : Q) +
             ", protocol: " + (p == 2 ? "UDP" : "TCP") + "}\n  status: {phase: Running, qosClass: " + kQos[p] +
             ", podIP: " + r.ip() + ", podIPs: [{ip: " + r.ip() + "}]}\n";
      }
    }
    // x: only y may call in, on each pod's own "serve" port (TCP).
    s += "- apiVersion: networking.k8s.io/v1\n  kind: NetworkPolicy\n  metadata: {name: serve-from-y, namespace: x}\n"
         "  spec:\n    podSelector: {}\n    ingress:\n"
         "    - from: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: y}}}]\n"
         "      ports: [{port: serve}]\n";
    // z: callers from the pod network but x/b, on Q (TCP and UDP).
    s += "- apiVersion: networking.k8s.io/v1\n  kind: NetworkPolicy\n  metadata: {name: from-block, namespace: z}\n"
         "  spec:\n    podSelector: {}\n    policyTypes: [Ingress]\n    ingress:\n"
         "    - from: [{ipBlock: {cidr: 10.66.0.0/24, except: [" + PodRef{0, 1}.ip() + "/32]}}]\n"
         "      ports: [{port: " + Q + ", protocol: TCP}, {port: " + Q + ", protocol: UDP}]\n";
    // y/c may only call team tx, TCP P.
    s += "- apiVersion: networking.k8s.io/v1\n  kind: NetworkPolicy\n  metadata: {name: c-out, namespace: y}\n"
         "  spec:\n    podSelector: {matchLabels: {pod: c}}\n    policyTypes: [Egress]\n    egress:\n"
         "    - to: [{namespaceSelector: {matchLabels: {team: tx}}}]\n      ports: [{port: " + P + "}]\n";
    return s;
  }

  // What Kubernetes gives these objects.
  bool expected(const PodRef& src, const PodRef& dst, bool tcp, int port) const {
    const int P = port_, Q = port_ + 1;
    if (src.ns == 1 && src.pod == 2 && !(dst.ns == 0 && tcp && port == P)) return false;  // y/c's egress
    if (dst.ns == 0) return src.ns == 1 && tcp && ((dst.pod == 0 && port == P) || (dst.pod == 1 && port == Q));
    if (dst.ns == 2) return port == Q && !(src.ns == 0 && src.pod == 1);
    return true;  // y admits everyone
  }

  std::string import() {
    char dir[] = "/tmp/microseg-k8s-XXXXXX";
    if (mkdtemp(dir) == nullptr) return "";
    trackTempDir(dir);
    const std::string d(dir);
    std::ofstream(d + "/objects.yaml") << objects();
    // No --cgroup-pattern: the kubelet's slices, from uid and QoS class.
    const std::string cmd = std::string(MS_BUILD_DIR) + "/microseg import k8s -f " + d + "/objects.yaml > " + d +
                            "/out.yaml 2> " + d + "/err.txt";
    const int rc = std::system(cmd.c_str());
    auto slurp = [](const std::string& path) {
      std::ifstream f(path);
      return std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    };
    const std::string text = slurp(d + "/out.yaml");
    warnings_ = slurp(d + "/err.txt");
    std::filesystem::remove_all(d);
    untrackTempDir(d);
    EXPECT_EQ(rc, 0) << warnings_;
    return text;
  }

  bool knows(const std::string& workload, const std::string& addr) {
    for (int i = 0; i < 250; i++) {
      if (auto s = daemon_->status()) {
        for (const auto& w : (*s)["workloads"]) {
          if (w["name"] != workload) continue;
          for (const auto& n : w["netns"]) {
            for (const auto& a : n["addresses"]) {
              if (a == addr) return true;
            }
          }
        }
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return false;
  }

  CgroupTree tree_;
  Netns hub_, remote_;
  std::array<std::unique_ptr<Netns>, 9> netns_;
  std::array<std::string, 9> cgroups_;
  int port_ = 0;
  std::string warnings_;  // the import's stderr
  std::unique_ptr<Daemon> daemon_;
};

TEST_F(K8sImport, PodsReachExactlyWhatKubernetesAllows) {
  const auto t0 = std::chrono::steady_clock::now();
  const int P = port_, Q = port_ + 1;
  std::vector<Child> servers;
  for (int i = 0; i < 9; i++) {
    servers.push_back(tcpServer(cgroups_[i], AF_INET, "0.0.0.0", P, netns_[i]->path()));
    servers.push_back(tcpServer(cgroups_[i], AF_INET, "0.0.0.0", Q, netns_[i]->path()));
    servers.push_back(udpEchoServer(cgroups_[i], AF_INET, "0.0.0.0", Q, netns_[i]->path()));
  }
  for (const auto& s : servers) ASSERT_TRUE(s.ready());

  const std::string yaml = import();
  ASSERT_NE(yaml.find("kind: Policy"), std::string::npos) << yaml;
  // x/c has no TCP port "serve": the rule is left out for it, and said.
  EXPECT_NE(warnings_.find("named port 'serve' is not a port of pod x-c"), std::string::npos) << warnings_;
  daemon_ = std::make_unique<Daemon>(tree_, yaml, "enforce", std::vector<std::string>{"--default-enforcement", "selected"});
  ASSERT_TRUE(daemon_->started()) << daemon_->log() << "\n" << yaml;
  for (int n = 0; n < 3; n++) {
    for (int p = 0; p < 3; p++) {
      ASSERT_TRUE(knows(std::string(kNs[n]) + "-" + kPods[p], PodRef{n, p}.ip())) << PodRef{n, p}.name();
    }
  }

  // Each source probes its 8 peers x {TCP P, TCP Q, UDP Q} at once, in its
  // own cgroup and netns; bit k of the answer: probe k connected. Anything
  // but success, EPERM (egress refused) or a timeout (ingress dropped) is
  // a broken test bed, reported as -errno.
  struct Probe {
    PodRef dst;
    bool tcp;
    int port;
  };
  int allowed = 0, denied = 0;
  for (int s = 0; s < 9; s++) {
    const PodRef src{s / 3, s % 3};
    std::vector<Probe> probes;
    for (int d = 0; d < 9; d++) {
      if (d == s) continue;
      for (auto [tcp, port] : {std::pair{true, P}, std::pair{true, Q}, std::pair{false, Q}}) {
        probes.push_back({PodRef{d / 3, d % 3}, tcp, port});
      }
    }
    const int bits = runIn(
        cgroups_[s],
        [&] {
          std::vector<int> rc(probes.size(), -1);
          std::vector<std::thread> threads;
          for (size_t k = 0; k < probes.size(); k++) {
            threads.emplace_back([&, k] {
              const Probe& pr = probes[k];
              rc[k] = pr.tcp ? tcpConnect(AF_INET, pr.dst.ip(), pr.port, kProbeMs)
                             : udpRequest(AF_INET, pr.dst.ip(), pr.port, false, kProbeMs);
            });
          }
          for (auto& t : threads) t.join();
          int out = 0;
          for (size_t k = 0; k < probes.size(); k++) {
            if (rc[k] == 0) {
              out |= 1 << k;
            } else if (rc[k] != EPERM && rc[k] != ETIMEDOUT) {
              return -std::abs(rc[k]);
            }
          }
          return out;
        },
        10000, netns_[s]->path());
    ASSERT_GE(bits, 0) << src.name() << ": a probe failed with " << -bits;
    for (size_t k = 0; k < probes.size(); k++) {
      const Probe& pr = probes[k];
      const bool got = (bits >> k) & 1, want = expected(src, pr.dst, pr.tcp, pr.port);
      (want ? allowed : denied)++;
      EXPECT_EQ(got, want) << src.name() << " -> " << pr.dst.name() << " " << (pr.tcp ? "TCP " : "UDP ")
                           << (pr.port == P ? "P" : "Q");
    }
  }
  // The expectations are not trivial either way.
  EXPECT_GT(allowed, 50);
  EXPECT_GT(denied, 50);

  // The address outside: z's ipBlock (the translation's cidr peer) admits
  // it on Q, not on P; x admits only y's pods; y admits everyone.
  const std::string host = ownCgroup();
  auto fromRemote = [&](const PodRef& dst, bool tcp, int port) {
    return runIn(host, [&] {
      return tcp ? tcpConnect(AF_INET, dst.ip(), port, kProbeMs) : udpRequest(AF_INET, dst.ip(), port, false, kProbeMs);
    }, 5000, remote_.path());
  };
  EXPECT_EQ(fromRemote({2, 0}, true, Q), 0);
  EXPECT_EQ(fromRemote({2, 1}, false, Q), 0);
  EXPECT_EQ(fromRemote({2, 0}, true, P), ETIMEDOUT);
  EXPECT_EQ(fromRemote({0, 0}, true, P), ETIMEDOUT);
  EXPECT_EQ(fromRemote({1, 2}, true, P), 0);
  std::cerr << "probes: " << allowed << " allowed, " << denied << " denied; test took "
            << std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count()
            << " ms\n";
}

// The CLI's contract: documents on stdout only when everything
// translated, diagnostics on stderr, exit 0 / 1 (errors) / 2 (usage).
TEST(K8sImportCli, ExitCodesAndStreams) {
  char dir[] = "/tmp/microseg-k8s-XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  trackTempDir(dir);
  const std::string d(dir);
  auto slurp = [](const std::string& path) {
    std::ifstream f(path);
    return std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  };
  struct Run {
    int rc;
    std::string out, err;
  };
  auto run = [&](const std::string& args, const std::string& stdinText = "") {
    std::ofstream(d + "/stdin") << stdinText;
    const std::string cmd = std::string(MS_BUILD_DIR) + "/microseg import k8s " + args + " < " + d + "/stdin > " + d +
                            "/out 2> " + d + "/err";
    const int st = std::system(cmd.c_str());
    return Run{WIFEXITED(st) ? WEXITSTATUS(st) : -1, slurp(d + "/out"), slurp(d + "/err")};
  };
  const std::string pod = "apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: s}\n";
  std::ofstream(d + "/sctp.yaml") << "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: n}\n"
                                     "spec:\n  podSelector: {}\n  ingress: [{ports: [{protocol: SCTP}]}]\n";

  Run r = run("--cgroup-pattern 'pods/{name}'", pod);  // no -f: stdin
  EXPECT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.out.find("cgroups: [pods/p]"), std::string::npos) << r.out;
  r = run("-f - -o yaml --cgroup-pattern 'pods/{name}'", pod);
  EXPECT_EQ(r.rc, 0) << r.err;
  r = run("-f " + d + "/sctp.yaml");
  EXPECT_EQ(r.rc, 1);
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err, d + "/sctp.yaml:6:33: error: NetworkPolicy default/n: spec.ingress[0].ports[0].protocol: SCTP is "
                       "not supported (microseg polices TCP and UDP only)\nmicroseg: 1 error: nothing imported\n");
  r = run("-f " + d + "/missing.yaml");
  EXPECT_EQ(r.rc, 1);
  EXPECT_EQ(r.err, d + "/missing.yaml: error: cannot open for reading: No such file or directory\n"
                       "microseg: 1 error: nothing imported\n");
  // Read as policy files are: a device is refused at once, not read
  // until memory runs out.
  r = run("-f /dev/zero");
  EXPECT_EQ(r.rc, 1);
  EXPECT_EQ(r.err, "/dev/zero: error: not a regular file (a character device): only regular files are read\n"
                   "microseg: 1 error: nothing imported\n");
  r = run("--cgroup-pattern '/sys/fs/cgroup/{name}'", pod);
  EXPECT_EQ(r.rc, 2);
  EXPECT_NE(r.err.find("--cgroup-pattern: '/sys/fs/cgroup/{name}' must be relative"), std::string::npos) << r.err;
  r = run("-o json", pod);
  EXPECT_EQ(r.rc, 2) << r.err;
  std::filesystem::remove_all(d);
  untrackTempDir(d);
}

}  // namespace
}  // namespace microseg::e2e
