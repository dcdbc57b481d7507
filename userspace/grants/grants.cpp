#include "grants/grants.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <chrono>
#include <ctime>
#include <fstream>
#include <sstream>

#include "common/atomic_file.h"
#include "common/fd.h"
#include "datapath/slot_state.h"
#include "flows/flow_record.h"

namespace microseg::grants {
namespace {

using nlohmann::json;

std::optional<uint64_t> digits(std::string_view s) {
  if (s.empty() || s.size() > 9 || s.find_first_not_of("0123456789") != std::string_view::npos) return std::nullopt;
  if (s.size() > 1 && s[0] == '0') return std::nullopt;
  uint64_t v = 0;
  std::from_chars(s.data(), s.data() + s.size(), v);
  return v;
}

const char* protoText(uint8_t p) { return p == MS_PROTO_UDP ? "udp" : "tcp"; }

}  // namespace

std::string PortSpec::text() const {
  std::string s = std::to_string(first);
  if (last != first) s += "-" + std::to_string(last);
  return s + "/" + protoText(protocol);
}

std::optional<PortSpec> parsePorts(const std::string& text, std::string& err) {
  const size_t slash = text.find('/');
  if (slash == std::string::npos) {
    err = "port '" + text + "' needs a protocol: N/tcp, N/udp or N-M/tcp";
    return std::nullopt;
  }
  PortSpec p;
  const std::string proto = text.substr(slash + 1);
  if (proto == "tcp") {
    p.protocol = MS_PROTO_TCP;
  } else if (proto == "udp") {
    p.protocol = MS_PROTO_UDP;
  } else {
    err = "port '" + text + "': protocol '" + proto + "' is not tcp or udp";
    return std::nullopt;
  }
  const std::string range = text.substr(0, slash);
  const size_t dash = range.find('-');
  const auto lo = digits(range.substr(0, dash));
  const auto hi = dash == std::string::npos ? lo : digits(range.substr(dash + 1));
  if (!lo || !hi || *lo < 1 || *lo > 65535 || *hi < 1 || *hi > 65535) {
    err = "port '" + text + "': ports are whole numbers 1-65535";
    return std::nullopt;
  }
  if (*hi < *lo) {
    err = "port '" + text + "': the range ends before it starts";
    return std::nullopt;
  }
  if (*hi - *lo + 1 > MS_GRANT_MAX_PORTS) {
    err = "port '" + text + "': a grant covers at most " + std::to_string(MS_GRANT_MAX_PORTS) + " ports";
    return std::nullopt;
  }
  p.first = static_cast<uint16_t>(*lo);
  p.last = static_cast<uint16_t>(*hi);
  return p;
}

Now Now::read() {
  timespec real{}, mono{};
  clock_gettime(CLOCK_REALTIME, &real);
  clock_gettime(CLOCK_MONOTONIC, &mono);
  return {static_cast<int64_t>(real.tv_sec) * 1000000000 + real.tv_nsec,
          static_cast<uint64_t>(mono.tv_sec) * 1000000000ull + static_cast<uint64_t>(mono.tv_nsec)};
}

const Grant& GrantBook::add(Grant g, int64_t seconds, const Now& now) {
  g.id = nextId_++;
  g.createdNs = now.realNs;
  g.expiresNs = now.realNs + seconds * 1000000000;
  g.expiresMonoNs = now.monoNs + static_cast<uint64_t>(seconds) * 1000000000ull;
  g.ended.clear();
  grants_.push_back(std::move(g));
  return grants_.back();
}

bool GrantBook::revoke(uint32_t id, uint32_t byUid, const Now& now) {
  for (auto& g : grants_) {
    if (g.id != id || !g.active()) continue;
    g.ended = "revoked";
    g.endedNs = now.realNs;
    g.revokedByUid = byUid;
    return true;
  }
  return false;
}

std::vector<Grant> GrantBook::expire(const Now& now) {
  std::vector<Grant> out;
  for (auto& g : grants_) {
    if (g.active() && now.monoNs >= g.expiresMonoNs) {
      g.ended = "expired";
      g.endedNs = g.expiresNs;
      out.push_back(g);
    }
  }
  const int64_t keep = kKeepEndedS * 1000000000;
  std::erase_if(grants_, [&](const Grant& g) { return !g.active() && now.realNs - g.endedNs > keep; });
  return out;
}

std::optional<uint64_t> GrantBook::nextExpiryMono() const {
  std::optional<uint64_t> next;
  for (const auto& g : grants_) {
    if (g.active() && (!next || g.expiresMonoNs < *next)) next = g.expiresMonoNs;
  }
  return next;
}

const Grant* GrantBook::find(uint32_t id) const {
  for (const auto& g : grants_) {
    if (g.id == id) return &g;
  }
  return nullptr;
}

size_t GrantBook::activeCount() const {
  return static_cast<size_t>(std::count_if(grants_.begin(), grants_.end(), [](const Grant& g) { return g.active(); }));
}

datapath::GrantEntries GrantBook::entries(const Resolve& resolve) const {
  std::map<std::vector<uint8_t>, std::pair<ms_grant_key, ms_grant_value>> byKey;
  auto put = [&](const ms_grant_key& k, const ms_grant_value& v) {
    std::vector<uint8_t> bytes(reinterpret_cast<const uint8_t*>(&k), reinterpret_cast<const uint8_t*>(&k) + sizeof(k));
    auto [it, fresh] = byKey.try_emplace(bytes, k, v);
    if (!fresh && (v.expires_ns > it->second.second.expires_ns ||
                   (v.expires_ns == it->second.second.expires_ns && v.grant_id > it->second.second.grant_id))) {
      it->second.second = v;
    }
  };
  for (const auto& g : grants_) {
    if (!g.active()) continue;
    const auto from = resolve(g.from), to = resolve(g.to);
    if (!from || !to) continue;
    ms_grant_value v{};
    v.expires_ns = g.expiresMonoNs;
    v.grant_id = g.id;
    for (uint32_t port = g.ports.first; port <= g.ports.last; port++) {
      ms_grant_key k{};
      k.protocol = g.ports.protocol;
      k.port = htons(static_cast<uint16_t>(port));
      if (from->local) {
        k.subject = from->identity;
        k.peer = to->identity;
        k.direction = MS_DIR_EGRESS;
        put(k, v);
      }
      if (to->local) {
        k.subject = to->identity;
        k.peer = from->identity;
        k.direction = MS_DIR_INGRESS;
        put(k, v);
      }
    }
  }
  datapath::GrantEntries out;
  out.reserve(byKey.size());
  for (auto& [bytes, e] : byKey) out.push_back(e);
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return datapath::keyLess(a.first, b.first); });
  return out;
}

json grantToJson(const Grant& g, const Now& now) {
  const int64_t remainingNs =
      g.active() && g.expiresMonoNs > now.monoNs ? static_cast<int64_t>(g.expiresMonoNs - now.monoNs) : 0;
  json j{{"id", g.id},
         {"from", g.from},
         {"to", g.to},
         {"ports", g.ports.text()},
         {"created", flows::isoTime(g.createdNs)},
         {"expires", flows::isoTime(g.expiresNs)},
         {"remaining_seconds", (remainingNs + 999999999) / 1000000000},
         {"state", g.active() ? "active" : g.ended},
         {"uid", g.uid},
         {"pid", g.pid},
         {"reason", g.reason}};
  if (!g.active()) j["ended"] = flows::isoTime(g.endedNs);
  if (g.ended == "revoked") j["revoked_by_uid"] = g.revokedByUid;
  return j;
}

std::optional<uint32_t> grantFor(const datapath::GrantEntries& entries, uint32_t subject, uint32_t peer,
                                 uint8_t direction, uint8_t protocol, uint16_t port, uint64_t nowMono) {
  ms_grant_key k{};
  k.subject = subject;
  k.peer = peer;
  k.direction = direction;
  k.protocol = protocol;
  k.port = htons(port);
  auto it = std::lower_bound(entries.begin(), entries.end(), k,
                             [](const auto& e, const ms_grant_key& key) { return datapath::keyLess(e.first, key); });
  if (it == entries.end() || std::memcmp(&it->first, &k, sizeof(k)) != 0) return std::nullopt;
  if (nowMono >= it->second.expires_ns) return std::nullopt;
  return it->second.grant_id;
}

json GrantBook::toJson(const std::string& bootId) const {
  json list = json::array();
  for (const auto& g : grants_) {
    list.push_back({{"id", g.id},
                    {"from", g.from},
                    {"to", g.to},
                    {"ports", g.ports.text()},
                    {"reason", g.reason},
                    {"uid", g.uid},
                    {"pid", g.pid},
                    {"created_ns", g.createdNs},
                    {"expires_ns", g.expiresNs},
                    {"expires_mono_ns", g.expiresMonoNs},
                    {"ended", g.ended},
                    {"ended_ns", g.endedNs},
                    {"revoked_by_uid", g.revokedByUid}});
  }
  return {{"version", 1}, {"boot_id", bootId}, {"next_id", nextId_}, {"grants", list}};
}

Result<GrantBook> GrantBook::fromJson(const json& j, const std::string& boot, const Now& now) {
  GrantBook b;
  try {
    if (j.at("version").get<int>() != 1) return Error{"read grants", "version", EINVAL, "unknown version"};
    // The monotonic clock starts again at boot: another boot's expiry is
    // taken from the wall clock.
    const bool sameBoot = !boot.empty() && j.at("boot_id").get<std::string>() == boot;
    b.nextId_ = j.at("next_id").get<uint32_t>();
    for (const auto& e : j.at("grants")) {
      Grant g;
      g.id = e.at("id").get<uint32_t>();
      g.from = e.at("from").get<std::string>();
      g.to = e.at("to").get<std::string>();
      std::string err;
      auto p = parsePorts(e.at("ports").get<std::string>(), err);
      if (!p) return Error{"read grants", "grant " + std::to_string(g.id), EINVAL, err};
      g.ports = *p;
      g.reason = e.at("reason").get<std::string>();
      g.uid = e.at("uid").get<uint32_t>();
      g.pid = e.at("pid").get<int32_t>();
      g.createdNs = e.at("created_ns").get<int64_t>();
      g.expiresNs = e.at("expires_ns").get<int64_t>();
      g.expiresMonoNs = e.at("expires_mono_ns").get<uint64_t>();
      if (!sameBoot) {
        const int64_t left = g.expiresNs - now.realNs;
        g.expiresMonoNs = left > 0 ? now.monoNs + static_cast<uint64_t>(left) : 0;
      }
      g.ended = e.at("ended").get<std::string>();
      if (!g.ended.empty() && g.ended != "expired" && g.ended != "revoked") {
        return Error{"read grants", "grant " + std::to_string(g.id), EINVAL, "unknown state '" + g.ended + "'"};
      }
      g.endedNs = e.at("ended_ns").get<int64_t>();
      g.revokedByUid = e.at("revoked_by_uid").get<uint32_t>();
      if (g.id >= b.nextId_) b.nextId_ = g.id + 1;
      b.grants_.push_back(std::move(g));
    }
  } catch (const json::exception& e) {
    return Error{"read grants", "file", EINVAL, e.what()};
  }
  std::sort(b.grants_.begin(), b.grants_.end(), [](const Grant& a, const Grant& c) { return a.id < c.id; });
  return b;
}

Result<void> GrantBook::save(const std::string& path, const std::string& boot) const {
  const std::string text = toJson(boot).dump(2) + "\n";
  return writeFileAtomically(path, text, "grants");
}

Result<GrantBook> GrantBook::load(const std::string& path, const std::string& boot, const Now& now) {
  std::ifstream in(path);
  if (!in) {
    if (errno == ENOENT) return GrantBook{};
    return sysError("read grants", path);
  }
  std::stringstream ss;
  ss << in.rdbuf();
  json j = json::parse(ss.str(), nullptr, false);
  if (j.is_discarded()) return Error{"read grants", path, EINVAL, "not JSON"};
  auto b = fromJson(j, boot, now);
  if (!b) {
    Error e = b.error();
    e.object = path + ": " + e.object;
    return e;
  }
  return b;
}

std::string bootId() {
  std::ifstream in("/proc/sys/kernel/random/boot_id");
  std::string id;
  std::getline(in, id);
  return id;
}

}  // namespace microseg::grants
