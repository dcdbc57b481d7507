// The reload as one unit (daemon/reload.h) against a datapath in memory:
// a good set becomes the generation in force, a rejected set or a datapath
// failure keeps the one in force (and the entries it lent come back).
#include "daemon/reload.h"

#include <gtest/gtest.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "compiler/explain.h"
#include "fake_datapath.h"

namespace microseg::daemon {
namespace {

namespace fs = std::filesystem;

std::string doc(const std::string& kind, const std::string& name, const std::string& spec) {
  return "---\napiVersion: microseg.dev/v1\nkind: " + kind + "\nmetadata: {name: " + name + "}\nspec:\n" + spec;
}

std::string policySet(int port, int rules = 3) {
  std::string y = doc("Workload", "client", "  cgroups: [\"client\"]\n  labels: {app: client}\n") +
                  doc("Workload", "server", "  cgroups: [\"server\"]\n  labels: {app: server}\n");
  y += doc("Policy", "client-out", "  selector: {identity: client}\n  egress:\n");
  for (int i = 0; i < rules; i++) {
    y += "    - to: [{identity: server}]\n      ports: [{port: " + std::to_string(port + i) + ", protocol: TCP}]\n";
  }
  return y;
}

class ReloadTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/microseg-reload.XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    // A directory tree stands for the cgroup tree (the scan only lists it).
    fs::create_directories(dir_ + "/root/client");
    fs::create_directories(dir_ + "/root/server");
    file_ = dir_ + "/policy.yaml";
    reloader_ = std::make_unique<Reloader>(dp_, Reloader::Settings{dir_ + "/root", compiler::DefaultEnforcement::Always});
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  void write(const std::string& yaml) {
    std::ofstream(file_) << yaml;
    // A file rewritten within the same second keeps its stamp: make it new.
    struct timespec ts[2] = {{0, UTIME_OMIT}, {++stamp_, 0}};
    utimensat(AT_FDCWD, file_.c_str(), ts, 0);
  }
  ReloadOutcome reload(bool allowEmpty = false) {
    ReloadRequest req;
    req.paths = {file_};
    req.trigger = "test";
    req.allowEmpty = allowEmpty;
    return reloader_->reload(req);
  }
  uint32_t id(const std::string& workload) const { return reloader_->inForce().ids.byWorkload.at(workload); }
  const ms_policy_value* entry(int port) const {
    return dp_.exactEntry(id("client"), id("server"), MS_DIR_EGRESS, MS_PROTO_TCP, static_cast<uint16_t>(port));
  }

  std::string dir_, file_;
  time_t stamp_ = 1000000;
  datapath::FakeDatapath dp_;
  std::unique_ptr<Reloader> reloader_;
};

TEST_F(ReloadTest, AGoodSetBecomesTheGenerationInForce) {
  write(policySet(8000));
  auto r = reload();
  ASSERT_TRUE(r.ok) << (r.errors.empty() ? "" : r.errors[0]);
  EXPECT_EQ(reloader_->inForce().number, 1u);
  EXPECT_EQ(dp_.applied, 1u);
  EXPECT_EQ(dp_.generation(), 1u);
  ASSERT_NE(entry(8001), nullptr);
  EXPECT_EQ(entry(8001)->verdict, MS_VERDICT_ALLOW);
  EXPECT_EQ(entry(9000), nullptr);
  // The classification it was written with: root, client, server.
  ASSERT_EQ(r.cgroups.size(), 3u);
  EXPECT_EQ(r.cgroups[1].workload, "client");
  EXPECT_EQ(r.cgroups[1].identity, id("client"));
}

TEST_F(ReloadTest, ARejectedSetKeepsTheGenerationInForce) {
  write(policySet(8000));
  ASSERT_TRUE(reload().ok);
  const auto entries = reloader_->inForce().compiled.entries;
  write(policySet(8000) + doc("Policy", "broken", "  selector: {identity: nobody}\n  egress: []\n"));
  auto r = reload();
  EXPECT_FALSE(r.ok);
  ASSERT_FALSE(r.errors.empty());
  EXPECT_NE(r.errors[0].find("policy.yaml:"), std::string::npos) << r.errors[0];
  EXPECT_NE(r.errors[0].find("nobody"), std::string::npos) << r.errors[0];
  EXPECT_EQ(reloader_->inForce().number, 1u);
  EXPECT_EQ(dp_.applied, 1u) << "nothing written";
  EXPECT_EQ(reloader_->inForce().compiled.entries.size(), entries.size());
}

// A one-rule change compiles in place in the entries of the generation in
// force; when the datapath then fails, those entries come back whole, and
// the next reload starts from them.
TEST_F(ReloadTest, ADatapathFailureKeepsTheOldGenerationAndItsEntries) {
  write(policySet(8000, 40));
  ASSERT_TRUE(reload().ok);
  const auto before = reloader_->inForce().compiled.entries;
  write(policySet(8000, 40) + doc("Policy", "more", "  selector: {identity: client}\n  egress:\n"
                                                     "    - to: [{identity: server}]\n      ports: [{port: 9000}]\n"));
  dp_.failApplies = 1;
  auto r = reload();
  EXPECT_FALSE(r.ok);
  ASSERT_FALSE(r.errors.empty());
  EXPECT_EQ(r.errors[0].rfind("datapath: ", 0), 0u) << r.errors[0];
  EXPECT_EQ(reloader_->inForce().number, 1u);
  const auto& kept = reloader_->inForce().compiled.entries;
  ASSERT_EQ(kept.size(), before.size());
  EXPECT_EQ(std::memcmp(kept.data(), before.data(), kept.size() * sizeof(kept[0])), 0) << "handed back byte for byte";
  EXPECT_EQ(entry(9000), nullptr);

  // The same change again, the datapath willing: applied, and exactly what
  // a fresh compile of the set gives.
  r = reload();
  ASSERT_TRUE(r.ok) << (r.errors.empty() ? "" : r.errors[0]);
  EXPECT_EQ(reloader_->inForce().number, 2u);
  ASSERT_NE(entry(9000), nullptr);
  compiler::RuleRegistry registry;
  auto fresh = compiler::compile(reloader_->inForce().bundle, reloader_->inForce().ids, registry);
  EXPECT_EQ(fresh.entries.size(), reloader_->inForce().compiled.entries.size());
}

TEST_F(ReloadTest, AnEmptySetReplacesOneWithWorkloadsOnlyWhenAsked) {
  write(policySet(8000));
  ASSERT_TRUE(reload().ok);
  write("");
  auto r = reload();
  EXPECT_FALSE(r.ok);
  ASSERT_FALSE(r.errors.empty());
  EXPECT_NE(r.errors[0].find("defines no Workload"), std::string::npos) << r.errors[0];
  EXPECT_EQ(reloader_->inForce().number, 1u);
  r = reload(/*allowEmpty=*/true);
  EXPECT_TRUE(r.ok);
  EXPECT_EQ(reloader_->inForce().number, 2u);
  EXPECT_TRUE(dp_.exact.empty());
}

// `policy diff`'s candidate: compiled beside the generation in force with
// the same identities, and nothing of the reloader's or the kernel's moves.
TEST_F(ReloadTest, ACandidateIsCompiledBesideTheGenerationInForceAndNeverApplied) {
  write(policySet(8000));
  ASSERT_TRUE(reload().ok);
  const uint64_t applied = dp_.applied;
  const size_t entries = reloader_->inForce().compiled.entries.size();
  const std::string other = dir_ + "/candidate.yaml";
  std::ofstream(other) << policySet(9000, 5) +
                              doc("Workload", "new", "  cgroups: [\"new\"]\n  labels: {app: aaa-new}\n");
  ReloadRequest req;
  req.paths = {other};
  const Candidate c = reloader_->candidate(req);
  ASSERT_TRUE(c.ok) << (c.errors.empty() ? "" : c.errors[0]);
  EXPECT_EQ(dp_.applied, applied) << "the kernel is not written";
  EXPECT_EQ(reloader_->inForce().number, 1u);
  EXPECT_EQ(reloader_->inForce().paths, std::vector<std::string>{file_});
  EXPECT_EQ(reloader_->inForce().compiled.entries.size(), entries);
  EXPECT_EQ(c.gen.ids.byWorkload.at("client"), id("client")) << "identities kept as a reload keeps them";
  EXPECT_EQ(c.gen.ids.byWorkload.at("server"), id("server"));
  EXPECT_TRUE(c.gen.ids.byWorkload.count("new"));
  EXPECT_EQ(compiler::evaluate(c.gen.compiled, id("client"), id("server"), policy::Direction::Egress, MS_PROTO_TCP,
                               9004)
                .verdict,
            MS_VERDICT_ALLOW);
  EXPECT_EQ(compiler::evaluate(reloader_->inForce().compiled, id("client"), id("server"), policy::Direction::Egress,
                               MS_PROTO_TCP, 9004)
                .verdict,
            MS_VERDICT_DENY);
  // The next reload works from the generation in force, as if no candidate was built.
  write(policySet(8000, 4));
  auto r = reload();
  ASSERT_TRUE(r.ok) << (r.errors.empty() ? "" : r.errors[0]);
  EXPECT_NE(entry(8003), nullptr);
  EXPECT_EQ(entry(9000), nullptr);

  // An invalid candidate: located errors, nothing else.
  std::ofstream(other) << doc("Policy", "bad", "  selector: {identity: client}\n  egress:\n    - to: [{identity: "
                                               "server}]\n      ports: [{port: 70000}]\n");
  const Candidate bad = reloader_->candidate(req);
  EXPECT_FALSE(bad.ok);
  ASSERT_FALSE(bad.errors.empty());
  EXPECT_EQ(bad.errors[0].rfind(other + ":", 0), 0u) << bad.errors[0];
  EXPECT_EQ(reloader_->inForce().number, 2u);
}

}  // namespace
}  // namespace microseg::daemon
