#include "flows/flow_record.h"

#include "common/text.h"
#include "flows/flow_store.h"
#include "policy/cidr.h"

#include <arpa/inet.h>

#include <cstring>
#include <ctime>

namespace microseg::flows {

std::string formatAddr(const ms_addr& addr) { return policy::formatAddress(addr); }

std::string isoTime(int64_t realtimeNs) {
  time_t secs = static_cast<time_t>(realtimeNs / 1000000000);
  long micros = static_cast<long>((realtimeNs % 1000000000) / 1000);
  struct tm tm {};
  gmtime_r(&secs, &tm);
  char buf[64];
  size_t n = strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(buf + n, sizeof(buf) - n, ".%06ldZ", micros);
  return buf;
}

std::string ruleName(uint32_t ruleId, uint8_t reason, const compiler::RuleRegistry& rules) {
  if (reason == MS_REASON_GRANT) return "grant:" + std::to_string(ruleId);
  if (reason != MS_REASON_RULE) return reasonName(reason);
  return rules.nameOf(ruleId);
}

namespace {

bool isZero(const ms_addr& a) {
  static const ms_addr kZero{};
  return std::memcmp(&a, &kZero, sizeof(a)) == 0;
}

}  // namespace

nlohmann::json eventToJson(const ms_event& e, const FlowContext& ctx) {
  using nlohmann::json;
  auto lookup = [](const std::map<uint64_t, std::string>& m, uint64_t k) -> std::string {
    auto it = m.find(k);
    return it == m.end() ? std::string() : it->second;
  };
  // One end: the workload of its socket's cgroup when the kernel named the
  // cgroup, else the identity's name.
  auto end = [&](uint32_t identity, uint64_t cgroupId) {
    std::string workload = cgroupId != 0 ? lookup(*ctx.cgroupWorkloads, cgroupId) : std::string();
    if (workload.empty()) workload = ctx.ids->nameOf(identity);
    // A cgroup is named by whoever created it: bytes, not necessarily UTF-8.
    const std::string cgroup = cgroupId != 0 ? text::toUtf8(lookup(*ctx.cgroupPaths, cgroupId)) : std::string();
    return json{{"workload", text::toUtf8(workload)},
                {"identity", identity},
                {"cgroup", cgroup.empty() ? json(nullptr) : json(cgroup)},
                {"cgroup_id", cgroupId == 0 ? json(nullptr) : json(cgroupId)}};
  };
  json src = end(e.src_identity, e.src_cgroup_id);
  src["addr"] = isZero(e.src_addr) ? json(nullptr) : json(formatAddr(e.src_addr));
  src["port"] = e.src_port == 0 ? json(nullptr) : json(ntohs(e.src_port));
  // The caller's process is known when the caller's side judged (egress).
  src["pid"] = e.pid == 0 ? json(nullptr) : json(e.pid);
  // Any process may name itself any bytes (prctl(PR_SET_NAME)).
  const std::string comm = text::toUtf8(std::string_view(e.comm, strnlen(e.comm, sizeof(e.comm))));
  src["comm"] = comm.empty() ? json(nullptr) : json(comm);
  json dst = end(e.dst_identity, e.dst_cgroup_id);
  dst["addr"] = formatAddr(e.dst_addr);
  dst["port"] = ntohs(e.dst_port);
  // An address a DNS answer bound for the caller: the name it resolved.
  if (e.fqdn_name != 0) {
    json name = nullptr;
    if (ctx.fqdnNames != nullptr) {
      if (auto n = ctx.fqdnNames->find(e.fqdn_name); n != ctx.fqdnNames->end()) name = text::toUtf8(n->second);
    }
    dst["name"] = std::move(name);
  }
  json out{{"time", isoTime(static_cast<int64_t>(e.timestamp_ns) + ctx.monotonicToRealtimeNs)},
              {"verdict", verdictName(e.verdict)},
              {"direction", directionName(e.direction)},
              {"protocol", protocolName(e.protocol)},
              {"hook", hookName(e.hook)},
              {"src", src},
              {"dst", dst},
              {"rule", ruleName(e.rule_id, e.reason, *ctx.rules)},
              {"reason", reasonName(e.reason)},
              {"peer_via", peerViaName(e.peer_via)},
              {"generation", e.generation}};
  // The tier of the deciding rule where it is not the application tier
  // (records read as before tiers where there are none).
  if (e.reason == MS_REASON_RULE) {
    if (const auto tier = ctx.rules->tierOf(e.rule_id); tier != policy::Tier::Application) {
      out["tier"] = policy::tierName(tier);
    }
  }
  return out;
}

nlohmann::json recordToJson(const FlowRecord& r, uint64_t delta, const FlowContext& ctx) {
  ms_event e{};
  e.src_cgroup_id = r.srcCgroupId;
  e.dst_cgroup_id = r.dstCgroupId;
  e.generation = r.generation;
  e.pid = r.pid;
  e.src_identity = r.key.srcIdentity;
  e.dst_identity = r.key.dstIdentity;
  e.rule_id = r.key.ruleId;
  e.src_addr = r.srcAddr;
  e.src_port = htons(r.srcPort);
  e.dst_addr = r.dstAddr;
  e.dst_port = htons(r.key.dstPort);
  e.protocol = r.key.protocol;
  e.verdict = r.key.verdict;
  e.direction = r.key.direction;
  e.hook = r.hook;
  e.reason = r.key.reason;
  e.peer_via = r.key.peerVia;
  e.fqdn_name = r.fqdnName;
  std::strncpy(e.comm, r.comm.c_str(), sizeof(e.comm) - 1);
  nlohmann::json j = eventToJson(e, ctx);
  j["time"] = isoTime(r.lastSeenNs);
  j["record_id"] = r.id;
  j["count"] = delta;
  j["total"] = r.count;
  j["first_seen"] = isoTime(r.firstSeenNs);
  j["last_seen"] = isoTime(r.lastSeenNs);
  if (r.key.verdict == MS_VERDICT_REVOKED || r.key.verdict == MS_VERDICT_WOULD_REVOKE) {
    // Milliseconds are as precise as the kernel's stamp (a coarse clock).
    j["revocation"] = {{"by", r.revokedBy},
                       {"connection_age_s", r.connectionAgeNs < 0
                                                ? nlohmann::json(nullptr)
                                                : nlohmann::json(double(r.connectionAgeNs / 1000000) / 1000.0)}};
  }
  if (ctx.staged != nullptr) {
    const diff::StagedVerdict v = stagedVerdictOf(r, *ctx.staged, *ctx.ids);
    j["staged_verdict"] = verdictName(v.verdict);
    j["staged_rule"] = diff::stagedRuleName(*ctx.staged, v);
  }
  return j;
}

diff::JudgedFlow judgedFlow(const FlowRecord& r) {
  diff::JudgedFlow f;
  f.direction = r.key.direction;
  f.src = r.key.srcIdentity;
  f.dst = r.key.dstIdentity;
  f.protocol = r.key.protocol;
  f.port = r.key.dstPort;
  f.verdict = r.key.verdict;
  f.ruleId = r.key.ruleId;
  f.reason = r.key.reason;
  f.srcAddr = r.srcAddr;
  f.dstAddr = r.dstAddr;
  return f;
}

diff::StagedVerdict stagedVerdictOf(const FlowRecord& r, const diff::StagedSet& staged,
                                    const identity::IdentityTable& inForce) {
  if (r.stagedStamp != 0 && r.stagedStamp == staged.compiled.stamp) {
    return diff::StagedVerdict{r.stagedVerdict, r.stagedRuleId, r.stagedReason};
  }
  return diff::judgeStaged(staged, inForce, judgedFlow(r));
}

std::string recordLine(const FlowRecord& r, uint64_t delta, const FlowContext& ctx) {
  std::string line = text::jsonText(recordToJson(r, delta, ctx));
  line.push_back('\n');
  return line;
}

int64_t monotonicToRealtimeOffsetNs() {
  timespec rt{}, mono{};
  clock_gettime(CLOCK_MONOTONIC, &mono);
  clock_gettime(CLOCK_REALTIME, &rt);
  auto ns = [](const timespec& t) { return int64_t(t.tv_sec) * 1000000000 + t.tv_nsec; };
  return ns(rt) - ns(mono);
}

}  // namespace microseg::flows
