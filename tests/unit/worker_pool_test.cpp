// The control server's worker pools: lanes (uids) take turns, stop() drops
// what has not started and waits for what has.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <vector>

#include "control/worker_pool.h"

namespace microseg::control {
namespace {

using namespace std::chrono_literals;

TEST(WorkerPool, LanesTakeTurns) {
  WorkerPool pool(1, "test-pool");
  std::mutex mu;
  std::vector<std::string> ran;
  std::atomic<bool> release{false};
  // The worker is held by a first job while the others queue up.
  pool.post(1, [&] {
    while (!release) std::this_thread::sleep_for(1ms);
  });
  std::this_thread::sleep_for(20ms);
  auto job = [&](std::string name) {
    return [&, name] {
      std::lock_guard<std::mutex> lock(mu);
      ran.push_back(name);
    };
  };
  for (int i = 0; i < 4; i++) pool.post(1, job("a" + std::to_string(i)));  // one uid queues four
  pool.post(2, job("b0"));                                                // another uid, after them
  pool.post(2, job("b1"));
  release = true;
  for (int i = 0; i < 500; i++) {
    {
      std::lock_guard<std::mutex> lock(mu);
      if (ran.size() == 6) break;
    }
    std::this_thread::sleep_for(2ms);
  }
  std::lock_guard<std::mutex> lock(mu);
  EXPECT_EQ(ran, (std::vector<std::string>{"a0", "b0", "a1", "b1", "a2", "a3"}))
      << "uid 2 waits for one job of uid 1, not for all four";
}

TEST(WorkerPool, StopDropsWaitingJobsAndWaitsForRunningOnes) {
  std::atomic<int> done{0};
  std::atomic<bool> started{false};
  {
    WorkerPool pool(1, "test-pool");
    pool.post(7, [&] {
      started = true;
      std::this_thread::sleep_for(100ms);
      done++;
    });
    for (int i = 0; i < 3; i++) pool.post(7, [&] { done += 100; });
    while (!started) std::this_thread::sleep_for(1ms);
    pool.stop();
    EXPECT_EQ(done.load(), 1) << "the running job finished, the waiting ones were dropped";
    pool.post(7, [&] { done += 1000; });  // after stop: ignored
  }
  EXPECT_EQ(done.load(), 1);
}

TEST(WorkerPool, ThreadsRunJobsSideBySide) {
  WorkerPool pool(3, "test-pool");
  std::atomic<int> running{0}, peak{0}, done{0};
  for (int i = 0; i < 3; i++) {
    pool.post(static_cast<uint64_t>(i), [&] {
      const int now = ++running;
      int p = peak.load();
      while (now > p && !peak.compare_exchange_weak(p, now)) {
      }
      std::this_thread::sleep_for(50ms);
      running--;
      done++;
    });
  }
  for (int i = 0; i < 500 && done < 3; i++) std::this_thread::sleep_for(2ms);
  EXPECT_EQ(done.load(), 3);
  EXPECT_EQ(peak.load(), 3);
}

}  // namespace
}  // namespace microseg::control
