// A few threads that run jobs. The control server runs command handlers
// here, so a slow handler holds one worker, not the socket's I/O loop, and
// read-only commands have workers of their own while a mutation (a reload:
// up to seconds) runs. Jobs are posted per lane (the caller's uid) and the
// lanes take turns: one uid queueing many slow requests delays another
// uid's request by at most one of them per worker, not by all of them.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
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

  // Jobs of one lane run in the order posted; lanes with jobs waiting take
  // turns, one job each.
  void post(uint64_t lane, std::function<void()> job);
  // Jobs not started yet are dropped; running ones finish; joins. Idempotent.
  void stop();

 private:
  void work();

  std::string name_;
  std::mutex mu_;
  std::condition_variable ready_;
  std::map<uint64_t, std::deque<std::function<void()>>> waiting_;  // by lane, never empty
  std::deque<uint64_t> turns_;  // lanes in waiting_, next first
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace microseg::control
