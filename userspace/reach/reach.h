// Reach and blast radius (`microseg reach`): what a workload can open under
// the policy in force, directly and in a few hops, and who can reach it. A
// connection needs both sides' consent: the caller's egress and the
// callee's ingress, each computed by the reference evaluator
// (compiler/explain.h `evaluate`, the kernel's lookup order) on the
// compiled entries of that side's subject only.
//
// Ports are found without trying 65,535 of them: a subject's verdict for a
// peer can only change at a port where one of its entries starts or ends,
// so each side is judged once per such segment.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "compiler/compiler.h"

namespace microseg::reach {

struct PortRange {
  uint8_t protocol = 0;  // MS_PROTO_TCP | MS_PROTO_UDP
  uint16_t first = 0, last = 0;
  bool operator==(const PortRange&) const = default;
};
std::string formatPorts(const PortRange& r);  // "5432/tcp", "8000-8099/udp"

struct Edge {
  uint32_t from = 0, to = 0;       // workload identities
  std::vector<PortRange> ports;    // both sides allow these (sorted, merged)
  bool observed = false;           // an allowed flow of the flow records used it
};

// Allowed flows seen (flow records): (caller, callee, protocol, port).
using Observed = std::set<std::tuple<uint32_t, uint32_t, uint8_t, uint16_t>>;

// Every direct edge between the given workload identities.
class Graph {
 public:
  Graph(const compiler::CompiledPolicy& compiled, const std::vector<uint32_t>& workloads,
        const Observed& observed = {});
  const std::vector<uint32_t>& workloads() const { return workloads_; }
  // X's direct edges (callee side with `reverse`: who can open X).
  const std::vector<Edge>& from(uint32_t x) const;
  const std::vector<Edge>& to(uint32_t x) const;

 private:
  std::vector<uint32_t> workloads_;
  std::map<uint32_t, std::vector<Edge>> out_, in_;
};

// The shortest path from X to each workload it can reach in at most
// `maxHops` (with `reverse`: from each workload that can reach X), ordered
// by length, then identity. A path is observed when every edge of it is.
struct Path {
  uint32_t target = 0;
  std::vector<Edge> edges;  // X -> ... -> target (reverse: target -> ... -> X)
  bool observed = false;
};
std::vector<Path> paths(const Graph& g, uint32_t x, int maxHops, bool reverse);

// Blast radius: how many workloads each can reach (any number of hops).
struct Radius {
  uint32_t workload = 0;
  size_t direct = 0, reachable = 0;
};
std::vector<Radius> blastRadius(const Graph& g);  // largest first

}  // namespace microseg::reach
