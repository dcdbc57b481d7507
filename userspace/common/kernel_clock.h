// The clock the datapath stamps with (bpf_ktime_get_coarse_ns():
// CLOCK_MONOTONIC_COARSE), as userspace compares with those stamps: UDP
// exchanges, observed edges, fqdn bindings, grants' expiry in the kernel.
#pragma once

#include <time.h>

#include <cstdint>

namespace microseg {

inline uint64_t kernelCoarseNs() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
}

}  // namespace microseg
