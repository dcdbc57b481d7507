// HugePageAllocator: blocks of 1 MiB and more are mappings of their own,
// aligned for huge pages; smaller ones come from operator new.
#include <gtest/gtest.h>

#include <cstdint>
#include <numeric>
#include <vector>

#include "common/huge_alloc.h"

namespace microseg {
namespace {

using Big = std::vector<uint64_t, HugePageAllocator<uint64_t>>;

TEST(HugePageAllocator, ABigBlockStartsOnAHugePageBoundaryAndHoldsItsContents) {
  Big v(3 * 1024 * 1024 / sizeof(uint64_t) + 7);  // 3 MiB and a bit: one huge page and a 4 KiB tail
  EXPECT_EQ(reinterpret_cast<uintptr_t>(v.data()) % huge_alloc::kHugePage, 0u);
  std::iota(v.begin(), v.end(), uint64_t{1});
  EXPECT_EQ(v.front(), 1u);
  EXPECT_EQ(v.back(), v.size());
  Big copy = v;  // a second mapping, not the same one
  EXPECT_NE(copy.data(), v.data());
  EXPECT_EQ(copy, v);
}

TEST(HugePageAllocator, GrowingAcrossTheThresholdKeepsTheElements) {
  Big v;
  for (uint64_t i = 0; i < 400000; i++) v.push_back(i * 3);  // 3.2 MB, through small and big blocks
  ASSERT_EQ(v.size(), 400000u);
  for (uint64_t i = 0; i < v.size(); i += 9973) EXPECT_EQ(v[i], i * 3);
  v.clear();
  v.shrink_to_fit();  // a big block is unmapped
  EXPECT_EQ(v.capacity(), 0u);
}

TEST(HugePageAllocator, ASmallBlockComesFromTheHeap) {
  Big v(1000);
  EXPECT_LT(v.capacity() * sizeof(uint64_t), huge_alloc::kMinBytes);
  std::iota(v.begin(), v.end(), uint64_t{0});
  EXPECT_EQ(v[999], 999u);
}

TEST(HugePageAllocator, AnImpossibleSizeThrowsBadAlloc) {
  HugePageAllocator<uint64_t> a;
  EXPECT_THROW((void)a.allocate(SIZE_MAX / 4), std::bad_array_new_length);
  EXPECT_THROW((void)a.allocate(size_t(1) << 60), std::bad_alloc);  // 8 EiB: no mapping
}

}  // namespace
}  // namespace microseg
