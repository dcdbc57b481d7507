#include "compiler/peers.h"

#include <algorithm>

namespace microseg::compiler {
namespace {

void addRanges(const std::map<std::string, std::vector<uint32_t>>& index, const std::string& key,
               std::vector<uint32_t>& out) {
  if (auto it = index.find(key); it != index.end()) out.insert(out.end(), it->second.begin(), it->second.end());
}

}  // namespace

bool subjectMatches(const policy::Policy& p, uint32_t identity, const identity::IdentityTable& ids) {
  auto labels = ids.labels.find(identity);
  if (labels == ids.labels.end() || !inNamespace(p, labels->second)) return false;
  if (ids.remoteOnly.count(identity)) return false;  // another node's: a peer here, never a subject
  const policy::Peer& sel = p.selector;
  if (sel.kind == policy::Peer::Kind::Identity) {
    auto it = ids.byWorkload.find(sel.identity);
    return it != ids.byWorkload.end() && it->second == identity;
  }
  return sel.kind == policy::Peer::Kind::Selector && sel.selector().matches(labels->second);
}

// An identity selector is one lookup, not a scan of every identity.
std::vector<uint32_t> subjectsOf(const policy::Policy& p, const identity::IdentityTable& ids) {
  std::vector<uint32_t> out;
  if (p.selector.kind == policy::Peer::Kind::Identity) {
    auto it = ids.byWorkload.find(p.selector.identity);
    if (it != ids.byWorkload.end() && subjectMatches(p, it->second, ids)) out.push_back(it->second);
    return out;
  }
  for (const auto& [id, labels] : ids.labels) {
    if (subjectMatches(p, id, ids)) out.push_back(id);
  }
  return out;
}

PeerExpander::PeerExpander(const policy::Bundle& bundle, const identity::IdentityTable& ids, bool many)
    : ids_(ids) {
  for (const auto& e : bundle.externals) externalLabels_.emplace_back(e.name, e.effectiveLabels());
  if (many) {
    workloads_.reserve(ids.byWorkload.size());
    for (const auto& [name, id] : ids.byWorkload) workloads_.emplace(name, id);
  }
  hashed_ = many;
}

void PeerExpander::expandInto(const policy::Peer& p, std::vector<uint32_t>& out) const {
  switch (p.kind) {
    case policy::Peer::Kind::Reserved:
      switch (p.reserved) {
        case policy::ReservedPeer::Host: out.push_back(MS_IDENTITY_HOST); break;
        case policy::ReservedPeer::World:
          // Anything that is not local, whether or not some External names
          // it: the kernel looks a range identity up as itself, then as
          // world (see covers() and the world folding in compile()).
          out.push_back(MS_IDENTITY_WORLD);
          break;
        case policy::ReservedPeer::Unmanaged: out.push_back(MS_IDENTITY_UNMANAGED); break;
      }
      break;
    case policy::Peer::Kind::Identity:
      if (auto w = workload(p.identity)) {
        out.push_back(*w);
      } else {
        addRanges(ids_.byExternal, p.identity, out);
      }
      break;
    case policy::Peer::Kind::Selector:
      for (const auto& [id, labels] : ids_.labels) {
        if (p.selector().matches(labels)) out.push_back(id);
      }
      for (const auto& [name, labels] : externalLabels_) {
        if (p.selector().matches(labels)) addRanges(ids_.byExternal, name, out);
      }
      break;
    case policy::Peer::Kind::Cidr: addRanges(ids_.byCidrPeer, p.cidrText(), out); break;
    // The fqdn identities whose names the pattern matches (its own and any
    // more specific pattern's, identities.h).
    case policy::Peer::Kind::Fqdn: addRanges(ids_.byFqdnPeer, p.identity, out); break;
  }
}

bool PeerExpander::covers(const policy::Peer& p, uint32_t id) const {
  std::vector<uint32_t> expanded;
  expandInto(p, expanded);
  if (std::find(expanded.begin(), expanded.end(), id) != expanded.end()) return true;
  return p.kind == policy::Peer::Kind::Reserved && p.reserved == policy::ReservedPeer::World &&
         id >= MS_IDENTITY_FIRST_EXTERNAL;
}

std::optional<uint32_t> PeerExpander::workload(const std::string& name) const {
  if (hashed_) {
    auto it = workloads_.find(name);
    return it == workloads_.end() ? std::nullopt : std::optional<uint32_t>(it->second);
  }
  auto it = ids_.byWorkload.find(name);
  return it == ids_.byWorkload.end() ? std::nullopt : std::optional<uint32_t>(it->second);
}

}  // namespace microseg::compiler
