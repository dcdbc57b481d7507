// The etcd client's two streams, each on a thread of its own: a lease's
// keep-alive and a watch. Both reconnect by themselves (to the next
// endpoint if the last one never worked), with backoff from 100 ms to 2 s.
#include <condition_variable>
#include <mutex>
#include <thread>

#include <spdlog/spdlog.h>

#include "cluster/etcd_channels.h"

namespace microseg::cluster {
namespace {

// Ask etcd to end a stream when its member has no leader (a partitioned
// member would otherwise keep a watch open that never sees another event).
void requireLeader(grpc::ClientContext& ctx) { ctx.AddMetadata("hasleader", "true"); }

// What both streams share: the thread, the stop flag, the context in use
// (cancelled on stop) and an interruptible sleep.
class StreamThread {
 public:
  ~StreamThread() { stop(); }
  void start(std::function<void()> body) { thread_ = std::thread(std::move(body)); }
  void stop() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
      if (ctx_ != nullptr) ctx_->TryCancel();
    }
    cv_.notify_all();
    if (thread_.joinable() && thread_.get_id() != std::this_thread::get_id()) thread_.join();
  }
  // Registers the context of the stream being opened; false once stopping.
  bool use(grpc::ClientContext* ctx) {
    std::lock_guard<std::mutex> lock(mu_);
    ctx_ = ctx;
    return !stop_;
  }
  // Sleeps up to `ms`; false once stopping.
  bool sleep(int ms) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_for(lock, std::chrono::milliseconds(ms), [&] { return stop_; });
    return !stop_;
  }
  bool stopping() {
    std::lock_guard<std::mutex> lock(mu_);
    return stop_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  grpc::ClientContext* ctx_ = nullptr;
  std::thread thread_;
};

class LeaseKeeperThread final : public EtcdClient::LeaseKeeper {
 public:
  LeaseKeeperThread(EtcdClient::Channels& ch, int64_t id, int64_t ttl, std::function<void()> onExpired)
      : ch_(ch), id_(id), intervalMs_(static_cast<int>(std::max<int64_t>(ttl * 1000 / 3, 500))),
        onExpired_(std::move(onExpired)) {
    thread_.start([this] { run(); });
  }
  ~LeaseKeeperThread() override { thread_.stop(); }

 private:
  void run() {
    int backoffMs = 100;
    while (!thread_.stopping()) {
      const size_t i = ch_.current.load();
      auto conn = ch_.connection(i);
      grpc::ClientContext ctx;
      requireLeader(ctx);
      if (!thread_.use(&ctx)) return;
      auto stream = conn->lease->LeaseKeepAlive(&ctx);
      bool answered = false;
      for (;;) {
        etcdserverpb::LeaseKeepAliveRequest req;
        req.set_id(id_);
        etcdserverpb::LeaseKeepAliveResponse resp;
        if (!stream->Write(req) || !stream->Read(&resp)) break;
        answered = true;
        backoffMs = 100;
        if (resp.ttl() <= 0) {
          ctx.TryCancel();
          stream->Finish();
          thread_.use(nullptr);
          spdlog::warn("cluster: etcd lease {:x} expired", id_);
          if (onExpired_) onExpired_();
          return;
        }
        if (!thread_.sleep(intervalMs_)) break;
      }
      ctx.TryCancel();
      stream->Finish();
      if (!thread_.use(nullptr)) return;
      if (!answered) {
        ch_.renewIfStuck(i, conn);
        ch_.moveOn(i);
      }
      if (!thread_.sleep(backoffMs)) return;
      backoffMs = std::min(backoffMs * 2, 2000);
    }
  }

  EtcdClient::Channels& ch_;
  const int64_t id_;
  const int intervalMs_;
  std::function<void()> onExpired_;
  StreamThread thread_;  // last: stopped (joined) first
};

class WatchThread final : public EtcdClient::Watcher {
 public:
  WatchThread(EtcdClient::Channels& ch, std::string prefix, int64_t from, std::function<void(const WatchBatch&)> onBatch,
          std::function<void(int64_t)> onCompacted)
      : ch_(ch), prefix_(std::move(prefix)), next_(from), onBatch_(std::move(onBatch)),
        onCompacted_(std::move(onCompacted)) {
    thread_.start([this] { run(); });
  }
  ~WatchThread() override { thread_.stop(); }

 private:
  void run() {
    int backoffMs = 100;
    while (!thread_.stopping()) {
      const size_t i = ch_.current.load();
      auto conn = ch_.connection(i);
      grpc::ClientContext ctx;
      requireLeader(ctx);
      if (!thread_.use(&ctx)) return;
      auto stream = conn->watch->Watch(&ctx);
      etcdserverpb::WatchRequest req;
      auto* create = req.mutable_create_request();
      create->set_key(prefix_);
      create->set_range_end(prefixEnd(prefix_));
      create->set_start_revision(next_);
      create->set_progress_notify(true);
      bool created = false;
      int64_t compacted = 0;
      if (stream->Write(req)) {
        etcdserverpb::WatchResponse resp;
        while (stream->Read(&resp)) {
          if (resp.canceled()) {
            compacted = resp.compact_revision();
            if (compacted == 0) {
              spdlog::warn("cluster: etcd cancelled the watch of {}: {}", prefix_, resp.cancel_reason());
            }
            break;
          }
          if (resp.created()) {
            created = true;
            backoffMs = 100;
          }
          deliver(resp);
        }
      }
      ctx.TryCancel();
      stream->Finish();
      if (!thread_.use(nullptr)) return;
      if (compacted > 0) {
        if (onCompacted_) onCompacted_(compacted);
        return;
      }
      if (!created) {
        ch_.renewIfStuck(i, conn);
        ch_.moveOn(i);
      }
      if (!thread_.sleep(backoffMs)) return;
      backoffMs = std::min(backoffMs * 2, 2000);
    }
  }

  void deliver(const etcdserverpb::WatchResponse& resp) {
    WatchBatch b;
    for (const auto& ev : resp.events()) {
      // A revision delivered before a reconnect is not delivered again.
      if (ev.kv().mod_revision() < next_) continue;
      WatchEvent e;
      e.deleted = ev.type() == mvccpb::Event::DELETE;
      const auto& kv = ev.kv();
      e.kv = KeyValue{kv.key(), kv.value(), kv.create_revision(), kv.mod_revision(), kv.version(), kv.lease()};
      b.events.push_back(std::move(e));
    }
    if (!b.events.empty()) {
      b.revision = b.events.back().kv.modRevision;
    } else if (resp.events_size() == 0 && !resp.created() && resp.header().revision() >= next_) {
      // A progress notice: nothing up to here. (The reply that creates a
      // watch carries the store's revision too, but the events from the
      // start revision come after it: not progress.)
      b.revision = resp.header().revision();
    } else {
      return;
    }
    next_ = b.revision + 1;
    if (onBatch_) onBatch_(b);
  }

  EtcdClient::Channels& ch_;
  const std::string prefix_;
  int64_t next_;  // the first revision not delivered yet (0: from now)
  std::function<void(const WatchBatch&)> onBatch_;
  std::function<void(int64_t)> onCompacted_;
  StreamThread thread_;  // last: stopped (joined) first
};

}  // namespace

std::unique_ptr<EtcdClient::LeaseKeeper> EtcdClient::keepAlive(int64_t id, int64_t ttlSeconds,
                                                               std::function<void()> onExpired) {
  return std::make_unique<LeaseKeeperThread>(*channels_, id, ttlSeconds, std::move(onExpired));
}

std::unique_ptr<EtcdClient::Watcher> EtcdClient::watch(const std::string& prefix, int64_t fromRevision,
                                                       std::function<void(const WatchBatch&)> onBatch,
                                                       std::function<void(int64_t)> onCompacted) {
  return std::make_unique<WatchThread>(*channels_, prefix, fromRevision, std::move(onBatch), std::move(onCompacted));
}

}  // namespace microseg::cluster
