#include "cli/rotate_key.h"

#include <algorithm>
#include <chrono>
#include <ctime>
#include <iostream>

#include "cli/exit_codes.h"
#include "cli/format.h"
#include "cli/table.h"
#include "cli/views.h"
#include "cluster/records.h"
#include "common/names.h"
#include "common/text.h"
#include "control/client.h"

namespace microseg::cli {
namespace {

using nlohmann::json;
using cluster::WireKeyRecord;

constexpr int kStatusTimeoutMs = 5000;
constexpr int64_t kMaxDuration = 365 * 86400;
// etcd refuses a transaction of more than 128 operations (or compares) by
// default: removals beyond this wait for the next rotation.
constexpr size_t kMaxTxnOps = 120;

std::string utc(int64_t unixSeconds) {
  if (unixSeconds == 0) return "-";
  const time_t t = static_cast<time_t>(unixSeconds);
  struct tm tm {};
  gmtime_r(&t, &tm);
  char buf[32];
  strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

// "in 10s", "5m ago", "now".
std::string relative(int64_t at, int64_t now) {
  if (at == now) return "now";
  return at > now ? "in " + formatDuration(at - now) : formatDuration(now - at) + " ago";
}

std::string idList(const std::vector<uint8_t>& ids) {
  std::string s;
  for (uint8_t id : ids) s += (s.empty() ? "" : ",") + std::to_string(id);
  return s.empty() ? "none" : s;
}

}  // namespace

std::optional<int64_t> rotationDuration(const std::string& text) {
  auto d = parseDuration(text);
  if (!d || *d > kMaxDuration) return std::nullopt;
  return d;
}

Result<RotatePlan> planRotation(const cluster::WireKeyRecords& records, const std::set<uint8_t>& usedIds, int64_t now,
                                int64_t activateAfter, int64_t grace, const std::array<uint8_t, 16>& key) {
  RotatePlan p;
  std::set<uint8_t> used = usedIds;
  for (const auto& [id, r] : records) {
    if (r.retireAt != 0 && r.retireAt + kRetiredKeysKeptSeconds <= now && p.removed.size() < kMaxTxnOps / 2) {
      p.removed.push_back(id);
      used.erase(id);
    }
  }
  uint8_t id = 0;
  if (used.empty()) {
    id = 1;
  } else if (*used.rbegin() < cluster::kWireKeyMaxId) {
    id = static_cast<uint8_t>(*used.rbegin() + 1);
  } else {
    for (unsigned i = 1; i <= cluster::kWireKeyMaxId; i++) {
      if (!used.count(static_cast<uint8_t>(i))) {
        id = static_cast<uint8_t>(i);
        break;
      }
    }
  }
  if (id == 0) {
    return Error{"rotate the cluster key", "", ENOSPC,
                 "all 255 key ids are in use (a key is removed an hour after it retired; run it again then)"};
  }
  // The id of a removed key is taken again: its record is replaced, not removed.
  std::erase(p.removed, id);
  // The newest activation signs (wire_keys.h): after every key stored, even
  // one still pending from a rotation a moment ago, or that one would take
  // signing back when its own time came.
  int64_t activateAt = now + activateAfter;
  for (const auto& [rid, r] : records) {
    if (r.retireAt == 0 || r.retireAt > now) activateAt = std::max(activateAt, r.activateAt + 1);
  }
  p.added = WireKeyRecord{id, key, now, activateAt, 0};
  for (const auto& [rid, r] : records) {
    if (r.retireAt != 0) continue;
    WireKeyRecord next = r;
    next.retireAt = p.added.activateAt + grace;
    p.retiring.push_back(next);
  }
  if (p.retiring.size() + p.removed.size() + 1 > kMaxTxnOps) {
    return Error{"rotate the cluster key", "", E2BIG,
                 std::to_string(p.retiring.size()) + " keys have no retirement time: more than one transaction "
                 "can change"};
  }
  return p;
}

Result<RotateOutcome> rotateKey(cluster::EtcdClient& etcd, const std::string& prefix, int64_t now,
                                int64_t activateAfter, int64_t grace) {
  const cluster::Keys keys(prefix);
  const std::string under = keys.wireKeys();
  auto read = etcd.get(under, true);
  if (!read) return read.error();
  RotateOutcome o;
  cluster::WireKeyRecords records;
  std::set<uint8_t> used;
  std::map<uint8_t, int64_t> modRevision;
  for (const auto& kv : read->kvs) {
    auto id = cluster::wireKeyIdOf(kv.key.substr(under.size()));
    auto r = id ? cluster::decodeWireKey(kv.value, *id) : std::nullopt;
    if (id) used.insert(*id);
    if (!r) {
      o.ignored++;
      continue;
    }
    records[*id] = *r;
    modRevision[*id] = kv.modRevision;
  }
  auto key = cluster::randomWireKey();
  if (!key) return key.error();
  auto plan = planRotation(records, used, now, activateAfter, grace, *key);
  if (!plan) return plan.error();
  // Nothing under the prefix written since the read (that also catches a key
  // added there), and each key given a retire_at still as read.
  std::vector<cluster::Compare> guard{
      {under, cluster::Compare::Target::ModRevision, cluster::Compare::Op::Less, read->revision + 1, {}, true}};
  std::vector<cluster::TxnOp> ops{cluster::TxnOp::put(keys.wireKey(plan->added.id), cluster::encode(plan->added))};
  for (const auto& r : plan->retiring) {
    guard.push_back(cluster::Compare::modRevisionIs(keys.wireKey(r.id), modRevision[r.id]));
    ops.push_back(cluster::TxnOp::put(keys.wireKey(r.id), cluster::encode(r)));
  }
  for (uint8_t id : plan->removed) {
    guard.push_back(cluster::Compare::modRevisionIs(keys.wireKey(id), modRevision[id]));
    ops.push_back(cluster::TxnOp::remove(keys.wireKey(id)));
  }
  auto txn = etcd.txn(guard, ops);
  if (!txn) return txn.error();
  if (!txn->succeeded) {
    return Error{"rotate the cluster key", under, 0,
                 "the keys changed since they were read (rotated concurrently, run again)"};
  }
  o.revision = txn->revision;
  o.after = records;
  for (uint8_t id : plan->removed) o.after.erase(id);
  for (const auto& r : plan->retiring) o.after[r.id] = r;
  o.after[plan->added.id] = plan->added;
  o.plan = std::move(*plan);
  return o;
}

json rotateJson(const RotateOutcome& o, const std::string& prefix, int64_t grace) {
  json retiring = json::array(), keys = json::array();
  for (const auto& r : o.plan.retiring) retiring.push_back(json{{"id", r.id}, {"retire_at", r.retireAt}});
  for (const auto& [id, r] : o.after) {
    keys.push_back(json{{"id", id}, {"created", r.created}, {"activate_at", r.activateAt}, {"retire_at", r.retireAt}});
  }
  return json{{"prefix", prefix},
              {"revision", o.revision},
              {"new_key_id", o.plan.added.id},
              {"activate_at", o.plan.added.activateAt},
              {"grace_seconds", grace},
              {"retiring", std::move(retiring)},
              {"removed", o.plan.removed},
              {"ignored_records", o.ignored},
              {"keys", std::move(keys)}};
}

void printRotation(const RotateOutcome& o, const std::string& prefix, int64_t now, std::ostream& out) {
  const auto& a = o.plan.added;
  out << "new cluster key " << int(a.id) << " under " << prefix << " (etcd revision " << o.revision
      << "): every node accepts it now, signs with it from " << utc(a.activateAt) << " ("
      << relative(a.activateAt, now) << ")\n";
  for (const auto& r : o.plan.retiring) {
    out << "key " << int(r.id) << " retires at " << utc(r.retireAt) << " (" << relative(r.retireAt, now) << ")\n";
  }
  if (!o.plan.removed.empty()) {
    out << "removed keys retired over an hour ago: " << idList(o.plan.removed) << "\n";
  }
  if (o.ignored > 0) {
    out << "left alone: " << o.ignored << " records under " << prefix << "/wire-keys/ that are not cluster keys\n";
  }
  out << "\n";
  Table t({"ID", "CREATED", "ACTIVATE AT", "RETIRE AT"});
  t.align(0, Table::Align::Right);
  for (const auto& [id, r] : o.after) t.add({std::to_string(id), utc(r.created), utc(r.activateAt), utc(r.retireAt)});
  t.print(out);
}

int cmdRotateKey(const std::string& socket, bool jsonOutput, const RotateArgs& a) {
  const auto grace = rotationDuration(a.grace);
  if (!grace) return fail("--grace: '" + a.grace + "' is not a duration (like 30s, 15m, 8h; up to 365d)", kUsage);
  const auto after = rotationDuration(a.activateAfter);
  if (!after) {
    return fail("--activate-after: '" + a.activateAfter + "' is not a duration (like 30s, 15m, 8h; up to 365d)",
                kUsage);
  }
  std::optional<json> daemonStatus;
  std::string daemonError;
  if (a.flags.endpoints.empty()) {
    auto st = control::call(socket, {{"command", command::kStatus}}, kStatusTimeoutMs);
    if (!st) {
      daemonError = st.error().str();
    } else if (!st->value("ok", false)) {
      daemonError = st->value("error", json::object()).value("message", "status refused");
    } else {
      daemonStatus = st->value("result", json::object());
    }
  }
  auto target = resolvePushTarget(a.flags, daemonStatus, daemonError, socket);
  if (!target) return fail(target.error().detail + "; give --etcd-endpoints URL[,URL...]", kUsage);
  auto etcd = cluster::EtcdClient::connect(target->etcd);
  if (!etcd) return fail(etcd.error().str(), kUsage);
  const int64_t now =
      std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
  auto o = rotateKey(**etcd, target->prefix, now, *after, *grace);
  if (!o) {
    return fail(o.error().str() + " (etcd from " + target->from + "); nothing written",
                etcdUnreachable(o.error()) ? kUnreachable : kFailed);
  }
  if (jsonOutput) {
    std::cout << text::jsonText(rotateJson(*o, target->prefix, *grace), 2) << "\n";
  } else {
    printRotation(*o, target->prefix, now, std::cout);
  }
  return kOk;
}

}  // namespace microseg::cli
