// Inside the etcd client: one gRPC channel per endpoint and which one is in
// use (etcd_client.cpp, etcd_streams.cpp).
#pragma once

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "cluster/etcd_client.h"
#include "rpc.grpc.pb.h"

namespace microseg::cluster {

// A channel to one member and its stubs. Replaced whole (renew()), never
// changed: a caller keeps the one it took for the length of its call.
struct EtcdConnection {
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<etcdserverpb::KV::Stub> kv;
  std::unique_ptr<etcdserverpb::Lease::Stub> lease;
  std::unique_ptr<etcdserverpb::Watch::Stub> watch;
  std::unique_ptr<etcdserverpb::Maintenance::Stub> maintenance;
  std::chrono::steady_clock::time_point created;
};

struct EtcdClient::Channels {
  struct Endpoint {
    std::string name;    // as configured
    std::string target;  // host:port
    std::shared_ptr<grpc::ChannelCredentials> creds;
    std::mutex mu;
    std::shared_ptr<const EtcdConnection> conn;
  };
  std::vector<std::unique_ptr<Endpoint>> endpoints;
  grpc::ChannelArguments args;
  std::atomic<size_t> current{0};

  Endpoint& at(size_t i) { return *endpoints[i % endpoints.size()]; }
  std::shared_ptr<const EtcdConnection> connection(size_t i) {
    Endpoint& ep = at(i);
    std::lock_guard<std::mutex> lock(ep.mu);
    return ep.conn;
  }
  // A call on `used` failed as if the member were unreachable. A channel
  // that has been failing for a while is replaced by a new one: gRPC's own
  // reconnection of a channel that met a refused connection (a member
  // started after us, or restarted) was seen to take 15 s or more, where a
  // new channel connects at once.
  void renewIfStuck(size_t i, const std::shared_ptr<const EtcdConnection>& used);
  // The endpoint after `failed` becomes current (unless someone moved on already).
  void moveOn(size_t failed) {
    size_t expected = failed % endpoints.size();
    current.compare_exchange_strong(expected, (expected + 1) % endpoints.size());
  }
  std::shared_ptr<const EtcdConnection> connect(const Endpoint& ep) const;
};

// An error of a gRPC call, as microseg's Error.
Error grpcError(const std::string& op, const std::string& endpoint, const grpc::Status& status);
// Whether a call that failed so is worth trying on another member.
bool tryElsewhere(const grpc::Status& status);

}  // namespace microseg::cluster
