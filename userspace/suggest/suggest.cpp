#include "suggest/suggest.h"

#include <algorithm>
#include <tuple>

#include <nlohmann/json.hpp>

#include "flows/flow_record.h"
#include "policy/cidr.h"

namespace microseg::suggest {
namespace {

// A string as a YAML double-quoted scalar (JSON's escapes are YAML's).
std::string quoted(const std::string& s) { return nlohmann::json(s).dump(); }

// How a peer identity is written, and whether it can be written at all.
struct PeerText {
  std::string text;  // "{identity: \"db\"}", "host", "{cidr: 10.1.2.3/32}"
  std::string why;   // non-empty: left out, and why
};

PeerText peerText(uint32_t id, const ms_addr& addr, const Naming& naming) {
  switch (id) {
    case MS_IDENTITY_HOST:
      return {"host", ""};
    case MS_IDENTITY_UNMANAGED:
      return {"unmanaged", ""};
    case MS_IDENTITY_PENDING:
      return {"", "a cgroup not classified yet (pending)"};
    case MS_IDENTITY_MULTICAST:
      return {"", "a broadcast or multicast destination"};
    default:
      break;
  }
  if (id >= MS_IDENTITY_FIRST_WORKLOAD && id < MS_IDENTITY_FIRST_EXTERNAL) {
    const std::string w = naming.workload ? naming.workload(id) : std::string();
    if (!w.empty()) return {"{identity: " + quoted(w) + "}", ""};
    return {"", "identity " + std::to_string(id) + " is no workload of the policy in force"};
  }
  if (id >= MS_IDENTITY_FIRST_EXTERNAL) {
    const std::string e = naming.external ? naming.external(id) : std::string();
    if (!e.empty()) return {"{identity: " + quoted(e) + "}", ""};
  }
  // world, or a range of several Externals: the address the records saw.
  return {"{cidr: " + flows::formatAddr(addr) + (policy::isMapped(addr) ? "/32" : "/128") + "}", ""};
}

const char* protocolText(uint8_t p) { return p == MS_PROTO_UDP ? "UDP" : "TCP"; }

struct Seen {
  uint64_t count = 0;
  int64_t first = 0, last = 0;
  void add(const Flow& f) {
    count += f.count;
    first = first == 0 ? f.firstSeenNs : std::min(first, f.firstSeenNs);
    last = std::max(last, f.lastSeenNs);
  }
};

// One rule being built: a peer, its ports per protocol, how often.
struct RuleDraft {
  std::map<uint8_t, std::set<uint16_t>> ports;
  Seen seen;
};

std::string portsText(const std::map<uint8_t, std::set<uint16_t>>& ports, size_t threshold) {
  std::string out;
  auto item = [&](uint16_t first, uint16_t last, uint8_t proto) {
    if (!out.empty()) out += ", ";
    out += "{port: " + std::to_string(first);
    if (last != first) out += ", endPort: " + std::to_string(last);
    out += std::string(", protocol: ") + protocolText(proto) + "}";
  };
  for (const auto& [proto, set] : ports) {
    std::vector<uint16_t> v(set.begin(), set.end());
    for (size_t i = 0; i < v.size();) {
      size_t j = i;
      while (j + 1 < v.size() && v[j + 1] == v[j] + 1) j++;
      if (j - i + 1 >= threshold) {
        item(v[i], v[j], proto);
      } else {
        for (size_t k = i; k <= j; k++) item(v[k], v[k], proto);
      }
      i = j + 1;
    }
  }
  return "[" + out + "]";
}

std::string seenText(const Seen& s) {
  return "seen " + std::to_string(s.count) + (s.count == 1 ? " time" : " times") + ", first " +
         flows::isoTime(s.first) + ", last " + flows::isoTime(s.last);
}

}  // namespace

std::string suggest(const std::vector<Flow>& flows, const Naming& naming, const Options& options) {
  // subject -> direction -> peer text -> draft; and what was left out.
  struct Subject {
    std::map<uint8_t, std::map<std::string, RuleDraft>> rules;
    std::map<std::string, Seen> denied;  // "egress to X 80/TCP" -> seen
    std::map<std::string, Seen> skipped;
  };
  std::map<std::string, Subject> subjects;
  for (const auto& f : flows) {
    if (f.lastSeenNs < options.sinceNs) continue;
    const bool egress = f.direction == MS_DIR_EGRESS;
    const uint32_t self = egress ? f.src : f.dst;
    const uint32_t other = egress ? f.dst : f.src;
    const std::string name = naming.workload ? naming.workload(self) : std::string();
    if (name.empty()) continue;  // the subject is no workload (host, world, ...)
    if (!options.workloads.empty() && !options.workloads.count(name)) continue;
    Subject& s = subjects[name];
    const PeerText peer = peerText(other, egress ? f.dstAddr : f.srcAddr, naming);
    const std::string flowText = std::string(egress ? "egress to " : "ingress from ") +
                                 (peer.text.empty() ? "identity " + std::to_string(other) : peer.text) + " " +
                                 std::to_string(f.port) + "/" + protocolText(f.protocol);
    if (f.verdict == MS_VERDICT_DENY) {
      s.denied[flowText].add(f);
      continue;
    }
    if (!peer.why.empty()) {
      s.skipped[flowText + ": " + peer.why].add(f);
      continue;
    }
    RuleDraft& d = s.rules[f.direction][peer.text];
    d.ports[f.protocol].insert(f.port);
    d.seen.add(f);
  }
  std::string out;
  for (const auto& [name, s] : subjects) {
    if (!out.empty()) out += "---\n";
    out += "# Suggested from observed flows for workload " + quoted(name) + ".\n";
    for (const auto& [what, seen] : s.denied) {
      out += "# denied by the policy in force, NOT allowed here (wanted?): " + what + " (" + seenText(seen) + ")\n";
    }
    for (const auto& [what, seen] : s.skipped) out += "# left out: " + what + " (" + seenText(seen) + ")\n";
    if (s.rules.empty()) {
      out += "# nothing observed to allow: no policy suggested.\n";
      continue;
    }
    out += "apiVersion: microseg.dev/v1\nkind: Policy\nmetadata:\n  name: " + quoted(name + "-observed") + "\nspec:\n";
    out += "  selector: {identity: " + quoted(name) + "}\n";
    // Its own line, block style: `microseg policy promote` removes it.
    if (options.staged) out += "  staged: true\n";
    for (uint8_t dir : {uint8_t(MS_DIR_EGRESS), uint8_t(MS_DIR_INGRESS)}) {
      auto it = s.rules.find(dir);
      if (it == s.rules.end()) continue;
      const bool egress = dir == MS_DIR_EGRESS;
      out += egress ? "  egress:\n" : "  ingress:\n";
      for (const auto& [peer, d] : it->second) {
        out += "    # " + seenText(d.seen) + "\n";
        out += std::string("    - ") + (egress ? "to" : "from") + ": [" + peer + "]\n";
        out += "      ports: " + portsText(d.ports, std::max<size_t>(options.rangeThreshold, 2)) + "\n";
      }
    }
  }
  return out;
}

}  // namespace microseg::suggest
