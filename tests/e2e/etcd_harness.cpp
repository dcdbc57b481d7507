#include "etcd_harness.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <thread>

#include "cluster/etcd_client.h"
#include "harness.h"

namespace microseg::e2e {
namespace {

// A loopback port nobody uses right now (bound, read, closed).
int freeLoopbackPort() {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(a);
  int port = 0;
  if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0) {
    port = ntohs(a.sin_port);
  }
  close(fd);
  return port;
}

bool waitExit(pid_t pid, int timeoutMs) {
  for (int waited = 0; waited <= timeoutMs; waited += 10) {
    int st;
    pid_t r = waitpid(pid, &st, WNOHANG);
    if (r == pid || (r < 0 && errno == ECHILD)) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

}  // namespace

EtcdCluster::EtcdCluster(int members) {
  char tmpl[] = "/tmp/microseg-etcd.XXXXXX";
  if (mkdtemp(tmpl) == nullptr) return;
  dir_ = tmpl;
  trackTempDir(dir_);
  for (int i = 0; i < members; i++) {
    Member m;
    m.name = "m" + std::to_string(i);
    m.dataDir = dir_ + "/" + m.name;
    m.logFile = dir_ + "/" + m.name + ".log";
    m.clientPort = freeLoopbackPort();
    m.peerPort = freeLoopbackPort();
    initialCluster_ += (i ? "," : "") + m.name + "=http://127.0.0.1:" + std::to_string(m.peerPort);
    members_.push_back(m);
  }
  ok_ = startAll() && waitHealthy();
  if (!ok_) {
    for (size_t i = 0; i < members_.size(); i++) {
      std::cerr << "etcd " << i << " (client port " << members_[i].clientPort << ", peer port " << members_[i].peerPort
                << "):\n" << log(i).substr(0, 4000) << "\n";
    }
  }
}

EtcdCluster::~EtcdCluster() {
  for (auto& m : members_) {
    if (m.pid <= 0) continue;
    ::kill(m.pid, SIGTERM);
    if (!waitExit(m.pid, 5000)) {
      ::kill(m.pid, SIGKILL);
      waitExit(m.pid, 2000);
    }
    untrackServer(m.pid);
    m.pid = -1;
  }
  if (dir_.empty()) return;
  std::error_code ec;
  std::filesystem::remove_all(dir_, ec);
  untrackTempDir(dir_);
}

std::vector<std::string> EtcdCluster::args(const Member& m) const {
  // Loopback, and a unix socket in its data dir: a node running in a
  // network namespace of the test's reaches it there.
  const std::string client = "http://127.0.0.1:" + std::to_string(m.clientPort) + ",unix://" + m.name + ".sock:0";
  const std::string peer = "http://127.0.0.1:" + std::to_string(m.peerPort);
  return {"/usr/bin/etcd", "--name", m.name, "--data-dir", m.dataDir, "--listen-client-urls", client,
          "--advertise-client-urls", "http://127.0.0.1:" + std::to_string(m.clientPort), "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
          "--initial-cluster", initialCluster_, "--initial-cluster-state", "new", "--initial-cluster-token",
          "microseg-test-" + std::to_string(getpid()), "--heartbeat-interval", "50", "--election-timeout", "500",
          "--log-level", "warn", "--logger", "zap"};
}

bool EtcdCluster::start(size_t i) {
  Member& m = members_[i];
  if (m.pid > 0) return true;
  auto argv = args(m);
  // A killed member leaves its unix socket behind; etcd will not listen on
  // a name that exists.
  ::unlink((dir_ + "/" + m.name + ".sock:0").c_str());
  pid_t pid = fork();
  if (pid == 0) {
    int fd = open(m.logFile.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    dup2(fd, 1);
    dup2(fd, 2);
    if (chdir(dir_.c_str()) != 0) _exit(126);  // the unix socket's relative name
    std::vector<char*> raw;
    for (auto& a : argv) raw.push_back(a.data());
    raw.push_back(nullptr);
    execv(raw[0], raw.data());
    _exit(127);
  }
  if (pid < 0) return false;
  trackServer(pid);
  m.pid = pid;
  return true;
}

bool EtcdCluster::startAll() {
  bool ok = true;
  for (size_t i = 0; i < members_.size(); i++) ok = start(i) && ok;
  return ok;
}

void EtcdCluster::kill(size_t i) {
  Member& m = members_[i];
  if (m.pid <= 0) return;
  ::kill(m.pid, SIGKILL);
  waitExit(m.pid, 5000);
  untrackServer(m.pid);
  m.pid = -1;
}

void EtcdCluster::killAll() {
  for (size_t i = 0; i < members_.size(); i++) kill(i);
}

bool EtcdCluster::waitHealthy(int timeoutMs) const {
  cluster::EtcdOptions o;
  o.endpoints = endpoints();
  o.requestTimeout = std::chrono::milliseconds(500);
  auto c = cluster::EtcdClient::connect(o);
  if (!c) return false;
  const auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeoutMs);
  while (std::chrono::steady_clock::now() < end) {
    for (const auto& s : (*c)->endpointStatus()) {
      if (s.healthy) return true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

std::vector<std::string> EtcdCluster::endpoints() const {
  std::vector<std::string> out;
  for (const auto& m : members_) out.push_back("http://127.0.0.1:" + std::to_string(m.clientPort));
  return out;
}

std::vector<std::string> EtcdCluster::unixEndpoints() const {
  std::vector<std::string> out;
  for (const auto& m : members_) out.push_back("unix://" + dir_ + "/" + m.name + ".sock:0");
  return out;
}

std::string EtcdCluster::unixEndpointList() const {
  std::string s;
  for (const auto& e : unixEndpoints()) s += (s.empty() ? "" : ",") + e;
  return s;
}

std::string EtcdCluster::endpointList() const {
  std::string s;
  for (const auto& e : endpoints()) s += (s.empty() ? "" : ",") + e;
  return s;
}

std::string EtcdCluster::log(size_t i) const {
  std::ifstream in(members_[i].logFile);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace microseg::e2e
