// `microseg policy push`: which files a set is made of (and under which
// names), and where it goes. The push itself is tested against a real etcd
// (tests/e2e/cluster_push_test.cpp).
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "cli/push.h"

namespace microseg::cli {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

class CliPushFiles : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/microseg-unit-push.XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  std::string write(const std::string& rel, const std::string& text) {
    const fs::path p = fs::path(dir_) / rel;
    fs::create_directories(p.parent_path());
    std::ofstream(p) << text;
    return p.string();
  }
  std::string path(const std::string& rel) const { return dir_ + "/" + rel; }
  std::string dir_;
};

bool anyHas(const std::vector<std::string>& errors, const std::string& part) {
  for (const auto& e : errors) {
    if (e.find(part) != std::string::npos) return true;
  }
  return false;
}

TEST_F(CliPushFiles, ADirectoryGivesItsYamlFilesByName) {
  write("a/web.yaml", "w: 1\n");
  write("a/db.yml", "d: 2\n");
  write("a/README.txt", "not policy\n");
  write("a/.yaml", "hidden\n");
  write("a/nested.yaml/inner.yaml", "a directory named like a file: skipped, as the loader does\n");
  write("a/deeper/x.yaml", "not recursive\n");
  const auto r = collectPushFiles({path("a")});
  ASSERT_TRUE(r.ok()) << r.errors.front();
  ASSERT_EQ(r.files.size(), 2u);
  EXPECT_EQ(r.files[0].name, "db.yml");
  EXPECT_EQ(r.files[0].path, path("a/db.yml"));
  EXPECT_EQ(r.files[0].text, "d: 2\n");
  EXPECT_EQ(r.files[1].name, "web.yaml");
  EXPECT_EQ(r.files[1].text, "w: 1\n");
}

TEST_F(CliPushFiles, FilesAndDirectoriesTogetherKeepTheirOwnNames) {
  write("a/web.yaml", "w\n");
  const std::string single = write("b/shop.yaml", "s\n");
  const auto r = collectPushFiles({path("a/"), single});
  ASSERT_TRUE(r.ok()) << r.errors.front();
  ASSERT_EQ(r.files.size(), 2u);
  EXPECT_EQ(r.files[0].name, "web.yaml");
  EXPECT_EQ(r.files[1].name, "shop.yaml");
  EXPECT_EQ(r.files[1].path, single);
}

TEST_F(CliPushFiles, TheSameNameFromTwoPathsIsAnErrorNamingBoth) {
  write("a/shop.yaml", "one\n");
  write("b/shop.yaml", "two\n");
  write("b/other.yaml", "x\n");
  const auto r = collectPushFiles({path("a"), path("b")});
  ASSERT_FALSE(r.ok());
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_NE(r.errors[0].find(path("b/shop.yaml") + ": error: has the name of " + path("a/shop.yaml")),
            std::string::npos)
      << r.errors[0];
  // The same directory twice is the same clash.
  const auto twice = collectPushFiles({path("a"), path("a/shop.yaml")});
  ASSERT_FALSE(twice.ok());
  EXPECT_TRUE(anyHas(twice.errors, "has the name of " + path("a/shop.yaml"))) << twice.errors[0];
}

TEST_F(CliPushFiles, AFileTheDaemonsWouldNotReadIsRefused) {
  const std::string txt = write("policy.txt", "x\n");
  const auto r = collectPushFiles({txt});
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(anyHas(r.errors, txt + ": error: not named *.yaml or *.yml")) << r.errors[0];
}

TEST_F(CliPushFiles, MissingPathsAndEmptyDirectoriesAreErrors) {
  fs::create_directories(path("empty"));
  const auto r = collectPushFiles({path("nope.yaml"), path("empty")});
  ASSERT_EQ(r.errors.size(), 2u);
  EXPECT_TRUE(anyHas(r.errors, path("nope.yaml") + ": error: cannot read: No such file or directory"));
  EXPECT_TRUE(anyHas(r.errors, path("empty") + ": error: directory has no *.yaml or *.yml files"));
  EXPECT_TRUE(r.files.empty());
}

TEST(CliPushTarget, FlagsWinAndNeedNoDaemon) {
  PushFlags f;
  f.endpoints = {"http://127.0.0.1:2379"};
  f.prefix = "/fleet";
  auto t = resolvePushTarget(f, std::nullopt, "connect failed", "/run/x.sock");
  ASSERT_TRUE(t) << t.error().str();
  EXPECT_EQ(t->etcd.endpoints, f.endpoints);
  EXPECT_EQ(t->prefix, "/fleet");
  EXPECT_EQ(t->from, "--etcd-endpoints");
  EXPECT_TRUE(t->etcd.caFile.empty());
}

TEST(CliPushTarget, TheDaemonsEndpointsPrefixAndTlsFilesOtherwise) {
  const json status = json::parse(R"({"config": {"cluster": {"etcd_endpoints": ["https://e1:2379", "https://e2:2379"],
      "prefix": "/prod", "etcd_cacert": "/etc/ca.pem", "etcd_cert": "/etc/c.pem", "etcd_key": "/etc/k.pem"}}})");
  PushFlags f;
  f.keyFile = "/mine/k.pem";
  auto t = resolvePushTarget(f, status, "", "/run/x.sock");
  ASSERT_TRUE(t) << t.error().str();
  EXPECT_EQ(t->etcd.endpoints, (std::vector<std::string>{"https://e1:2379", "https://e2:2379"}));
  EXPECT_EQ(t->prefix, "/prod");
  EXPECT_EQ(t->etcd.caFile, "/etc/ca.pem");
  EXPECT_EQ(t->etcd.certFile, "/etc/c.pem");
  EXPECT_EQ(t->etcd.keyFile, "/mine/k.pem");
  EXPECT_NE(t->from.find("/run/x.sock"), std::string::npos);
}

TEST(CliPushTarget, TheDaemonsTlsFilesDoNotGoWithOtherEndpoints) {
  const json status = json::parse(R"({"config": {"cluster": {"etcd_endpoints": ["https://e1:2379"],
      "prefix": "/prod", "etcd_cacert": "/etc/ca.pem"}}})");
  PushFlags f;
  f.endpoints = {"http://other:2379"};
  auto t = resolvePushTarget(f, status, "", "/run/x.sock");
  ASSERT_TRUE(t);
  EXPECT_EQ(t->prefix, "/microseg");
  EXPECT_TRUE(t->etcd.caFile.empty());
}

TEST(CliPushTarget, NoEndpointAnywhereIsAClearError) {
  auto unreachable = resolvePushTarget({}, std::nullopt, "connect of '/run/x.sock' failed", "/run/x.sock");
  ASSERT_FALSE(unreachable);
  EXPECT_NE(unreachable.error().detail.find("could not be asked for its own (connect of '/run/x.sock' failed)"),
            std::string::npos)
      << unreachable.error().detail;
  auto single = resolvePushTarget({}, json::parse(R"({"config": {"cluster": null}})"), "", "/run/x.sock");
  ASSERT_FALSE(single);
  EXPECT_NE(single.error().detail.find("the daemon at /run/x.sock is not in cluster mode"), std::string::npos)
      << single.error().detail;
  PushFlags badPrefix;
  badPrefix.endpoints = {"http://e:2379"};
  badPrefix.prefix = "microseg";
  EXPECT_FALSE(resolvePushTarget(badPrefix, std::nullopt, "", "/s"));
}

TEST(CliPushTarget, PushedByIsUserAtHost) {
  const std::string by = pushedByName();
  const size_t at = by.find('@');
  ASSERT_NE(at, std::string::npos) << by;
  EXPECT_GT(at, 0u);
  EXPECT_LT(at + 1, by.size());
}

TEST(CliPushTarget, UnreachableEtcdIsToldFromARefusal) {
  EXPECT_TRUE(etcdUnreachable(Error{"get", "etcd x", 0, "unavailable: failed to connect"}));
  EXPECT_TRUE(etcdUnreachable(Error{"get", "etcd x", 0, "deadline exceeded"}));
  EXPECT_FALSE(etcdUnreachable(Error{"put", "etcd x", 0, "permission denied: user"}));
}

}  // namespace
}  // namespace microseg::cli
