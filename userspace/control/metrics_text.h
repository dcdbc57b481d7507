// Prometheus text exposition format 0.0.4: rendering, and a strict parser
// used by tests (and self-checks) to verify what the daemon serves.
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

// Metric names: [a-zA-Z_:][a-zA-Z0-9_:]*.
bool validMetricName(const std::string& name);
// Label names: [a-zA-Z_][a-zA-Z0-9_]*, not starting with "__" (reserved).
bool validLabelName(const std::string& name);

// A sample value as Prometheus spells it: integers without exponent or ".0"
// (up to 2^63), other finite values in the shortest form that reads back
// exactly, "+Inf", "-Inf", "NaN".
std::string formatValue(double value);

// "# HELP name help\n# TYPE name counter\nname{a="x",b="y"} 12\n" per family,
// labels in name order. Label values escape backslash, double quote and
// newline; HELP escapes backslash and newline; both are encoded as
// text::toUtf8() does (the format is UTF-8). Throws std::invalid_argument
// naming the culprit for an invalid metric or label name or a family name
// used twice (all programming errors).
std::string render(const std::vector<Family>& families);

// Strict parser of what render() produces. Every line is a HELP, a TYPE or a
// sample (no comments, blank lines or timestamps) and the text ends with a
// newline; at most one HELP and exactly one TYPE (counter or gauge) per
// family, both before its samples; the lines of a family are contiguous;
// counter names end in _total; no duplicate series (same name and label
// set); values are floats; every line is valid UTF-8. Errors read "parse metrics of 'line N' failed:
// <what is wrong>".
Result<std::vector<Family>> parse(const std::string& text);

}  // namespace microseg::metrics
