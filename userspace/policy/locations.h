// Moving source locations: a document read before and found again further
// up or down its file (lines added or removed above it) keeps its parsed
// objects, with every location moved by the lines it moved.
#pragma once

#include "policy/model.h"

namespace microseg::policy {

// Every location of `x` moved down by `lines` (up if negative); an unknown
// location (line 0) stays unknown.
void shift(SourceLocation& l, int lines);
void shift(Peer& p, int lines);
void shift(Rule& r, int lines);
void shift(Workload& w, int lines);
void shift(External& e, int lines);
void shift(Policy& p, int lines);

// Copies of `from`'s objects with every location moved down by `lines`
// (the objects are shared and immutable, so they are copied, not edited).
Bundle shifted(const Bundle& from, int lines);

}  // namespace microseg::policy
