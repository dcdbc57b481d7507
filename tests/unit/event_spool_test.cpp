// The event spool between the kernel's ring and the daemon: order, the
// ring's current contents on take(), overflow counted, its own thread.
#include <gtest/gtest.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <chrono>
#include <deque>
#include <mutex>
#include <thread>

#include "datapath/event_spool.h"
#include "fake_datapath.h"

namespace microseg::datapath {
namespace {

// A ring of events behind the Datapath interface (the kernel one is in the
// e2e tests: Observe.EventsAreDrainedWhileABigPolicyIsApplied).
class RingOnly : public FakeDatapath {
 public:
  RingOnly() : fd_(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {}
  ~RingOnly() override { close(fd_); }

  void produce(uint64_t from, uint64_t n) {
    std::lock_guard<std::mutex> lock(mu_);
    for (uint64_t i = 0; i < n; i++) {
      ms_event e{};
      e.timestamp_ns = from + i;
      ring_.push_back(e);
    }
  }
  size_t inRing() {
    std::lock_guard<std::mutex> lock(mu_);
    return ring_.size();
  }

  Result<int> drainEvents(const EventHandler& handler) override {
    std::lock_guard<std::mutex> lock(mu_);
    uint64_t v;
    (void)!read(fd_, &v, sizeof(v));  // like the ring's fd: readable until read
    int n = 0;
    for (; !ring_.empty(); n++) {
      handler(ring_.front());
      ring_.pop_front();
    }
    return n;
  }
  int eventFd() const override { return fd_; }

 private:
  int fd_;
  std::mutex mu_;
  std::deque<ms_event> ring_;
};

std::vector<uint64_t> stamps(const std::vector<ms_event>& events) {
  std::vector<uint64_t> out;
  for (const auto& e : events) out.push_back(e.timestamp_ns);
  return out;
}

TEST(EventSpool, TakeHasWhatTheRingHoldsNowInOrder) {
  RingOnly ring;
  auto spool = EventSpool::start(ring);
  ASSERT_TRUE(spool) << spool.error().str();
  std::vector<ms_event> got;
  ASSERT_TRUE((*spool)->take(got));
  EXPECT_TRUE(got.empty());
  ring.produce(1, 3);
  ASSERT_TRUE((*spool)->take(got));  // without waiting for the thread
  EXPECT_EQ(stamps(got), (std::vector<uint64_t>{1, 2, 3}));
  ring.produce(4, 2);
  ASSERT_TRUE((*spool)->take(got));
  EXPECT_EQ(stamps(got), (std::vector<uint64_t>{4, 5})) << "take() replaces, it does not append";
  EXPECT_EQ((*spool)->dropped(), 0u);
}

TEST(EventSpool, ItsThreadEmptiesTheRingWhileNobodyTakes) {
  RingOnly ring;
  auto spool = EventSpool::start(ring);
  ASSERT_TRUE(spool);
  ring.produce(1, 1000);
  // The thread reads every 100 ms without a wakeup: allow 5 s on a busy VM.
  for (int i = 0; i < 500 && ring.inRing() != 0; i++) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_EQ(ring.inRing(), 0u);
  std::vector<ms_event> got;
  ASSERT_TRUE((*spool)->take(got));
  ASSERT_EQ(got.size(), 1000u);
  EXPECT_EQ(got.front().timestamp_ns, 1u);
  EXPECT_EQ(got.back().timestamp_ns, 1000u);
}

TEST(EventSpool, WhatFindsItFullIsCountedAndTheOldestAreKept) {
  RingOnly ring;
  auto spool = EventSpool::start(ring, /*capacity=*/4);
  ASSERT_TRUE(spool);
  ring.produce(1, 10);
  std::vector<ms_event> got;
  ASSERT_TRUE((*spool)->take(got));
  EXPECT_EQ(stamps(got), (std::vector<uint64_t>{1, 2, 3, 4}));
  EXPECT_EQ((*spool)->dropped(), 6u);
  EXPECT_EQ(ring.inRing(), 0u) << "the ring is emptied even when the spool is full";
  ring.produce(11, 2);  // room again once taken
  ASSERT_TRUE((*spool)->take(got));
  EXPECT_EQ(stamps(got), (std::vector<uint64_t>{11, 12}));
  EXPECT_EQ((*spool)->dropped(), 6u);
}

TEST(EventSpool, AWakeupFromTheKernelIsServedWithoutWaitingForTheTick) {
  RingOnly ring;
  auto spool = EventSpool::start(ring, EventSpool::kDefaultCapacity, /*tickMs=*/600000);
  ASSERT_TRUE(spool);
  ring.produce(1, 1);
  const uint64_t one = 1;
  ASSERT_EQ(write(ring.eventFd(), &one, sizeof(one)), ssize_t(sizeof(one)));
  for (int i = 0; i < 500 && ring.inRing() != 0; i++) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_EQ(ring.inRing(), 0u);
  // (and the destructor does not wait for the 10-minute tick)
}

}  // namespace
}  // namespace microseg::datapath
