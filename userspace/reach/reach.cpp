#include "reach/reach.h"

#include <arpa/inet.h>

#include <algorithm>
#include <deque>

#include "compiler/explain.h"

namespace microseg::reach {
namespace {

constexpr uint8_t kProtocols[] = {MS_PROTO_TCP, MS_PROTO_UDP};

// One side of every workload: its entries in one direction, as a compiled
// policy of their own (so the reference evaluator judges them exactly as it
// judges the whole), and the ports where its verdicts can change.
struct Side {
  compiler::CompiledPolicy view;
  std::map<uint8_t, std::set<uint32_t>> cuts;  // protocol -> first ports of segments
};

std::map<uint32_t, Side> sides(const compiler::CompiledPolicy& compiled, const std::set<uint32_t>& subjects,
                               policy::Direction dir) {
  std::map<uint32_t, Side> out;
  for (uint32_t s : subjects) {
    Side& side = out[s];
    if (const auto* v = compiled.identity(s)) side.view.identities.push_back({s, *v});
    for (uint8_t p : kProtocols) side.cuts[p] = {1};
  }
  for (const auto& e : compiled.entries) {
    if (e.key.direction != static_cast<uint8_t>(dir)) continue;
    auto it = out.find(e.key.subject);
    if (it == out.end()) continue;
    it->second.view.entries.push_back(e);
    const uint32_t bits = e.key.prefixlen - MS_POLICY_PREFIX_FIXED;
    const uint32_t first = ntohs(e.key.port);
    const uint32_t last = first + (bits == 0 ? 65535u : (1u << (16 - bits)) - 1);
    auto& cuts = it->second.cuts[e.key.protocol];
    cuts.insert(std::max<uint32_t>(first, 1));
    if (last < 65535) cuts.insert(last + 1);
  }
  return out;
}

bool observedIn(const Observed& observed, uint32_t from, uint32_t to, const std::vector<PortRange>& ports) {
  auto lo = observed.lower_bound({from, to, 0, 0});
  for (auto it = lo; it != observed.end() && std::get<0>(*it) == from && std::get<1>(*it) == to; ++it) {
    for (const auto& r : ports) {
      if (r.protocol == std::get<2>(*it) && std::get<3>(*it) >= r.first && std::get<3>(*it) <= r.last) return true;
    }
  }
  return false;
}

const std::vector<Edge> kNone;

}  // namespace

std::string formatPorts(const PortRange& r) {
  const char* proto = r.protocol == MS_PROTO_TCP ? "tcp" : r.protocol == MS_PROTO_UDP ? "udp" : "?";
  if (r.first == r.last) return std::to_string(r.first) + "/" + proto;
  return std::to_string(r.first) + "-" + std::to_string(r.last) + "/" + proto;
}

Graph::Graph(const compiler::CompiledPolicy& compiled, const std::vector<uint32_t>& workloads,
             const Observed& observed)
    : workloads_(workloads) {
  std::sort(workloads_.begin(), workloads_.end());
  workloads_.erase(std::unique(workloads_.begin(), workloads_.end()), workloads_.end());
  const std::set<uint32_t> subjects(workloads_.begin(), workloads_.end());
  const auto egress = sides(compiled, subjects, policy::Direction::Egress);
  const auto ingress = sides(compiled, subjects, policy::Direction::Ingress);
  for (uint32_t x : workloads_) {
    const Side& ex = egress.at(x);
    for (uint32_t y : workloads_) {
      if (x == y) continue;
      const Side& in = ingress.at(y);
      Edge edge{x, y, {}, false};
      for (uint8_t proto : kProtocols) {
        std::set<uint32_t> cuts = ex.cuts.at(proto);
        cuts.insert(in.cuts.at(proto).begin(), in.cuts.at(proto).end());
        for (auto it = cuts.begin(); it != cuts.end(); ++it) {
          const uint32_t first = *it;
          const uint32_t last = std::next(it) == cuts.end() ? 65535u : *std::next(it) - 1;
          const auto port = static_cast<uint16_t>(first);
          const bool allowed =
              compiler::evaluate(ex.view, x, y, policy::Direction::Egress, proto, port).verdict == MS_VERDICT_ALLOW &&
              compiler::evaluate(in.view, y, x, policy::Direction::Ingress, proto, port).verdict == MS_VERDICT_ALLOW;
          if (!allowed) continue;
          if (!edge.ports.empty() && edge.ports.back().protocol == proto && edge.ports.back().last + 1u == first) {
            edge.ports.back().last = static_cast<uint16_t>(last);
          } else {
            edge.ports.push_back({proto, static_cast<uint16_t>(first), static_cast<uint16_t>(last)});
          }
        }
      }
      if (edge.ports.empty()) continue;
      edge.observed = observedIn(observed, x, y, edge.ports);
      out_[x].push_back(edge);
      in_[y].push_back(std::move(edge));
    }
  }
}

const std::vector<Edge>& Graph::from(uint32_t x) const {
  auto it = out_.find(x);
  return it == out_.end() ? kNone : it->second;
}

const std::vector<Edge>& Graph::to(uint32_t x) const {
  auto it = in_.find(x);
  return it == in_.end() ? kNone : it->second;
}

std::vector<Path> paths(const Graph& g, uint32_t x, int maxHops, bool reverse) {
  // Breadth first: the first time a workload is met is by a shortest path.
  std::map<uint32_t, const Edge*> via;  // workload -> the edge it was reached by
  std::map<uint32_t, int> depth{{x, 0}};
  std::deque<uint32_t> queue{x};
  std::vector<uint32_t> order;
  while (!queue.empty()) {
    const uint32_t n = queue.front();
    queue.pop_front();
    if (depth[n] >= maxHops) continue;
    for (const Edge& e : reverse ? g.to(n) : g.from(n)) {
      const uint32_t next = reverse ? e.from : e.to;
      if (depth.count(next)) continue;
      depth[next] = depth[n] + 1;
      via[next] = &e;
      queue.push_back(next);
      order.push_back(next);
    }
  }
  std::vector<Path> out;
  for (uint32_t t : order) {
    Path p;
    p.target = t;
    for (uint32_t n = t; n != x;) {
      const Edge* e = via.at(n);
      p.edges.push_back(*e);
      n = reverse ? e->to : e->from;
    }
    if (!reverse) std::reverse(p.edges.begin(), p.edges.end());
    p.observed = std::all_of(p.edges.begin(), p.edges.end(), [](const Edge& e) { return e.observed; });
    out.push_back(std::move(p));
  }
  std::stable_sort(out.begin(), out.end(), [](const Path& a, const Path& b) {
    return std::tuple(a.edges.size(), a.target) < std::tuple(b.edges.size(), b.target);
  });
  return out;
}

std::vector<Radius> blastRadius(const Graph& g) {
  std::vector<Radius> out;
  for (uint32_t w : g.workloads()) {
    out.push_back({w, g.from(w).size(), paths(g, w, static_cast<int>(g.workloads().size()), false).size()});
  }
  std::stable_sort(out.begin(), out.end(), [](const Radius& a, const Radius& b) {
    return std::tuple(b.reachable, b.direct) < std::tuple(a.reachable, a.direct);
  });
  return out;
}

}  // namespace microseg::reach
