#include "cluster/wire_keys.h"

#include <sys/random.h>

#include <cerrno>
#include <tuple>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "common/siphash.h"

namespace microseg::cluster {
namespace {

using nlohmann::json;

constexpr const char* kHex = "0123456789abcdef";

int hexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;  // upper case too: one spelling per key
}

// An integer field that must be there: a JSON integer >= 0 (300.5, "7",
// -1 or 2^64 are not).
bool unixTime(const json& j, const char* key, int64_t& out) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_number_integer()) return false;
  if (it->is_number_unsigned()) {
    if (it->get<uint64_t>() > static_cast<uint64_t>(INT64_MAX)) return false;
    out = static_cast<int64_t>(it->get<uint64_t>());
  } else {
    out = it->get<int64_t>();
  }
  return out >= 0;
}

std::string idList(const std::vector<uint8_t>& ids) {
  std::string s;
  for (uint8_t id : ids) s += (s.empty() ? "" : ",") + std::to_string(id);
  return s.empty() ? "none" : s;
}

}  // namespace

std::optional<uint8_t> wireKeyIdOf(const std::string& name) {
  if (name.empty() || name.size() > 3 || name[0] == '0') return std::nullopt;
  unsigned v = 0;
  for (char c : name) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + static_cast<unsigned>(c - '0');
  }
  if (v < 1 || v > kWireKeyMaxId) return std::nullopt;
  return static_cast<uint8_t>(v);
}

std::string encode(const WireKeyRecord& r) {
  std::string hex;
  for (uint8_t b : r.key) {
    hex += kHex[b >> 4];
    hex += kHex[b & 15];
  }
  // Field order as documented (nlohmann's object sorts keys; ordered_json keeps them).
  nlohmann::ordered_json j{{"id", r.id},
                           {"key", hex},
                           {"created", r.created},
                           {"activate_at", r.activateAt},
                           {"retire_at", r.retireAt}};
  return j.dump();
}

std::optional<WireKeyRecord> decodeWireKey(const std::string& text, uint8_t nameId) {
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object() || j.size() != 5) return std::nullopt;
  WireKeyRecord r;
  auto id = j.find("id");
  if (id == j.end() || !id->is_number_unsigned() || id->get<uint64_t>() < 1 || id->get<uint64_t>() > kWireKeyMaxId) {
    return std::nullopt;
  }
  r.id = static_cast<uint8_t>(id->get<uint64_t>());
  if (r.id != nameId) return std::nullopt;
  auto key = j.find("key");
  if (key == j.end() || !key->is_string()) return std::nullopt;
  const std::string& hex = key->get_ref<const std::string&>();
  if (hex.size() != 2 * r.key.size()) return std::nullopt;
  for (size_t i = 0; i < r.key.size(); i++) {
    const int hi = hexDigit(hex[2 * i]), lo = hexDigit(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    r.key[i] = static_cast<uint8_t>(hi << 4 | lo);
  }
  // With the size checked, these three and the two above are all the fields.
  if (!unixTime(j, "created", r.created) || !unixTime(j, "activate_at", r.activateAt) ||
      !unixTime(j, "retire_at", r.retireAt)) {
    return std::nullopt;
  }
  return r;
}

std::vector<uint8_t> WireKeySelection::acceptedIds() const {
  std::vector<uint8_t> ids;
  for (const auto& k : accepted) ids.push_back(k.id);
  return ids;
}

WireKeySelection selectWireKeys(const WireKeyRecords& records, int64_t nowUnix) {
  WireKeySelection s;
  const WireKeyRecord* sign = nullptr;
  auto later = [&](int64_t t) {
    if (t > nowUnix && (s.nextChangeAt == 0 || t < s.nextChangeAt)) s.nextChangeAt = t;
  };
  for (const auto& [id, r] : records) {
    if (r.retireAt != 0) later(r.retireAt);
    if (r.retireAt != 0 && nowUnix >= r.retireAt) continue;
    later(r.activateAt);
    const SipKey k = sipKeyFromBytes(r.key);
    s.accepted.push_back(datapath::WireKey{r.id, k.k0, k.k1});
    if (r.activateAt > nowUnix) continue;
    if (sign == nullptr ||
        std::tie(r.activateAt, r.created, r.id) > std::tie(sign->activateAt, sign->created, sign->id)) {
      sign = &r;
    }
  }
  s.signKeyId = sign != nullptr ? sign->id : 0;
  return s;
}

Result<std::array<uint8_t, 16>> randomWireKey() {
  std::array<uint8_t, 16> key{};
  size_t got = 0;
  while (got < key.size()) {
    const ssize_t n = getrandom(key.data() + got, key.size() - got, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return sysError("getrandom", "a new cluster key");
    got += static_cast<size_t>(n);
  }
  return key;
}

bool applyWireKeys(datapath::Datapath& dp, const WireKeyRecords& records, bool known, uint64_t recordsVersion,
                   bool signing, int64_t now, WireKeysInForce& f) {
  if (!known) return false;
  const bool changed = !f.written || f.recordsVersion != recordsVersion || f.signing != signing;
  const bool due = f.nextChangeAt != 0 && now >= f.nextChangeAt;
  if (!changed && !due && f.error.empty()) return false;
  if (!f.error.empty() && now < f.retryAt) return false;
  const auto sel = selectWireKeys(records, now);
  const uint8_t sign = signing ? sel.signKeyId : 0;
  const auto ids = sel.acceptedIds();
  if (auto r = dp.setWireKeys(sel.accepted, sign); !r) {
    if (f.error != r.error().str()) spdlog::error("wire identity: {} (tried again every second)", r.error().str());
    f.error = r.error().str();
    f.retryAt = now + 1;
    return false;
  }
  if (!f.written || ids != f.acceptedIds || sign != f.signKeyId) {
    if (sign != 0) {
      spdlog::info("wire identity: signing with key {}, accepting {}", sign, idList(ids));
    } else {
      spdlog::info("wire identity: signing with no key ({}), accepting {}",
                   signing ? "none is active yet" : "--wire-identity off", idList(ids));
    }
    if (ids.empty()) {
      spdlog::warn("wire identity: etcd has no cluster key that is not retired: SYNs that carry a wire identity "
                   "do not verify here");
    }
  }
  f = WireKeysInForce{true, recordsVersion, signing, ids, sign, sel.nextChangeAt, 0, {}};
  return true;
}

}  // namespace microseg::cluster
