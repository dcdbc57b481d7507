// Diff before apply (`microseg policy diff`): a candidate policy set judged
// against the one in force over the edges the flow records observed, plus
// the static difference in reach. Pure logic: the daemon hands in the
// records and both generations (daemon/diff_command.cpp).
//
// Each observed edge (direction, source, destination, protocol, port) is
// judged on its own side only (an egress record by the caller's policy, an
// ingress record by the callee's), by the reference evaluator
// (compiler/explain.h `evaluate`: the kernel's verdict), once with the
// generation in force and once with the candidate, as enforce mode would
// apply it (a workload the candidate keeps in monitor is still judged by
// its verdicts: the diff answers "what would enforcing this refuse").
//
//   would break  the edge's traffic passed (recorded allow, or audit: denied
//                but let through in monitor mode) and the candidate denies
//                it. This is what a CI gate must stop: traffic that flows
//                today and would be refused. Audited traffic counts: moving
//                a workload from monitor to enforce with this candidate
//                breaks it, whatever the policy in force says.
//   widening     the policy in force denies the edge (evaluate) and the
//                candidate allows it: newly allowed.
//   unchanged    everything else (allowed and still allowed; refused and
//                still refused).
//
// UDP answers (records of reason udp-answer) pass because they answer a
// request the other side sent, not by a rule: they follow that request's
// own record, and are only counted here.
//
// An edge's ends are mapped to the candidate's identities: a local workload
// by its workload name (a name the candidate does not define: its cgroups
// would be unmanaged); a remote fleet identity by its label set; an
// address (world or an External's range) by the address the records last
// saw, looked up in the candidate's ipcache as the kernel would; reserved
// identities (host, unmanaged, ...) stay as they are.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "bpf/abi.h"
#include "compiler/compiler.h"
#include "compiler/rule_registry.h"
#include "identity/identities.h"
#include "reach/reach.h"

namespace microseg::diff {

// One flow record as the diff needs it.
struct Record {
  uint8_t direction = MS_DIR_EGRESS;
  uint32_t src = 0, dst = 0;  // identities of the generation that judged it
  uint8_t protocol = 0;
  uint16_t port = 0;          // destination port
  uint8_t verdict = 0;        // allow | audit | deny
  uint8_t reason = 0;         // enum ms_reason
  uint64_t count = 0;
  int64_t firstSeenNs = 0, lastSeenNs = 0;
  ms_addr srcAddr{}, dstAddr{};
};

// A generation as the diff reads it. `rules` may be null (rule names are
// then "rule-<id>").
struct Side {
  const identity::IdentityTable* ids = nullptr;
  const compiler::CompiledPolicy* compiled = nullptr;
  const compiler::RuleRegistry* rules = nullptr;
};

enum class Change : uint8_t { WouldBreak, Widening, Unchanged };
const char* changeName(Change c);  // "would_break", "widening", "unchanged"

// One observed edge, the records of its key folded together.
struct EdgeDiff {
  uint8_t direction = MS_DIR_EGRESS;
  uint32_t src = 0, dst = 0;          // in force
  uint32_t candSrc = 0, candDst = 0;  // the candidate's
  std::string srcName, dstName;       // in force; an address for world
  uint8_t protocol = 0;
  uint16_t port = 0;
  uint64_t passed = 0;  // events let through (allow + audit)
  uint64_t denied = 0;  // events refused
  int64_t firstSeenNs = 0, lastSeenNs = 0;
  uint8_t now = MS_VERDICT_DENY;        // the policy in force's verdict
  uint8_t candidate = MS_VERDICT_DENY;  // the candidate's
  std::string candidateRule;            // what decided it there: "<policy>/<index>", "default-deny", ...
  Change change = Change::Unchanged;
};

// A pair of local workloads whose direct path (both sides' consent, on any
// port) one generation has and the other has not.
struct ReachChange {
  std::string from, to;
  std::vector<reach::PortRange> ports;  // of the generation that has it
};

struct Result {
  std::vector<EdgeDiff> wouldBreak, widening, unchanged;  // each most recently seen first
  uint64_t answers = 0;  // UDP-answer events, not judged (see above)
  uint64_t records = 0;  // records in the window
  std::vector<ReachChange> gained, lost;  // by (from, to)
  bool breaks() const { return !wouldBreak.empty(); }
};

struct Options {
  int64_t sinceNs = 0;  // records last seen before this are left out
};

Result diff(const std::vector<Record>& records, const Side& inForce, const Side& candidate,
            const Options& options = {});

// The candidate identity of one end of an edge (rules above).
uint32_t mapIdentity(uint32_t id, const ms_addr& addr, const identity::IdentityTable& inForce,
                     const identity::IdentityTable& candidate);

}  // namespace microseg::diff
