// The loader's one seam to the file system (policy/files.h): every open,
// listing and stat goes through a FileAccess, so the daemon can make them
// with its caller's credentials; a refused file's content never shows in
// an error.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <stdlib.h>

#include <cctype>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include "policy/files.h"
#include "policy/loader.h"

namespace microseg::policy {
namespace {

std::string dump(const std::vector<Diagnostic>& errors) {
  std::string s;
  for (const auto& e : errors) s += "  " + e.str() + "\n";
  return s;
}

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// Paths under /virtual/p stand for paths under `root`; nothing else can be
// opened through it (a plain syscall the loader made around it would find
// no /virtual/p and fail). `refused` gets EACCES, as a file the caller may
// not read would.
class FakeAccess : public FileAccess {
 public:
  FakeAccess(std::string root, std::string refused) : root_(std::move(root)), refused_(std::move(refused)) {}
  Result<UniqueFd> open(const std::string& path, int flags) const override {
    opened.push_back(path);
    flagsSeen.insert(flags);
    if (path == refused_) return sysError("open", path, EACCES);
    if (path.rfind("/virtual/p", 0) != 0) return sysError("open", path, ENOENT);
    return FileAccess::open(root_ + path.substr(10), flags);
  }
  mutable std::vector<std::string> opened;
  mutable std::set<int> flagsSeen;

 private:
  std::string root_, refused_;
};

class PolicyFileAccess : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/microseg-files-test-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    std::error_code ec;
    if (!dir_.empty()) std::filesystem::remove_all(dir_, ec);
  }
  void write(const std::string& name, const std::string& text) { std::ofstream(dir_ + "/" + name) << text; }
  std::string dir_;
};

// Text that, read as a policy, would be echoed in errors: an unknown field
// and values in quotes.
const char* kSecret =
    "root:$6$s3cretSALT$hash:19000:0:99999:7:::\n"
    "apiVersion: microseg.dev/v1\nkind: Workload\nmetadata: {name: TopSecretName}\n"
    "spec: {cgroups: [a], s3cretField: 1}\n";

TEST_F(PolicyFileAccess, ARefusedFileIsNamedWithoutItsContent) {
  write("a.yaml", "apiVersion: microseg.dev/v1\nkind: Workload\nmetadata: {name: w}\nspec: {cgroups: [a]}\n");
  write("shadow.yaml", kSecret);
  FakeAccess access(dir_, "/virtual/p/shadow.yaml");
  PolicyLoader loader;
  ParseResult r = loader.load({"/virtual/p"}, access);
  ASSERT_EQ(r.errors.size(), 1u) << dump(r.errors);
  EXPECT_EQ(r.errors[0].loc.file, "/virtual/p/shadow.yaml");
  EXPECT_NE(lower(r.errors[0].str()).find("permission denied"), std::string::npos) << r.errors[0].str();
  for (const char* secret : {"s3cret", "TopSecret", "root:", "hash"}) {
    EXPECT_EQ(r.errors[0].str().find(secret), std::string::npos) << r.errors[0].str();
  }
  // Without the refusal, the same file's errors would have shown it.
  FakeAccess open(dir_, "");
  ParseResult all = PolicyLoader().load({"/virtual/p/shadow.yaml"}, open);
  ASSERT_FALSE(all.ok());
  EXPECT_NE(dump(all.errors).find("s3cret"), std::string::npos) << dump(all.errors);
}

TEST_F(PolicyFileAccess, EveryAccessGoesThroughIt) {
  // The policies exist only as /virtual/... to the fake: a load that
  // finds them made every access through it.
  write("b.yaml", "apiVersion: microseg.dev/v1\nkind: Workload\nmetadata: {name: b}\nspec: {cgroups: [b]}\n");
  write("a.yml", "apiVersion: microseg.dev/v1\nkind: Workload\nmetadata: {name: a}\nspec: {cgroups: [a]}\n");
  write("c.txt", "not a policy\n");
  FakeAccess access(dir_, "");
  PolicyLoader loader(std::chrono::seconds(0));
  ParseResult r = loader.load({"/virtual/p/", "/virtual/p/b.yaml"}, access);
  ASSERT_EQ(r.errors.size(), 1u) << dump(r.errors);  // b is there twice
  ASSERT_EQ(r.bundle.workloads.size(), 3u);
  EXPECT_EQ(r.bundle.workloads[0].loc.file, "/virtual/p/a.yml");
  EXPECT_EQ(access.opened, (std::vector<std::string>{"/virtual/p/", "/virtual/p/b.yaml", "/virtual/p/a.yml",
                                                     "/virtual/p/b.yaml", "/virtual/p/b.yaml"}));
  EXPECT_EQ(access.flagsSeen, (std::set<int>{kPolicyOpenFlags}));
  // A load that reads nothing again still opens through it.
  access.opened.clear();
  r = loader.load({"/virtual/p/a.yml"}, access);
  EXPECT_TRUE(r.ok()) << dump(r.errors);
  EXPECT_EQ(access.opened, (std::vector<std::string>{"/virtual/p/a.yml", "/virtual/p/a.yml"}));
}

TEST_F(PolicyFileAccess, ARefusedDirectoryIsNamed) {
  FakeAccess access(dir_, "/virtual/secret");
  ParseResult r = PolicyLoader().load({"/virtual/secret"}, access);
  ASSERT_EQ(r.errors.size(), 1u) << dump(r.errors);
  EXPECT_EQ(r.errors[0].str(), "/virtual/secret: error: cannot read: Permission denied");
}

TEST_F(PolicyFileAccess, AConfigurationIsReadWhole) {
  write("c.yaml", "a: b\n");
  std::vector<Diagnostic> errors;
  auto text = readRegularFile(dir_ + "/c.yaml", defaultFileAccess(), 100, errors);
  ASSERT_TRUE(text.has_value()) << dump(errors);
  EXPECT_EQ(*text, "a: b\n");
  EXPECT_FALSE(readRegularFile(dir_ + "/c.yaml", defaultFileAccess(), 4, errors).has_value());
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].str(), dir_ + "/c.yaml: error: 5 bytes: over the size limit of 4 bytes");
}

}  // namespace
}  // namespace microseg::policy
