// Read-only views served on the control socket: flows, explain, workloads,
// policy.show, graph. They answer "why was this dropped?" from the policy
// in force and the aggregated flow records.
#include <arpa/inet.h>
#include <dirent.h>
#include <spdlog/spdlog.h>

#include <fstream>
#include <sstream>
#include <string_view>
#include <unordered_map>

#include "fqdn/name_entries.h"
#include "common/names.h"
#include "common/text.h"
#include "control/protocol.h"
#include "control/server.h"
#include "compiler/explain.h"
#include "compiler/rule_text.h"
#include "daemon/daemon.h"
#include "daemon/request_fields.h"
#include "policy/cidr.h"

namespace microseg::daemon {
namespace {

using control::ControlError;
using control::Request;
using nlohmann::json;

const char* kReserved[] = {"host", "world", "unmanaged", "pending"};

std::optional<uint32_t> reservedId(const std::string& name) {
  if (name == "host") return MS_IDENTITY_HOST;
  if (name == "world") return MS_IDENTITY_WORLD;
  if (name == "unmanaged") return MS_IDENTITY_UNMANAGED;
  if (name == "pending") return MS_IDENTITY_PENDING;
  return std::nullopt;
}

uint8_t protocolOf(const std::string& p) {
  if (auto proto = parseProtocol(p)) return *proto;
  throw ControlError(control::kErrBadRequest, "protocol '" + p + "' is not tcp or udp", {});
}

const char* effectiveModeName(uint32_t mode) { return modeName(mode == MS_MODE_ENFORCE ? MS_MODE_ENFORCE : MS_MODE_MONITOR); }

size_t processCount(const std::string& cgroupDir) {
  std::ifstream in(cgroupDir + "/cgroup.procs");
  size_t n = 0;
  std::string line;
  while (std::getline(in, line)) n += !line.empty();
  return n;
}

}  // namespace

std::set<uint32_t> Daemon::resolvePeerFilterLocked(const std::string& spec) const {
  std::set<uint32_t> out;
  if (auto r = reservedId(spec)) return {*r};
  if (auto it = gen().ids.byWorkload.find(spec); it != gen().ids.byWorkload.end()) return {it->second};
  // An External: every identity of its ranges (several when other ranges
  // overlap parts of it).
  if (auto it = gen().ids.byExternal.find(spec); it != gen().ids.byExternal.end()) {
    return {it->second.begin(), it->second.end()};
  }
  // A remote address: the identity the ipcache gives it.
  if (auto addr = policy::parseAddress(spec)) return {identity::lookupAddress(gen().ids, *addr)};
  // A name (fqdn peers): fqdn:PATTERN as a policy writes it, or fqdn:NAME,
  // the identity an answer for that name binds (its most specific pattern).
  if (spec.rfind("fqdn:", 0) == 0) {
    if (auto id = fqdn::identityOfName(gen().ids.fqdns, spec.substr(5))) return {*id};
    throw ControlError(control::kErrBadRequest,
                       "'" + spec + "': no policy names " + spec.substr(5) + " or a pattern matching it", {});
  }
  if (spec.find('=') == std::string::npos) {
    throw ControlError(control::kErrBadRequest,
                       "'" + spec + "' is neither a workload, an External, an IP address, a reserved name "
                                    "(host, world, unmanaged) nor a label selector like app=web",
                       {});
  }
  policy::LabelSelector sel;
  std::stringstream ss(spec);
  std::string part;
  while (std::getline(ss, part, ',')) {
    auto eq = part.find('=');
    if (eq == std::string::npos || eq == 0) {
      throw ControlError(control::kErrBadRequest, "bad label selector '" + spec + "' (want k=v[,k=v])", {});
    }
    sel.matchLabels[part.substr(0, eq)] = part.substr(eq + 1);
  }
  for (const auto& [id, labels] : gen().ids.labels) {
    if (sel.matches(labels)) out.insert(id);
  }
  for (const auto& e : gen().bundle.externals) {
    if (!sel.matches(e.effectiveLabels())) continue;
    if (auto it = gen().ids.byExternal.find(e.name); it != gen().ids.byExternal.end()) out.insert(it->second.begin(), it->second.end());
  }
  return out;
}

void Daemon::registerQueries() {
  // Written as text, a record at a time (up to 100k records: as one
  // document that was hundreds of MB).
  control_->registerTextCommand(
      command::kFlows, [this](const Request& req, std::string& out) {
        const std::string verdict = optString(req.body, "verdict");
        if (!verdict.empty() && !parseVerdict(verdict)) {
          throw ControlError(control::kErrBadRequest, "verdict '" + verdict + "' is not allow, deny, audit, revoked or would-revoke", {});
        }
        const std::string from = optString(req.body, "from"), to = optString(req.body, "to");
        const int64_t port = optInt(req.body, "port", 0, 65535, 0);
        const int64_t sinceSec = optInt(req.body, "since_seconds", 0, 365LL * 86400, 0);
        const int64_t afterSeq = optInt(req.body, "after_seq", 0, INT64_MAX, 0);
        const int64_t limit = optInt(req.body, "limit", 1, 100000, 1000);
        std::lock_guard<std::mutex> lock(mu_);
        drainEventsLocked();  // what the kernel has now, not 100 ms ago
        std::set<uint32_t> fromIds, toIds;
        if (!from.empty()) fromIds = resolvePeerFilterLocked(from);
        if (!to.empty()) toIds = resolvePeerFilterLocked(to);
        const int64_t sinceNs =
            sinceSec == 0 ? 0
                          : std::chrono::duration_cast<std::chrono::nanoseconds>(
                                std::chrono::system_clock::now().time_since_epoch())
                                    .count() -
                                sinceSec * 1000000000LL;
        auto recs = afterSeq > 0 ? flowStore_.updatedAfter(static_cast<uint64_t>(afterSeq)) : flowStore_.all();
        const auto ctx = flowContextLocked();
        uint64_t lost = 0;
        if (auto c = datapath_->counters(); c) lost = eventsLostLocked(*c);
        // Keys in the order a JSON document would print them (sorted).
        out += "{\"events_lost\":" + std::to_string(lost) + ",\"records\":[";
        int64_t n = 0;
        for (const auto& r : recs) {
          if (!verdict.empty() && verdict != verdictName(r.key.verdict)) continue;
          if (!from.empty() && !fromIds.count(r.key.srcIdentity)) continue;
          if (!to.empty() && !toIds.count(r.key.dstIdentity)) continue;
          if (port != 0 && r.key.dstPort != port) continue;
          if (r.lastSeenNs < sinceNs) continue;
          if (n++ > 0) out += ',';
          out += control::encodeMessage(flows::recordToJson(r, r.count, ctx));
          if (n >= limit) break;
        }
        out += "],\"seq\":" + std::to_string(flowStore_.seq()) +
               ",\"staged\":" + (gen().staged ? "true" : "false") + ",\"store\":" +
               control::encodeMessage(json{{"records", flowStore_.size()},
                                           {"capacity", flowStore_.capacity()},
                                           {"evicted", flowStore_.evicted()},
                                           {"events", flowStore_.events()}}) +
               "}";
      },
      false);

  control_->registerCommand(
      command::kExplain, [this](const Request& req) {
        std::lock_guard<std::mutex> lock(mu_);
        uint32_t from = 0, to = 0;
        uint16_t port = 0;
        uint8_t proto = MS_PROTO_TCP;
        // Which side's policy to explain: a flow between two workloads is
        // judged by the caller's egress and by the callee's ingress.
        bool egressSide = true, ingressSide = true;
        json flow = nullptr;
        if (req.body.contains("flow")) {
          const int64_t id = optInt(req.body, "flow", 1, INT64_MAX, 0);
          drainEventsLocked();
          auto r = flowStore_.find(static_cast<uint64_t>(id));
          if (!r) throw ControlError(control::kErrBadRequest, "no flow record " + std::to_string(id), {});
          from = r->key.srcIdentity;
          to = r->key.dstIdentity;
          port = r->key.dstPort;
          proto = r->key.protocol;
          egressSide = r->key.direction == MS_DIR_EGRESS;
          ingressSide = !egressSide;
          flow = flows::recordToJson(*r, r->count, flowContextLocked());
        } else {
          const std::string fromName = optString(req.body, "from"), toName = optString(req.body, "to");
          if (fromName.empty() || toName.empty()) {
            throw ControlError(control::kErrBadRequest, "'from' and 'to' are required (or 'flow')", {});
          }
          auto one = [&](const std::string& n) {
            auto s = resolvePeerFilterLocked(n);
            if (s.size() != 1) {
              throw ControlError(control::kErrBadRequest,
                                 "'" + n + "' names " + std::to_string(s.size()) +
                                     " identities; name one workload, reserved peer or address (an "
                                     "External whose ranges overlap others has one identity per part: "
                                     "name an address in it)",
                                 {});
            }
            return *s.begin();
          };
          from = one(fromName);
          to = one(toName);
          port = static_cast<uint16_t>(optInt(req.body, "port", 1, 65535, 0));
          if (port == 0) throw ControlError(control::kErrBadRequest, "'port' is required", {});
          const std::string p = optString(req.body, "protocol");
          proto = p.empty() ? MS_PROTO_TCP : protocolOf(p);
          const std::string d = optString(req.body, "direction");
          const auto dir = parseDirection(d);
          if (!d.empty() && !dir) {
            throw ControlError(control::kErrBadRequest, "direction '" + d + "' is not egress or ingress", {});
          }
          if (dir == MS_DIR_EGRESS) ingressSide = false;
          if (dir == MS_DIR_INGRESS) egressSide = false;
        }
        // Only workloads have policy; the other end of a side is its peer.
        auto governed = [&](uint32_t id) { return gen().ids.workloads.count(id) != 0; };
        json sides = json::array();
        auto side = [&](policy::Direction dir, uint32_t subject, uint32_t peer) {
          auto ex = compiler::explain(gen().bundle, gen().ids, gen().compiled, subject, peer, dir, proto, port);
          // As the kernel: a grant only where the policy found nothing (grants/grants.h).
          if (ex.decision.reason == MS_REASON_DEFAULT_DENY) {
            const uint8_t d = dir == policy::Direction::Ingress ? MS_DIR_INGRESS : MS_DIR_EGRESS;
            if (auto g = grants::grantFor(grantEntries_, subject, peer, d, proto, port, grants::Now::read().monoNs)) {
              ex.decision = {MS_VERDICT_ALLOW, *g, MS_REASON_GRANT};
            }
          }
          uint32_t mode = datapath_->mode();
          if (const ms_identity_value* v = gen().compiled.identity(subject); v != nullptr && v->mode != MS_MODE_INHERIT) {
            mode = v->mode;
          }
          if (auto w = gen().ids.workloads.find(subject); w != gen().ids.workloads.end()) {
            for (const auto& name : w->second) {
              if (auto m = workloadModes_.find(name); m != workloadModes_.end()) mode = m->second;
            }
          }
          std::string outcome = verdictName(ex.decision.verdict);
          if (ex.decision.verdict == MS_VERDICT_DENY && mode == MS_MODE_MONITOR) outcome = verdictName(MS_VERDICT_AUDIT);
          json rules = json::array();
          for (const auto& c : ex.rules) {
            rules.push_back({{"rule", c.rule}, {"id", c.ruleId}, {"tier", c.tier}, {"text", c.text},
                             {"matches", c.matches}, {"why", c.why}});
          }
          json decided = nullptr;
          if (const compiler::RuleInfo* r = gen().compiled.rules.find(ex.decision.ruleId);
              r != nullptr && ex.decision.reason == MS_REASON_RULE) {
            const policy::Policy* p = gen().bundle.findPolicy(r->policy());
            const std::string text = p != nullptr ? compiler::ruleText(*p, *r) : "";
            decided = {{"rule", r->name()}, {"id", r->id}, {"text", text},
                       {"location", r->loc().file.str() + ":" + std::to_string(r->loc().line)}};
          }
          sides.push_back({{"direction", directionName(dir == policy::Direction::Ingress ? MS_DIR_INGRESS : MS_DIR_EGRESS)},
                           {"judged_by", {{"identity", subject}, {"workload", gen().ids.nameOf(subject)}}},
                           {"verdict", verdictName(ex.decision.verdict)},
                           {"outcome", outcome},
                           {"mode", effectiveModeName(mode)},
                           {"reason", reasonName(ex.decision.reason)},
                           {"rule", flows::ruleName(ex.decision.ruleId, ex.decision.reason, reloader_->rules())},
                           {"decided_by", decided},
                           {"selecting_policies", ex.selectingPolicies},
                           {"tier", ex.tier},
                           {"application_policies", ex.applicationPolicies},
                           {"passed_by", ex.passedBy.empty() ? json(nullptr) : json(ex.passedBy)},
                           {"rules_checked", rules}});
        };
        if (egressSide && governed(from)) side(policy::Direction::Egress, from, to);
        if (ingressSide && governed(to)) side(policy::Direction::Ingress, to, from);

        // The flow passes if every side that judges it lets it; the first
        // side that refuses decides.
        json decidingSide = nullptr;
        const std::string allow = verdictName(MS_VERDICT_ALLOW), deny = verdictName(MS_VERDICT_DENY),
                          audit = verdictName(MS_VERDICT_AUDIT);
        std::string verdict = allow, outcome = allow;
        for (const auto& sd : sides) {
          if (sd["verdict"] == deny && verdict == allow) {
            verdict = deny;
            decidingSide = sd;
          }
          if (sd["outcome"] == deny) {
            outcome = deny;
          } else if (sd["outcome"] == audit && outcome == allow) {
            outcome = audit;
          }
        }
        if (decidingSide.is_null() && !sides.empty()) decidingSide = sides[0];
        // Cluster mode: the other nodes where an end's identity has
        // endpoints (addresses or listeners): a remote peer is named by
        // workload and node.
        auto end = [&](uint32_t id) {
          json e{{"identity", id}, {"workload", gen().ids.nameOf(id)}};
          if (agentSnap_) {
            std::set<std::string> nodes;
            for (const auto& a : agentSnap_->addresses) {
              if (a.identity == id) nodes.insert(a.node);
            }
            for (const auto& l : agentSnap_->listeners) {
              if (l.identity == id) nodes.insert(l.node);
            }
            e["remote_nodes"] = nodes;
          }
          return e;
        };
        json out = {{"from", end(from)},
                    {"to", end(to)},
                    {"port", port},
                    {"protocol", protocolName(proto)},
                    {"verdict", verdict},
                    {"outcome", outcome},
                    {"sides", sides},
                    {"flow", flow},
                    {"generation", gen().number}};
        if (decidingSide.is_null()) {
          // Neither end is a workload: nothing of ours governs this flow.
          out["direction"] = nullptr;
          out["mode"] = effectiveModeName(datapath_->mode());
          out["reason"] = "not-governed";
          out["rule"] = "not-governed";
          out["decided_by"] = nullptr;
          out["selecting_policies"] = json::array();
          out["rules_checked"] = json::array();
        } else {
          // The deciding side's details at the top (scripts written for a
          // single-sided explain keep working).
          for (const char* k : {"direction", "mode", "reason", "rule", "decided_by", "selecting_policies",
                                "rules_checked"}) {
            out[k] = decidingSide[k];
          }
        }
        return out;
      },
      false);

  control_->registerCommand(
      command::kWorkloads, [this](const Request&) {
        std::lock_guard<std::mutex> lock(mu_);
        json out = json::array();
        for (const auto& w : gen().bundle.workloads) {
          const uint32_t ident = gen().ids.byWorkload.count(w.name) ? gen().ids.byWorkload.at(w.name) : 0;
          json cgroups = json::array();
          size_t procs = 0;
          for (const auto& [id, c] : cgroups_) {
            if (c.workload != w.name) continue;
            if (!c.inherited) cgroups.push_back(text::toUtf8(c.path));
            procs += processCount(config_.cgroupRoot + (c.path == "/" ? "" : c.path));
          }
          // Whom its egress may reach, and who its ingress admits.
          std::set<uint32_t> peers, callers;
          bool anyPeer = false, anyCaller = false;
          for (const auto& e : gen().compiled.entries) {
            if (e.key.subject != ident || e.value.verdict != MS_VERDICT_ALLOW) continue;
            const bool egress = e.key.direction == MS_DIR_EGRESS;
            if (e.key.peer == MS_IDENTITY_ANY) {
              (egress ? anyPeer : anyCaller) = true;
            } else {
              (egress ? peers : callers).insert(e.key.peer);
            }
          }
          const uint32_t mode = workloadModeLocked(w.name, ident);
          const uint32_t effective = mode == MS_MODE_INHERIT ? datapath_->mode() : mode;
          json peerNames = json::array(), callerNames = json::array();
          for (uint32_t p : peers) peerNames.push_back(gen().ids.nameOf(p));
          for (uint32_t p : callers) callerNames.push_back(gen().ids.nameOf(p));
          out.push_back({{"name", w.name},
                         {"identity", ident},
                         {"labels", w.labels},
                         {"spiffe_id", w.spiffeId.empty() ? json(nullptr) : json(w.spiffeId)},
                         {"cgroups", cgroups},
                         {"processes", procs},
                         {"mode", modeName(mode)},
                         {"effective_mode", effectiveModeName(effective)},
                         {"allowed_peers", anyPeer ? json("any") : json(peers.size())},
                         {"allowed_peer_names", peerNames},
                         {"allowed_callers", anyCaller ? json("any") : json(callers.size())},
                         {"allowed_caller_names", callerNames}});
        }
        return json{{"workloads", out}};
      },
      false);

  // Written as text: a document of 100k rules took ~250 MB of the daemon's
  // heap (kept after) and 4 s under the lock; the text is ~290 bytes a rule.
  control_->registerTextCommand(
      command::kPolicyShow, [this](const Request&, std::string& out) {
        std::lock_guard<std::mutex> lock(mu_);
        const uint32_t maxId = gen().compiled.rules.maxId();
        std::map<uint32_t, uint64_t> hits;
        if (auto h = datapath_->ruleHits(maxId); h) hits = *h;
        auto hitsOf = [&](uint32_t id) {
          auto it = hits.find(id);
          return it == hits.end() ? uint64_t{0} : it->second;
        };
        std::unordered_map<std::string_view, const policy::Policy*> byName;
        for (const auto& p : gen().bundle.policies) byName.emplace(p.name, &p);
        auto textOf = [&](const compiler::RuleInfo& r) {
          auto p = byName.find(r.policy());
          return p == byName.end() ? std::string() : compiler::ruleText(*p->second, r);
        };
        // Keys in the order a JSON document would print them (sorted).
        out += "{\"default_deny_hits\":" + std::to_string(hitsOf(0)) +
               ",\"entries\":" + std::to_string(gen().compiled.entries.size()) +
               ",\"generation\":" + std::to_string(gen().number) +
               ",\"policy_source\":" + (config_.policyFromEtcd() ? "\"etcd\"" : "\"files\"") + ",\"rules\":[";
        bool first = true;
        for (const auto& [id, r] : gen().compiled.rules) {
          out += first ? "{\"action\":" : ",{\"action\":";
          first = false;
          out += r.action == policy::Action::Allow  ? "\"allow\""
                 : r.action == policy::Action::Pass ? "\"pass\""
                                                    : "\"deny\"";
          out += ",\"direction\":";
          control::appendJsonString(out, directionName(r.direction == policy::Direction::Ingress ? MS_DIR_INGRESS : MS_DIR_EGRESS));
          out += ",\"hits\":" + std::to_string(hitsOf(id)) + ",\"id\":" + std::to_string(id) +
                 ",\"index\":" + std::to_string(r.index) + ",\"location\":";
          control::appendJsonString(out, r.loc().file.str() + ":" + std::to_string(r.loc().line) + ":" +
                                             std::to_string(r.loc().column));
          out += ",\"policy\":";
          control::appendJsonString(out, r.policy());
          out += ",\"rule\":";
          control::appendJsonString(out, r.name());
          out += ",\"text\":";
          control::appendJsonString(out, textOf(r));
          out += ",\"tier\":";
          control::appendJsonString(out, policy::tierName(reloader_->rules().tierOf(id)));
          out += '}';
        }
        // Staged policies: validated and compiled, never enforced (no rule
        // above is theirs). `staged_at` is the `staged: true` that promote
        // removes.
        out += "],\"staged\":[";
        first = true;
        if (const auto& staged = gen().staged) {
          auto at = [](const policy::SourceLocation& l) {
            return l.file.str() + ":" + std::to_string(l.line) + ":" + std::to_string(l.column);
          };
          for (const auto& p : staged->policies) {
            out += first ? "{\"location\":" : ",{\"location\":";
            first = false;
            control::appendJsonString(out, at(p.loc));
            out += ",\"policy\":";
            control::appendJsonString(out, p.name);
            out += ",\"rules\":" + std::to_string(p.egress.size() + p.ingress.size()) + ",\"staged_at\":";
            control::appendJsonString(out, at(p.stagedLoc));
            out += '}';
          }
        }
        out += "]}";
      },
      false);

  // Written as text (see policy.show): at 100k rules the document took
  // ~170 MB; the rows here are what it is made of, ~50 bytes an entry.
  control_->registerTextCommand(
      command::kGraph, [this](const Request&, std::string& out) {
        std::lock_guard<std::mutex> lock(mu_);
        drainEventsLocked();
        // Nodes in the order they are first met: every identity, then the
        // ends of edges (reserved and external identities).
        std::string nodes;
        std::set<uint32_t> seen;
        auto node = [&](uint32_t id) {
          if (!seen.insert(id).second) return;
          const bool reserved = id < MS_IDENTITY_FIRST_WORKLOAD;
          const char* kind = reserved ? "reserved" : id >= MS_IDENTITY_FIRST_EXTERNAL ? "external" : "workload";
          nodes += nodes.empty() ? "{\"id\":" : ",{\"id\":";
          nodes += std::to_string(id) + ",\"kind\":\"" + kind + "\",\"name\":";
          control::appendJsonString(nodes, reserved && id == MS_IDENTITY_ANY ? std::string("any") : gen().ids.nameOf(id));
          nodes += '}';
        };
        for (const auto& [id, labels] : gen().ids.labels) node(id);
        // An edge's ports, sorted as text and without repeats.
        auto appendPorts = [&out](std::vector<std::string>& ports) {
          std::sort(ports.begin(), ports.end());
          ports.erase(std::unique(ports.begin(), ports.end()), ports.end());
          out += ",\"ports\":[";
          for (size_t i = 0; i < ports.size(); i++) {
            if (i > 0) out += ',';
            control::appendJsonString(out, ports[i]);
          }
          out += ']';
        };
        out += "{\"edges\":[";
        bool firstEdge = true;
        auto edgeStart = [&] {
          out += firstEdge ? "{" : ",{";
          firstEdge = false;
        };
        // Policy edges: allowed (caller, callee) pairs with their ports, by
        // the side whose policy allows them (egress: the caller's).
        struct Allowed {
          uint32_t from, to;
          uint8_t direction;
          std::string ports;  // "80/tcp", "8000-8099/udp": fits the string itself
        };
        std::vector<Allowed> allowed;
        for (const auto& e : gen().compiled.entries) {
          if (e.value.verdict != MS_VERDICT_ALLOW) continue;
          const uint32_t bits = e.key.prefixlen - MS_POLICY_PREFIX_FIXED;
          const uint16_t first = ntohs(e.key.port);
          const uint32_t last = first + (bits == 0 ? 65535u : (1u << (16 - bits)) - 1);
          std::string ports = bits == 16 ? std::to_string(first) : std::to_string(first) + "-" + std::to_string(last);
          const bool egress = e.key.direction == MS_DIR_EGRESS;
          allowed.push_back({egress ? e.key.subject : e.key.peer, egress ? e.key.peer : e.key.subject,
                             e.key.direction, ports + "/" + protocolName(e.key.protocol)});
        }
        auto pairOf = [](const Allowed& a) { return std::tuple(a.from, a.to, a.direction); };
        std::sort(allowed.begin(), allowed.end(), [&](const Allowed& x, const Allowed& y) { return pairOf(x) < pairOf(y); });
        std::vector<std::string> ports;
        for (size_t i = 0; i < allowed.size();) {
          const Allowed& a = allowed[i];
          ports.clear();
          for (; i < allowed.size() && pairOf(allowed[i]) == pairOf(a); i++) ports.push_back(std::move(allowed[i].ports));
          node(a.from);
          node(a.to);
          edgeStart();
          out += "\"direction\":\"" + std::string(directionName(a.direction)) + "\",\"from\":" +
                 std::to_string(a.from) + ",\"kind\":\"policy\"";
          appendPorts(ports);
          out += ",\"to\":" + std::to_string(a.to) + '}';
        }
        // Observed edges from the flow records, by verdict.
        std::map<std::tuple<uint32_t, uint32_t, std::string>, std::pair<uint64_t, std::vector<std::string>>> observed;
        for (const auto& r : flowStore_.all()) {
          auto& o = observed[{r.key.srcIdentity, r.key.dstIdentity, verdictName(r.key.verdict)}];
          o.first += r.count;
          o.second.push_back(std::to_string(r.key.dstPort) + "/" + protocolName(r.key.protocol));
        }
        for (auto& [k, o] : observed) {
          node(std::get<0>(k));
          node(std::get<1>(k));
          edgeStart();
          out += "\"count\":" + std::to_string(o.first) + ",\"from\":" + std::to_string(std::get<0>(k)) +
                 ",\"kind\":\"observed\"";
          appendPorts(o.second);
          out += ",\"to\":" + std::to_string(std::get<1>(k)) + ",\"verdict\":\"" + std::get<2>(k) + "\"}";
        }
        out += "],\"generation\":" + std::to_string(gen().number) + ",\"nodes\":[" + nodes + "]}";
      },
      false);
  (void)kReserved;
}

}  // namespace microseg::daemon
