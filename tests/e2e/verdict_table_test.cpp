// One table of verdict cases through both the kernel's verdict code and the
// userspace evaluator (compiler/explain.h, evaluate()). Random policy sets
// are compiled and written into the kernel by the real writer (BpfDatapath:
// the first generation whole, the next ones as differences), and a
// test-only program (bpf/verdict_test.bpf.c) runs policy_verdict() of
// bpf/lib/decide.bpf.h, the function judge() calls, on the daemon's pinned
// maps with BPF_PROG_TEST_RUN: thousands of cases (every subject; peers by
// identity, including range identities and world, and by address through
// the ipcache; both directions; TCP and UDP; ports at every rule's edges),
// and not one may disagree.
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <memory>
#include <random>
#include <set>

#include "bpf/verdict_test.h"
#include "compiler/compiler.h"
#include "compiler/explain.h"
#include "datapath/bpf_datapath.h"
#include "datapath/bpf_object.h"
#include "harness.h"
#include "identity/identities.h"
#include "policy/parser.h"
#include "verdict_test.skel.h"

namespace microseg::e2e {
namespace {

using policy::Direction;

// Cgroup ids of no real cgroup: only keys of ms_cgroups here.
constexpr uint64_t kFakeCgroupBase = 0x7e57000000000000ull;

std::string randomSet(std::mt19937& rng, std::set<uint16_t>& ports) {
  auto pick = [&](int n) { return static_cast<int>(rng() % static_cast<unsigned>(n)); };
  std::string y;
  for (int i = 0; i < 6; i++) {
    y += "apiVersion: microseg.dev/v1\nkind: Workload\nmetadata: {name: w" + std::to_string(i) +
         "}\nspec:\n  cgroups: [\"w" + std::to_string(i) + "\"]\n  labels: {app: a" + std::to_string(i % 3) +
         ", tier: t" + std::to_string(i % 2) + "}\n---\n";
  }
  y += "apiVersion: microseg.dev/v1\nkind: External\nmetadata: {name: e0}\nspec:\n  labels: {zone: z0}\n"
       "  cidrs: [10.0.0.0/8]\n  except: [10.1.0.0/16]\n---\n"
       "apiVersion: microseg.dev/v1\nkind: External\nmetadata: {name: e1}\nspec:\n  labels: {zone: z1}\n"
       "  cidrs: [10.1.0.0/16, \"fd00::/16\"]\n---\n";
  auto peer = [&]() -> std::string {
    switch (pick(8)) {
      case 0: return "{identity: w" + std::to_string(pick(6)) + "}";
      case 1: return "{identity: e" + std::to_string(pick(2)) + "}";
      case 2: return "{matchLabels: {app: a" + std::to_string(pick(3)) + "}}";
      case 3: return pick(2) ? "{reserved: world}" : (pick(2) ? "{reserved: host}" : "{reserved: unmanaged}");
      case 4: return pick(2) ? "{cidr: 10.1.2.0/24}" : "{cidr: 10.0.0.0/8, except: [10.1.0.0/16]}";
      case 5: return "{matchExpressions: [{key: tier, operator: In, values: [t1]}]}";
      case 6: return "{matchLabels: {zone: z1}}";
      default: return "{identity: w" + std::to_string(pick(6)) + "}";
    }
  };
  auto portList = [&]() -> std::string {
    std::string s = "[";
    for (int k = 0, n = 1 + pick(2); k < n; k++) {
      // Some ranges reach the ends of the port space.
      const int p = pick(10) == 0 ? 65000 + pick(500) : 1 + pick(120);
      const char* proto = pick(3) == 0 ? "" : (pick(2) ? ", protocol: TCP" : ", protocol: UDP");
      if (k) s += ", ";
      if (pick(5) < 2) {
        const int e = p >= 65000 ? 65535 : p + 1 + pick(60);
        s += "{port: " + std::to_string(p) + ", endPort: " + std::to_string(e) + proto + "}";
        ports.insert(uint16_t(e));
        if (e < 65535) ports.insert(uint16_t(e + 1));
      } else {
        s += "{port: " + std::to_string(p) + proto + "}";
        ports.insert(uint16_t(p + 1));
      }
      ports.insert(uint16_t(p));
      ports.insert(uint16_t(p - 1 > 0 ? p - 1 : 1));
    }
    return s + "]";
  };
  for (int i = 0; i < 8; i++) {
    const int s = pick(3);
    y += "apiVersion: microseg.dev/v1\nkind: Policy\nmetadata: {name: p" + std::to_string(i) + "}\nspec:\n  selector: " +
         (s == 0 ? "{identity: w" + std::to_string(pick(6)) + "}"
                 : s == 1 ? "{matchLabels: {app: a" + std::to_string(pick(3)) + "}}" : "{matchLabels: {tier: t0}}") +
         "\n";
    bool any = false;
    for (const char* dir : {"egress", "ingress"}) {
      const int r = pick(10);
      if (r < 2 && (any || dir[0] == 'e')) continue;
      any = true;
      if (r < 3) {
        y += std::string("  ") + dir + ": []\n";
        continue;
      }
      y += std::string("  ") + dir + ":\n";
      for (int k = 0, n = 1 + pick(4); k < n; k++) {
        y += "    - action: " + std::string(pick(10) < 3 ? "deny" : "allow") + "\n";
        if (pick(10) < 8) {
          y += std::string("      ") + (dir[0] == 'e' ? "to" : "from") + ": [" + peer();
          if (pick(3) == 0) y += ", " + peer();
          y += "]\n";
        }
        if (pick(5) != 0) y += "      ports: " + portList() + "\n";
      }
    }
    y += "---\n";
  }
  return y;
}

ms_addr v4(uint32_t hostOrder) {
  ms_addr a{};
  a.a[10] = a.a[11] = 0xff;
  const uint32_t be = htonl(hostOrder);
  std::memcpy(a.a + 12, &be, 4);
  return a;
}

// The ipcache's answer for `a`, read the way an LPM trie reads it: the
// longest prefix of the compiled entries that holds it, else world.
uint32_t referenceIdentity(const compiler::CompiledPolicy& c, const ms_addr& a) {
  uint32_t best = 0, id = MS_IDENTITY_WORLD;
  bool found = false;
  for (const auto& e : c.ipcache) {
    bool match = true;
    for (uint32_t bit = 0; bit < e.prefixlen && match; bit++) {
      const uint8_t mask = uint8_t(0x80 >> (bit % 8));
      match = (a.a[bit / 8] & mask) == (e.addr.a[bit / 8] & mask);
    }
    if (match && (!found || e.prefixlen >= best)) {
      found = true;
      best = e.prefixlen;
      id = e.identity;
    }
  }
  return id;
}

struct SkelDeleter {
  void operator()(verdict_test_bpf* s) const { verdict_test_bpf__destroy(s); }
};

class VerdictTable : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(ensureBpffs());
    stateDir_ = "/sys/fs/bpf/microseg-test-" + std::to_string(::getpid()) + "-verdict";
    trackTempDir(stateDir_);  // the signal path removes the pins (the links detach with this process)
  }
  void TearDown() override {
    if (dp_) dp_->uninstall();
    dp_.reset();
    (void)datapath::BpfDatapath::cleanupStateDir(stateDir_);
    untrackTempDir(stateDir_);
  }

  // The test object on the maps `dp_` pinned: every map both objects pin
  // is the same map.
  std::unique_ptr<verdict_test_bpf, SkelDeleter> openOnPins() {
    std::unique_ptr<verdict_test_bpf, SkelDeleter> skel(verdict_test_bpf__open());
    if (!skel) return nullptr;
    for (bpf_map* m : datapath::pinnedMaps(skel->obj)) {
      const std::string path = dp_->pinDir() + "/" + bpf_map__name(m);
      const int fd = bpf_obj_get(path.c_str());
      EXPECT_GE(fd, 0) << "no pinned map " << path;
      if (fd < 0) return nullptr;
      const int rc = bpf_map__reuse_fd(m, fd);
      ::close(fd);
      if (rc != 0) return nullptr;
    }
    if (verdict_test_bpf__load(skel.get()) != 0) return nullptr;
    return skel;
  }

  CgroupTree tree_;
  std::string stateDir_;
  std::unique_ptr<datapath::BpfDatapath> dp_;
};

TEST_F(VerdictTable, KernelAndEvaluatorAgreeOnRandomPolicies) {
  datapath::BpfOptions opts;
  opts.cgroupRoot = tree_.root();
  opts.stateDir = stateDir_;
  opts.mode = MS_MODE_ENFORCE;
  auto loaded = datapath::BpfDatapath::load(opts);
  ASSERT_TRUE(loaded) << loaded.error().str();
  dp_ = std::move(loaded.value());

  std::mt19937 rng(20261207);
  std::unique_ptr<verdict_test_bpf, SkelDeleter> skel;
  std::unique_ptr<compiler::CompiledPolicy> inForce;
  std::unique_ptr<policy::ParseResult> inForceBundle;
  size_t cases = 0, disagreements = 0, byAddr = 0, rangePeers = 0, worldPeers = 0;
  std::set<uint8_t> reasons;
  for (int round = 0; round < 6; round++) {
    std::set<uint16_t> ports{1, 2, 80, 65534, 65535};
    const std::string text = randomSet(rng, ports);
    auto parsed = std::make_unique<policy::ParseResult>(policy::parseText(text, "random.yaml"));
    policy::validateBundle(parsed->bundle, parsed->errors);
    ASSERT_TRUE(parsed->ok()) << parsed->errors[0].str() << "\n" << text;
    const auto ids = identity::assignIdentities(parsed->bundle);
    compiler::RuleRegistry registry;
    compiler::Options copts;
    copts.defaultEnforcement =
        round % 2 ? compiler::DefaultEnforcement::Selected : compiler::DefaultEnforcement::Always;
    auto compiled = std::make_unique<compiler::CompiledPolicy>(compile(parsed->bundle, ids, registry, copts));

    datapath::Generation gen;
    gen.number = uint64_t(round) + 1;
    gen.policy = compiled.get();
    gen.inForce = inForce.get();
    for (const auto& [id, labels] : ids.labels) gen.cgroups.push_back({kFakeCgroupBase + id, id, 0});
    auto applied = dp_->applyGeneration(gen);
    ASSERT_TRUE(applied) << applied.error().str();
    if (!skel) {
      // Attached to this test's own cgroup (no process in it): the pins
      // the test object shares appear.
      auto active = dp_->activate();
      ASSERT_TRUE(active) << active.error().str();
      skel = openOnPins();
      ASSERT_TRUE(skel) << "cannot load bpf/verdict_test.bpf.c on the pinned maps";
    }
    const int io = bpf_map__fd(skel->maps.ms_verdict_io);
    const int prog = bpf_program__fd(skel->progs.ms_verdict_test);

    std::vector<uint32_t> peers = {MS_IDENTITY_ANY, MS_IDENTITY_HOST, MS_IDENTITY_WORLD, MS_IDENTITY_UNMANAGED,
                                   MS_IDENTITY_PENDING, MS_IDENTITY_MULTICAST, MS_IDENTITY_UNATTRIBUTED};
    for (const auto& [id, labels] : ids.labels) peers.push_back(id);
    std::set<uint32_t> ranges;
    for (const auto& e : compiled->ipcache) {
      if (e.identity >= MS_IDENTITY_FIRST_EXTERNAL) ranges.insert(e.identity);
    }
    peers.insert(peers.end(), ranges.begin(), ranges.end());
    // Remote addresses: in each External, in the hole, beside them, and
    // multicast (never a unicast peer).
    std::vector<ms_addr> addrs = {v4(0x0a000001), v4(0x0a010203), v4(0x0a010201), v4(0x0a020304), v4(0x0b000001),
                                  v4(0xc0a80001), v4(0xe0000001), v4(0xffffffff)};
    ms_addr v6{};
    v6.a[0] = 0xfd;
    v6.a[15] = 1;
    addrs.push_back(v6);
    v6.a[0] = 0x20;
    v6.a[1] = 0x01;
    addrs.push_back(v6);

    const std::vector<uint16_t> portList(ports.begin(), ports.end());
    for (const auto& [subject, labels] : ids.labels) {
      for (size_t pi = 0; pi < peers.size() + addrs.size(); pi++) {
        const bool isAddr = pi >= peers.size();
        for (const Direction dir : {Direction::Egress, Direction::Ingress}) {
          for (const uint8_t proto : {uint8_t(MS_PROTO_TCP), uint8_t(MS_PROTO_UDP)}) {
            for (const uint16_t port : portList) {
              ms_verdict_case c{};
              c.subject_cgroup = kFakeCgroupBase + subject;
              c.direction = uint8_t(dir);
              c.protocol = proto;
              c.port = htons(port);
              uint32_t peer;
              if (isAddr) {
                c.by_addr = 1;
                c.peer_addr = addrs[pi - peers.size()];
                const bool multicast = (c.peer_addr.a[10] == 0xff && c.peer_addr.a[12] >= 0xe0) ||
                                       (c.peer_addr.a[10] != 0xff && c.peer_addr.a[0] == 0xff);
                peer = multicast ? MS_IDENTITY_MULTICAST : referenceIdentity(*compiled, c.peer_addr);
                byAddr++;
              } else {
                peer = c.peer = peers[pi];
              }
              if (peer >= MS_IDENTITY_FIRST_EXTERNAL) rangePeers++;
              if (peer == MS_IDENTITY_WORLD) worldPeers++;
              const uint32_t zero = 0;
              ASSERT_EQ(bpf_map_update_elem(io, &zero, &c, BPF_ANY), 0);
              uint8_t pkt[64] = {};
              LIBBPF_OPTS(bpf_test_run_opts, run, .data_in = pkt, .data_size_in = sizeof(pkt));
              ASSERT_EQ(bpf_prog_test_run_opts(prog, &run), 0) << std::strerror(errno);
              ms_verdict_case out{};
              ASSERT_EQ(bpf_map_lookup_elem(io, &zero, &out), 0);
              ASSERT_EQ(out.rc, 0) << "subject cgroup entry or generation missing";
              ASSERT_EQ(out.runs, 1u);
              const auto want = compiler::evaluate(*compiled, subject, peer, dir, proto, port);
              cases++;
              reasons.insert(want.reason);
              const bool same = out.subject == subject && out.resolved_peer == peer && out.verdict == want.verdict &&
                                out.rule_id == want.ruleId && out.reason == want.reason;
              if (!same && ++disagreements <= 10) {
                ADD_FAILURE() << "round " << round << ": subject " << subject << " peer " << peer
                              << (isAddr ? " (by address)" : "") << " dir " << int(dir) << " proto " << int(proto)
                              << " port " << port << ": kernel peer " << out.resolved_peer << " verdict "
                              << int(out.verdict) << " rule " << out.rule_id << " reason " << int(out.reason)
                              << "; evaluator verdict " << int(want.verdict) << " rule " << want.ruleId << " reason "
                              << int(want.reason);
              }
            }
          }
        }
      }
    }
    inForce = std::move(compiled);
    inForceBundle = std::move(parsed);
  }
  std::cout << "[ verdicts ] " << cases << " cases (" << byAddr << " peers by address, " << rangePeers
            << " range-identity peers, " << worldPeers << " world peers), " << disagreements
            << " disagreements\n";
  EXPECT_EQ(disagreements, 0u);
  EXPECT_GT(cases, 10000u);
  EXPECT_GT(rangePeers, 0u);
  EXPECT_GT(worldPeers, 0u);
  // Every outcome was met: a rule, the default deny, not isolated.
  EXPECT_TRUE(reasons.count(MS_REASON_RULE) && reasons.count(MS_REASON_DEFAULT_DENY) &&
              reasons.count(MS_REASON_NOT_ISOLATED));
}

}  // namespace
}  // namespace microseg::e2e
