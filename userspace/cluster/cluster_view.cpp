#include "cluster/cluster_view.h"

#include <charconv>

#include "policy/cidr.h"

namespace microseg::cluster {
namespace {

// "a/b/c" -> {"a", "b/c"}
std::pair<std::string, std::string> firstPart(const std::string& s) {
  const size_t slash = s.find('/');
  if (slash == std::string::npos) return {s, ""};
  return {s.substr(0, slash), s.substr(slash + 1)};
}

template <typename T>
std::optional<T> number(const std::string& s) {
  T v{};
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size() || s.empty()) return std::nullopt;
  return v;
}

}  // namespace

ClusterView::ClusterView(Keys keys, std::string self) : keys_(std::move(keys)), self_(std::move(self)) {}

void ClusterView::clear() {
  nodes_.clear();
  identities_.clear();
  byHash_.clear();
  ids_.clear();
  refs_.clear();
  addresses_.clear();
  listeners_.clear();
  own_.clear();
  policy_.reset();
  policyRevision_ = 0;
  endpointsVersion_++;
  nodesVersion_++;
  identitiesVersion_++;
  ignored_ = 0;
}

std::optional<uint32_t> ClusterView::identityOf(const policy::Labels& labels) const {
  auto it = byHash_.find(labelsHash(labels));
  if (it == byHash_.end()) return std::nullopt;
  auto rec = identities_.find(it->second);
  // A hash collision (or a record for other labels under this key) is no match.
  if (rec == identities_.end() || rec->second.labels != labels) return std::nullopt;
  return it->second;
}

std::string ClusterView::hashOf(uint32_t id) const {
  auto it = identities_.find(id);
  return it == identities_.end() ? std::string() : labelsHash(it->second.labels);
}

void ClusterView::apply(const std::string& key, const std::string& value, bool deleted) {
  const std::string state = keys_.state();
  if (key.compare(0, state.size(), state) != 0) return;
  auto [kind, rest] = firstPart(key.substr(state.size()));
  if (kind == "nodes") {
    if (deleted) {
      if (nodes_.erase(rest) > 0) nodesVersion_++;
      return;
    }
    auto r = decodeNode(value);
    if (!r || r->name != rest) {
      ignored_++;
      return;
    }
    auto it = nodes_.find(rest);
    if (it != nodes_.end() && encode(it->second) == encode(*r)) return;
    nodes_[rest] = std::move(*r);
    nodesVersion_++;
  } else if (kind == "identities") {
    auto old = byHash_.find(rest);
    if (old != byHash_.end()) {
      identities_.erase(old->second);
      byHash_.erase(old);
    }
    identitiesVersion_++;
    if (deleted) return;
    auto r = decodeIdentity(value);
    if (!r || labelsHash(r->labels) != rest) {
      ignored_++;
      return;
    }
    byHash_[rest] = r->id;
    identities_[r->id] = std::move(*r);
  } else if (kind == "identity-ids") {
    auto id = number<uint32_t>(rest);
    if (!id) {
      ignored_++;
      return;
    }
    if (deleted) {
      ids_.erase(*id);
    } else {
      ids_[*id] = value;
    }
  } else if (kind == "identity-refs") {
    auto [hash, node] = firstPart(rest);
    if (hash.empty() || node.empty()) {
      ignored_++;
      return;
    }
    if (deleted) {
      auto it = refs_.find(hash);
      if (it != refs_.end()) {
        it->second.erase(node);
        if (it->second.empty()) refs_.erase(it);
      }
    } else {
      refs_[hash].insert(node);
    }
  } else if (kind == "endpoints") {
    applyEndpoint(key, rest, value, deleted);
  } else if (kind == "policy" && rest.empty()) {
    if (deleted) {
      policy_.reset();
      return;
    }
    auto m = decodeManifest(value);
    if (!m) {
      ignored_++;
      return;
    }
    policy_ = std::move(*m);
  }
}

void ClusterView::applyEndpoint(const std::string& key, const std::string& rest, const std::string& value,
                                bool deleted) {
  auto [node, what] = firstPart(rest);
  auto [kind, tail] = firstPart(what);
  if (node == self_) {
    if (deleted) {
      own_.erase(key);
      return;
    }
    auto r = decodeEndpoint(value);
    if (!r) {
      ignored_++;
      return;
    }
    own_[key] = std::move(*r);
    return;
  }
  if (deleted) {
    if (addresses_.erase(key) + listeners_.erase(key) > 0) endpointsVersion_++;
    return;
  }
  auto r = decodeEndpoint(value);
  if (!r) {
    ignored_++;
    return;
  }
  if (kind == "addr") {
    auto a = policy::parseAddress(tail);
    if (!a) {
      ignored_++;
      return;
    }
    RemoteAddress next{*a, r->identity, node, r->workload, r->kind};
    auto it = addresses_.find(key);
    if (it != addresses_.end() && it->second.identity == next.identity && it->second.workload == next.workload &&
        it->second.kind == next.kind) {
      return;
    }
    addresses_[key] = std::move(next);
    endpointsVersion_++;
  } else if (kind == "listen") {
    auto [proto, addrPort] = firstPart(tail);
    auto [addrText, portText] = firstPart(addrPort);
    auto a = policy::parseAddress(addrText);
    auto port = number<uint16_t>(portText);
    if ((proto != "tcp" && proto != "udp") || !a || !port || *port == 0) {
      ignored_++;
      return;
    }
    RemoteListener next{*a, *port, uint8_t(proto == "tcp" ? MS_PROTO_TCP : MS_PROTO_UDP), r->identity, node,
                        r->workload};
    auto it = listeners_.find(key);
    if (it != listeners_.end() && it->second.identity == next.identity && it->second.workload == next.workload) return;
    listeners_[key] = std::move(next);
    endpointsVersion_++;
  } else {
    ignored_++;
  }
}

}  // namespace microseg::cluster
