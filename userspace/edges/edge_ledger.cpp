#include "edges/edge_ledger.h"

#include <cerrno>

namespace microseg::edges {
namespace {

std::string hexOf(const ms_edge_key& k) {
  static const char* kDigits = "0123456789abcdef";
  const auto* p = reinterpret_cast<const unsigned char*>(&k);
  std::string out;
  for (size_t i = 0; i < sizeof(k); i++) {
    out.push_back(kDigits[p[i] >> 4]);
    out.push_back(kDigits[p[i] & 15]);
  }
  return out;
}

bool keyOf(const std::string& hex, ms_edge_key& k) {
  if (hex.size() != 2 * sizeof(k)) return false;
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  auto* p = reinterpret_cast<unsigned char*>(&k);
  for (size_t i = 0; i < sizeof(k); i++) {
    const int hi = nibble(hex[2 * i]), lo = nibble(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return false;
    p[i] = static_cast<unsigned char>(hi << 4 | lo);
  }
  return true;
}

}  // namespace

std::vector<EdgeDelta> EdgeLedger::take(const datapath::EdgeEntries& now) {
  std::vector<EdgeDelta> out;
  for (const auto& [k, v] : now) {
    uint64_t& folded = folded_[k];
    const uint64_t delta = v.count >= folded ? v.count - folded : v.count;
    folded = v.count;
    if (delta == 0) continue;
    out.push_back(EdgeDelta{k, delta, v.first_ns, v.last_ns});
  }
  return out;
}

std::vector<EdgeDelta> EdgeLedger::takeRemoved(const datapath::EdgeEntries& removed) {
  std::vector<EdgeDelta> out = take(removed);
  for (const auto& [k, v] : removed) folded_.erase(k);
  return out;
}

nlohmann::json EdgeLedger::toJson() const {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& [k, count] : folded_) out.push_back({{"key", hexOf(k)}, {"count", count}});
  return out;
}

Result<EdgeLedger> EdgeLedger::fromJson(const nlohmann::json& j) {
  EdgeLedger l;
  if (!j.is_array()) return Error{"read edge ledger", "edges", EINVAL, "not a list"};
  for (size_t i = 0; i < j.size(); i++) {
    const auto& e = j[i];
    ms_edge_key k{};
    if (!e.is_object() || !e.contains("key") || !e["key"].is_string() || !keyOf(e["key"].get<std::string>(), k) ||
        !e.contains("count") || !e["count"].is_number_unsigned()) {
      return Error{"read edge ledger", "edges[" + std::to_string(i) + "]", EINVAL,
                   "want {\"key\": <40 hex digits>, \"count\": <unsigned>}"};
    }
    l.folded_[k] = e["count"].get<uint64_t>();
  }
  return l;
}

}  // namespace microseg::edges
