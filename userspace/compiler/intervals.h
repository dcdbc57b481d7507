// Port intervals of one (subject, direction, protocol, peer) and their
// precedence: deny beats allow, then the earlier rule (compiler.cpp).
#pragma once

#include <algorithm>
#include <cstdint>
#include <set>
#include <tuple>
#include <vector>

#include "bpf/abi.h"

namespace microseg::compiler {

// A port interval contributed by one rule, before precedence is resolved.
struct Interval {
  uint32_t first, last;  // inclusive, 0..65535
  uint8_t verdict;       // MS_VERDICT_ALLOW | MS_VERDICT_DENY
  uint64_t order;        // rule order: lower wins among equal verdicts
  uint32_t ruleId;
};

using Intervals = std::vector<Interval>;

// Deny beats allow; then the earlier rule: the disjoint, merged pieces of
// one peer's intervals. Keeps its buffers between calls (a compile resolves
// one set per subject, direction, protocol and peer).
class Resolver {
 public:
  const Intervals& operator()(const Intervals& in) {
    out_.clear();
    if (in.size() <= 1) return in;
    // Mostly one rule per port: nothing overlaps, and the pieces are the
    // intervals in port order (what the sweep below gives them too).
    sorted_ = in;
    std::sort(sorted_.begin(), sorted_.end(), [](const Interval& a, const Interval& b) { return a.first < b.first; });
    bool overlap = false;
    for (size_t i = 1; i < sorted_.size() && !overlap; i++) overlap = sorted_[i].first <= sorted_[i - 1].last;
    if (!overlap) {
      for (const Interval& iv : sorted_) add(iv.first, iv.last, iv);
      return out_;
    }
    evs_.clear();
    for (size_t i = 0; i < in.size(); i++) {
      evs_.push_back({in[i].first, true, i});
      evs_.push_back({in[i].last + 1, false, i});
    }
    std::sort(evs_.begin(), evs_.end(), [](const Ev& a, const Ev& b) { return a.at < b.at; });
    auto prio = [&](size_t i) {
      return std::make_tuple(in[i].verdict == MS_VERDICT_DENY ? 0 : 1, in[i].order, i);
    };
    std::set<std::tuple<int, uint64_t, size_t>> active;
    size_t e = 0;
    while (e < evs_.size()) {
      const uint32_t at = evs_[e].at;
      while (e < evs_.size() && evs_[e].at == at) {
        if (evs_[e].start) {
          active.insert(prio(evs_[e].idx));
        } else {
          active.erase(prio(evs_[e].idx));
        }
        e++;
      }
      if (active.empty() || e >= evs_.size()) continue;
      add(at, evs_[e].at - 1, in[std::get<2>(*active.begin())]);
    }
    return out_;
  }

 private:
  struct Ev {
    uint32_t at;
    bool start;
    size_t idx;
  };
  // [first, last] is decided by `win`: joined to the piece before it if
  // that one ends right before it with the same verdict and rule.
  void add(uint32_t first, uint32_t last, const Interval& win) {
    if (!out_.empty() && out_.back().last + 1 == first && out_.back().verdict == win.verdict &&
        out_.back().ruleId == win.ruleId) {
      out_.back().last = last;
    } else {
      out_.push_back({first, last, win.verdict, win.order, win.ruleId});
    }
  }
  Intervals sorted_, out_;
  std::vector<Ev> evs_;
};

}  // namespace microseg::compiler
