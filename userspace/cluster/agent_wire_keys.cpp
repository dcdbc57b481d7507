// The agent's part of identity on the wire: the cluster keys under
// <prefix>/wire-keys/, listed and watched like the state, and kept in the
// data dir so a restart while etcd is away still signs and verifies.
//
// The cache is written at once when the keys change and before the daemon
// sees them (the pass saves it before it publishes its snapshot), so the
// kernel never has keys newer than the cache: a restart from the cache never
// takes back a key the kernel already had. A cache that cannot be written is
// removed rather than left stale.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "cluster/agent_work.h"
#include "common/atomic_file.h"

namespace microseg::cluster {
namespace {

int64_t unixNow() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string idList(const WireKeyRecords& records) {
  std::string s;
  for (const auto& [id, r] : records) s += (s.empty() ? "" : ",") + std::to_string(id);
  return s.empty() ? "none" : s;
}

// The records of a list (or the cache) replace what was known.
void replaceAll(WireKeysWork& wire, const Keys& keys, const std::vector<std::pair<std::string, std::string>>& kvs) {
  WireKeyRecords records;
  std::set<std::string> ignored;
  for (const auto& [key, value] : kvs) {
    if (key.compare(0, keys.wireKeys().size(), keys.wireKeys()) != 0) continue;
    auto id = wireKeyIdOf(key.substr(keys.wireKeys().size()));
    auto r = id ? decodeWireKey(value, *id) : std::nullopt;
    if (r) {
      records[*id] = *r;
    } else {
      ignored.insert(key);
    }
  }
  if (records != wire.records) wire.version++;
  wire.records = std::move(records);
  wire.ignored = std::move(ignored);
}

}  // namespace

Result<void> listWireKeys(EtcdClient& etcd, AgentWork& w, const std::function<void(const WatchBatch&)>& onBatch,
                          const std::function<void(int64_t)>& onCompacted) {
  // The first node to get here makes key 1; a node that races it reads the
  // winner's (the store decides, in one transaction: none under the prefix).
  auto bytes = randomWireKey();
  if (!bytes) return bytes.error();
  const int64_t now = unixNow();
  const WireKeyRecord first{1, *bytes, now, now, 0};
  auto r = etcd.txn({Compare::noneUnder(w.keys.wireKeys())}, {TxnOp::put(w.keys.wireKey(1), encode(first))},
                    {TxnOp::get(w.keys.wireKeys(), true)});
  if (!r) return r.error();
  std::vector<std::pair<std::string, std::string>> kvs;
  if (r->succeeded) {
    kvs.emplace_back(w.keys.wireKey(1), encode(first));
    spdlog::info("cluster: wire identity: etcd had no cluster key; created key 1");
  } else if (!r->ranges.empty()) {
    for (const auto& kv : r->ranges[0].kvs) kvs.emplace_back(kv.key, kv.value);
  }
  w.wire.watcher.reset();
  const uint64_t before = w.wire.version;
  replaceAll(w.wire, w.keys, kvs);
  w.wire.revision = r->revision;
  w.wire.listed = true;
  w.wire.known = true;
  w.wire.watcher = etcd.watch(w.keys.wireKeys(), r->revision + 1, onBatch, onCompacted);
  if (w.wire.version != before) spdlog::info("cluster: wire identity: cluster keys {}", idList(w.wire.records));
  if (!w.wire.ignored.empty()) {
    spdlog::warn("cluster: wire identity: {} records under {} are not cluster keys; ignored", w.wire.ignored.size(),
                 w.keys.wireKeys());
  }
  return {};
}

void applyWireKeyEvent(AgentWork& w, const std::string& key, const std::string& value, bool deleted) {
  const std::string& prefix = w.keys.wireKeys();
  if (key.compare(0, prefix.size(), prefix) != 0) return;
  auto id = wireKeyIdOf(key.substr(prefix.size()));
  auto drop = [&] {
    if (id && w.wire.records.erase(*id) > 0) w.wire.version++;
  };
  if (deleted) {
    w.wire.ignored.erase(key);
    drop();
    spdlog::info("cluster: wire identity: {} removed; cluster keys {}", key, idList(w.wire.records));
    return;
  }
  auto r = id ? decodeWireKey(value, *id) : std::nullopt;
  if (!r) {
    // Never half-used: not a key of ours, so no key at all under this id.
    w.wire.ignored.insert(key);
    drop();
    spdlog::warn("cluster: wire identity: {} is not a cluster key record; ignored", key);
    return;
  }
  w.wire.ignored.erase(key);
  auto it = w.wire.records.find(*id);
  if (it != w.wire.records.end() && it->second == *r) return;
  w.wire.records[*id] = *r;
  w.wire.version++;
  spdlog::info("cluster: wire identity: key {} written (activate at {}, retire at {}); cluster keys {}", *id,
               r->activateAt, r->retireAt, idList(w.wire.records));
}

void loadWireKeyCache(const AgentOptions& o, AgentWork& w) {
  const std::string path = w.wireKeysFile(o);
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) {
    if (errno != ENOENT) spdlog::warn("cluster: wire identity: {}", sysError("open", path).str());
    return;
  }
  struct stat st{};
  std::string text;
  if (::fstat(fd, &st) == 0 && (st.st_mode & 077) != 0) {
    spdlog::warn("cluster: wire identity: {} was readable by others (mode {:o}); made 0600", path, st.st_mode & 0777);
    (void)::fchmod(fd, 0600);
  }
  char buf[16 * 1024];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0 || text.size() > (1u << 20)) break;
    text.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  auto j = nlohmann::json::parse(text, nullptr, false);
  if (!j.is_object() || !j["keys"].is_object()) {
    spdlog::warn("cluster: wire identity: {} is not a cache of cluster keys; ignored", path);
    return;
  }
  std::vector<std::pair<std::string, std::string>> kvs;
  for (const auto& [k, v] : j["keys"].items()) {
    if (v.is_string()) kvs.emplace_back(k, v.get<std::string>());
  }
  replaceAll(w.wire, w.keys, kvs);
  w.wire.revision = j.value("revision", int64_t{0});
  w.wire.known = true;
  w.wire.cachedVersion = w.wire.version;
  spdlog::info("cluster: wire identity: cluster keys {} from the cache (revision {})", idList(w.wire.records),
               w.wire.revision);
}

void saveWireKeyCache(const AgentOptions& o, AgentWork& w) {
  if (!w.wire.listed || w.wire.version == w.wire.cachedVersion) return;
  w.wire.cachedVersion = w.wire.version;
  nlohmann::json keys = nlohmann::json::object();
  for (const auto& [id, r] : w.wire.records) keys[w.keys.wireKey(id)] = encode(r);
  const std::string path = w.wireKeysFile(o);
  // 0600: it holds the keys.
  auto r = writeFileAtomically(path, nlohmann::json{{"revision", w.wire.revision}, {"keys", keys}}.dump() + "\n",
                               "wire key cache");
  if (r) return;
  // A stale cache would give a restart older keys than the kernel has: none is better.
  const bool removed = ::unlink(path.c_str()) == 0 || errno == ENOENT;
  spdlog::warn("cluster: wire identity: {}; the cache {} (a restart without etcd keeps the kernel's keys)",
               r.error().str(), removed ? "was removed" : "could not be removed either: it is STALE");
}

}  // namespace microseg::cluster
