// Keeps the kernel's event ring drained while its consumer is busy.
//
// The daemon renders events (flow records, the flow log, metrics) under the
// lock that a policy reload holds for up to a second at 100k rules. The ring
// holds ~15k events (abi.h), ~55 ms of a 270k/s connect flood: a reload
// that goes 100 ms without rendering lost the rest. A thread of its own
// copies events out of the ring as soon as the kernel wakes it (ring a
// quarter full, no wakeup per event) into a bounded spool that the consumer
// takes from whenever it can; the copy costs a memcpy per event, so the
// thread keeps up on a CPU shared with the flood and the reload.
//
// What overflows the spool is counted (dropped()), like the kernel counts
// what overflows the ring: the two add up to the events lost.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "common/result.h"
#include "common/fd.h"
#include "datapath/datapath.h"

namespace microseg::datapath {

class EventSpool {
 public:
  // 64k events: ~7 MiB at most, held only while a flood outpaces the
  // consumer; with the ring, ~290 ms of a 270k/s flood.
  static constexpr size_t kDefaultCapacity = 65536;

  // Starts the thread, which reads the ring when the kernel wakes it and
  // every `tickMs`. `dp` must outlive the spool, and nobody else may call
  // dp.drainEvents() while it lives.
  static Result<std::unique_ptr<EventSpool>> start(Datapath& dp, size_t capacity = kDefaultCapacity,
                                                   int tickMs = 100);
  ~EventSpool();  // stops and joins the thread; events still in the ring stay there
  EventSpool(const EventSpool&) = delete;
  EventSpool& operator=(const EventSpool&) = delete;

  // Everything received so far, the ring's current contents included (a
  // query sees what the kernel has now), oldest first. `out` is replaced;
  // pass the same vector each time to reuse its memory.
  Result<void> take(std::vector<ms_event>& out);
  // Events that found the spool full.
  uint64_t dropped() const { return dropped_.load(std::memory_order_relaxed); }

 private:
  EventSpool(Datapath& dp, size_t capacity, int tickMs, UniqueFd stopFd);
  void run();
  Result<int> collectLocked();

  Datapath& dp_;
  const size_t capacity_;
  const int tickMs_;
  UniqueFd stopFd_;  // eventfd: the destructor wakes the thread with it
  std::mutex mu_;    // the ring's consumer position and pending_
  std::vector<ms_event> pending_;
  std::atomic<uint64_t> dropped_{0};
  std::thread thread_;
};

}  // namespace microseg::datapath
