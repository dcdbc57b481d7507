#include "edges/edge_history.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <fstream>
#include <sstream>

#include "common/atomic_file.h"
#include "common/fd.h"

namespace microseg::edges {
namespace {

using nlohmann::json;

std::string hexOf(const ms_addr& a) {
  static const char* kDigits = "0123456789abcdef";
  std::string out;
  for (unsigned char b : a.a) {
    out.push_back(kDigits[b >> 4]);
    out.push_back(kDigits[b & 15]);
  }
  return out;
}

bool addrOf(const std::string& hex, ms_addr& a) {
  if (hex.size() != 32) return false;
  for (size_t i = 0; i < 16; i++) {
    unsigned v = 0;
    for (size_t j = 0; j < 2; j++) {
      const char c = hex[2 * i + j];
      const int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
      if (d < 0) return false;
      v = v << 4 | unsigned(d);
    }
    a.a[i] = static_cast<uint8_t>(v);
  }
  return true;
}

json recordJson(const flows::FlowRecord& r) {
  return json{{"direction", r.key.direction},
              {"src_identity", r.key.srcIdentity},
              {"dst_identity", r.key.dstIdentity},
              {"dst_port", r.key.dstPort},
              {"protocol", r.key.protocol},
              {"verdict", r.key.verdict},
              {"rule_id", r.key.ruleId},
              {"reason", r.key.reason},
              {"peer_via", r.key.peerVia},
              {"first_seen_ns", r.firstSeenNs},
              {"last_seen_ns", r.lastSeenNs},
              {"count", r.count},
              {"src_cgroup_id", r.srcCgroupId},
              {"dst_cgroup_id", r.dstCgroupId},
              {"pid", r.pid},
              {"comm", r.comm},
              {"src_addr", hexOf(r.srcAddr)},
              {"src_port", r.srcPort},
              {"dst_addr", hexOf(r.dstAddr)},
              {"generation", r.generation},
              {"hook", r.hook}};
}

// json::get<T> of a field, with a range check of the narrow ones.
template <typename T>
T field(const json& j, const char* name) {
  const json& v = j.at(name);
  if constexpr (std::is_same_v<T, std::string>) {
    return v.get<std::string>();
  } else if constexpr (std::is_signed_v<T>) {
    if (!v.is_number_integer()) throw json::type_error::create(302, std::string(name) + " is not an integer", &v);
    return v.get<T>();
  } else {
    if (!v.is_number_unsigned() || v.get<uint64_t>() > std::numeric_limits<T>::max()) {
      throw json::type_error::create(302, std::string(name) + " is not an unsigned number in range", &v);
    }
    return v.get<T>();
  }
}

flows::FlowRecord recordOf(const json& j) {
  flows::FlowRecord r;
  r.key.direction = field<uint8_t>(j, "direction");
  r.key.srcIdentity = field<uint32_t>(j, "src_identity");
  r.key.dstIdentity = field<uint32_t>(j, "dst_identity");
  r.key.dstPort = field<uint16_t>(j, "dst_port");
  r.key.protocol = field<uint8_t>(j, "protocol");
  r.key.verdict = field<uint8_t>(j, "verdict");
  r.key.ruleId = field<uint32_t>(j, "rule_id");
  r.key.reason = field<uint8_t>(j, "reason");
  r.key.peerVia = field<uint8_t>(j, "peer_via");
  r.firstSeenNs = field<int64_t>(j, "first_seen_ns");
  r.lastSeenNs = field<int64_t>(j, "last_seen_ns");
  r.count = field<uint64_t>(j, "count");
  r.srcCgroupId = field<uint64_t>(j, "src_cgroup_id");
  r.dstCgroupId = field<uint64_t>(j, "dst_cgroup_id");
  r.pid = field<uint32_t>(j, "pid");
  r.comm = field<std::string>(j, "comm");
  r.srcPort = field<uint16_t>(j, "src_port");
  r.generation = field<uint64_t>(j, "generation");
  r.hook = field<uint8_t>(j, "hook");
  if (!addrOf(field<std::string>(j, "src_addr"), r.srcAddr) || !addrOf(field<std::string>(j, "dst_addr"), r.dstAddr)) {
    throw json::type_error::create(302, "an address is not 32 hex digits", &j);
  }
  return r;
}

}  // namespace

json historyToJson(const std::vector<flows::FlowRecord>& records, const EdgeLedger& ledger, const Numbering* numbering) {
  json recs = json::array();
  for (const auto& r : records) recs.push_back(recordJson(r));
  json out{{"version", kHistoryVersion}, {"records", std::move(recs)}, {"ledger", ledger.toJson()}};
  if (numbering != nullptr) out["numbering"] = numberingToJson(*numbering);
  return out;
}

Result<EdgeHistory> historyFromJson(const json& j, int64_t cutoffWallNs) {
  EdgeHistory h;
  if (!j.is_object() || !j.contains("version") || j["version"] != kHistoryVersion) {
    return Error{"read edge history", "edges", EINVAL, "want an object with \"version\": 1"};
  }
  if (!j.contains("records") || !j["records"].is_array()) {
    return Error{"read edge history", "edges", EINVAL, "\"records\" is not a list"};
  }
  const json& recs = j["records"];
  for (size_t i = 0; i < recs.size(); i++) {
    try {
      flows::FlowRecord r = recordOf(recs[i]);
      if (r.lastSeenNs >= cutoffWallNs) h.records.push_back(std::move(r));
    } catch (const json::exception& e) {
      return Error{"read edge history", "records[" + std::to_string(i) + "]", EINVAL, e.what()};
    }
  }
  auto ledger = EdgeLedger::fromJson(j.contains("ledger") ? j["ledger"] : json::array());
  if (!ledger) return ledger.error();
  h.ledger = std::move(*ledger);
  if (j.contains("numbering")) {
    auto n = numberingFromJson(j["numbering"]);
    if (!n) return n.error();
    h.numbering = std::move(*n);
  }
  return h;
}

Result<void> saveHistory(const std::string& path, const std::vector<flows::FlowRecord>& records,
                         const EdgeLedger& ledger, const Numbering* numbering) {
  // comm is whatever bytes a process named itself: not always UTF-8, which
  // a JSON text must be (U+FFFD instead, as the flow log writes it).
  const std::string text =
      historyToJson(records, ledger, numbering).dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
  return writeFileAtomically(path, text, "edge history");
}

Result<EdgeHistory> loadHistory(const std::string& path, int64_t cutoffWallNs) {
  std::ifstream in(path);
  if (!in) {
    if (errno == ENOENT) return EdgeHistory{};
    return sysError("read edge history", path);
  }
  std::stringstream ss;
  ss << in.rdbuf();
  const json j = json::parse(ss.str(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return Error{"read edge history", path, EINVAL, "not JSON"};
  auto h = historyFromJson(j, cutoffWallNs);
  if (!h) {
    Error e = h.error();
    e.object = path + ": " + e.object;
    return e;
  }
  return h;
}

}  // namespace microseg::edges
