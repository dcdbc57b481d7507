// The inbound packet parser (parse_pkt(), bpf/lib/packet.bpf.h) against a
// reference written from its contract, on tens of thousands of random and
// mutated IPv4/IPv6/TCP/UDP packets (truncated headers, bogus IHL and
// versions, fragments, extension-header chains, lengths past the end), run
// in the kernel with BPF_PROG_TEST_RUN: every verdict and every parsed
// field must agree exactly. A test run's skb->sk is a dummy socket of no
// protocol, so the real ms_ingress returns before parsing; the parser runs
// in a test-only program (bpf/parse_test.bpf.c) that reports what it found.
// ms_ingress itself runs on the same packets too: loaded by the verifier,
// it lets every one through and counts nothing.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <vector>

#include "attacks_util.h"
#include "bpf/parse_test.h"
#include "microseg.skel.h"
#include "parse_test.skel.h"

namespace microseg::e2e {
namespace {

constexpr uint8_t kTcp = 6, kUdp = 17, kUdpLite = 136;

struct Expected {
  int rc = -1;
  ms_addr src{}, dst{};
  uint16_t sport = 0, dport = 0;  // as in the packet (network order)
  uint8_t proto = 0, flags = 0, v4 = 0;
};

ms_addr mapped(const uint8_t* p) {
  ms_addr a{};
  a.a[10] = a.a[11] = 0xff;
  std::memcpy(a.a + 12, p, 4);
  return a;
}

// parse_pkt()'s contract, from the packet's network header on.
Expected reference(uint16_t ethertype, const std::vector<uint8_t>& pkt) {
  Expected e, fail;
  auto have = [&](size_t off, size_t n) { return off + n <= pkt.size(); };
  auto be16 = [&](size_t off) { return uint16_t(pkt[off] << 8 | pkt[off + 1]); };
  size_t off;
  uint8_t nh;
  if (ethertype == 0x0800) {
    if (!have(0, 20) || (pkt[0] >> 4) != 4 || (pkt[0] & 0xf) < 5) return fail;
    if (be16(6) & 0x3fff) return fail;  // a fragment
    off = size_t(pkt[0] & 0xf) * 4;
    nh = pkt[9];
    e.src = mapped(&pkt[12]);
    e.dst = mapped(&pkt[16]);
    e.v4 = 1;
  } else if (ethertype == 0x86DD) {
    if (!have(0, 40)) return fail;
    std::memcpy(e.src.a, &pkt[8], 16);
    std::memcpy(e.dst.a, &pkt[24], 16);
    off = 40;
    nh = pkt[6];
    int i = 0;
    for (; i < 8; i++) {
      if (nh == kTcp || nh == kUdp || nh == kUdpLite) break;
      if (nh != 0 && nh != 43 && nh != 60 && nh != 44 && nh != 51) return fail;
      if (!have(off, 2)) return fail;
      const uint8_t next = pkt[off], len = pkt[off + 1];
      if (nh == 44) {
        if (!have(off + 2, 2) || (be16(off + 2) & 0xfff9)) return fail;
        off += 8;
      } else if (nh == 51) {
        off += (size_t(len) + 2) * 4;
      } else {
        off += (size_t(len) + 1) * 8;
      }
      nh = next;
    }
    if (i == 8) return fail;
  } else {
    return fail;
  }
  e.proto = nh;
  if (nh == kTcp) {
    if (!have(off, 14)) return fail;
    e.flags = pkt[off + 13];
  } else if (nh == kUdp || nh == kUdpLite) {
    if (!have(off, 4)) return fail;
  } else {
    return fail;
  }
  std::memcpy(&e.sport, &pkt[off], 2);
  std::memcpy(&e.dport, &pkt[off + 2], 2);
  e.rc = 0;
  return e;
}

// Random packets, built valid and then damaged in every way the parser
// must survive.
class PacketMaker {
 public:
  explicit PacketMaker(uint32_t seed) : rng_(seed) {}
  // {ethertype, network header onwards}
  std::pair<uint16_t, std::vector<uint8_t>> next() {
    std::vector<uint8_t> p;
    uint16_t ethertype;
    const int kind = pick(10);
    if (kind < 4) {
      ethertype = 0x0800;
      p = ipv4();
    } else if (kind < 9) {
      ethertype = 0x86DD;
      p = ipv6();
    } else {
      ethertype = pick(4) == 0 ? uint16_t(pick(0x10000)) : uint16_t(0x0806);  // ARP or anything
      p = bytes(size_t(pick(80)));
    }
    mutate(p);
    return {ethertype, p};
  }

 private:
  uint32_t pick(uint32_t n) { return std::uniform_int_distribution<uint32_t>(0, n - 1)(rng_); }
  std::vector<uint8_t> bytes(size_t n) {
    std::vector<uint8_t> b(n);
    for (auto& x : b) x = uint8_t(pick(256));
    return b;
  }
  uint8_t l4proto() {
    const uint8_t common[] = {kTcp, kUdp, kUdpLite, kTcp, kUdp, 1, 58, 132, 0, 255};
    return common[pick(sizeof(common))];
  }
  void l4(std::vector<uint8_t>& p, uint8_t proto) {
    auto h = bytes(proto == kTcp ? 20 + 4 * pick(4) : 8);
    if (proto == kTcp) h[13] = pick(2) ? 0x02 : uint8_t(pick(256));  // SYN, or any flags
    p.insert(p.end(), h.begin(), h.end());
    auto payload = bytes(size_t(pick(32)));
    p.insert(p.end(), payload.begin(), payload.end());
  }
  std::vector<uint8_t> ipv4() {
    const uint32_t ihl = pick(8) == 0 ? pick(16) : 5 + pick(3);  // bogus IHL now and then
    std::vector<uint8_t> p = bytes(std::max<size_t>(20, ihl * 4));
    p[0] = uint8_t((pick(10) == 0 ? pick(16) : 4) << 4 | ihl);
    const uint16_t frag = pick(5) == 0 ? uint16_t(pick(0x10000)) : (pick(2) ? 0x4000 : 0);  // DF, or fragments
    p[6] = uint8_t(frag >> 8);
    p[7] = uint8_t(frag);
    p[9] = l4proto();
    l4(p, p[9]);
    return p;
  }
  std::vector<uint8_t> ipv6() {
    std::vector<uint8_t> p = bytes(40);
    p[0] = uint8_t(0x60 | (p[0] & 0xf));
    const uint8_t exts[] = {0, 43, 60, 44, 51, 60, 0, 135, 59};
    const int n = int(pick(pick(4) == 0 ? 11 : 4));  // chains past the parser's bound too
    uint8_t* next = &p[6];
    for (int i = 0; i < n; i++) {
      const uint8_t type = exts[pick(sizeof(exts))];
      *next = type;
      const size_t at = p.size();
      std::vector<uint8_t> h;
      if (type == 44) {
        h = bytes(8);
        const uint16_t frag = pick(3) == 0 ? uint16_t(pick(0x10000)) : uint16_t(pick(2) ? 0 : 6);  // first, or any
        h[2] = uint8_t(frag >> 8);
        h[3] = uint8_t(frag);
      } else if (type == 51) {
        h = bytes(8 + 4 * pick(4));
        h[1] = uint8_t(h.size() / 4 - 2);
      } else {
        h = bytes(8 * (1 + pick(3)));
        h[1] = uint8_t(h.size() / 8 - 1);
      }
      if (pick(12) == 0) h[1] = uint8_t(pick(256));  // a length past the end
      p.insert(p.end(), h.begin(), h.end());
      next = &p[at];
    }
    const uint8_t proto = l4proto();
    *next = proto;
    l4(p, proto);
    return p;
  }
  void mutate(std::vector<uint8_t>& p) {
    switch (pick(6)) {
      case 0:  // truncated anywhere
        p.resize(pick(uint32_t(p.size()) + 1));
        break;
      case 1:  // a few bytes flipped
        for (uint32_t i = 0, n = 1 + pick(4); i < n && !p.empty(); i++) p[pick(uint32_t(p.size()))] ^= uint8_t(1 + pick(255));
        break;
      case 2:  // truncated close to a header's end
        if (p.size() > 20) p.resize(p.size() - 1 - pick(std::min<uint32_t>(24, uint32_t(p.size()) - 1)));
        break;
      default:  // left whole
        break;
    }
  }
  std::mt19937 rng_;
};

TEST_F(Attacks, PacketParserAgreesWithTheReferenceOnRandomPackets) {
  struct SkelDeleter {
    void operator()(parse_test_bpf* s) const { parse_test_bpf__destroy(s); }
    void operator()(microseg_bpf* s) const { microseg_bpf__destroy(s); }
  };
  std::unique_ptr<parse_test_bpf, SkelDeleter> parser(parse_test_bpf__open_and_load());
  ASSERT_TRUE(parser) << "the test parser did not load (verifier): " << std::strerror(errno);
  std::unique_ptr<microseg_bpf, SkelDeleter> real(microseg_bpf__open_and_load());
  ASSERT_TRUE(real) << "the datapath did not load (verifier): " << std::strerror(errno);
  const int parseFd = bpf_program__fd(parser->progs.ms_parse_test);
  const int outFd = bpf_map__fd(parser->maps.ms_parse_out);
  const int ingressFd = bpf_program__fd(real->progs.ms_ingress);

  constexpr int kPackets = 30000;
  const uint32_t seed = std::random_device{}();
  SCOPED_TRACE("seed " + std::to_string(seed));
  PacketMaker maker(seed);
  uint32_t runs = 0;
  int parsed = 0, tcp = 0, udp = 0, v6ext = 0, mismatches = 0, refusedShort = 0;
  for (int i = 0; i < kPackets && mismatches < 10; i++) {
    auto [ethertype, pkt] = maker.next();
    std::vector<uint8_t> frame(14, 0);
    frame[0] = 0x02;  // a unicast MAC of our own
    frame[12] = uint8_t(ethertype >> 8);
    frame[13] = uint8_t(ethertype);
    frame.insert(frame.end(), pkt.begin(), pkt.end());
    LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = frame.data(), .data_size_in = uint32_t(frame.size()));
    if (bpf_prog_test_run_opts(parseFd, &opts) != 0) {
      // The kernel builds no test skb for an IP packet shorter than its
      // fixed header (a socket never gets one either: IP drops it first).
      const bool shortIp = (ethertype == 0x0800 && pkt.size() < 20) || (ethertype == 0x86DD && pkt.size() < 40);
      ASSERT_TRUE(errno == EINVAL && shortIp)
          << std::strerror(errno) << ", packet " << i << " of " << frame.size() << " bytes, ethertype " << ethertype;
      refusedShort++;
      continue;
    }
    ASSERT_EQ(opts.retval, 1u);
    ms_parse_result got{};
    const uint32_t zero = 0;
    ASSERT_EQ(bpf_map_lookup_elem(outFd, &zero, &got), 0);
    ASSERT_EQ(got.runs, ++runs);
    const Expected want = reference(ethertype, pkt);
    bool same = got.rc == want.rc;
    if (same && want.rc == 0) {
      same = std::memcmp(&got.src, &want.src, sizeof(ms_addr)) == 0 &&
             std::memcmp(&got.dst, &want.dst, sizeof(ms_addr)) == 0 && got.sport == want.sport &&
             got.dport == want.dport && got.proto == want.proto && got.tcp_flags == want.flags && got.v4 == want.v4;
    }
    if (!same) {
      mismatches++;
      std::string hex;
      for (uint8_t b : pkt) hex += "0123456789abcdef"[b >> 4], hex += "0123456789abcdef"[b & 15];
      ADD_FAILURE() << "packet " << i << " ethertype " << std::hex << ethertype << std::dec << ": kernel rc "
                    << got.rc << " proto " << int(got.proto) << ", reference rc " << want.rc << " proto "
                    << int(want.proto) << "\n  " << hex;
    }
    if (want.rc == 0) {
      parsed++;
      tcp += want.proto == kTcp;
      udp += want.proto != kTcp;
      v6ext += ethertype == 0x86DD && pkt.size() > 6 && pkt[6] != want.proto;
    }
    LIBBPF_OPTS(bpf_test_run_opts, real_opts, .data_in = frame.data(), .data_size_in = uint32_t(frame.size()));
    ASSERT_EQ(bpf_prog_test_run_opts(ingressFd, &real_opts), 0) << std::strerror(errno);
    ASSERT_EQ(real_opts.retval, 1u) << "ms_ingress, packet " << i;
  }
  EXPECT_EQ(mismatches, 0);
  // The corpus reached every branch that parses, not only the refusals.
  EXPECT_GT(parsed, kPackets / 10) << "parsed " << parsed;
  EXPECT_GT(tcp, kPackets / 50);
  EXPECT_GT(udp, kPackets / 50);
  EXPECT_GT(v6ext, kPackets / 100) << "IPv6 transport headers found behind extension headers";
  EXPECT_LT(parsed, kPackets * 9 / 10) << "and refused the broken ones";
  // ms_ingress counted nothing (its dummy socket is not policed).
  const int ncpu = libbpf_num_possible_cpus();
  std::vector<uint64_t> per(size_t(ncpu > 0 ? ncpu : 1));
  for (uint32_t c = 0; c < MS_CTR_MAX; c++) {
    ASSERT_EQ(bpf_map_lookup_elem(bpf_map__fd(real->maps.ms_counters), &c, per.data()), 0);
    for (uint64_t v : per) EXPECT_EQ(v, 0u) << "counter " << c;
  }
  EXPECT_LT(refusedShort, kPackets / 10);
  std::cout << "packets " << kPackets << " (" << refusedShort << " too short for a test skb), parsed " << parsed << " (tcp " << tcp << ", udp/udplite " << udp
            << ", behind IPv6 extension headers " << v6ext << ")\n";
}

}  // namespace
}  // namespace microseg::e2e
