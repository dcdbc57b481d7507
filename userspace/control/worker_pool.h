// A few threads that run jobs in the order they were posted. The control
// server runs command handlers here, so a slow handler holds one worker,
// not the socket's I/O loop, and read-only commands have workers of their
// own while a mutation (a reload: up to seconds) runs.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace microseg::control {

class WorkerPool {
 public:
  // `name` (at most 15 characters) names the threads, for ps and gdb.
  WorkerPool(size_t threads, std::string name);
  ~WorkerPool();  // stop()
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  void post(std::function<void()> job);
  // Jobs not started yet are dropped; running ones finish; joins. Idempotent.
  void stop();

 private:
  void work();

  std::string name_;
  std::mutex mu_;
  std::condition_variable ready_;
  std::deque<std::function<void()>> jobs_;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace microseg::control
