// The kernel's DNS response parser (bpf/lib/dns.bpf.h, #27) against the
// reference (userspace/fqdn/dns_response.h) on random and mutated
// messages, through BPF_PROG_TEST_RUN of the test-only bpf/dns_test.bpf.c:
// it loads (the verifier accepts every path), and on every message both
// say the same: the outcome, and for a bound one the question, the CNAME
// chain, the addresses with their TTLs and owners, what was dropped. The
// messages are what a hostile or broken resolver could send: names with
// bad characters, long labels and loops of pointers, records that run
// past the end, wrong lengths, truncations, flipped bytes.
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "bpf/dns_test.h"
#include "dns_test.skel.h"
#include "fqdn/dns_response.h"
#include "fqdn/name_entries.h"

namespace microseg::e2e {
namespace {

uint64_t fnv(const std::string& s) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (unsigned char c : s) h = (h ^ c) * 0x100000001b3ULL;
  return h;
}

// Random DNS responses, mostly well formed enough to get far.
class MessageMaker {
 public:
  explicit MessageMaker(uint32_t seed) : rng_(seed) {}
  uint32_t pick(uint32_t n) { return n == 0 ? 0 : uint32_t(rng_() % n); }

  std::vector<uint8_t> next() {
    m_.clear();
    names_.clear();
    const uint16_t flags = pick(10) == 0 ? uint16_t(rng_()) : uint16_t(0x8180);
    const uint16_t qd = pick(12) == 0 ? uint16_t(pick(3)) : 1;
    const uint16_t an = uint16_t(pick(8) == 0 ? pick(40) : pick(7));
    u16(uint16_t(rng_()));
    u16(flags);
    u16(qd);
    u16(an);
    u16(0);
    u16(0);
    const std::string q = name();
    names_.push_back(12);
    literal(q);
    u16(pick(2) ? 1 : 28);
    u16(1);
    for (uint16_t i = 0; i < an; i++) record();
    mutate();
    return m_;
  }

 private:
  void u8(uint8_t v) { m_.push_back(v); }
  void u16(uint16_t v) {
    u8(uint8_t(v >> 8));
    u8(uint8_t(v));
  }
  void u32(uint32_t v) {
    u16(uint16_t(v >> 16));
    u16(uint16_t(v));
  }
  std::string label() {
    static const char kChars[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_";
    const uint32_t len = pick(20) == 0 ? 1 + pick(70) : 1 + pick(8);
    std::string l;
    for (uint32_t i = 0; i < len; i++) {
      if (pick(40) == 0) {
        l.push_back(char(rng_()));  // any byte: '.', ' ', '*', 0x80...
      } else {
        l.push_back(kChars[pick(sizeof(kChars) - 1)]);
      }
    }
    return l;
  }
  std::string name() {
    const uint32_t n = pick(16) == 0 ? pick(40) : 1 + pick(4);
    std::string out;
    for (uint32_t i = 0; i < n; i++) out += (i ? "\x01" : "") + label();  // \x01: a label boundary
    return out;
  }
  // Writes a name's labels (split at \x01), then the root.
  void literal(const std::string& n) {
    size_t s = 0;
    while (s < n.size()) {
      size_t e = n.find('\x01', s);
      if (e == std::string::npos) e = n.size();
      u8(uint8_t(std::min<size_t>(e - s, 255)));
      for (size_t i = s; i < e; i++) u8(uint8_t(n[i]));
      s = e + 1;
    }
    u8(0);
  }
  // A name: a pointer to one written before, some labels then a pointer,
  // or written out.
  void ownerOrTarget() {
    const uint32_t how = pick(6);
    if (how <= 2 && !names_.empty()) {
      u16(uint16_t(0xc000 | names_[pick(uint32_t(names_.size()))]));
    } else if (how == 3 && !names_.empty()) {
      names_.push_back(uint16_t(m_.size()));
      u8(3);
      u8('w');
      u8('w');
      u8('w');
      u16(uint16_t(0xc000 | names_[pick(uint32_t(names_.size() - 1))]));
    } else {
      names_.push_back(uint16_t(m_.size()));
      literal(name());
    }
  }
  void record() {
    ownerOrTarget();
    const uint32_t kind = pick(10);
    const uint16_t type = kind < 4 ? 1 : kind < 6 ? 28 : kind < 9 ? 5 : uint16_t(pick(300));
    u16(type);
    u16(pick(15) == 0 ? uint16_t(pick(5)) : 1);
    u32(pick(8) == 0 ? uint32_t(rng_()) : pick(3600));
    if (type == 5) {
      const size_t lenAt = m_.size();
      u16(0);
      const size_t start = m_.size();
      ownerOrTarget();
      uint16_t rdlen = uint16_t(m_.size() - start);
      if (pick(12) == 0) rdlen = uint16_t(rdlen + pick(5) - 2);
      m_[lenAt] = uint8_t(rdlen >> 8);
      m_[lenAt + 1] = uint8_t(rdlen);
      return;
    }
    uint16_t rdlen = type == 1 ? 4 : type == 28 ? 16 : uint16_t(pick(20));
    if (pick(20) == 0) rdlen = uint16_t(pick(20));
    u16(rdlen);
    for (uint16_t i = 0; i < rdlen; i++) u8(uint8_t(rng_()));
  }
  void mutate() {
    switch (pick(8)) {
      case 0:
        m_.resize(pick(uint32_t(m_.size()) + 1));
        break;
      case 1:
        for (uint32_t i = 0, n = 1 + pick(4); i < n && !m_.empty(); i++) m_[pick(uint32_t(m_.size()))] ^= uint8_t(1 + pick(255));
        break;
      case 2:  // a pointer somewhere, maybe a loop
        if (m_.size() > 14) {
          const uint32_t at = 12 + pick(uint32_t(m_.size()) - 13);
          const uint16_t to = uint16_t(pick(uint32_t(m_.size())));
          m_[at] = uint8_t(0xc0 | (to >> 8));
          m_[at + 1] = uint8_t(to);
        }
        break;
      case 3:  // trailing bytes, sometimes past the size bound
        m_.resize(m_.size() + (pick(6) == 0 ? 1200 + pick(200) : pick(30)), uint8_t(rng_()));
        break;
      default:
        break;
    }
  }
  std::mt19937 rng_;
  std::vector<uint8_t> m_;
  std::vector<uint16_t> names_;  // offsets of names written out
};

// An IPv4 and UDP header (source port 53), then the message, behind an
// Ethernet header for the test run.
std::vector<uint8_t> frameOf(const std::vector<uint8_t>& msg) {
  std::vector<uint8_t> f(14 + 28 + msg.size(), 0);
  f[0] = 0x02;
  f[12] = 0x08;  // IPv4
  uint8_t* ip = f.data() + 14;
  const uint16_t total = uint16_t(28 + msg.size());
  ip[0] = 0x45;
  ip[2] = uint8_t(total >> 8);
  ip[3] = uint8_t(total);
  ip[8] = 64;
  ip[9] = IPPROTO_UDP;
  ip[12] = 10, ip[15] = 53;  // 10.0.0.53
  ip[16] = 10, ip[19] = 2;   // 10.0.0.2
  uint8_t* udp = ip + 20;
  udp[1] = 53;
  udp[2] = 0xc3, udp[3] = 0x50;
  const uint16_t ulen = uint16_t(8 + msg.size());
  udp[4] = uint8_t(ulen >> 8);
  udp[5] = uint8_t(ulen);
  std::copy(msg.begin(), msg.end(), f.begin() + 14 + 28);
  return f;
}

std::string hex(const std::vector<uint8_t>& m) {
  static const char* d = "0123456789abcdef";
  std::string s;
  for (uint8_t b : m) {
    s.push_back(d[b >> 4]);
    s.push_back(d[b & 15]);
  }
  return s;
}

TEST(AttacksDns, KernelParserAgreesWithTheReferenceOnRandomAndMutatedMessages) {
  struct SkelDeleter {
    void operator()(dns_test_bpf* s) const { dns_test_bpf__destroy(s); }
  };
  std::unique_ptr<dns_test_bpf, SkelDeleter> skel(dns_test_bpf__open_and_load());
  ASSERT_TRUE(skel) << "the DNS parser did not load (verifier): " << std::strerror(errno);
  const int prog = bpf_program__fd(skel->progs.ms_dns_test);
  const int out = bpf_map__fd(skel->maps.ms_dns_out);

  constexpr int kMessages = 40000;
  const uint32_t seed = std::random_device{}();
  SCOPED_TRACE("seed " + std::to_string(seed));
  MessageMaker maker(seed);
  std::map<fqdn::DnsOutcome, int> outcomes;
  uint32_t runs = 0;
  int mismatches = 0, withAddresses = 0, chains = 0, dropped = 0;
  for (int i = 0; i < kMessages && mismatches < 5; i++) {
    const std::vector<uint8_t> msg = maker.next();
    const uint8_t maxAddrs = uint8_t(1 + maker.pick(MS_DNS_TEST_ADDRS));
    skel->data->ms_dns_max_addrs = maxAddrs;
    std::vector<uint8_t> frame = frameOf(msg);
    LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = frame.data(), .data_size_in = uint32_t(frame.size()));
    ASSERT_EQ(bpf_prog_test_run_opts(prog, &opts), 0) << std::strerror(errno);
    ASSERT_EQ(opts.retval, 1u);
    ms_dns_test_result got{};
    const uint32_t zero = 0;
    ASSERT_EQ(bpf_map_lookup_elem(out, &zero, &got), 0);
    ASSERT_EQ(got.runs, ++runs);

    const fqdn::DnsResponse want = fqdn::parseResponse(msg, maxAddrs);
    outcomes[want.outcome]++;
    std::string diff;
    auto expect = [&](bool ok, const std::string& what) {
      if (!ok && diff.empty()) diff = what;
    };
    expect(got.outcome == uint8_t(want.outcome), std::string("outcome: kernel ") + std::to_string(got.outcome) +
                                                     ", reference " + fqdn::outcomeName(want.outcome));
    if (diff.empty() && want.outcome == fqdn::DnsOutcome::Bound) {
      expect(got.id == want.id, "id");
      expect(got.qtype == want.qtype, "qtype");
      expect(got.records_seen == want.recordsSeen, "records seen: kernel " + std::to_string(got.records_seen) +
                                                       ", reference " + std::to_string(want.recordsSeen));
      expect(got.n_chain == want.chain.size(), "chain length: kernel " + std::to_string(got.n_chain) + ", reference " +
                                                   std::to_string(want.chain.size()));
      for (size_t c = 0; diff.empty() && c < want.chain.size() && c < MS_DNS_TEST_CHAIN; c++) {
        expect(got.chain[c] == fnv(want.chain[c]), "chain[" + std::to_string(c) + "] (" + want.chain[c] + ")");
      }
      expect(got.n_addrs == want.addresses.size(), "addresses: kernel " + std::to_string(got.n_addrs) +
                                                       ", reference " + std::to_string(want.addresses.size()));
      for (size_t a = 0; diff.empty() && a < want.addresses.size() && a < MS_DNS_TEST_ADDRS; a++) {
        expect(std::memcmp(got.addrs[a].addr.a, want.addresses[a].addr.a, 16) == 0, "address " + std::to_string(a));
        expect(got.addrs[a].ttl == want.addresses[a].ttl, "ttl " + std::to_string(a));
        expect(got.addrs[a].owner == fnv(want.addresses[a].owner), "owner " + std::to_string(a));
      }
      expect(got.dropped == want.addressesDropped, "dropped");
      // What ms_fqdn_names is looked up by (lib/fqdn.bpf.h): the question's
      // text, and the hash of its suffix after each of its first 64 dots.
      const std::string& q = want.chain[0];
      expect(got.qlen == q.size() && std::string(got.qtext, got.qlen) == q,
             "question text: kernel '" + std::string(got.qtext, std::min<size_t>(got.qlen, sizeof(got.qtext))) + "'");
      std::vector<size_t> starts;
      for (size_t p = q.find('.'); p != std::string::npos && starts.size() < MS_DNS_TEST_STARTS; p = q.find('.', p + 1)) {
        starts.push_back(p + 1);
      }
      expect(got.n_starts == starts.size(), "label starts: kernel " + std::to_string(got.n_starts) + ", want " +
                                                std::to_string(starts.size()));
      for (size_t k = 0; diff.empty() && k < starts.size(); k++) {
        expect(got.suffix_at[k] == starts[k] && got.suffix[k] == fqdn::suffixHash(q.substr(starts[k])),
               "suffix hash from " + std::to_string(starts[k]) + " (" + q.substr(starts[k]) + ")");
      }
      withAddresses += !want.addresses.empty();
      chains += want.chain.size() > 1;
      dropped += want.addressesDropped > 0;
    }
    if (!diff.empty()) {
      ADD_FAILURE() << "message " << i << " (" << msg.size() << " bytes, max " << int(maxAddrs)
                    << " addresses): " << diff << "\n  " << hex(msg);
      mismatches++;
    }
  }
  // The generator reached every kind of outcome and the interesting bound ones.
  for (auto o : {fqdn::DnsOutcome::Bound, fqdn::DnsOutcome::NotResponse, fqdn::DnsOutcome::Truncated,
                 fqdn::DnsOutcome::Refused, fqdn::DnsOutcome::NotOneQuestion, fqdn::DnsOutcome::BadQuestion,
                 fqdn::DnsOutcome::Malformed, fqdn::DnsOutcome::Oversized}) {
    EXPECT_GT(outcomes[o], 0) << fqdn::outcomeName(o);
  }
  EXPECT_GT(withAddresses, 1000);
  EXPECT_GT(chains, 100);
  EXPECT_GT(dropped, 100);
  std::string summary;
  for (const auto& [o, n] : outcomes) summary += std::string(fqdn::outcomeName(o)) + " " + std::to_string(n) + "  ";
  RecordProperty("outcomes", summary);
  std::printf("  dns parser: %d messages: %s; bound with addresses %d, with a CNAME chain %d, with drops %d\n",
              kMessages, summary.c_str(), withAddresses, chains, dropped);
}

// The most work a message can ask for within the size bound: a question of
// 253 characters, then 32 CNAME records owned by it, each pointing back to
// it (every record walks the long name twice). The step budget covers it,
// the answer is the reference's, and the time it takes is printed.
TEST(AttacksDns, TheWorstCaseMessageFitsTheStepBudget) {
  struct SkelDeleter {
    void operator()(dns_test_bpf* s) const { dns_test_bpf__destroy(s); }
  };
  std::unique_ptr<dns_test_bpf, SkelDeleter> skel(dns_test_bpf__open_and_load());
  ASSERT_TRUE(skel) << std::strerror(errno);
  std::vector<uint8_t> m = {0x12, 0x34, 0x81, 0x80, 0, 1, 0, 32, 0, 0, 0, 0};
  size_t chars = 0;
  while (chars < 253) {  // labels of 1 character: the most length bytes for the text
    if (chars) chars++;  // the dot between
    m.push_back(1);
    m.push_back('a');
    chars++;
  }
  m.push_back(0);
  for (uint8_t b : {0, 1, 0, 1}) m.push_back(b);
  for (int r = 0; r < 32; r++) {
    for (uint8_t b : {0xc0, 12, 0, 5, 0, 1, 0, 0, 0, 60, 0, 2, 0xc0, 12}) m.push_back(b);
  }
  ASSERT_LE(m.size(), fqdn::kMaxMessageBytes);
  const auto want = fqdn::parseResponse(m, MS_DNS_TEST_ADDRS);
  ASSERT_EQ(want.outcome, fqdn::DnsOutcome::Bound);
  ASSERT_EQ(want.recordsSeen, 32u);
  ASSERT_EQ(want.question.size(), 253u);
  std::vector<uint8_t> frame = frameOf(m);
  LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = frame.data(), .data_size_in = uint32_t(frame.size()),
              .repeat = 100);
  ASSERT_EQ(bpf_prog_test_run_opts(bpf_program__fd(skel->progs.ms_dns_test), &opts), 0) << std::strerror(errno);
  ms_dns_test_result got{};
  const uint32_t zero = 0;
  ASSERT_EQ(bpf_map_lookup_elem(bpf_map__fd(skel->maps.ms_dns_out), &zero, &got), 0);
  EXPECT_EQ(got.outcome, uint8_t(fqdn::DnsOutcome::Bound)) << "out of steps?";
  EXPECT_EQ(got.records_seen, 32);
  EXPECT_EQ(got.n_chain, 1);
  EXPECT_EQ(got.chain[0], fnv(want.question));
  std::printf("  dns parser: worst-case message (%zu bytes, 32 records over a 253-character name): %u ns a run\n",
              m.size(), opts.duration);

  // A usual answer, for scale: api.example.com, a CNAME, two A records.
  std::vector<uint8_t> u = {0x12, 0x34, 0x81, 0x80, 0, 1, 0, 3, 0, 0, 0, 0};
  for (const char* l : {"api", "example", "com"}) {
    u.push_back(uint8_t(std::strlen(l)));
    u.insert(u.end(), l, l + std::strlen(l));
  }
  for (uint8_t b : {0, 0, 1, 0, 1}) u.push_back(b);
  const size_t target = u.size() + 12;  // the CNAME's target name, written out below
  u.insert(u.end(), {0xc0, 12, 0, 5, 0, 1, 0, 0, 0, 60, 0, 6, 3, 'l', 'b', '1', 0xc0, 16});
  for (int r = 0; r < 2; r++) {
    u.insert(u.end(), {0xc0, uint8_t(target), 0, 1, 0, 1, 0, 0, 0, 30, 0, 4, 192, 0, 2, uint8_t(10 + r)});
  }
  const auto usual = fqdn::parseResponse(u, MS_DNS_TEST_ADDRS);
  ASSERT_EQ(usual.outcome, fqdn::DnsOutcome::Bound);
  ASSERT_EQ(usual.addresses.size(), 2u) << "the CNAME's addresses belong to the question";
  frame = frameOf(u);
  LIBBPF_OPTS(bpf_test_run_opts, uopts, .data_in = frame.data(), .data_size_in = uint32_t(frame.size()),
              .repeat = 1000);
  ASSERT_EQ(bpf_prog_test_run_opts(bpf_program__fd(skel->progs.ms_dns_test), &uopts), 0) << std::strerror(errno);
  ASSERT_EQ(bpf_map_lookup_elem(bpf_map__fd(skel->maps.ms_dns_out), &zero, &got), 0);
  EXPECT_EQ(got.n_addrs, 2);
  std::printf("  dns parser: a usual answer (%zu bytes: a CNAME and two A records): %u ns a run\n", u.size(),
              uopts.duration);
}

}  // namespace
}  // namespace microseg::e2e
