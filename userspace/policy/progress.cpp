#include "policy/progress.h"

#include <time.h>

#include <cstdint>
#include <utility>

namespace microseg::policy {
namespace {

struct Progress {
  std::function<void()> f;
  uint32_t calls = 0;
  int64_t lastNs = 0;
};
thread_local Progress* current = nullptr;

int64_t monotonicNs() {
  struct timespec t {};
  clock_gettime(CLOCK_MONOTONIC, &t);
  return int64_t(t.tv_sec) * 1000000000 + t.tv_nsec;
}

}  // namespace

ProgressScope::ProgressScope(std::function<void()> f) {
  delete current;
  current = new Progress{std::move(f), 0, monotonicNs()};
}

ProgressScope::~ProgressScope() {
  delete current;
  current = nullptr;
}

void progressTick() {
  Progress* p = current;
  if (p == nullptr || ++p->calls % 256 != 0) return;
  const int64_t now = monotonicNs();
  if (now - p->lastNs < 10000000) return;
  p->lastNs = now;
  if (p->f) p->f();
}

}  // namespace microseg::policy
