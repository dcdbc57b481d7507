// The pure parts of temporary access (grants/grants.h): inputs, the book's
// life cycle, the kernel entries it makes, the saved form.
#include "grants/grants.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "datapath/slot_state.h"

namespace microseg::grants {
namespace {

constexpr int64_t kS = 1000000000;

TEST(GrantInputs, Ports) {
  std::string err;
  auto p = parsePorts("22/tcp", err);
  ASSERT_TRUE(p) << err;
  EXPECT_EQ(p->first, 22);
  EXPECT_EQ(p->last, 22);
  EXPECT_EQ(p->protocol, MS_PROTO_TCP);
  EXPECT_EQ(p->text(), "22/tcp");
  p = parsePorts("8000-8255/udp", err);
  ASSERT_TRUE(p) << err;
  EXPECT_EQ(p->last - p->first + 1, static_cast<int>(MS_GRANT_MAX_PORTS));
  EXPECT_EQ(p->protocol, MS_PROTO_UDP);
  EXPECT_EQ(p->text(), "8000-8255/udp");
  for (const auto& [bad, says] : std::vector<std::pair<std::string, std::string>>{
           {"22", "needs a protocol"},
           {"22/sctp", "protocol 'sctp' is not tcp or udp"},
           {"0/tcp", "1-65535"},
           {"65536/tcp", "1-65535"},
           {"022/tcp", "1-65535"},
           {"+22/tcp", "1-65535"},
           {"/tcp", "1-65535"},
           {"30-20/tcp", "ends before it starts"},
           {"8000-8256/tcp", "at most 256 ports"},
           {"1-/tcp", "1-65535"}}) {
    err.clear();
    EXPECT_FALSE(parsePorts(bad, err)) << bad;
    EXPECT_NE(err.find(says), std::string::npos) << bad << ": " << err;
    EXPECT_NE(err.find(bad), std::string::npos) << "the error names the input: " << err;
  }
}

TEST(GrantInputs, Durations) {
  std::string err;
  EXPECT_EQ(parseDuration("30s", err), 30);
  EXPECT_EQ(parseDuration("15m", err), 900);
  EXPECT_EQ(parseDuration("8h", err), 8 * 3600);
  for (const std::string bad : {"", "s", "5", "5x", "-5s", "1.5h", "05m", "5 m", "0s", "10000000000h"}) {
    err.clear();
    EXPECT_FALSE(parseDuration(bad, err)) << bad;
    EXPECT_FALSE(err.empty()) << bad;
  }
  EXPECT_EQ(formatDuration(45), "45s");
  EXPECT_EQ(formatDuration(5400), "1h30m");
  EXPECT_EQ(formatDuration(8 * 3600), "8h");
  EXPECT_EQ(formatDuration(3601), "1h1s");
  EXPECT_EQ(formatDuration(0), "0s");
}

Grant request(const std::string& from, const std::string& to, const std::string& ports) {
  Grant g;
  g.from = from;
  g.to = to;
  std::string err;
  g.ports = *parsePorts(ports, err);
  g.uid = 1000;
  g.pid = 42;
  g.reason = "why";
  return g;
}

Resolve knows(std::map<std::string, Side> m) {
  return [m](const std::string& n) -> std::optional<Side> {
    auto it = m.find(n);
    if (it == m.end()) return std::nullopt;
    return it->second;
  };
}

TEST(GrantBook, EntriesOnBothLocalSidesPerPort) {
  GrantBook b;
  const Now now{1000 * kS, 50 * kS};
  const Grant& g = b.add(request("ops", "db", "5432-5433/tcp"), 60, now);
  EXPECT_EQ(g.id, 1u);
  EXPECT_EQ(g.expiresMonoNs, uint64_t(110 * kS));
  const auto e = b.entries(knows({{"ops", {300, true}}, {"db", {301, true}}}));
  ASSERT_EQ(e.size(), 4u);
  size_t egress = 0, ingress = 0;
  for (const auto& [k, v] : e) {
    EXPECT_EQ(v.grant_id, 1u);
    EXPECT_EQ(v.expires_ns, uint64_t(110 * kS));
    EXPECT_EQ(k.protocol, MS_PROTO_TCP);
    const uint16_t port = ntohs(k.port);
    EXPECT_TRUE(port == 5432 || port == 5433);
    if (k.direction == MS_DIR_EGRESS) {
      egress++;
      EXPECT_EQ(k.subject, 300u);
      EXPECT_EQ(k.peer, 301u);
    } else {
      ingress++;
      EXPECT_EQ(k.subject, 301u);
      EXPECT_EQ(k.peer, 300u);
    }
  }
  EXPECT_EQ(egress, 2u);
  EXPECT_EQ(ingress, 2u);
  for (size_t i = 1; i < e.size(); i++) EXPECT_TRUE(datapath::keyLess(e[i - 1].first, e[i].first));
  // A remote side gets no entry here (its node judges it); an unknown
  // workload makes none at all.
  EXPECT_EQ(b.entries(knows({{"ops", {300, true}}, {"db", {301, false}}})).size(), 2u);
  EXPECT_TRUE(b.entries(knows({{"ops", {300, true}}})).empty());
}

TEST(GrantBook, TheLaterExpiryWinsAKeyAndExpiryEndsGrants) {
  GrantBook b;
  const Now t0{1000 * kS, 50 * kS};
  b.add(request("ops", "db", "22/tcp"), 600, t0);
  b.add(request("ops", "db", "22/tcp"), 60, t0);
  const auto ids = knows({{"ops", {300, true}}, {"db", {301, true}}});
  auto e = b.entries(ids);
  ASSERT_EQ(e.size(), 2u);
  EXPECT_EQ(e[0].second.grant_id, 1u);
  EXPECT_EQ(b.nextExpiryMono(), uint64_t(110 * kS));
  EXPECT_TRUE(b.expire({1059 * kS, 109 * kS}).empty());
  const auto ended = b.expire({1060 * kS, 110 * kS});
  ASSERT_EQ(ended.size(), 1u);
  EXPECT_EQ(ended[0].id, 2u);
  EXPECT_EQ(b.activeCount(), 1u);
  EXPECT_EQ(b.find(2)->ended, "expired");
  // Revoke: the entries go at once; twice is false.
  EXPECT_TRUE(b.revoke(1, 7, {1070 * kS, 120 * kS}));
  EXPECT_FALSE(b.revoke(1, 7, {1070 * kS, 120 * kS}));
  EXPECT_FALSE(b.revoke(99, 7, {1070 * kS, 120 * kS}));
  EXPECT_TRUE(b.entries(ids).empty());
  EXPECT_EQ(b.find(1)->ended, "revoked");
  EXPECT_EQ(b.find(1)->revokedByUid, 7u);
  // Ended grants stay listed for kKeepEndedS, then go; ids are not reused.
  EXPECT_EQ(b.all().size(), 2u);
  b.expire({(1070 + kKeepEndedS + 1) * kS, (120 + kKeepEndedS + 1) * kS});
  EXPECT_TRUE(b.all().empty());
  EXPECT_EQ(b.add(request("ops", "db", "22/tcp"), 60, t0).id, 3u);
}

TEST(GrantBook, GrantForIsTheKernelsLookup) {
  GrantBook b;
  b.add(request("ops", "db", "22/tcp"), 60, {1000 * kS, 50 * kS});
  const auto e = b.entries(knows({{"ops", {300, true}}, {"db", {301, true}}}));
  EXPECT_EQ(grantFor(e, 300, 301, MS_DIR_EGRESS, MS_PROTO_TCP, 22, 60 * kS), 1u);
  EXPECT_EQ(grantFor(e, 301, 300, MS_DIR_INGRESS, MS_PROTO_TCP, 22, 60 * kS), 1u);
  EXPECT_FALSE(grantFor(e, 301, 300, MS_DIR_EGRESS, MS_PROTO_TCP, 22, 60 * kS)) << "not the reverse flow";
  EXPECT_FALSE(grantFor(e, 300, 301, MS_DIR_EGRESS, MS_PROTO_UDP, 22, 60 * kS));
  EXPECT_FALSE(grantFor(e, 300, 301, MS_DIR_EGRESS, MS_PROTO_TCP, 23, 60 * kS));
  EXPECT_FALSE(grantFor(e, 300, 301, MS_DIR_EGRESS, MS_PROTO_TCP, 22, 110 * kS)) << "expired: as the kernel";
}

TEST(GrantBook, SavedAndReadBack) {
  const std::string dir = std::filesystem::temp_directory_path() / ("grants-test-" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  const std::string path = dir + "/grants.json";
  GrantBook b;
  const Now t0{1000 * kS, 50 * kS};
  b.add(request("ops", "db", "22/tcp"), 600, t0);
  b.add(request("ops", "web", "80-81/tcp"), 60, t0);
  b.revoke(2, 0, t0);
  ASSERT_TRUE(b.save(path, "boot-a"));
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
  EXPECT_EQ(std::filesystem::status(path).permissions() & std::filesystem::perms::others_read,
            std::filesystem::perms::none);
  // Same boot: the monotonic expiry stands.
  auto same = GrantBook::load(path, "boot-a", {1100 * kS, 150 * kS});
  ASSERT_TRUE(same) << same.error().str();
  ASSERT_EQ(same->all().size(), 2u);
  EXPECT_EQ(same->find(1)->expiresMonoNs, uint64_t(650 * kS));
  EXPECT_EQ(same->find(1)->reason, "why");
  EXPECT_EQ(same->find(1)->uid, 1000u);
  EXPECT_EQ(same->find(2)->ended, "revoked");
  EXPECT_EQ(same->find(2)->ports.text(), "80-81/tcp");
  // Another boot: from the wall clock (500 s left).
  auto other = GrantBook::load(path, "boot-b", {1100 * kS, 7 * kS});
  ASSERT_TRUE(other);
  EXPECT_EQ(other->find(1)->expiresMonoNs, uint64_t(507 * kS));
  // Ids go on after the saved ones.
  GrantBook next = *same;
  EXPECT_EQ(next.add(request("ops", "db", "22/tcp"), 60, t0).id, 3u);
  // No file: an empty book. A damaged one: an error naming the file.
  auto none = GrantBook::load(dir + "/missing.json", "boot-a", t0);
  ASSERT_TRUE(none);
  EXPECT_TRUE(none->all().empty());
  std::ofstream(path) << "{\"version\": 1, \"grants\": [";
  auto bad = GrantBook::load(path, "boot-a", t0);
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().str().find(path), std::string::npos) << bad.error().str();
  std::filesystem::remove_all(dir);
}

TEST(GrantBook, ListedForm) {
  GrantBook b;
  const Grant& g = b.add(request("ops", "db", "22/tcp"), 90, {1000 * kS, 50 * kS});
  auto j = grantToJson(g, {1030 * kS, 80 * kS});
  EXPECT_EQ(j["id"], 1);
  EXPECT_EQ(j["ports"], "22/tcp");
  EXPECT_EQ(j["state"], "active");
  EXPECT_EQ(j["remaining_seconds"], 60);
  EXPECT_EQ(j["uid"], 1000);
  EXPECT_EQ(j["pid"], 42);
  EXPECT_EQ(j["reason"], "why");
  EXPECT_FALSE(j.contains("ended"));
}

}  // namespace
}  // namespace microseg::grants
