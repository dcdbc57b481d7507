// A real etcd for the cluster tests: one member, or a cluster of three on
// loopback ports, with its data in a temp dir of the test's own. Every
// member process and the data go with the object, and with the signal path
// if the test binary is interrupted.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

namespace microseg::e2e {

class EtcdCluster {
 public:
  explicit EtcdCluster(int members = 1);
  ~EtcdCluster();
  EtcdCluster(const EtcdCluster&) = delete;
  EtcdCluster& operator=(const EtcdCluster&) = delete;

  // Every member started and the cluster has a leader.
  bool ok() const { return ok_; }
  std::vector<std::string> endpoints() const;  // http://127.0.0.1:PORT, one per member
  std::string endpointList() const;            // the same, comma-separated (a daemon flag)
  // unix:///.../<member>.sock:0: the same members through unix sockets,
  // which a daemon in a network namespace of the test's can reach.
  std::vector<std::string> unixEndpoints() const;
  std::string unixEndpointList() const;
  size_t size() const { return members_.size(); }

  void kill(size_t member);      // SIGKILL, as a crash
  bool start(size_t member);     // again, with its data
  void killAll();
  bool startAll();
  // Until some member answers with a leader (bounded).
  bool waitHealthy(int timeoutMs = 10000) const;
  std::string log(size_t member) const;

 private:
  struct Member {
    std::string name, dataDir, logFile;
    int clientPort = 0, peerPort = 0;
    pid_t pid = -1;
  };
  std::vector<std::string> args(const Member& m) const;
  std::string dir_;
  std::string initialCluster_;
  std::vector<Member> members_;
  bool ok_ = false;
};

}  // namespace microseg::e2e
