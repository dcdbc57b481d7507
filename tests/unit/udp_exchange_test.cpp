// When the daemon may remove a UDP exchange entry (datapath.h): only once
// the kernel could not use it any more, whichever direction renewed it last.
#include <gtest/gtest.h>

#include "datapath/datapath.h"

namespace microseg::datapath {
namespace {

constexpr uint64_t kSec = 1000000000ull;

ms_udp_flow_value exchange(uint64_t sent, uint64_t heard) {
  ms_udp_flow_value v{};
  v.sent_ns = sent;
  v.heard_ns = heard;
  return v;
}

TEST(UdpExchangeExpiry, OnlyAfterTheTtlAndItsSlackSinceTheLastDatagramEitherWay) {
  const uint64_t ttl = 30 * kSec, now = 1000 * kSec;
  EXPECT_FALSE(udpExchangeExpired(exchange(now, 0), now, ttl));
  EXPECT_FALSE(udpExchangeExpired(exchange(now - ttl, 0), now, ttl)) << "the kernel still answers at the TTL";
  EXPECT_FALSE(udpExchangeExpired(exchange(now - ttl - kSec, 0), now, ttl)) << "slack: refresh and clock tick";
  EXPECT_TRUE(udpExchangeExpired(exchange(now - ttl - kSec - 1, 0), now, ttl));
  // Renewed by a datagram the other way: the latest time counts.
  EXPECT_FALSE(udpExchangeExpired(exchange(now - 10 * ttl, now - 5 * kSec), now, ttl));
  EXPECT_FALSE(udpExchangeExpired(exchange(now - 5 * kSec, now - 10 * ttl), now, ttl));
  EXPECT_TRUE(udpExchangeExpired(exchange(now - 10 * ttl, now - 2 * ttl), now, ttl));
}

TEST(UdpExchangeExpiry, ATimeAheadOfTheSweepClockIsNeverExpired) {
  // Written by the kernel after the sweep read its clock.
  EXPECT_FALSE(udpExchangeExpired(exchange(101 * kSec, 0), 100 * kSec, kSec));
  EXPECT_FALSE(udpExchangeExpired(exchange(0, 101 * kSec), 100 * kSec, kSec));
}

}  // namespace
}  // namespace microseg::datapath
