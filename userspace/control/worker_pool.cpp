#include "control/worker_pool.h"

#include <pthread.h>

namespace microseg::control {

WorkerPool::WorkerPool(size_t threads, std::string name) : name_(std::move(name)) {
  for (size_t i = 0; i < (threads == 0 ? 1 : threads); i++) threads_.emplace_back([this] { work(); });
}

WorkerPool::~WorkerPool() { stop(); }

void WorkerPool::post(uint64_t lane, std::function<void()> job) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return;
    auto& queue = waiting_[lane];
    if (queue.empty()) turns_.push_back(lane);
    queue.push_back(std::move(job));
  }
  ready_.notify_one();
}

void WorkerPool::stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
    waiting_.clear();
    turns_.clear();
  }
  ready_.notify_all();
  for (auto& t : threads_) {
    if (t.joinable()) t.join();
  }
  threads_.clear();
}

void WorkerPool::work() {
  (void)pthread_setname_np(pthread_self(), name_.substr(0, 15).c_str());
  for (;;) {
    std::function<void()> job;
    {
      std::unique_lock<std::mutex> lock(mu_);
      ready_.wait(lock, [this] { return stopping_ || !turns_.empty(); });
      if (stopping_) return;
      const uint64_t lane = turns_.front();
      turns_.pop_front();
      auto it = waiting_.find(lane);
      job = std::move(it->second.front());
      it->second.pop_front();
      if (it->second.empty()) {
        waiting_.erase(it);
      } else {
        turns_.push_back(lane);  // its next job after the other lanes' turns
      }
    }
    job();
  }
}

}  // namespace microseg::control
