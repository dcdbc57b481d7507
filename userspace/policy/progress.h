// Progress of long loops (the loader's, the datapath's map writes), for a
// caller that has to keep other work going meanwhile: the daemon renders
// events while a reload parses (a 100k-rule document alone takes a few
// hundred ms, and rendering takes the same lock as the reload).
#pragma once

#include <functional>

namespace microseg::policy {

// While one lives, progressTick() on this thread calls `f` about every
// 10 ms. Scopes do not nest (the inner one wins until it ends).
class ProgressScope {
 public:
  explicit ProgressScope(std::function<void()> f);
  ~ProgressScope();
  ProgressScope(const ProgressScope&) = delete;
  ProgressScope& operator=(const ProgressScope&) = delete;
};

// Called by those loops (per YAML event, rule, document, map write);
// reads the clock once every 256 calls, and only under a scope.
void progressTick();

}  // namespace microseg::policy
