// Temporary access (`microseg grant`): what a grant is, its inputs, the
// book of grants the daemon keeps (active and recently ended, saved in the
// data dir) and the kernel entries they make (bpf/abi.h: ms_grants). Pure
// logic: no kernel, no files but the ones load()/save() are given.
//
// A grant lets one flow X -> Y (a port or a small range, one protocol) pass
// where the policy has no entry for it (default deny), on both sides: X's
// egress and Y's ingress. An explicit deny still wins; the kernel checks
// the expiry itself (the coarse monotonic clock), so a grant lapses on time
// even with the daemon stopped.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "bpf/abi.h"
#include "common/durations.h"
#include "common/result.h"
#include "datapath/datapath.h"

namespace microseg::grants {

// Control commands (README "Temporary access").
inline constexpr const char* kCommandCreate = "grant.create";
inline constexpr const char* kCommandList = "grant.list";
inline constexpr const char* kCommandRevoke = "grant.revoke";

inline constexpr int64_t kDefaultDurationS = 30 * 60;
inline constexpr int64_t kDefaultMaxS = 8 * 3600;
// Ended grants stay listed (and their ids unused) this long.
inline constexpr int64_t kKeepEndedS = 3600;
inline constexpr size_t kMaxReasonBytes = 256;

struct PortSpec {
  uint16_t first = 0, last = 0;  // host order, first <= last
  uint8_t protocol = 0;          // MS_PROTO_TCP | MS_PROTO_UDP
  std::string text() const;      // "22/tcp", "8000-8010/udp"
};

// "N/tcp", "N-M/udp": ports 1-65535, a range of at most MS_GRANT_MAX_PORTS
// ports (each is a map entry per side). nullopt with `err` saying what is
// wrong.
std::optional<PortSpec> parsePorts(const std::string& text, std::string& err);
// Durations (--for, --max-grant): common/durations.h.
using ::microseg::formatDuration;
using ::microseg::parseDuration;

struct Grant {
  uint32_t id = 0;
  std::string from, to;  // workload names
  PortSpec ports;
  std::string reason;
  uint32_t uid = 0;  // the creator (SO_PEERCRED)
  int32_t pid = 0;
  int64_t createdNs = 0;     // wall clock
  int64_t expiresNs = 0;     // wall clock, as shown
  uint64_t expiresMonoNs = 0;  // CLOCK_MONOTONIC: what the kernel checks
  // "" while active; "expired" or "revoked" once ended.
  std::string ended;
  int64_t endedNs = 0;
  uint32_t revokedByUid = 0;
  bool active() const { return ended.empty(); }
};

// The two clocks at one moment: grants are shown by the wall clock and
// enforced on the monotonic one.
struct Now {
  int64_t realNs = 0;
  uint64_t monoNs = 0;
  static Now read();
};

// A workload name as this daemon knows it: its identity, and whether it is
// a subject here (a local Workload) or only a peer (another node's).
struct Side {
  uint32_t identity = 0;
  bool local = true;
};
using Resolve = std::function<std::optional<Side>(const std::string& workload)>;

class GrantBook {
 public:
  // A new grant: id assigned, active from `now` for `seconds`. `g` carries
  // from, to, ports, reason, uid, pid.
  const Grant& add(Grant g, int64_t seconds, const Now& now);
  // Ends an active grant at once; false if there is none with that id.
  bool revoke(uint32_t id, uint32_t byUid, const Now& now);
  // Marks active grants whose time is up "expired" and returns them; drops
  // ended grants older than kKeepEndedS.
  std::vector<Grant> expire(const Now& now);
  // The earliest expiry of an active grant (CLOCK_MONOTONIC), if any.
  std::optional<uint64_t> nextExpiryMono() const;

  const Grant* find(uint32_t id) const;
  const std::vector<Grant>& all() const { return grants_; }
  size_t activeCount() const;

  // The kernel entries of the active grants (datapath::GrantEntries order):
  // per port, X's egress {X, Y} and Y's ingress {Y, X}, each only for a
  // side that is a local subject; a grant whose workload `resolve` does not
  // know makes none (it stays listed until it expires). Where grants share
  // a key, the later expiry wins.
  datapath::GrantEntries entries(const Resolve& resolve) const;

  // The saved form (README "Temporary access"); `bootId` tells whether a
  // monotonic expiry is still meaningful when it is read back.
  nlohmann::json toJson(const std::string& bootId) const;
  static Result<GrantBook> fromJson(const nlohmann::json& j, const std::string& bootId, const Now& now);
  // Atomic: a temporary file in the same directory, fsync, rename.
  Result<void> save(const std::string& path, const std::string& bootId) const;
  // A missing file is an empty book.
  static Result<GrantBook> load(const std::string& path, const std::string& bootId, const Now& now);

 private:
  std::vector<Grant> grants_;  // by id
  uint32_t nextId_ = 1;
};

// One grant as `microseg grants` shows it.
nlohmann::json grantToJson(const Grant& g, const Now& now);

// What the kernel decides where the policy found no entry for an isolated
// subject, given the entries in ms_grants: the grant id if one lets the
// flow pass at `nowMono`. For `explain` and the reference evaluator.
std::optional<uint32_t> grantFor(const datapath::GrantEntries& entries, uint32_t subject, uint32_t peer,
                                 uint8_t direction, uint8_t protocol, uint16_t port, uint64_t nowMono);

// /proc/sys/kernel/random/boot_id ("" if unreadable).
std::string bootId();

}  // namespace microseg::grants
