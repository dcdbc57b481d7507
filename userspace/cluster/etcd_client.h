// A client of etcd's v3 gRPC API: the part of it microseg's cluster mode uses
// (KV with transactions, leases with keep-alive, watches, member status),
// over one or more endpoints.
//
// Unary requests carry a deadline; one that meets an unreachable or silent
// member is tried on the next endpoint (every request microseg makes is
// safe to repeat: puts of the same value, transactions whose compare fails
// the second time and whose callers read the result back). Streams (watch,
// keep-alive) run on threads of their own and reconnect by themselves, with
// backoff, from the revision after the last one they delivered.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/result.h"

namespace microseg::cluster {

struct EtcdOptions {
  // "http://host:port", "https://host:port" or "host:port" (TLS if the
  // TLS files are given), or "unix:///path" (a unix socket, plain).
  std::vector<std::string> endpoints;
  std::string caFile;    // TLS: the CA that signed the members' certificates
  std::string certFile;  // TLS client certificate (etcd --client-cert-auth)
  std::string keyFile;
  std::chrono::milliseconds requestTimeout{3000};
};

struct KeyValue {
  std::string key;
  std::string value;
  int64_t createRevision = 0;
  int64_t modRevision = 0;
  int64_t version = 0;
  int64_t lease = 0;
};

struct Range {
  std::vector<KeyValue> kvs;
  int64_t revision = 0;  // of the store when it was read
  bool more = false;
};

// One condition of a transaction.
struct Compare {
  enum class Target : uint8_t { Version, CreateRevision, ModRevision, Value, Lease };
  enum class Op : uint8_t { Equal, Greater, Less, NotEqual };
  std::string key;
  Target target = Target::CreateRevision;
  Op op = Op::Equal;
  int64_t number = 0;
  std::string value;
  bool prefix = false;  // the condition holds for every key under `key` (vacuously for none)

  static Compare absent(std::string key) { return {std::move(key), Target::CreateRevision, Op::Equal, 0, {}, false}; }
  static Compare present(std::string key) {
    return {std::move(key), Target::CreateRevision, Op::Greater, 0, {}, false};
  }
  // No key starts with `prefix`.
  static Compare noneUnder(std::string prefix) {
    return {std::move(prefix), Target::CreateRevision, Op::Equal, 0, {}, true};
  }
  static Compare modRevisionIs(std::string key, int64_t rev) {
    return {std::move(key), Target::ModRevision, Op::Equal, rev, {}, false};
  }
  static Compare valueIs(std::string key, std::string v) {
    return {std::move(key), Target::Value, Op::Equal, 0, std::move(v), false};
  }
};

// One operation of a transaction.
struct TxnOp {
  enum class Kind : uint8_t { Get, Put, Delete };
  Kind kind = Kind::Get;
  std::string key;
  std::string value;
  int64_t lease = 0;
  bool prefix = false;  // Get, Delete: every key under `key`

  static TxnOp get(std::string key, bool prefix = false) { return {Kind::Get, std::move(key), {}, 0, prefix}; }
  static TxnOp put(std::string key, std::string value, int64_t lease = 0) {
    return {Kind::Put, std::move(key), std::move(value), lease, false};
  }
  static TxnOp remove(std::string key, bool prefix = false) { return {Kind::Delete, std::move(key), {}, 0, prefix}; }
};

struct TxnResult {
  bool succeeded = false;
  int64_t revision = 0;
  std::vector<Range> ranges;  // the results of the Get operations that ran, in order
};

struct WatchEvent {
  bool deleted = false;
  KeyValue kv;  // for a delete: key and mod revision only
};

// What a watch delivers: the events of one or more revisions, or a progress
// notice (no events: nothing changed up to `revision`).
struct WatchBatch {
  int64_t revision = 0;
  std::vector<WatchEvent> events;
};

// The key after every key that starts with `prefix` (etcd's range_end).
std::string prefixEnd(const std::string& prefix);

class EtcdClient {
 public:
  static Result<std::unique_ptr<EtcdClient>> connect(const EtcdOptions& options);
  ~EtcdClient();
  EtcdClient(const EtcdClient&) = delete;
  EtcdClient& operator=(const EtcdClient&) = delete;

  Result<Range> get(const std::string& key, bool prefix = false, int64_t revision = 0);
  Result<int64_t> put(const std::string& key, const std::string& value, int64_t lease = 0);  // -> revision
  Result<int64_t> remove(const std::string& key, bool prefix = false);                        // -> revision
  Result<TxnResult> txn(const std::vector<Compare>& compare, const std::vector<TxnOp>& onSuccess,
                        const std::vector<TxnOp>& onFailure = {});

  Result<int64_t> grantLease(int64_t ttlSeconds);  // -> lease id
  Result<void> revokeLease(int64_t id);
  // Seconds the lease has left; -1 if it expired or never existed.
  Result<int64_t> leaseRemaining(int64_t id);

  // Renews a lease every third of its TTL on a thread of its own, for as
  // long as the returned object lives; reconnects when the stream breaks.
  // `onExpired` runs (on that thread) if etcd says the lease is gone.
  class LeaseKeeper {
   public:
    virtual ~LeaseKeeper() = default;  // stops renewing
  };
  std::unique_ptr<LeaseKeeper> keepAlive(int64_t id, int64_t ttlSeconds, std::function<void()> onExpired);

  // Watches every key under `prefix` from `fromRevision` (inclusive; 0:
  // from now) on a thread of its own, for as long as the returned object
  // lives. Batches are delivered in revision order, each revision once,
  // also across reconnects. If `fromRevision` was compacted away, the watch
  // ends and `onCompacted` gets the compaction revision: the caller lists
  // the prefix again and starts a new watch after that list's revision.
  // Callbacks run on the watch's thread; the Watcher must not be destroyed
  // from inside one.
  class Watcher {
   public:
    virtual ~Watcher() = default;  // ends the watch
  };
  std::unique_ptr<Watcher> watch(const std::string& prefix, int64_t fromRevision,
                                 std::function<void(const WatchBatch&)> onBatch,
                                 std::function<void(int64_t compactRevision)> onCompacted);

  struct EndpointStatus {
    std::string endpoint;
    bool healthy = false;
    std::string version;
    std::string error;
    uint64_t memberId = 0;
    bool leader = false;
    int64_t revision = 0;
    double latencyMs = 0;
  };
  // Asks every endpoint (1 s each).
  std::vector<EndpointStatus> endpointStatus();
  // The endpoint requests go to now.
  std::string currentEndpoint() const;
  const EtcdOptions& options() const { return options_; }

  struct Channels;  // the client's inside (etcd_channels.h)

 private:
  explicit EtcdClient(EtcdOptions options);
  EtcdOptions options_;
  std::unique_ptr<Channels> channels_;
};

}  // namespace microseg::cluster
