// The flow log: one JSON line per aggregated flow record when it is new and
// then at most once a second with the count since its last line (a flood
// cannot flood the log; the counts of all lines add up to the events).
#pragma once

#include <cstdio>
#include <memory>
#include <string>

#include "common/result.h"

namespace microseg::daemon {

// Closes the flow log unless it is stdout.
struct FlowLogCloser {
  bool owned = true;
  void operator()(FILE* f) const {
    if (owned) fclose(f);
  }
};

class FlowLogFile {
 public:
  // "" = no flow log, "-" = stdout, else a file opened for appending.
  static Result<FlowLogFile> open(const std::string& where);
  FlowLogFile() = default;
  bool enabled() const { return file_ != nullptr; }
  void write(const std::string& line);  // with its "\n"
  void flush();
  uint64_t writeErrors() const { return writeErrors_; }

 private:
  std::unique_ptr<FILE, FlowLogCloser> file_;
  uint64_t writeErrors_ = 0;
};

}  // namespace microseg::daemon
