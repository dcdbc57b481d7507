#include "datapath/event_spool.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <utility>

namespace microseg::datapath {

Result<std::unique_ptr<EventSpool>> EventSpool::start(Datapath& dp, size_t capacity, int tickMs) {
  UniqueFd stop(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!stop) return sysError("eventfd", "event spool");
  std::unique_ptr<EventSpool> s(new EventSpool(dp, capacity, tickMs, std::move(stop)));
  s->thread_ = std::thread([raw = s.get()] { raw->run(); });
  return s;
}

EventSpool::EventSpool(Datapath& dp, size_t capacity, int tickMs, UniqueFd stopFd)
    : dp_(dp), capacity_(capacity), tickMs_(tickMs), stopFd_(std::move(stopFd)) {}

EventSpool::~EventSpool() {
  const uint64_t one = 1;
  (void)!write(stopFd_.get(), &one, sizeof(one));
  if (thread_.joinable()) thread_.join();
}

// Wakes when the kernel forces a wakeup (the ring a quarter full) and
// every tick otherwise; a read error is the consumer's to report (take()
// reads the ring too).
void EventSpool::run() {
  int ringFd = dp_.eventFd();
  for (;;) {
    pollfd fds[2] = {{ringFd, POLLIN, 0}, {stopFd_.get(), POLLIN, 0}};
    const int n = poll(fds, 2, tickMs_);
    if (n > 0 && (fds[1].revents & POLLIN)) return;
    if (fds[0].revents & (POLLERR | POLLNVAL)) ringFd = -1;  // the tick alone, not a spin
    std::lock_guard<std::mutex> lock(mu_);
    (void)collectLocked();
  }
}

Result<int> EventSpool::collectLocked() {
  const EventHandler handler = [this](const ms_event& e) {
    if (pending_.size() < capacity_) {
      pending_.push_back(e);
    } else {
      dropped_.fetch_add(1, std::memory_order_relaxed);
    }
  };
  return dp_.drainEvents(handler);
}

Result<void> EventSpool::take(std::vector<ms_event>& out) {
  out.clear();
  // A flood's worth of memory is not kept once it has been rendered.
  if (out.capacity() > capacity_ / 8) std::vector<ms_event>().swap(out);
  std::lock_guard<std::mutex> lock(mu_);
  auto n = collectLocked();
  pending_.swap(out);
  if (!n) return n.error();
  return {};
}

}  // namespace microseg::datapath
