// The CLI's exit codes (main.cpp's header says what each means) and its
// one-line error report.
#pragma once

#include <iostream>
#include <string>

#include "cli/table.h"

namespace microseg::cli {

enum Exit { kOk = 0, kFailed = 1, kUsage = 2, kUnreachable = 3, kDenied = 4, kNotCluster = 5, kWouldBreak = 6 };

// The footer of --help (and so of the man page). Indented by 4: the package
// test reads "  name" lines after "Subcommands:" as commands.
constexpr const char* kExitCodes =
    "Exit codes:\n"
    "    0 success; 1 the command failed (invalid policy, an error from the daemon or etcd);\n"
    "    2 usage error (policy push: no etcd endpoint given or known to the local daemon);\n"
    "    3 microsegd (policy push: etcd) not reachable; 4 permission denied;\n"
    "    5 cluster status: the daemon is not in cluster mode;\n"
    "    6 policy diff: observed traffic would break (the candidate denies flows that passed).";

// "microseg: <message>" on stderr; returns `code`.
inline int fail(const std::string& msg, int code) {
  std::cerr << "microseg: " << sanitize(msg) << "\n";
  return code;
}

}  // namespace microseg::cli
