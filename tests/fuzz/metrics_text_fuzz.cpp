// The Prometheus text format (control/metrics_text.h). Two ways in, by the
// input's first byte:
//  - render: families built from the input (names, HELP texts and label
//    values of any bytes, as a workload's or cgroup's name can be, any
//    double) rendered, then read back by the strict parser: it must accept
//    the text and give the same families (label values and HELP replaced as
//    toUtf8() does, values exactly; NaN as NaN);
//  - parse: any text read by the strict parser; what it accepts renders to a
//    text it reads back as the same families.
#include <fuzzer/FuzzedDataProvider.h>

#include <cmath>
#include <set>
#include <string>

#include "common/text.h"
#include "control/metrics_text.h"
#include "fuzz_util.h"

using namespace microseg;

namespace {

bool sameValue(double a, double b) { return (std::isnan(a) && std::isnan(b)) || a == b; }

void expectSame(const std::vector<metrics::Family>& want, const std::vector<metrics::Family>& got,
                const std::string& text) {
  fuzz::check(want.size() == got.size(), "families lost or added", text);
  for (size_t i = 0; i < want.size(); i++) {
    const auto &w = want[i], &g = got[i];
    fuzz::check(w.name == g.name && w.type == g.type && w.help == g.help && w.samples.size() == g.samples.size(),
                "family " + w.name + " read back as something else", text);
    for (size_t k = 0; k < w.samples.size(); k++) {
      fuzz::check(w.samples[k].labels == g.samples[k].labels && sameValue(w.samples[k].value, g.samples[k].value),
                  "a sample of " + w.name + " read back as something else", text);
    }
  }
}

void renderThenParse(FuzzedDataProvider& in) {
  std::vector<metrics::Family> families;  // as rendered
  std::vector<metrics::Family> expected;  // as they should read back
  std::set<std::string> names;
  const int count = in.ConsumeIntegralInRange(1, 4);
  for (int f = 0; f < count; f++) {
    metrics::Family fam;
    fam.type = in.ConsumeBool() ? metrics::Type::Counter : metrics::Type::Gauge;
    fam.name = "ms_" + std::to_string(f) + (fam.type == metrics::Type::Counter ? "_total" : "");
    fam.help = in.ConsumeRandomLengthString(64);
    std::set<std::map<std::string, std::string>> series;
    const int samples = in.ConsumeIntegralInRange(0, 4);
    metrics::Family want = fam;
    want.help = text::toUtf8(fam.help);
    for (int s = 0; s < samples; s++) {
      metrics::Sample sample;
      const int labels = in.ConsumeIntegralInRange(0, 3);
      for (int l = 0; l < labels; l++) sample.labels["l" + std::to_string(l)] = in.ConsumeRandomLengthString(32);
      sample.value = in.ConsumeFloatingPoint<double>();
      metrics::Sample wantSample = sample;
      for (auto& [k, v] : wantSample.labels) v = text::toUtf8(v);
      // Two label values may become one after replacement: that series
      // would be there twice, which the format forbids; not made here.
      if (!series.insert(wantSample.labels).second) continue;
      fam.samples.push_back(sample);
      want.samples.push_back(wantSample);
    }
    families.push_back(fam);
    expected.push_back(want);
  }
  const std::string text = metrics::render(families);
  fuzz::check(text::isUtf8(text), "rendered metrics are not UTF-8", text);
  auto parsed = metrics::parse(text);
  fuzz::check(parsed.ok(), "the parser refuses what render() wrote", text + "\n" + (parsed.ok() ? "" : parsed.error().str()));
  expectSame(expected, *parsed, text);
}

void parseThenRender(const std::string& input) {
  auto parsed = metrics::parse(input);
  if (!parsed.ok()) return;
  const std::string text = metrics::render(*parsed);
  auto again = metrics::parse(text);
  fuzz::check(again.ok(), "the parser refuses the rendering of what it accepted", input + "\n---\n" + text);
  expectSame(*parsed, *again, text);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  if (data[0] & 1) {
    FuzzedDataProvider in(data + 1, size - 1);
    renderThenParse(in);
  } else {
    parseThenRender(std::string(reinterpret_cast<const char*>(data) + 1, size - 1));
  }
  return 0;
}
