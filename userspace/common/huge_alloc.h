// An allocator for the vectors of megabytes that every reload builds anew
// (the compiled policy's entries: ~3 MiB at 100k rules).
//
// Such a block from malloc is carved out of the heap: once malloc_trim has
// given a freed one's pages back, or when the heap has no hole that big, a
// new one is faulted in a 4 KiB page at a time (on VMs ~12 us each: ~10 ms
// for 3 MiB, most of a one-rule change). Here a block of 1 MiB or more gets
// a mapping of its own that starts on a 2 MiB boundary; its whole 2 MiB
// parts are advised to use transparent huge pages (THP "madvise" mode, the
// usual default): a fault per 2 MiB. The rest stays in 4 KiB pages, so a
// block is resident for what is used of it, as from malloc. Its pages go
// back to the kernel when it is freed. Where the kernel has no huge page
// at hand it uses 4 KiB pages. Smaller blocks come from operator new.
#pragma once

#include <sys/mman.h>

#include <cstddef>
#include <cstdint>
#include <new>

namespace microseg {

namespace huge_alloc {
constexpr size_t kMinBytes = size_t(1) << 20;
constexpr size_t kHugePage = size_t(2) << 20;
void* map(size_t bytes);          // std::bad_alloc on failure
void unmap(void* p, size_t bytes);
constexpr size_t kPage = 4096;
inline size_t mappedBytes(size_t bytes) { return (bytes + kPage - 1) / kPage * kPage; }
}  // namespace huge_alloc

template <typename T>
struct HugePageAllocator {
  using value_type = T;
  HugePageAllocator() = default;
  template <typename U>
  HugePageAllocator(const HugePageAllocator<U>&) {}  // NOLINT: rebinding, as std::allocator

  T* allocate(size_t n) {
    if (n > SIZE_MAX / sizeof(T)) throw std::bad_array_new_length();
    const size_t bytes = n * sizeof(T);
    if (bytes < huge_alloc::kMinBytes) return static_cast<T*>(::operator new(bytes, std::align_val_t(alignof(T))));
    return static_cast<T*>(huge_alloc::map(bytes));
  }
  void deallocate(T* p, size_t n) noexcept {
    const size_t bytes = n * sizeof(T);
    if (bytes < huge_alloc::kMinBytes) {
      ::operator delete(p, std::align_val_t(alignof(T)));
    } else {
      huge_alloc::unmap(p, bytes);
    }
  }
  template <typename U>
  bool operator==(const HugePageAllocator<U>&) const {
    return true;
  }
};

}  // namespace microseg
