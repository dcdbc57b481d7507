// Compiler: policy::Bundle + identities -> the complete set of BPF map entries
// for one policy generation. Pure code (no kernel), deterministic: the same
// inputs always give byte-identical output in the same order.
//
// Semantics (see bpf/abi.h for the key layout and lookup order):
//  - a policy's subjects are the workload identities its selector matches,
//    within its namespace if it has one (address ranges are never subjects);
//  - a rule's peers expand to identities: label selectors match workload
//    label sets and Externals' labels (-> every range identity that External
//    is a member of); `identity: X` is Workload X's identity or every range
//    identity of External X; an inline cidr peer is every range identity it
//    is a member of; `world` is MS_IDENTITY_WORLD, which also stands for
//    every range identity (anything not local): a range identity that has
//    entries of its own also gets the world intervals of the same (subject,
//    direction, protocol) folded in, one that has none is looked up as world
//    by the kernel; host/unmanaged are their reserved ids; omitted
//    peers = MS_IDENTITY_ANY. Ports expand to (protocol, interval) with
//    Protocol::Any -> TCP and UDP, omitted ports -> 0-65535;
//  - per (subject, direction, peer, protocol) intervals are made disjoint;
//    where intervals overlap deny beats allow; among equal verdicts the rule
//    that comes first (policy name order, then rule index) names the entry;
//  - wildcard-peer deny intervals are folded into every specific peer's
//    intervals of the same (subject, direction, protocol);
//  - each disjoint interval becomes the minimal set of port prefixes;
//  - where admin or baseline policies have rules for a (subject, direction,
//    protocol), the tier chain decides instead (tiers.h): admin first match
//    (pass: on), the application tier where an application policy selects
//    the subject for the direction, else the baseline's first match, else
//    the default; only application policies isolate a subject in
//    DefaultEnforcement::Selected. Without them, nothing of this applies.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <tuple>
#include <unordered_map>
#include <string>
#include <vector>

#include "bpf/abi.h"
#include "common/sorted_groups.h"
#include "compiler/kernel_layout.h"
#include "compiler/rule_registry.h"
#include "identity/identities.h"
#include "policy/model.h"

namespace microseg::compiler {

enum class DefaultEnforcement : uint8_t {
  Always,    // zero trust: every workload identity default-deny both directions
  Selected,  // Kubernetes: isolated only in directions some policy selects it for
};

struct CompiledPolicy {
  std::vector<PolicyEntry> entries;                 // sorted by key bytes
  // Settings of every workload identity, sorted by identity (a vector: a
  // map of 10k nodes was built for every compile).
  std::vector<std::pair<uint32_t, ms_identity_value>> identities;
  RuleTable rules;                                  // every rule of the bundle
  std::vector<IpcacheEntry> ipcache;                // sorted by address bytes, then prefixlen
  uint64_t stamp = 0;  // unique per Compiler::compile() result (copies keep it)
  // A result built on an earlier one (Compiler::compile with `previous`):
  // that result's stamp, and the subjects whose entries were computed
  // again (sorted); every other subject's entries are that result's. A
  // reader that mirrors the earlier result looks at these subjects only.
  // base 0: compiled whole.
  uint64_t base = 0;
  std::vector<uint32_t> recomputed;
  // Compiler::compileInPlace() took the entries of `base` and replaced the
  // recomputed subjects' groups in place: their entries before are in
  // `replaced` (sorted), the groups in `replacedGroups`.
  bool lent = false;
  std::vector<PolicyEntry> replaced;
  std::vector<GroupBounds<ms_policy_key>> replacedGroups;
  // Kept in force: the previous result is gone, nothing to hand back.
  void settle() {
    lent = false;
    replaced = {};
    replacedGroups = {};
  }

  // The settings of workload identity `id`, nullptr if it is none.
  const ms_identity_value* identity(uint32_t id) const;
  // The exact-port map's entries: the last block of `entries` (every entry
  // before it is a range trie entry).
  std::pair<const PolicyEntry*, const PolicyEntry*> exact() const { return exactBlock(entries); }
};

// The exact-port entries of `now`, compiled on `was` (now.base ==
// was.stamp), differ from those of `was` in the recomputed subjects' groups
// only (for a `now` that took was's entries, now.replaced holds them as they
// were). Those groups, each as `was`'s run and `now`'s run: their
// difference is the whole difference, found in what those subjects have,
// not in a pass over every entry (100k+).
struct ExactRuns {
  const PolicyEntry *was, *wasEnd, *now, *nowEnd;
};
std::vector<ExactRuns> changedExactRuns(const CompiledPolicy& was, const CompiledPolicy& now);

struct Options {
  DefaultEnforcement defaultEnforcement = DefaultEnforcement::Always;
  // Staged policies (spec.staged) are never compiled into what the kernel
  // gets: they are left out unless this is set, for the userspace-only
  // "in force + staged" set flows are judged against (daemon/staged.h).
  bool includeStaged = false;
};

CompiledPolicy compile(const policy::Bundle& bundle, const identity::IdentityTable& ids,
                       RuleRegistry& registry, const Options& options = {});

// compile() that remembers its work. Given its own last result (`previous`;
// the caller keeps it, so nothing is held twice) and the identities (labels,
// names, Externals, cidr peers) of the last call, a policy object it
// compiled before is not expanded again, and only the subjects of policies
// that were added, replaced or removed get their entries recomputed: a
// one-rule change in a 100k-rule bundle recompiles one policy. Otherwise
// (no previous, another result, other identities) it compiles everything.
// The result is always the one compile() gives (tested on random edit
// sequences).
class PeerExpander;  // compiler/peers.h
struct Ranked;       // a rule's contribution, ranked (compiler.cpp)

class Compiler {
 public:
  Compiler();
  ~Compiler();
  Compiler(const Compiler&) = delete;
  Compiler& operator=(const Compiler&) = delete;

  CompiledPolicy compile(const policy::Bundle& bundle, const identity::IdentityTable& ids,
                         RuleRegistry& registry, const Options& options = {},
                         const CompiledPolicy* previous = nullptr);

  // compile(..., &previous), but `previous` (this compiler's last result,
  // which the caller keeps) lends its entries: a change of a few subjects
  // edits them in place (result.lent) instead of copying 100k+ of them, at
  // the daemon's peak. Until then, `previous` has no entries: the caller
  // keeps the result or hands them back with giveBack().
  CompiledPolicy compileInPlace(const policy::Bundle& bundle, const identity::IdentityTable& ids,
                                RuleRegistry& registry, const Options& options, CompiledPolicy& previous);
  // Puts back into `previous` the entries `result` took (its groups as
  // they were); nothing if it took none.
  static void giveBack(CompiledPolicy& result, CompiledPolicy& previous);

  struct Stats {
    bool full = true;        // everything recomputed (first call, other identities, most subjects)
    size_t policies = 0;     // in the bundle
    size_t expanded = 0;     // of which compiled anew
  };
  const Stats& lastStats() const { return stats_; }

 private:
  CompiledPolicy compile(const policy::Bundle& bundle, const identity::IdentityTable& ids, RuleRegistry& registry,
                         const Options& options, const CompiledPolicy* previous, CompiledPolicy* lender);
  struct Part;
  struct State;
  struct PartSet {
    std::vector<const Part*> all;    // in file order
    std::vector<const Part*> added;  // compiled anew
    std::vector<std::shared_ptr<const Part>> removed;  // alive until the rule table is updated
    std::vector<uint32_t> changed;   // subjects to recompute, sorted
  };
  // The phases of compile(), in order (compiler.cpp).
  void prepare(const policy::Bundle& bundle, const identity::IdentityTable& ids, RuleRegistry& registry,
               const CompiledPolicy* previous);
  PartSet collectParts(const policy::Bundle& bundle, const identity::IdentityTable& ids, RuleRegistry& registry);
  static std::shared_ptr<const Part> makePart(const std::shared_ptr<const policy::Policy>& policy,
                                              const PeerExpander& expander, const identity::IdentityTable& ids,
                                              RuleRegistry& registry);
  std::vector<Ranked> gather(const PartSet& set) const;
  // Per workload identity (sorted): does an application policy select it
  // per direction, and is it isolated (its default is deny) per direction.
  struct Selection {
    uint32_t id;
    bool applicationEgress, applicationIngress, isolateEgress, isolateIngress;
  };
  static std::vector<PolicyEntry> resolveEntries(const std::vector<Ranked>& contributions,
                                                 const std::vector<Selection>& selection);
  std::vector<std::pair<uint32_t, ms_identity_value>> identitySettings(const PartSet& set, const Options& options,
                                                                       std::vector<Selection>& selection) const;
  void assemble(CompiledPolicy& out, std::vector<PolicyEntry> fresh, const std::vector<uint32_t>& changed,
                const CompiledPolicy* previous, CompiledPolicy* lender) const;
  std::unique_ptr<State> state_;
  Stats stats_;
  bool includeStaged_ = false;  // of the compile under way
};

}  // namespace microseg::compiler
