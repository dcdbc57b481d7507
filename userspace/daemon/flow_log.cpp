#include "daemon/flow_log.h"

namespace microseg::daemon {

Result<FlowLogFile> FlowLogFile::open(const std::string& where) {
  FlowLogFile log;
  if (where.empty()) return log;
  if (where == "-") {
    log.file_ = std::unique_ptr<FILE, FlowLogCloser>(stdout, FlowLogCloser{false});
    return log;
  }
  FILE* f = fopen(where.c_str(), "ae");
  if (f == nullptr) return sysError("open flow log", where);
  log.file_ = std::unique_ptr<FILE, FlowLogCloser>(f, FlowLogCloser{true});
  return log;
}

void FlowLogFile::write(const std::string& line) {
  if (!file_) return;
  if (fwrite(line.data(), 1, line.size(), file_.get()) != line.size()) writeErrors_++;
}

void FlowLogFile::flush() {
  if (file_) fflush(file_.get());
}

}  // namespace microseg::daemon
