// Wire identity end to end (README "Wire identity"; bpf/lib/wire.bpf.h): two
// hosts of a real cluster (cluster_fixture.h). client-b and client-c both
// live in host a's network namespace, so both arrive at host b from a's
// address; server on b admits only client-b. With the identity on the SYN,
// b tells them apart: client-b gets in, client-c's SYN is dropped at b
// (both pass a's egress). SYNs crafted on a raw socket with a forged,
// replayed or unknown-key option are dropped and counted; a valid one made
// with the cluster key (read from etcd) verifies, so the daemon's SipHash and
// the kernel's agree bit for bit. Without the option (--wire-identity off,
// a Fast Open SYN with no room for it) b judges by the address and says so.
#include <arpa/inet.h>
#include <linux/bpf.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <time.h>

#include <array>
#include <cstring>
#include <filesystem>
#include <map>
#include <vector>

#include "cluster_fixture.h"
#include "common/siphash.h"

namespace microseg::e2e {
namespace {

std::string wirePolicy(int port) {
  const std::string p = std::to_string(port);
  std::string y;
  for (const char* w : {"client-a", "client-b", "client-c", "server"}) y += workload(w);
  y += "apiVersion: microseg.dev/v1\nkind: Policy\nmetadata: {name: callers-out}\nspec:\n"
       "  selector: {matchExpressions: [{key: app, operator: In, values: [client-a, client-b, client-c]}]}\n"
       "  egress:\n    - to: [{identity: server}]\n      ports: [{port: " + p + ", protocol: TCP}]\n---\n";
  y += "apiVersion: microseg.dev/v1\nkind: Policy\nmetadata: {name: server-in}\nspec:\n"
       "  selector: {identity: server}\n"
       "  ingress:\n    - from: [{identity: client-b}]\n      ports: [{port: " + p + ", protocol: TCP}]\n";
  return y;
}

uint64_t counter(const Daemon& d, const std::string& name) {
  auto s = d.status();
  if (!s || !(*s)["counters"].contains(name)) return ~0ull;
  return (*s)["counters"][name].get<uint64_t>();
}

uint32_t identityOf(const Daemon& d, const std::string& workload) {
  auto s = d.status();
  if (!s) return 0;
  for (const auto& w : (*s)["workloads"]) {
    if (w["name"] == workload) return w["identity"].get<uint32_t>();
  }
  return 0;
}

// The cluster's keys as stored in etcd (cluster/wire_keys.h): id -> key.
std::map<int, std::array<uint8_t, 16>> storedKeys(const EtcdCluster& etcd) {
  std::map<int, std::array<uint8_t, 16>> out;
  cluster::EtcdOptions o;
  o.endpoints = etcd.endpoints();
  auto c = cluster::EtcdClient::connect(o);
  if (!c) return out;
  auto r = (*c)->get("/microseg/wire-keys/", true);
  if (!r) return out;
  for (const auto& kv : r->kvs) {
    auto j = nlohmann::json::parse(kv.value, nullptr, false);
    if (!j.is_object() || !j["key"].is_string() || !j["id"].is_number()) continue;
    const std::string hex = j["key"];
    if (hex.size() != 32) continue;
    std::array<uint8_t, 16> k{};
    for (size_t i = 0; i < 16; i++) k[i] = static_cast<uint8_t>(std::stoi(hex.substr(2 * i, 2), nullptr, 16));
    out[j["id"].get<int>()] = k;
  }
  return out;
}

ms_addr mapped(const char* v4) {
  ms_addr a{};
  a.a[10] = a.a[11] = 0xff;
  inet_pton(AF_INET, v4, a.a + 12);
  return a;
}

uint16_t taiSeconds16() {
  timespec ts{};
  clock_gettime(CLOCK_TAI, &ts);
  return static_cast<uint16_t>(ts.tv_sec);
}

// The option as a sender signs it for (src:sport -> dst:dport).
ms_wire_opt signedOption(const std::array<uint8_t, 16>& key, uint8_t keyId, uint32_t identity, const char* src,
                         uint16_t sport, const char* dst, uint16_t dport, uint16_t time) {
  ms_wire_opt o{};
  o.kind = MS_WIRE_OPT_KIND;
  o.len = MS_WIRE_OPT_LEN;
  o.exid = htons(MS_WIRE_EXID);
  o.version = MS_WIRE_VERSION;
  o.key_id = keyId;
  o.time = htons(time);
  o.identity = htonl(identity);
  ms_wire_mac_input in{};
  in.src = mapped(src);
  in.dst = mapped(dst);
  in.sport = htons(sport);
  in.dport = htons(dport);
  in.identity = o.identity;
  in.exid = o.exid;
  in.version = o.version;
  in.key_id = o.key_id;
  in.time = o.time;
  const uint64_t tag = sipHash24(sipKeyFromBytes(key), &in, sizeof(in));
  std::memcpy(o.tag, &tag, sizeof(o.tag));  // little-endian, as the kernel stores it
  return o;
}

uint16_t checksum(const uint8_t* p, size_t n, uint32_t sum = 0) {
  for (size_t i = 0; i + 1 < n; i += 2) sum += uint32_t(p[i] << 8 | p[i + 1]);
  if (n & 1) sum += uint32_t(p[n - 1] << 8);
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(~sum);
}

// A bare SYN with `opt` as its only TCP option, sent on a raw socket (the
// kernel fills the IP checksum; the TCP one is ours). 0 or errno.
int sendRawSyn(const char* src, uint16_t sport, const char* dst, uint16_t dport, const ms_wire_opt& opt) {
  uint8_t pkt[20 + 20 + sizeof(opt)] = {};
  uint8_t* ip = pkt;
  uint8_t* tcp = pkt + 20;
  ip[0] = 0x45;
  const uint16_t total = htons(sizeof(pkt));
  std::memcpy(ip + 2, &total, 2);
  ip[8] = 64;
  ip[9] = IPPROTO_TCP;
  inet_pton(AF_INET, src, ip + 12);
  inet_pton(AF_INET, dst, ip + 16);
  const uint16_t sp = htons(sport), dp = htons(dport);
  std::memcpy(tcp, &sp, 2);
  std::memcpy(tcp + 2, &dp, 2);
  const uint32_t seq = htonl(0x12345678);
  std::memcpy(tcp + 4, &seq, 4);
  tcp[12] = static_cast<uint8_t>(((20 + sizeof(opt)) / 4) << 4);
  tcp[13] = 0x02;  // SYN
  tcp[14] = 0xff;
  tcp[15] = 0xff;
  std::memcpy(tcp + 20, &opt, sizeof(opt));
  const size_t tcpLen = 20 + sizeof(opt);
  uint32_t pseudo = 0;
  for (int i = 0; i < 8; i += 2) pseudo += uint32_t(ip[12 + i] << 8 | ip[13 + i]);
  pseudo += IPPROTO_TCP + uint32_t(tcpLen);
  const uint16_t sum = htons(checksum(tcp, tcpLen, pseudo));
  std::memcpy(tcp + 16, &sum, 2);

  const int fd = socket(AF_INET, SOCK_RAW, IPPROTO_RAW);
  if (fd < 0) return errno;
  sockaddr_in to{};
  to.sin_family = AF_INET;
  inet_pton(AF_INET, dst, &to.sin_addr);
  const ssize_t n = sendto(fd, pkt, sizeof(pkt), 0, reinterpret_cast<sockaddr*>(&to), sizeof(to));
  const int err = n == ssize_t(sizeof(pkt)) ? 0 : errno;
  close(fd);
  return err;
}

class WireIdentity : public Cluster {
 protected:
  void SetUp() override {
    Cluster::SetUp();
    if (HasFatalFailure()) return;
    push(wirePolicy(port_));
  }
  // Both daemons up, server listening on b, a knows the listener.
  void up(const std::vector<std::string>& extraA = {}) {
    a_ = node("a", treeA_, hostA_, true, "", extraA);
    b_ = node("b", treeB_, hostB_);
    ASSERT_TRUE(a_->started()) << a_->log();
    ASSERT_TRUE(b_->started()) << b_->log();
    srv_ = std::make_unique<Child>(tcpServer(server_, AF_INET, "0.0.0.0", port_, hostB_.path()));
    ASSERT_TRUE(srv_->ready());
    const std::string listener = std::string(kHostB) + ":" + std::to_string(port_) + "/tcp";
    ASSERT_TRUE(eventually([&] { return has(remote(*a_, "b", "server")["listeners"], listener); }, 15000))
        << a_->status()->dump();
    ASSERT_TRUE(eventually([&] { return !storedKeys(etcd_).empty(); }, 10000)) << "no cluster key in etcd";
  }
  std::unique_ptr<Child> srv_;
};

TEST_F(WireIdentity, HostNetnsCallersAreKnownAtTheReceiverByTheirOwnIdentity) {
  up();
  const uint64_t sent0 = counter(*a_, "wire_identity_sent");
  const uint64_t verified0 = counter(*b_, "wire_identity_verified");
  ASSERT_TRUE(eventually([&] { return connectFrom(clientB_, hostA_) == 0; }, 10000))
      << "client-b may call server: b must know it by its wire identity\n" << b_->log().substr(0, 20000);
  EXPECT_EQ(connectFrom(clientC_, hostA_), ETIMEDOUT) << "client-c: a lets it out, b drops its SYN";

  auto dropped = b_->waitFlow([&](const json& f) {
    return f["direction"] == "ingress" && f["verdict"] == "deny" && f["dst"]["port"] == port_;
  });
  ASSERT_TRUE(dropped) << "b's flow log has no ingress deny";
  EXPECT_EQ((*dropped)["src"]["workload"], "client-c") << "not node:a: " << dropped->dump();
  EXPECT_EQ((*dropped)["peer_via"], "wire") << dropped->dump();
  EXPECT_EQ((*dropped)["src"]["addr"], kHostA) << "from a's address";
  EXPECT_GE(counter(*a_, "wire_identity_sent"), sent0 + 2);
  EXPECT_GE(counter(*b_, "wire_identity_verified"), verified0 + 2);
  EXPECT_EQ(counter(*b_, "wire_identity_invalid"), 0u);
  EXPECT_EQ(attachedPrograms(treeA_.root(), BPF_CGROUP_SOCK_OPS), 1) << "a signs: its sender is attached";

  // a's own egress judged client-c's connect by its socket, as always.
  auto out = a_->waitFlow([&](const json& f) { return f["direction"] == "egress"; }, 500);
  if (out) {
    EXPECT_NE((*out)["peer_via"], "wire");
  }
}

TEST_F(WireIdentity, AForgedReplayedOrUnknownKeyOptionIsDroppedAndCounted) {
  up();
  const auto keys = storedKeys(etcd_);
  ASSERT_FALSE(keys.empty());
  const int keyId = keys.rbegin()->first;
  const auto key = keys.rbegin()->second;
  const uint32_t clientB = identityOf(*b_, "client-b");
  ASSERT_GE(clientB, 256u);
  const std::string own = ownCgroup();
  const uint16_t port = static_cast<uint16_t>(port_);
  const uint64_t verified0 = counter(*b_, "wire_identity_verified");
  const uint64_t invalid0 = counter(*b_, "wire_identity_invalid");

  auto send = [&](uint16_t sport, const ms_wire_opt& o) {
    return runIn(own, [&] { return sendRawSyn(kHostA, sport, kHostB, port, o); }, 3000, hostA_.path());
  };
  const uint16_t now = taiSeconds16();
  // Signed right (the key read from etcd): verifies, so the daemon's
  // SipHash is the kernel's.
  ASSERT_EQ(send(40001, signedOption(key, uint8_t(keyId), clientB, kHostA, 40001, kHostB, port, now)), 0);
  ASSERT_TRUE(eventually([&] { return counter(*b_, "wire_identity_verified") == verified0 + 1; }, 3000))
      << "a SYN signed with the cluster key verifies at b";
  // The same option replayed from another source port.
  ASSERT_EQ(send(40002, signedOption(key, uint8_t(keyId), clientB, kHostA, 40001, kHostB, port, now)), 0);
  // A key id nobody has.
  ASSERT_EQ(send(40003, signedOption(key, 200, clientB, kHostA, 40003, kHostB, port, now)), 0);
  // A tag made with another key.
  std::array<uint8_t, 16> wrong = key;
  wrong[0] ^= 1;
  ASSERT_EQ(send(40004, signedOption(wrong, uint8_t(keyId), clientB, kHostA, 40004, kHostB, port, now)), 0);
  // Signed right but 10 minutes old.
  ASSERT_EQ(send(40005, signedOption(key, uint8_t(keyId), clientB, kHostA, 40005, kHostB, port,
                                     static_cast<uint16_t>(now - 600))),
            0);
  ASSERT_TRUE(eventually([&] { return counter(*b_, "wire_identity_invalid") == invalid0 + 4; }, 3000))
      << "invalid: " << counter(*b_, "wire_identity_invalid") - invalid0;
  EXPECT_EQ(counter(*b_, "wire_identity_verified"), verified0 + 1) << "exactly one verified";
  auto forged = b_->waitFlow([&](const json& f) {
    return f["direction"] == "ingress" && f["reason"] == "wire-identity-invalid" && f["dst"]["port"] == port_ &&
           f["total"] == 4;
  });
  // One flow (same peers, port and reason): the four drops, judged by the
  // address (the option was refused), src node:a.
  ASSERT_TRUE(forged) << "b's flow log has no drop of the four invalid options: " << json(b_->flows()).dump();
  EXPECT_EQ((*forged)["verdict"], "deny");
  EXPECT_EQ((*forged)["src"]["workload"], "node:a");
  EXPECT_EQ((*forged)["peer_via"], "address");
}

// The sender is attached while the node signs, and its pinned link is
// adopted by a restart like the enforcing ones: SYNs stay signed.
TEST_F(WireIdentity, ARestartedNodeKeepsItsSenderAttached) {
  up();
  ASSERT_TRUE(eventually([&] { return connectFrom(clientB_, hostA_) == 0; }, 10000)) << b_->log().substr(0, 20000);
  const std::string pin = a_->stateDir() + "/abi-" + std::to_string(MS_ABI_VERSION) + "/link_ms_sockops";
  EXPECT_TRUE(std::filesystem::exists(pin));
  a_->crash();
  EXPECT_EQ(attachedPrograms(treeA_.root(), BPF_CGROUP_SOCK_OPS), 1) << "the pinned link outlives the daemon";
  ASSERT_TRUE(a_->start()) << a_->log();
  EXPECT_EQ(attachedPrograms(treeA_.root(), BPF_CGROUP_SOCK_OPS), 1);
  const uint64_t verified0 = counter(*b_, "wire_identity_verified");
  EXPECT_EQ(connectFrom(clientB_, hostA_), 0) << "still signed after the restart";
  EXPECT_GE(counter(*b_, "wire_identity_verified"), verified0 + 1);
}

TEST_F(WireIdentity, WithoutTheOptionTheReceiverFallsBackToTheAddress) {
  up({"--wire-identity", "off"});
  const uint64_t absent0 = counter(*b_, "wire_identity_absent");
  EXPECT_EQ(connectFrom(clientB_, hostA_), ETIMEDOUT) << "a signs nothing: b sees node:a, which it does not admit";
  auto dropped = b_->waitFlow([&](const json& f) {
    return f["direction"] == "ingress" && f["verdict"] == "deny" && f["dst"]["port"] == port_;
  });
  ASSERT_TRUE(dropped);
  EXPECT_EQ((*dropped)["src"]["workload"], "node:a") << dropped->dump();
  EXPECT_EQ((*dropped)["peer_via"], "address") << dropped->dump();
  EXPECT_GE(counter(*b_, "wire_identity_absent"), absent0 + 1);
  EXPECT_EQ(counter(*a_, "wire_identity_sent"), 0u);
  // a signs nothing, so its TCP sockets run no sockops program at all; b signs.
  EXPECT_EQ(attachedPrograms(treeA_.root(), BPF_CGROUP_SOCK_OPS), 0);
  EXPECT_EQ(attachedPrograms(treeB_.root(), BPF_CGROUP_SOCK_OPS), 1);
}

// A TCP Fast Open SYN carries a cookie (or asks for one) beside MSS, SACK,
// timestamps and window scale: the 20 bytes of ours no longer fit in the
// 40 of a TCP header's options. a sends the SYN without (counted unsent),
// b judges it by a's address and says so. 0, ETIMEDOUT or errno.
int tfoSyn(const char* dst, int port, int timeoutMs) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  if (fd < 0) return errno;
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(static_cast<uint16_t>(port));
  inet_pton(AF_INET, dst, &to.sin_addr);
  const char data[] = "x";
  int err = 0;
  if (sendto(fd, data, 1, MSG_FASTOPEN, reinterpret_cast<sockaddr*>(&to), sizeof(to)) < 0) err = errno;
  if (err == EINPROGRESS) {
    pollfd p{fd, POLLOUT, 0};
    err = poll(&p, 1, timeoutMs) == 1 ? 0 : ETIMEDOUT;
  }
  close(fd);
  return err;
}

TEST_F(WireIdentity, AFastOpenSynHasNoRoomForTheOptionAndTheReceiverFallsBackToTheAddress) {
  up();
  const uint64_t unsent0 = counter(*a_, "wire_identity_unsent");
  const uint64_t absent0 = counter(*b_, "wire_identity_absent");
  // b, seeing node:a, drops the first SYN; the kernel retransmits it a
  // second later without the Fast Open option, with room for ours: signed,
  // admitted.
  const int rc = runIn(clientB_, [&] { return tfoSyn(kHostB, port_, 4000); }, 8000, hostA_.path());
  EXPECT_EQ(rc, 0) << "a lets client-b out, b admits the retransmitted, signed SYN";
  EXPECT_GE(counter(*a_, "wire_identity_unsent"), unsent0 + 1);
  EXPECT_GE(counter(*b_, "wire_identity_absent"), absent0 + 1);
  auto dropped = b_->waitFlow([&](const json& f) {
    return f["direction"] == "ingress" && f["verdict"] == "deny" && f["dst"]["port"] == port_;
  });
  ASSERT_TRUE(dropped) << "b's flow log has no ingress deny";
  EXPECT_EQ((*dropped)["src"]["workload"], "node:a") << dropped->dump();
  EXPECT_EQ((*dropped)["peer_via"], "address") << dropped->dump();
  EXPECT_EQ(counter(*b_, "wire_identity_invalid"), 0u);
}

// client-a runs in a network namespace of its own on host a (ctrA, its
// address published): b knows it by that address, and its SYNs carry no
// option (behind NAT a signed 4-tuple would not verify).
TEST_F(WireIdentity, AWorkloadWithItsOwnNetnsIsKnownByItsAddressAndSendsNoOption) {
  up();
  // A process of client-a in ctrA: the daemon learns the netns (and
  // publishes its address) from the workload's processes.
  Child ctr = tcpServer(clientA_, AF_INET, kCtrA, port_ + 1, ctrA_.path());
  ASSERT_TRUE(ctr.ready());
  ASSERT_TRUE(converged()) << "b knows client-a's address";
  ASSERT_TRUE(eventually([&] { return connectFrom(clientB_, hostA_) == 0; }, 10000));
  const uint64_t sent0 = counter(*a_, "wire_identity_sent");
  EXPECT_EQ(connectFrom(clientA_, ctrA_), ETIMEDOUT) << "a lets client-a out, b admits only client-b";
  auto dropped = b_->waitFlow([&](const json& f) {
    return f["direction"] == "ingress" && f["verdict"] == "deny" && f["dst"]["port"] == port_;
  });
  ASSERT_TRUE(dropped) << "b's flow log has no ingress deny";
  EXPECT_EQ((*dropped)["src"]["workload"], "client-a") << dropped->dump();
  EXPECT_EQ((*dropped)["src"]["addr"], kCtrA) << dropped->dump();
  EXPECT_EQ((*dropped)["peer_via"], "address") << dropped->dump();
  EXPECT_EQ(counter(*a_, "wire_identity_sent"), sent0);
}

TEST_F(WireIdentity, RotatingTheKeyKeepsConnectionsWorking) {
  up();
  ASSERT_TRUE(eventually([&] { return connectFrom(clientB_, hostA_) == 0; }, 10000));
  const int before = storedKeys(etcd_).rbegin()->first;
  auto rot = a_->cli({"cluster", "rotate-key", "--activate-after", "2s", "--grace", "60s", "-o", "json"});
  ASSERT_EQ(rot.rc, 0) << rot.out << rot.err;
  EXPECT_EQ(rot.out.find(std::string("\"key\"")), std::string::npos) << "no key material in the output";
  // Across the activation: every connect goes through.
  int failures = 0;
  const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (std::chrono::steady_clock::now() < end) {
    if (connectFrom(clientB_, hostA_) != 0) failures++;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_EQ(failures, 0);
  const int after = storedKeys(etcd_).rbegin()->first;
  EXPECT_NE(after, before) << "a new key";
  ASSERT_TRUE(eventually(
      [&] { return clusterStatus(*a_)["this_node"]["wire_identity"]["signing_key_id"] == after; }, 5000))
      << clusterStatus(*a_).dump();
  EXPECT_EQ(connectFrom(clientB_, hostA_), 0) << "signed with the new key";
  EXPECT_EQ(connectFrom(clientC_, hostA_), ETIMEDOUT);
  EXPECT_EQ(counter(*b_, "wire_identity_invalid"), 0u);
}

}  // namespace
}  // namespace microseg::e2e
