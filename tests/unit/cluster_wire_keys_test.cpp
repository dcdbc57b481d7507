// cluster/wire_keys.h: the cluster keys' records (read from a store anything
// with write access to the prefix can write: taken whole or not at all),
// which keys a node accepts and signs with along a rotation's timeline, and
// how they reach the kernel (never before they are known; again when a
// key's time comes).
#include <gtest/gtest.h>

#include "cluster/wire_keys.h"
#include "common/siphash.h"
#include "fake_datapath.h"

namespace microseg::cluster {
namespace {

constexpr const char* kHex = "000102030405060708090a0b0c0d0e0f";

std::string record(const std::string& id, const std::string& key, const std::string& rest) {
  return "{\"id\":" + id + ",\"key\":\"" + key + "\"," + rest + "}";
}
const std::string kTimes = R"("created":100,"activate_at":110,"retire_at":0)";

WireKeyRecord key(uint8_t id, int64_t created, int64_t activateAt, int64_t retireAt) {
  WireKeyRecord r{id, {}, created, activateAt, retireAt};
  for (size_t i = 0; i < r.key.size(); i++) r.key[i] = static_cast<uint8_t>(id * 16 + i);
  return r;
}

TEST(ClusterWireKeys, EncodedRecordsReadBack) {
  WireKeyRecord r = key(7, 1765000000, 1765000010, 1765000610);
  EXPECT_EQ(encode(r), R"({"id":7,"key":"707172737475767778797a7b7c7d7e7f","created":1765000000,)"
                       R"("activate_at":1765000010,"retire_at":1765000610})");
  auto back = decodeWireKey(encode(r), 7);
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(*back, r);
  auto doc = decodeWireKey(record("1", kHex, kTimes), 1);
  ASSERT_TRUE(doc.has_value());
  EXPECT_EQ(doc->key[0], 0x00);
  EXPECT_EQ(doc->key[15], 0x0f);
  EXPECT_EQ(doc->created, 100);
  EXPECT_EQ(doc->activateAt, 110);
  EXPECT_EQ(doc->retireAt, 0);
}

TEST(ClusterWireKeys, AKeyThatIsNotExactly32LowercaseHexDigitsRefusesTheRecord) {
  EXPECT_FALSE(decodeWireKey(record("1", "000102030405060708090A0B0C0D0E0F", kTimes), 1));  // upper case
  EXPECT_FALSE(decodeWireKey(record("1", "000102030405060708090a0b0c0d0e0g", kTimes), 1));  // not hex
  EXPECT_FALSE(decodeWireKey(record("1", "000102030405060708090a0b0c0d0e", kTimes), 1));    // 15 bytes
  EXPECT_FALSE(decodeWireKey(record("1", "000102030405060708090a0b0c0d0e0f00", kTimes), 1));  // 17
  EXPECT_FALSE(decodeWireKey(record("1", "", kTimes), 1));
  EXPECT_FALSE(decodeWireKey(R"({"id":1,"key":16,"created":100,"activate_at":110,"retire_at":0})", 1));
}

TEST(ClusterWireKeys, AnIdOutside1To255OrNotTheKeyNamesRefusesTheRecord) {
  EXPECT_FALSE(decodeWireKey(record("0", kHex, kTimes), 0));
  EXPECT_FALSE(decodeWireKey(record("256", kHex, kTimes), 0));
  EXPECT_FALSE(decodeWireKey(record("-1", kHex, kTimes), 255));
  EXPECT_FALSE(decodeWireKey(record("1.0", kHex, kTimes), 1));
  EXPECT_FALSE(decodeWireKey(record("\"1\"", kHex, kTimes), 1));
  EXPECT_FALSE(decodeWireKey(record("2", kHex, kTimes), 1));  // stored under wire-keys/1
  EXPECT_TRUE(decodeWireKey(record("255", kHex, kTimes), 255));
}

TEST(ClusterWireKeys, ExtraMissingOrMistypedFieldsRefuseTheRecord) {
  EXPECT_FALSE(decodeWireKey(record("1", kHex, kTimes + R"(,"note":"x")"), 1));
  EXPECT_FALSE(decodeWireKey(record("1", kHex, R"("created":100,"activate_at":110)"), 1));
  EXPECT_FALSE(decodeWireKey(record("1", kHex, R"("created":100,"activate_at":110,"retire_at":null)"), 1));
  EXPECT_FALSE(decodeWireKey(record("1", kHex, R"("created":100,"activate_at":110.5,"retire_at":0)"), 1));
  EXPECT_FALSE(decodeWireKey(record("1", kHex, R"("created":100,"activate_at":"110","retire_at":0)"), 1));
  EXPECT_FALSE(decodeWireKey(record("1", kHex, R"("created":-1,"activate_at":110,"retire_at":0)"), 1));
  EXPECT_FALSE(decodeWireKey(record("1", kHex, R"("created":100,"activate_at":110,"retire_at":18446744073709551615)"), 1));
  // Five fields, but one of them twice (the last would win) and one missing.
  EXPECT_FALSE(decodeWireKey(record("1", kHex, R"("created":100,"created":100,"activate_at":110)"), 1));
  EXPECT_FALSE(decodeWireKey("[]", 1));
  EXPECT_FALSE(decodeWireKey("", 1));
  EXPECT_FALSE(decodeWireKey(record("1", kHex, kTimes) + "x", 1));
}

TEST(ClusterWireKeys, KeyNamesAreIdsInPlainDecimal) {
  EXPECT_EQ(wireKeyIdOf("1"), 1);
  EXPECT_EQ(wireKeyIdOf("255"), 255);
  EXPECT_FALSE(wireKeyIdOf("0"));
  EXPECT_FALSE(wireKeyIdOf("256"));
  EXPECT_FALSE(wireKeyIdOf("01"));
  EXPECT_FALSE(wireKeyIdOf("+1"));
  EXPECT_FALSE(wireKeyIdOf("1/x"));
  EXPECT_FALSE(wireKeyIdOf(""));
}

TEST(ClusterWireKeys, SelectionKeepsTheKernelsTwoWordsOfEachKey) {
  const WireKeyRecord r = key(3, 100, 100, 0);
  const auto s = selectWireKeys({{3, r}}, 200);
  ASSERT_EQ(s.accepted.size(), 1u);
  const SipKey k = sipKeyFromBytes(r.key);
  EXPECT_EQ(s.accepted[0].id, 3);
  EXPECT_EQ(s.accepted[0].k0, k.k0);
  EXPECT_EQ(s.accepted[0].k1, k.k1);
  EXPECT_EQ(s.signKeyId, 3);
  EXPECT_EQ(s.nextChangeAt, 0);
}

// Key 1 in use; at t=1000 `rotate-key --activate-after 10s --grace 10m`
// writes key 2 (activate 1010) and gives key 1 retire_at 1610.
TEST(ClusterWireKeys, SelectionAlongARotation) {
  const WireKeyRecords records{{1, key(1, 100, 100, 1610)}, {2, key(2, 1000, 1010, 0)}};
  auto at = [&](int64_t now) { return selectWireKeys(records, now); };
  // Before key 2 activates: both accepted (every node loads key 2 first), key 1 signs.
  EXPECT_EQ(at(1000).acceptedIds(), (std::vector<uint8_t>{1, 2}));
  EXPECT_EQ(at(1000).signKeyId, 1);
  EXPECT_EQ(at(1000).nextChangeAt, 1010);
  EXPECT_EQ(at(1009).signKeyId, 1);
  // From its activation: key 2 signs, key 1 still verifies (SYNs in flight, slower nodes).
  EXPECT_EQ(at(1010).signKeyId, 2);
  EXPECT_EQ(at(1010).acceptedIds(), (std::vector<uint8_t>{1, 2}));
  EXPECT_EQ(at(1010).nextChangeAt, 1610);
  // From key 1's retirement: key 2 alone.
  EXPECT_EQ(at(1609).acceptedIds(), (std::vector<uint8_t>{1, 2}));
  EXPECT_EQ(at(1610).acceptedIds(), (std::vector<uint8_t>{2}));
  EXPECT_EQ(at(1610).signKeyId, 2);
  EXPECT_EQ(at(1610).nextChangeAt, 0);
}

TEST(ClusterWireKeys, TheNewestActivationSignsWhateverItsId) {
  // Ids wrap after 255: key 1 is newer than key 255.
  const WireKeyRecords wrapped{{255, key(255, 100, 100, 700)}, {1, key(1, 200, 210, 0)}};
  EXPECT_EQ(selectWireKeys(wrapped, 205).signKeyId, 255);
  EXPECT_EQ(selectWireKeys(wrapped, 210).signKeyId, 1);
  // The same activation time: the later created, then the higher id (every node chooses alike).
  const WireKeyRecords tie{{4, key(4, 100, 300, 0)}, {5, key(5, 90, 300, 0)}};
  EXPECT_EQ(selectWireKeys(tie, 300).signKeyId, 4);
  const WireKeyRecords tie2{{4, key(4, 100, 300, 0)}, {5, key(5, 100, 300, 0)}};
  EXPECT_EQ(selectWireKeys(tie2, 300).signKeyId, 5);
}

TEST(ClusterWireKeys, NothingSignsBeforeAnyActivationAndARetiredKeyNeverSigns) {
  EXPECT_EQ(selectWireKeys({{1, key(1, 100, 500, 0)}}, 400).signKeyId, 0);
  EXPECT_EQ(selectWireKeys({{1, key(1, 100, 500, 0)}}, 400).acceptedIds(), (std::vector<uint8_t>{1}));
  EXPECT_EQ(selectWireKeys({{1, key(1, 100, 500, 0)}}, 400).nextChangeAt, 500);
  // Retired, though activated last: not accepted, so not signing either.
  const WireKeyRecords r{{1, key(1, 100, 100, 0)}, {2, key(2, 100, 200, 300)}};
  EXPECT_EQ(selectWireKeys(r, 250).signKeyId, 2);
  EXPECT_EQ(selectWireKeys(r, 300).signKeyId, 1);
  EXPECT_EQ(selectWireKeys(r, 300).acceptedIds(), (std::vector<uint8_t>{1}));
  EXPECT_TRUE(selectWireKeys({}, 300).accepted.empty());
  EXPECT_EQ(selectWireKeys({}, 300).signKeyId, 0);
}

TEST(ClusterWireKeys, RandomKeysDiffer) {
  auto a = randomWireKey(), b = randomWireKey();
  ASSERT_TRUE(a && b);
  EXPECT_NE(*a, *b);
}

// Counts the writes and can refuse them.
class CountingDatapath : public datapath::FakeDatapath {
 public:
  Result<void> setWireKeys(const std::vector<datapath::WireKey>& accepted, uint8_t signKeyId) override {
    writes++;
    if (fail) return Error{"set wire keys", "ms_wire_keys", EIO, {}};
    return FakeDatapath::setWireKeys(accepted, signKeyId);
  }
  int writes = 0;
  bool fail = false;
};

std::vector<uint8_t> ids(const std::vector<datapath::WireKey>& keys) {
  std::vector<uint8_t> out;
  for (const auto& k : keys) out.push_back(k.id);
  return out;
}

TEST(ClusterWireKeys, UnknownKeysNeverReachTheKernel) {
  CountingDatapath dp;
  dp.wireKeys = {{1, 11, 12}, {2, 21, 22}};  // adopted: what the pinned map had
  dp.wireSignKeyId = 2;
  WireKeysInForce f;
  EXPECT_FALSE(applyWireKeys(dp, {}, /*known=*/false, 0, true, 1000, f));
  EXPECT_EQ(dp.writes, 0);
  EXPECT_EQ(ids(dp.wireKeys), (std::vector<uint8_t>{1, 2}));
  EXPECT_EQ(dp.wireSignKeyId, 2);
  EXPECT_FALSE(f.written);
}

TEST(ClusterWireKeys, KeysAreWrittenWhenTheyChangeAndWhenTheirTimeComes) {
  CountingDatapath dp;
  WireKeysInForce f;
  WireKeyRecords records{{1, key(1, 100, 100, 0)}};
  ASSERT_TRUE(applyWireKeys(dp, records, true, 1, true, 1000, f));
  EXPECT_EQ(ids(dp.wireKeys), (std::vector<uint8_t>{1}));
  EXPECT_EQ(dp.wireSignKeyId, 1);
  EXPECT_FALSE(applyWireKeys(dp, records, true, 1, true, 1001, f));  // nothing new
  EXPECT_EQ(dp.writes, 1);
  // A rotation arrives (version 2).
  records = {{1, key(1, 100, 100, 1610)}, {2, key(2, 1000, 1010, 0)}};
  ASSERT_TRUE(applyWireKeys(dp, records, true, 2, true, 1002, f));
  EXPECT_EQ(ids(dp.wireKeys), (std::vector<uint8_t>{1, 2}));
  EXPECT_EQ(dp.wireSignKeyId, 1);
  EXPECT_EQ(f.nextChangeAt, 1010);
  EXPECT_FALSE(applyWireKeys(dp, records, true, 2, true, 1009, f));
  // Key 2's activation, with no change of the records: the clock alone.
  ASSERT_TRUE(applyWireKeys(dp, records, true, 2, true, 1010, f));
  EXPECT_EQ(dp.wireSignKeyId, 2);
  EXPECT_EQ(f.nextChangeAt, 1610);
  ASSERT_TRUE(applyWireKeys(dp, records, true, 2, true, 1611, f));
  EXPECT_EQ(ids(dp.wireKeys), (std::vector<uint8_t>{2}));
  EXPECT_EQ(f.acceptedIds, (std::vector<uint8_t>{2}));
  EXPECT_EQ(f.nextChangeAt, 0);
  EXPECT_EQ(dp.writes, 4);
}

TEST(ClusterWireKeys, WireIdentityOffSignsNothingButStillVerifies) {
  CountingDatapath dp;
  WireKeysInForce f;
  const WireKeyRecords records{{1, key(1, 100, 100, 0)}, {2, key(2, 100, 200, 0)}};
  ASSERT_TRUE(applyWireKeys(dp, records, true, 1, /*signing=*/false, 1000, f));
  EXPECT_EQ(ids(dp.wireKeys), (std::vector<uint8_t>{1, 2}));
  EXPECT_EQ(dp.wireSignKeyId, 0);
  EXPECT_EQ(f.signKeyId, 0);
  ASSERT_TRUE(applyWireKeys(dp, records, true, 1, /*signing=*/true, 1001, f));
  EXPECT_EQ(dp.wireSignKeyId, 2);
}

TEST(ClusterWireKeys, AFailedWriteIsTriedAgainASecondLater) {
  CountingDatapath dp;
  dp.fail = true;
  WireKeysInForce f;
  const WireKeyRecords records{{1, key(1, 100, 100, 0)}};
  EXPECT_FALSE(applyWireKeys(dp, records, true, 1, true, 1000, f));
  EXPECT_FALSE(f.error.empty());
  EXPECT_FALSE(applyWireKeys(dp, records, true, 1, true, 1000, f));
  EXPECT_EQ(dp.writes, 1);
  dp.fail = false;
  ASSERT_TRUE(applyWireKeys(dp, records, true, 1, true, 1001, f));
  EXPECT_TRUE(f.error.empty());
  EXPECT_EQ(dp.wireSignKeyId, 1);
}

}  // namespace
}  // namespace microseg::cluster
