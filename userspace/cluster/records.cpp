#include "cluster/records.h"

#include <xxhash.h>

#include <cstdio>
#include <limits>
#include <type_traits>

#include <nlohmann/json.hpp>

#include "policy/cidr.h"

namespace microseg::cluster {
namespace {

using nlohmann::json;

std::optional<json> parseObject(const std::string& text) {
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return std::nullopt;
  return j;
}

// Reads `key` of `j` into `out` if it is there with the right type; false
// if it is there with another type. An integer field takes only an integer
// that fits it: get<T>() would convert any number (300.5 -> 300, -1 ->
// 4294967295, 1e20 into a uint32_t is undefined behaviour), and a record
// is never taken half-way.
template <typename T>
bool field(const json& j, const char* key, T& out) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return true;
  if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) {
    if (!it->is_number_integer()) return false;
    if (it->is_number_unsigned() || it->get<int64_t>() >= 0) {
      const uint64_t v = it->is_number_unsigned() ? it->get<uint64_t>() : static_cast<uint64_t>(it->get<int64_t>());
      if (v > static_cast<uint64_t>(std::numeric_limits<T>::max())) return false;
      out = static_cast<T>(v);
      return true;
    }
    const int64_t v = it->get<int64_t>();
    if (!std::is_signed_v<T> || v < static_cast<int64_t>(std::numeric_limits<T>::min())) return false;
    out = static_cast<T>(v);
    return true;
  }
  try {
    out = it->get<T>();
    return true;
  } catch (const json::exception&) {
    return false;
  }
}

std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

}  // namespace

bool validNodeName(const std::string& name) {
  if (name.empty() || name.size() > 63 || name == "." || name == "..") return false;
  for (char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
                    c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

Keys::Keys(std::string prefix) : prefix_(std::move(prefix)) {
  while (prefix_.size() > 1 && prefix_.back() == '/') prefix_.pop_back();
}

std::string Keys::addressEndpoint(const std::string& node, const ms_addr& a) const {
  return endpoints(node) + "addr/" + policy::formatAddress(a);
}

std::string Keys::listenerEndpoint(const std::string& node, uint8_t proto, const ms_addr& a, uint16_t port) const {
  return endpoints(node) + "listen/" + (proto == MS_PROTO_UDP ? "udp/" : "tcp/") + policy::formatAddress(a) + "/" +
         std::to_string(port);
}

std::string labelsText(const policy::Labels& labels) {
  std::string s;
  for (const auto& [k, v] : labels) s += k + "=" + v + "\n";
  return s;
}

std::string hashText(const std::string& text) {
  const XXH128_hash_t h = XXH3_128bits(text.data(), text.size());
  char buf[33];
  std::snprintf(buf, sizeof(buf), "%016llx%016llx", static_cast<unsigned long long>(h.high64),
                static_cast<unsigned long long>(h.low64));
  return buf;
}

std::string labelsHash(const policy::Labels& labels) { return hashText(labelsText(labels)); }

std::string encode(const NodeRecord& r) {
  return dump(json{{"name", r.name},
                   {"addresses", r.addresses},
                   {"version", r.version},
                   {"policy_revision", r.policyRevision},
                   {"policy_source", r.policySource},
                   {"policy_error", r.policyError},
                   {"policy_rejected_revision", r.policyRejectedRevision},
                   {"workloads", r.workloads},
                   {"identity", r.identity},
                   {"updated_at", r.updatedAt}});
}

std::string encode(const IdentityRecord& r) { return dump(json{{"id", r.id}, {"labels", r.labels}}); }

std::string encode(const EndpointRecord& r) {
  return dump(json{{"identity", r.identity}, {"workload", r.workload}, {"kind", r.kind}});
}

std::string encode(const PolicyManifest& r) {
  json files = json::array();
  for (const auto& f : r.files) files.push_back(json{{"name", f.name}, {"blobs", f.blobs}, {"size", f.size}});
  return dump(json{{"id", r.id}, {"files", files}, {"pushed_by", r.pushedBy}, {"pushed_at", r.pushedAt}});
}

std::optional<NodeRecord> decodeNode(const std::string& text) {
  auto j = parseObject(text);
  if (!j) return std::nullopt;
  NodeRecord r;
  if (!field(*j, "name", r.name) || !field(*j, "addresses", r.addresses) || !field(*j, "version", r.version) ||
      !field(*j, "policy_revision", r.policyRevision) || !field(*j, "policy_source", r.policySource) ||
      !field(*j, "policy_error", r.policyError) || !field(*j, "policy_rejected_revision", r.policyRejectedRevision) ||
      !field(*j, "workloads", r.workloads) || !field(*j, "identity", r.identity) ||
      !field(*j, "updated_at", r.updatedAt)) {
    return std::nullopt;
  }
  return r;
}

std::optional<IdentityRecord> decodeIdentity(const std::string& text) {
  auto j = parseObject(text);
  if (!j) return std::nullopt;
  IdentityRecord r;
  if (!field(*j, "id", r.id) || !field(*j, "labels", r.labels)) return std::nullopt;
  if (r.id < MS_IDENTITY_FIRST_WORKLOAD || r.id >= MS_IDENTITY_FIRST_EXTERNAL) return std::nullopt;
  return r;
}

std::optional<EndpointRecord> decodeEndpoint(const std::string& text) {
  auto j = parseObject(text);
  if (!j) return std::nullopt;
  EndpointRecord r;
  if (!field(*j, "identity", r.identity) || !field(*j, "workload", r.workload) || !field(*j, "kind", r.kind)) {
    return std::nullopt;
  }
  if (r.identity < MS_IDENTITY_FIRST_WORKLOAD || r.identity >= MS_IDENTITY_FIRST_EXTERNAL) return std::nullopt;
  return r;
}

std::optional<PolicyManifest> decodeManifest(const std::string& text) {
  auto j = parseObject(text);
  if (!j) return std::nullopt;
  PolicyManifest r;
  if (!field(*j, "id", r.id) || !field(*j, "pushed_by", r.pushedBy) || !field(*j, "pushed_at", r.pushedAt)) {
    return std::nullopt;
  }
  auto files = j->find("files");
  if (files == j->end() || !files->is_array()) return std::nullopt;
  for (const auto& f : *files) {
    if (!f.is_object()) return std::nullopt;
    PolicyFile pf;
    if (!field(f, "name", pf.name) || !field(f, "blobs", pf.blobs) || !field(f, "size", pf.size)) return std::nullopt;
    if (pf.name.empty()) return std::nullopt;
    r.files.push_back(std::move(pf));
  }
  return r;
}

}  // namespace microseg::cluster
