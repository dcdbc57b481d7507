// daemon::loadConfigFile() on a file written from the input, under the
// default bounds and tight ones: no crash or sanitizer finding, every
// diagnostic located in the file, and a file read without a diagnostic
// leaves only values the daemon accepts (in their ranges, strings without
// control characters) in its configuration.
//
// Input: one byte of settings (bounds), then the file's text.
#include <string>

#include "common/text.h"
#include "daemon/config_file.h"
#include "fuzz_util.h"
#include "policy/value_checks.h"

using namespace microseg;

namespace {

void cleanString(const std::string& s, const char* what) {
  fuzz::check(policy::controlCharAt(s) == std::string_view::npos, std::string(what) + " holds a control character", s);
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  fuzz::quietLogs();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const uint8_t settings = data[0];
  const std::string_view text(reinterpret_cast<const char*>(data) + 1, size - 1);
  policy::LoadLimits limits;
  if (settings & 0x01) limits.yaml.maxDepth = 4;
  if (settings & 0x02) {
    limits.yaml.aliasFloor = 10;
    limits.yaml.aliasFactor = 1;
  }
  if (settings & 0x04) limits.maxFileBytes = 256;

  static fuzz::MemFile file;
  file.write(text);
  daemon::DaemonConfig cfg;
  std::string logLevel;
  const auto errs = daemon::loadConfigFile(file.path(), cfg, logLevel, limits);

  std::string all;
  for (const auto& d : errs) all += d.str() + "\n";
  for (const auto& d : errs) {
    fuzz::check(d.loc.file == file.path() && !d.message.empty(), "a diagnostic without its file or message", all);
    if (d.message.rfind("YAML ", 0) == 0) fuzz::check(errs.size() == 1, "a YAML error is not the only one", all);
  }
  if (text.size() > limits.maxFileBytes) fuzz::check(!errs.empty(), "a file over the size bound is read", all);
  if (errs.empty()) {
    fuzz::check(cfg.mode == MS_MODE_MONITOR || cfg.mode == MS_MODE_ENFORCE, "a mode out of range");
    fuzz::check(cfg.answerTtlSeconds >= 1 && cfg.answerTtlSeconds <= 3600, "answerTtlSeconds out of range");
    fuzz::check(cfg.rescanIntervalMs >= 100 && cfg.rescanIntervalMs <= 60000, "rescanIntervalMs out of range");
    fuzz::check(cfg.flowStoreSize >= 1 && cfg.flowStoreSize <= 10000000, "flowStoreSize out of range");
    fuzz::check(logLevel.empty() || logLevel == "trace" || logLevel == "debug" || logLevel == "info" ||
                    logLevel == "warn" || logLevel == "error",
                "a log level out of range", logLevel);
    cleanString(cfg.cgroupRoot, "cgroupRoot");
    cleanString(cfg.socketPath, "socket");
    cleanString(cfg.stateDir, "stateDir");
    cleanString(cfg.flowLog, "flowLog");
    cleanString(cfg.metricsListen, "metricsListen");
    for (const auto& p : cfg.policyPaths) cleanString(p, "policy");
  }
  // What status and the start-up log print of it always dumps.
  fuzz::check(text::isUtf8(text::jsonText(cfg.toJson())), "the configuration's JSON is not UTF-8");
  return 0;
}
