// Revocation of established connections (README "Revocation"): when a
// change (a new generation, a mode switch, a grant's end) no longer allows
// a connection that is already open, the socket iterators
// (datapath/socket_iterator.h) list the sockets of every network namespace
// the daemon manages, the planner (revoke/revocation_plan.h) judges each
// connected socket of a workload for its own side with the generation in
// force, and what it refuses is destroyed (both ends see a reset) or, its
// side in monitor mode, recorded as `would-revoke`.
//
//   cause ─► netns of the workloads ─► list ─► plan ─► which to end ─► destroy ─► flow records
#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <fstream>
#include <map>
#include <set>

#include <spdlog/spdlog.h>

#include "common/names.h"
#include "compiler/explain.h"
#include "compiler/peers.h"
#include "daemon/daemon.h"
#include "identity/identities.h"
#include "policy/cidr.h"
#include "revoke/revocation_plan.h"

namespace microseg::daemon {
namespace {

using json = nlohmann::json;

int64_t realtimeNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// A network namespace the pass enters: "" is the daemon's own (the host's).
struct NetnsHandle {
  std::string path;  // "/proc/self/fd/N" of `fd`, or ""
  UniqueFd fd;
  uint64_t inode = 0;
};

// The network namespaces of the workloads' processes other than the
// daemon's own: each opened once (by the fd, so a pid that exits or is
// reused after it was read cannot send the pass elsewhere).
std::vector<NetnsHandle> workloadNetns(const std::vector<std::string>& cgroupDirs, uint64_t hostInode) {
  std::vector<NetnsHandle> out;
  std::set<uint64_t> seen{hostInode};
  for (const auto& dir : cgroupDirs) {
    std::ifstream procs(dir + "/cgroup.procs");
    std::string pid;
    while (std::getline(procs, pid)) {
      const std::string ns = "/proc/" + pid + "/ns/net";
      UniqueFd fd(open(ns.c_str(), O_RDONLY | O_CLOEXEC));
      struct stat st {};
      if (!fd || fstat(fd.get(), &st) != 0) continue;  // exited meanwhile
      if (!seen.insert(st.st_ino).second) continue;
      NetnsHandle h;
      h.path = "/proc/self/fd/" + std::to_string(fd.get());
      h.inode = st.st_ino;
      h.fd = std::move(fd);
      out.push_back(std::move(h));
    }
  }
  return out;
}

constexpr size_t kRevocationsLoggedPerPass = 20;

std::string addrKey(const ms_addr& a) { return std::string(reinterpret_cast<const char*>(a.a), sizeof(a.a)); }

// A socket of any netns of this host by its local end (address, port,
// protocol), loopback and wildcard addresses left out (the same ones exist
// in every netns): for a peer at a local address of another netns. An
// accepted socket is in its listener's cgroup, so the many that share a
// listener's end agree.
using LocalEnd = std::tuple<std::string, uint16_t, uint8_t>;

bool grantCovers(const grants::Grant& g, uint32_t from, uint32_t to, const revoke::Judged& j) {
  const bool egress = j.direction == policy::Direction::Egress;
  const uint32_t src = egress ? j.subject : j.peer, dst = egress ? j.peer : j.subject;
  return src == from && dst == to && j.socket.protocol == g.ports.protocol && j.port >= g.ports.first &&
         j.port <= g.ports.last;
}

}  // namespace

void Daemon::openRevocationLocked() {
  if (!makeSockets_) {
    revocationUnavailable_ = "this daemon was built without the kernel's socket iterators";
    return;
  }
  auto it = makeSockets_(datapath_->pinDir());
  if (!it) {
    revocationUnavailable_ = it.error().str();
    spdlog::warn("revocation: unavailable: {}; established connections are never revoked (status says so)",
                 revocationUnavailable_);
    return;
  }
  sockets_ = std::move(*it);
}

void Daemon::syncConnectionAgesLocked(bool grantComing) {
  // Only while revocation may end connections: the stamp is a socket-storage
  // write per end of every TCP connection of the tree.
  const bool want = sockets_ != nullptr && (grantComing || grants_.activeCount() > 0 || revocationWantedLocked());
  if (auto r = datapath_->setConnectionAges(want); !r) {
    // Revocation works without: its records then say the age is unknown.
    spdlog::warn("revocation: connection ages: {}", r.error().str());
    return;
  }
  connectionAges_ = want;
}

bool Daemon::revocationWantedLocked() const {
  if (config_.revokeOnChange) return true;
  for (const auto& p : gen().bundle.policies) {
    if (p.revokeOnChange) return true;
  }
  return false;
}

void Daemon::revokeEstablishedLocked(const RevocationCause& cause) {
  if (!sockets_) {
    if (!revocationUnavailable_.empty() && (cause.policyChange ? revocationWantedLocked() : !cause.endedGrants.empty())) {
      revocations_.skipped++;
    }
    return;
  }
  if (cause.endedGrants.empty() && !(cause.policyChange && revocationWantedLocked())) return;
  const auto started = std::chrono::steady_clock::now();

  // Which sides a change may end: the daemon's setting, or the policies
  // with spec.revokeEstablished: on-change that select the side.
  std::set<uint32_t> onChange;
  if (cause.policyChange && !config_.revokeOnChange) {
    for (const auto& p : gen().bundle.policies) {
      if (!p.revokeOnChange) continue;
      for (uint32_t id : compiler::subjectsOf(p, gen().ids)) onChange.insert(id);
    }
  }
  // The ended grants' sides, by identity.
  struct EndedGrant {
    const grants::Grant* grant;
    uint32_t from, to;
  };
  std::vector<EndedGrant> ended;
  const auto resolve = grantResolverLocked();
  for (const auto& g : cause.endedGrants) {
    auto from = resolve(g.from), to = resolve(g.to);
    if (from && to) ended.push_back({&g, from->identity, to->identity});
  }

  // Every netns the workloads' sockets live in.
  std::vector<std::string> dirs;
  for (const auto& [id, c] : cgroups_) {
    if (!c.workload.empty()) dirs.push_back(c.path == "/" ? config_.cgroupRoot : config_.cgroupRoot + c.path);
  }
  std::vector<NetnsHandle> spaces;
  spaces.emplace_back();  // the host's (the daemon's own)
  for (auto& h : workloadNetns(dirs, hostNetnsInode_)) spaces.push_back(std::move(h));
  std::vector<std::vector<ms_sock_record>> lists(spaces.size());
  std::map<LocalEnd, uint64_t> localEnds;  // -> the cgroup of the socket there
  for (size_t i = 0; i < spaces.size(); i++) {
    auto l = sockets_->list(spaces[i].path);
    if (!l) {
      revocations_.failed++;
      spdlog::warn("revocation: listing the sockets of netns {}: {}", spaces[i].inode, l.error().str());
      continue;
    }
    lists[i] = std::move(*l);
    for (const auto& s : lists[i]) {
      if (!policy::isLoopback(s.local) && !policy::isUnspecified(s.local)) localEnds[{addrKey(s.local), s.local_port, s.protocol}] = s.cgroup_id;
    }
  }

  // The ipcache as the kernel has it: this host's and the workloads'
  // netns addresses, other nodes' (cluster mode), then the policy's ranges.
  std::map<std::string, ms_ipcache_value> local;
  for (const auto& e : addresses_) local.emplace(addrKey(e.key.addr), e.value);
  for (const auto& e : remoteAddressEntriesLocked()) local.emplace(addrKey(e.key.addr), e.value);

  auto identityOfCgroup = [this](uint64_t cgroupId) -> std::optional<uint32_t> {
    auto it = cgroups_.find(cgroupId);
    if (it == cgroups_.end() || it->second.workload.empty() || it->second.identity == 0) return std::nullopt;
    return it->second.identity;
  };
  revoke::Resolver r;
  r.subjectOf = identityOfCgroup;
  r.localPeerOf = [this](uint64_t cgroupId) {
    auto it = cgroups_.find(cgroupId);
    return it != cgroups_.end() ? it->second.mapIdentity() : uint32_t{MS_IDENTITY_HOST};
  };
  r.peerOf = [&](const ms_addr& a, uint16_t port, uint8_t protocol, policy::Direction) -> std::optional<uint32_t> {
    auto it = local.find(addrKey(a));
    if (it == local.end()) return identity::lookupAddress(gen().ids, a);
    const ms_ipcache_value& v = it->second;
    // Another node: the caller there may have been named by its wire
    // identity, or the callee is one of its host-netns workloads; the
    // address alone cannot say which now.
    if (v.flags & MS_IPCACHE_F_REMOTE_NODE) return std::nullopt;
    if (v.flags & MS_IPCACHE_F_BROADCAST) return MS_IDENTITY_MULTICAST;
    // A socket of another netns of this host: the kernel judged it by that
    // socket's cgroup.
    if (auto s = localEnds.find({addrKey(a), htons(port), protocol}); s != localEnds.end()) {
      auto c = cgroups_.find(s->second);
      return c != cgroups_.end() ? c->second.mapIdentity() : MS_IDENTITY_HOST;
    }
    // A workload's own netns names it; a host address without a socket
    // found there (a wildcard listener) is left alone.
    return v.identity != MS_IDENTITY_HOST ? std::optional<uint32_t>(v.identity) : std::nullopt;
  };
  uint64_t nowMono = grants::Now::read().monoNs;
  r.allows = [&](uint32_t subject, uint32_t peer, policy::Direction dir, uint8_t protocol, uint16_t port,
                 std::string* why) {
    const auto d = compiler::evaluate(gen().compiled, subject, peer, dir, protocol, port);
    if (d.verdict == MS_VERDICT_ALLOW) return true;
    if (d.reason == MS_REASON_DEFAULT_DENY &&
        grants::grantFor(grantEntries_, subject, peer, dir == policy::Direction::Egress ? MS_DIR_EGRESS : MS_DIR_INGRESS,
                         protocol, port, nowMono)) {
      return true;
    }
    if (why != nullptr) *why = flows::ruleName(d.ruleId, d.reason, reloader_->rules());
    return false;
  };

  // Would-revoke sockets of earlier passes that are still open (any netns).
  std::set<uint64_t> stillWould;
  for (const auto& l : lists) {
    for (const auto& s : l) {
      if (wouldRevoked_.count(s.cookie)) stillWould.insert(s.cookie);
    }
  }
  wouldRevoked_ = std::move(stillWould);

  size_t destroyedNow = 0, wouldNow = 0, logged = 0;
  for (size_t i = 0; i < spaces.size(); i++) {
    const revoke::Plan plan = revoke::planRevocation(lists[i], r);
    revocations_.unknownPeer += plan.unknownPeer;
    std::vector<uint64_t> cookies;
    std::map<uint64_t, std::pair<const revoke::Judged*, EndedBy>> chosen;  // cookie -> (judged, ended by)
    for (const auto& j : plan.revoke) {
      EndedBy by;
      for (const auto& e : ended) {
        if (grantCovers(*e.grant, e.from, e.to, j)) {
          by.grant = e.grant->id;
          by.what = "grant " + std::to_string(e.grant->id) + " " + e.grant->ended;
        }
      }
      if (by.what.empty() && cause.policyChange && (config_.revokeOnChange || onChange.count(j.subject))) {
        by.what = cause.what;
      }
      if (by.what.empty()) continue;
      uint32_t mode = workloadModeLocked(gen().ids.nameOf(j.subject), j.subject);
      if (mode == MS_MODE_INHERIT) mode = datapath_->mode();
      if (mode == MS_MODE_MONITOR) {
        // Once per connection: a later change that still would is no news.
        if (wouldRevoked_.insert(j.socket.cookie).second) {
          recordRevocationLocked(j, MS_VERDICT_WOULD_REVOKE, by, logged);
          wouldNow++;
        }
        continue;
      }
      cookies.push_back(j.socket.cookie);
      chosen[j.socket.cookie] = {&j, by};
    }
    if (cookies.empty()) continue;
    auto done = sockets_->destroy(cookies, spaces[i].path);
    if (!done) {
      revocations_.failed += cookies.size();
      spdlog::error("revocation: destroying {} sockets in netns {}: {}", cookies.size(), spaces[i].inode,
                    done.error().str());
      continue;
    }
    for (const auto& rec : *done) {
      auto c = chosen.find(rec.cookie);
      if (c == chosen.end()) continue;
      if (!rec.destroyed) {
        revocations_.failed++;
        spdlog::warn("revocation: socket {} not destroyed: {}", rec.cookie, std::strerror(-rec.destroy_error));
        continue;
      }
      recordRevocationLocked(*c->second.first, MS_VERDICT_REVOKED, c->second.second, logged);
      destroyedNow++;
    }
  }
  revocations_.passes++;
  revocations_.lastPassMs =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started).count();
  if (destroyedNow + wouldNow > 0) {
    spdlog::info("revocation: {}: {} connections revoked, {} would be (monitor mode); {} netns, {:.1f} ms",
                 cause.what, destroyedNow, wouldNow, spaces.size(), revocations_.lastPassMs);
  }
  drainEventsLocked();  // the records reach the flow log now
}

void Daemon::recordRevocationLocked(const revoke::Judged& j, uint8_t verdict, const EndedBy& by,
                                    size_t& loggedThisPass) {
  const ms_sock_record& s = j.socket;
  const bool egress = j.direction == policy::Direction::Egress;
  ms_event e{};
  e.timestamp_ns = static_cast<uint64_t>(realtimeNs() - clockOffsetNs_);
  e.generation = gen().number;
  e.direction = egress ? MS_DIR_EGRESS : MS_DIR_INGRESS;
  e.hook = egress ? MS_HOOK_CONNECT4 : MS_HOOK_INGRESS;
  e.protocol = s.protocol;
  e.verdict = verdict;
  e.src_identity = egress ? j.subject : j.peer;
  e.dst_identity = egress ? j.peer : j.subject;
  (egress ? e.src_cgroup_id : e.dst_cgroup_id) = s.cgroup_id;
  e.src_addr = egress ? s.local : s.remote;
  e.dst_addr = egress ? s.remote : s.local;
  e.src_port = egress ? s.local_port : s.remote_port;
  e.dst_port = htons(j.port);
  // The rule the record names: the grant that ended, else what decides
  // the connection now (a deny rule, or none: default deny).
  if (by.grant != 0) {
    e.reason = MS_REASON_GRANT;
    e.rule_id = by.grant;
  } else {
    const auto d = compiler::evaluate(gen().compiled, j.subject, j.peer, j.direction, s.protocol, j.port);
    e.reason = d.reason;
    e.rule_id = d.ruleId;
  }
  const flows::FlowRecord& rec = flowStore_.add(e, realtimeNs());
  // Its age by the kernel's stamp (CLOCK_MONOTONIC, coarse), when it has one.
  const uint64_t nowMono = grants::Now::read().monoNs;
  const int64_t ageNs = s.since_ns == 0 ? -1 : s.since_ns >= nowMono ? 0 : static_cast<int64_t>(nowMono - s.since_ns);
  flowStore_.setRevocation(rec.id, by.what, ageNs);
  const std::string workload = gen().ids.nameOf(j.subject);
  flowEventCounts_[{directionName(e.direction), verdictName(verdict), workload}]++;
  (verdict == MS_VERDICT_REVOKED ? revocations_.revoked : revocations_.wouldRevoke)++;
  // The first of a pass at info, the rest at debug: a change that ends
  // thousands of connections is one summary line, not thousands (each is a
  // flow record either way).
  const auto level = loggedThisPass++ < kRevocationsLoggedPerPass ? spdlog::level::info : spdlog::level::debug;
  spdlog::log(level, "revocation: {} {} {} {}:{} -> {}:{} ({}; {}; {}; open {}; flow {})", verdictName(verdict),
              directionName(e.direction), workload, flows::formatAddr(e.src_addr), ntohs(e.src_port),
              flows::formatAddr(e.dst_addr), j.port, gen().ids.nameOf(j.peer), protocolName(s.protocol), by.what,
              ageNs < 0 ? std::string("since before microseg watched") : fmt::format("{:.1f} s", double(ageNs) / 1e9),
              rec.id);
}

json Daemon::revocationStatusLocked() const {
  return json{{"available", sockets_ != nullptr},
              {"unavailable_reason", revocationUnavailable_.empty() ? json(nullptr) : json(revocationUnavailable_)},
              {"revoke_established", config_.revokeOnChange ? "on-change" : "never"},
              {"connection_ages", connectionAges_},
              {"passes", revocations_.passes},
              {"revoked", revocations_.revoked},
              {"would_revoke", revocations_.wouldRevoke},
              {"failed", revocations_.failed},
              {"unknown_peer", revocations_.unknownPeer},
              {"skipped_unavailable", revocations_.skipped},
              {"last_pass_ms", revocations_.lastPassMs}};
}

}  // namespace microseg::daemon
