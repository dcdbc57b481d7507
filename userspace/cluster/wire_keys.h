// The cluster keys of identity on the wire (bpf/abi.h: ms_wire_opt): how
// they are stored in etcd, which of them a node accepts and signs with at a
// given time, and how a new one is made.
//
//   <prefix>/wire-keys/<id>   WireKeyRecord, id 1..255 (0 is "no key")
//   {"id":3,"key":"<32 lowercase hex>","created":UNIX,"activate_at":UNIX,"retire_at":UNIX or 0}
//
// A key is accepted on SYNs from its creation until retire_at; a node signs
// with the newest activated one. A rotation (`microseg cluster rotate-key`)
// writes the next key with activate_at a little ahead, so every node accepts
// it before any node signs with it, and gives the keys in use a retire_at a
// grace after that, so SYNs signed with them still verify meanwhile.
//
// Key bytes are secret: they go to etcd, the data dir's cache (0600) and the
// kernel, never into a log line, a status, a metric or an error.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"
#include "datapath/datapath.h"

namespace microseg::cluster {

inline constexpr unsigned kWireKeyMaxId = 255;  // ids 1..255 (MS_WIRE_MAX_KEYS - 1)

struct WireKeyRecord {
  uint8_t id = 0;
  std::array<uint8_t, 16> key{};
  int64_t created = 0;     // unix seconds
  int64_t activateAt = 0;  // from then on a node may sign with it
  int64_t retireAt = 0;    // from then on no node accepts it; 0: not scheduled
  friend bool operator==(const WireKeyRecord&, const WireKeyRecord&) = default;
};

using WireKeyRecords = std::map<uint8_t, WireKeyRecord>;  // by id

// The key's last part as an id: "7" -> 7; nullopt unless 1..255 in decimal
// digits without a leading zero.
std::optional<uint8_t> wireKeyIdOf(const std::string& name);

std::string encode(const WireKeyRecord& r);
// Strict: exactly the five fields with their types (no other field), the key
// as 32 lowercase hex digits, an id of 1..255 that is `nameId` (the id in the
// record's key name), times >= 0. nullopt otherwise: the record is ignored
// (and counted) by the reader, never used half-way.
std::optional<WireKeyRecord> decodeWireKey(const std::string& text, uint8_t nameId);

struct WireKeySelection {
  std::vector<datapath::WireKey> accepted;  // by id
  uint8_t signKeyId = 0;                    // 0: none activated yet
  int64_t nextChangeAt = 0;                 // the next activate_at/retire_at after now; 0: none
  std::vector<uint8_t> acceptedIds() const;
};

// What a node does at `nowUnix`: accepts every key not retired yet (retire_at
// 0, or now < retire_at) and signs with the accepted one activated last
// (activate_at <= now; ties: the later created, then the higher id), so every
// node that knows the same records makes the same choice.
WireKeySelection selectWireKeys(const WireKeyRecords& records, int64_t nowUnix);

// 16 bytes from getrandom(2).
Result<std::array<uint8_t, 16>> randomWireKey();

// What a node's kernel was last given (the daemon keeps it, daemon/cluster.cpp).
struct WireKeysInForce {
  bool written = false;
  uint64_t recordsVersion = 0;   // the agent's wireKeysVersion it was chosen from
  bool signing = true;           // --wire-identity
  std::vector<uint8_t> acceptedIds;
  uint8_t signKeyId = 0;         // as written: 0 when signing is off or no key is active
  int64_t nextChangeAt = 0;
  int64_t retryAt = 0;           // after a failed write
  std::string error;             // of the last write, if it failed
};

// The keys a node's agent knows -> its kernel, when they changed
// (`recordsVersion`), when `signing` (--wire-identity) changed, or when `now`
// passed the next activation or retirement; a failed write is tried again a
// second later. Nothing while the keys are not `known` yet: the kernel's own
// (pinned, adopted across a restart) are better than none, so an etcd that
// is away never makes a node stop verifying or signing. Logs ids, never key
// bytes. True if it wrote.
bool applyWireKeys(datapath::Datapath& dp, const WireKeyRecords& records, bool known, uint64_t recordsVersion,
                   bool signing, int64_t now, WireKeysInForce& f);

}  // namespace microseg::cluster
