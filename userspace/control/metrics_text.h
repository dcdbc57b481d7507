// Prometheus text exposition format 0.0.4: rendering, and a strict parser
// used by tests to check what the daemon serves.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "common/result.h"

namespace microseg::metrics {

enum class Type { Counter, Gauge };

struct Sample {
  std::map<std::string, std::string> labels;
  double value = 0;
};

struct Family {
  std::string name;
  std::string help;
  Type type = Type::Counter;
  std::vector<Sample> samples;
};

// Throws std::invalid_argument for an invalid metric or label name (a bug).
std::string render(const std::vector<Family>& families);

// Strict: HELP/TYPE/sample lines only; TYPE once per family, before its
// samples; a family's samples contiguous; counters end in _total; no
// duplicate series; values are numbers. Errors name the line.
Result<std::vector<Family>> parse(const std::string& text);

}  // namespace microseg::metrics
