#include "policy/locations.h"

#include <utility>

namespace microseg::policy {

void shift(SourceLocation& l, int lines) {
  if (l.line > 0) l.line += lines;
}
void shift(Peer& p, int lines) { shift(p.loc, lines); }
void shift(Rule& r, int lines) {
  shift(r.loc, lines);
  if (r.peers) {
    for (auto& p : *r.peers) shift(p, lines);
  }
  for (auto& pr : r.ports) shift(pr.loc, lines);
}
void shift(Workload& w, int lines) { shift(w.loc, lines); }
void shift(External& e, int lines) { shift(e.loc, lines); }
void shift(Policy& p, int lines) {
  shift(p.loc, lines);
  shift(p.selector, lines);
  shift(p.stagedLoc, lines);
  for (auto& r : p.egress) shift(r, lines);
  for (auto& r : p.ingress) shift(r, lines);
}

namespace {

template <typename T>
void appendShifted(SharedList<T>& to, const SharedList<T>& from, int lines) {
  for (const T& x : from) {
    T copy = x;
    shift(copy, lines);
    to.push_back(std::move(copy));
  }
}

}  // namespace

Bundle shifted(const Bundle& from, int lines) {
  Bundle out;
  appendShifted(out.workloads, from.workloads, lines);
  appendShifted(out.externals, from.externals, lines);
  appendShifted(out.policies, from.policies, lines);
  return out;
}

}  // namespace microseg::policy
