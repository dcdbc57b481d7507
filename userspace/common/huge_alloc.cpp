#include "common/huge_alloc.h"

#include <sys/mman.h>

namespace microseg::huge_alloc {

void* map(size_t bytes) {
  const size_t len = mappedBytes(bytes);
  // One huge page more than needed, then the unaligned head and the tail
  // are unmapped: the block starts on a 2 MiB boundary.
  void* raw = mmap(nullptr, len + kHugePage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (raw == MAP_FAILED) throw std::bad_alloc();
  const auto start = reinterpret_cast<uintptr_t>(raw);
  const uintptr_t aligned = (start + kHugePage - 1) & ~(uintptr_t(kHugePage) - 1);
  if (aligned > start) munmap(raw, aligned - start);
  const uintptr_t end = start + len + kHugePage;
  if (end > aligned + len) munmap(reinterpret_cast<void*>(aligned + len), end - (aligned + len));
  // Advice only: without THP the block is still good, in 4 KiB pages.
  if (len >= kHugePage) (void)madvise(reinterpret_cast<void*>(aligned), len / kHugePage * kHugePage, MADV_HUGEPAGE);
  return reinterpret_cast<void*>(aligned);
}

void unmap(void* p, size_t bytes) { munmap(p, mappedBytes(bytes)); }

}  // namespace microseg::huge_alloc
