#include "daemon/reload.h"

#include "fqdn/name_entries.h"

#include <chrono>
#include <optional>

#include <spdlog/spdlog.h>

namespace microseg::daemon {
namespace {

using Clock = std::chrono::steady_clock;

double msBetween(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

int64_t realtimeNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string joined(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : " ") + x;
  return s;
}

}  // namespace

Reloader::Reloader(datapath::Datapath& datapath, Settings settings)
    : datapath_(datapath), settings_(std::move(settings)) {}

ReloadOutcome Reloader::reload(const ReloadRequest& req) {
  ReloadOutcome out;
  const auto started = Clock::now();

  // 1. Documents -> model (only the documents whose text changed are parsed).
  policy::ParseResult parsed =
      loader_.load(req.paths, req.files != nullptr ? *req.files : policy::defaultFileAccess());
  const auto parsedAt = Clock::now();
  out.ms.read = msBetween(started, parsedAt);
  if (!parsed.ok()) {
    for (const auto& d : parsed.errors) out.errors.push_back(d.str());
    return out;
  }
  // Staged policies stay out of everything below that reaches the kernel
  // (identities, entries, isolation, modes); the full set is compiled for
  // userspace judging only, after the new generation is in force.
  policy::Bundle full;
  if (parsed.bundle.stagedPolicies() != 0) {
    full = parsed.bundle;
    parsed.bundle = policy::withoutStaged(full);
  }
  // An empty file (a truncated write, a wrong path) must not silently
  // unmanage every workload: that takes asking for it.
  const bool managesNow = gen_.loaded ? !gen_.bundle.workloads.empty() : datapath_.adopted();
  if (parsed.bundle.workloads.empty() && managesNow && !req.allowEmpty) {
    out.errors.push_back("policy: " + joined(req.paths) + " defines no Workload: applying it would make every "
                         "workload unmanaged (" + std::to_string(gen_.bundle.workloads.size()) +
                         " now); to do that, run `microseg policy apply --allow-empty " + joined(req.paths) + "`");
    return out;
  }

  // 2. Identities, assigned again only when their inputs changed.
  std::optional<identity::IdentityTable> assigned;
  const uint64_t fleetVersion = req.fleet != nullptr ? req.fleet->version : 0;
  if (!gen_.loaded || !identity::sameIdentityInputs(parsed.bundle, gen_.bundle) || fleetVersion != fleetVersion_) {
    assigned = identity::assignIdentities(parsed.bundle, gen_.ids, req.fleet);
  }
  const identity::IdentityTable& ids = assigned ? *assigned : gen_.ids;

  // 3. Compile. A small change edits the entries in force in place (no copy
  // of 100k+ at the peak): until the new generation is applied, the one in
  // force has lent them, and every way out that keeps it hands them back.
  compiler::Options copts;
  copts.defaultEnforcement = settings_.defaultEnforcement;
  compiler::CompiledPolicy compiled = gen_.loaded
                                          ? compiler_.compileInPlace(parsed.bundle, ids, registry_, copts, gen_.compiled)
                                          : compiler_.compile(parsed.bundle, ids, registry_, copts);
  struct GiveBack {
    compiler::CompiledPolicy& result;
    compiler::CompiledPolicy& previous;
    ~GiveBack() { compiler::Compiler::giveBack(result, previous); }
  } giveBack{compiled, gen_.compiled};
  const auto compiledAt = Clock::now();
  out.ms.compile = msBetween(parsedAt, compiledAt);

  // 4. Classify the cgroups with the new Workloads and identities.
  auto matcher = gen_.matcher && gen_.matcher->builtFrom(parsed.bundle)
                     ? gen_.matcher
                     : std::make_shared<const identity::WorkloadMatcher>(parsed.bundle);
  auto scanned = identity::scanCgroups(settings_.cgroupRoot, *matcher, ids);
  if (!scanned) {
    out.errors.push_back("identity: " + scanned.error().str());
    return out;
  }

  // 5. The datapath writes it into the inactive slot and flips.
  datapath::Generation next;
  next.number = gen_.number + 1;
  next.policy = &compiled;
  next.inForce = gen_.loaded ? &gen_.compiled : nullptr;
  next.cgroups.reserve(scanned->size());
  for (const auto& c : *scanned) {
    next.cgroups.push_back({c.id, c.mapIdentity(), c.pendingChildren ? MS_CGROUP_F_PENDING_CHILDREN : 0u});
  }
  for (const auto& [workload, mode] : req.modeOverrides) {
    if (auto it = ids.byWorkload.find(workload); it != ids.byWorkload.end()) next.modeOverrides[it->second] = mode;
  }
  next.addresses = req.addresses;
  next.fqdnNames = fqdn::nameEntries(ids.fqdns);
  const auto applyFrom = Clock::now();
  if (auto r = datapath_.applyGeneration(next); !r) {
    out.errors.push_back("datapath: " + r.error().str());
    return out;
  }

  // 6. In force.
  gen_.staged = full.policies.empty() ? nullptr
                                      : diff::buildStaged(full, ids, req.fleet, settings_.defaultEnforcement);
  gen_.bundle = std::move(parsed.bundle);
  gen_.matcher = std::move(matcher);
  if (assigned) gen_.ids = std::move(*assigned);
  fleetVersion_ = fleetVersion;
  gen_.compiled = std::move(compiled);
  compiled = {};  // nothing to hand back
  gen_.compiled.settle();
  gen_.number = next.number;
  gen_.paths = req.paths;
  gen_.appliedAtNs = realtimeNs();
  gen_.loaded = true;
  out.ok = true;
  out.cgroups = std::move(*scanned);
  out.mapWrites = datapath_.lastApplyWrites();
  const auto done = Clock::now();
  out.ms.apply = msBetween(applyFrom, done);
  out.ms.total = msBetween(started, done);
  return out;
}

Candidate Reloader::candidate(const ReloadRequest& req) const {
  Candidate out;
  policy::PolicyLoader loader;
  loader.setLimits(loader_.limits());  // the caller's files are held to the same bounds
  policy::ParseResult parsed =
      loader.load(req.paths, req.files != nullptr ? *req.files : policy::defaultFileAccess());
  if (!parsed.ok()) {
    for (const auto& d : parsed.errors) out.errors.push_back(d.str());
    return out;
  }
  // The candidate's staged policies are staged there too: not in force.
  policy::Bundle inForce = policy::withoutStaged(parsed.bundle);
  out.gen.ids = identity::assignIdentities(inForce, gen_.ids, req.fleet);
  compiler::Options copts;
  copts.defaultEnforcement = settings_.defaultEnforcement;
  out.gen.compiled = compiler::compile(inForce, out.gen.ids, out.rules, copts);
  out.gen.staged = diff::buildStaged(parsed.bundle, out.gen.ids, req.fleet, settings_.defaultEnforcement);
  out.gen.bundle = std::move(inForce);
  out.gen.number = gen_.number;
  out.gen.paths = req.paths;
  out.gen.loaded = true;
  out.ok = true;
  return out;
}

bool Reloader::resumeNumbering(identity::IdentityTable previous,
                               const std::vector<compiler::RuleRegistry::PolicyIds>& rules, uint32_t nextRuleId) {
  if (gen_.loaded || !registry_.restore(rules, nextRuleId)) return false;
  gen_.ids = std::move(previous);
  return true;
}

}  // namespace microseg::daemon
