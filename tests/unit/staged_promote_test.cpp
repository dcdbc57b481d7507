// `microseg policy promote` (policy/promote.h): the `staged: true` line is
// removed and every other byte kept; any other form is refused with an
// error that says to edit by hand, and the file is left as it was.
#include "policy/promote.h"

#include <gtest/gtest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "policy/parser.h"

namespace microseg::policy {
namespace {

namespace fs = std::filesystem;

const std::string kHead = R"(# the shop's policies
apiVersion: microseg.dev/v1
kind: Workload
metadata: {name: web}
spec: {cgroups: [web]}
---
apiVersion: microseg.dev/v1
kind: Policy
metadata:
  name: web-out   # owned by the web team
spec:
  selector: {identity: web}
)";
const std::string kTail = R"(  egress:
    # the database only
    - to: [{identity: web}]
      ports: [{port: 5432, protocol: TCP}]
---
apiVersion: microseg.dev/v1
kind: Policy
metadata: {name: other}
spec:
  selector: {identity: web}
  staged: true
  ingress: []
)";

TEST(StagedPromote, RemovesTheLineAndKeepsEveryOtherByte) {
  const std::string text = kHead + "  staged: true    # until Friday\n" + kTail;
  auto out = promoteText(text, "p.yaml", "web-out");
  ASSERT_TRUE(out.ok()) << out.error().str();
  EXPECT_EQ(out.value(), kHead + kTail);
  auto r = parseText(out.value(), "p.yaml");
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r.bundle.findPolicy("web-out")->staged);
  EXPECT_TRUE(r.bundle.findPolicy("other")->staged) << "only the one named";

  // CRLF line ends stay CRLF on every other line.
  std::string crlf;
  for (char c : text) {
    if (c == '\n') crlf += '\r';
    crlf += c;
  }
  auto o2 = promoteText(crlf, "p.yaml", "web-out");
  ASSERT_TRUE(o2.ok()) << o2.error().str();
  EXPECT_EQ(o2.value().find("staged: true    #"), std::string::npos);
  EXPECT_EQ(o2.value().size(), crlf.size() - std::string("  staged: true    # until Friday\r\n").size());
}

TEST(StagedPromote, RefusesWhatItCannotEditSafely) {
  auto refused = [](const std::string& text, const std::string& name) {
    auto out = promoteText(text, "p.yaml", name);
    EXPECT_FALSE(out.ok()) << name;
    return out.ok() ? std::string() : out.error().str();
  };
  // Not staged, unknown.
  EXPECT_NE(refused(kHead + kTail, "web-out").find("policy 'web-out' is not staged: nothing to promote"),
            std::string::npos);
  EXPECT_NE(refused(kHead + kTail, "nope").find("no single policy 'nope' is defined in this file"),
            std::string::npos);
  // Flow style: the key shares its line with others.
  const std::string flow = R"(apiVersion: microseg.dev/v1
kind: Workload
metadata: {name: web}
spec: {cgroups: [web]}
---
apiVersion: microseg.dev/v1
kind: Policy
metadata: {name: web-out}
spec: {selector: {identity: web}, staged: true, egress: []}
)";
  const std::string e = refused(flow, "web-out");
  EXPECT_NE(e.find("p.yaml:9: `staged: true` is not a plain block-style line of its own"), std::string::npos) << e;
  EXPECT_NE(e.find("edit the file by hand"), std::string::npos) << e;
  // The value on the next line, or another spelling of true.
  EXPECT_NE(refused(kHead + "  staged:\n    true\n" + kTail, "web-out").find("edit the file by hand"),
            std::string::npos);
  EXPECT_FALSE(refused(kHead + "  staged: \"true\"\n" + kTail, "web-out").empty());
  // A file that does not parse now.
  EXPECT_NE(refused(kHead + "  staged: true\n  bogus: 1\n" + kTail, "web-out").find("does not parse"),
            std::string::npos);
}

class StagedPromoteFile : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/microseg-promote.XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  static std::string read(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }
  std::string dir_;
};

TEST_F(StagedPromoteFile, ReplacesTheFileAtomicallyWithItsModeThroughASymlink) {
  const std::string text = kHead + "  staged: true\n" + kTail;
  const std::string real = dir_ + "/real.yaml", link = dir_ + "/link.yaml";
  std::ofstream(real) << text;
  ASSERT_EQ(chmod(real.c_str(), 0640), 0);
  fs::create_symlink(real, link);
  auto before = promoteFile(link, "web-out");
  ASSERT_TRUE(before.ok()) << before.error().str();
  EXPECT_EQ(before.value(), text);
  EXPECT_EQ(read(real), kHead + kTail);
  EXPECT_TRUE(fs::is_symlink(link)) << "the link stays a link";
  struct stat st {};
  ASSERT_EQ(stat(real.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0640u);
  // Nothing left beside it.
  size_t files = 0;
  for (const auto& e : fs::directory_iterator(dir_)) files += e.path().filename().string().rfind(".promote-", 0) == 0;
  EXPECT_EQ(files, 0u);

  // Undo puts it back.
  ASSERT_TRUE(replaceFile(real, before.value()).ok());
  EXPECT_EQ(read(real), text);

  // Refused: the file is untouched.
  std::ofstream(real) << kHead + kTail;
  auto no = promoteFile(real, "web-out");
  EXPECT_FALSE(no.ok());
  EXPECT_EQ(read(real), kHead + kTail);
  EXPECT_FALSE(promoteFile(dir_ + "/missing.yaml", "web-out").ok());
}

}  // namespace
}  // namespace microseg::policy
