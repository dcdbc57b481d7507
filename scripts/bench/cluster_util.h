// Small helpers shared by microseg-bench-cluster's and microseg-bench-wire's files.
#pragma once

#include <time.h>

#include <cstdint>
#include <cstdlib>
#include <iostream>
#include <string>

namespace microseg::bench {

// The tool's name in die()'s messages (microseg-bench-wire sets its own).
inline const char* gToolName = "microseg-bench-cluster";

[[noreturn]] inline void die(const std::string& msg) {
  std::cerr << gToolName << ": " << msg << "\n";
  std::exit(1);
}

inline uint64_t nowNs() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return uint64_t(ts.tv_sec) * 1000000000ull + uint64_t(ts.tv_nsec);
}

}  // namespace microseg::bench
