// The Debian package (scripts/package.sh does the same with a Release build):
// built by CPack from this build, installed with dpkg, checked (binaries,
// unit, man pages, completion, configuration), purged leaving nothing.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "harness.h"

namespace microseg::e2e {
namespace {

namespace fs = std::filesystem;

struct Shell {
  int rc = -1;
  std::string out;
};

std::string readFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

Shell sh(const std::string& cmd) {
  Shell r;
  std::unique_ptr<FILE, int (*)(FILE*)> p(popen((cmd + " 2>&1").c_str(), "r"), pclose);
  if (!p) return r;
  std::array<char, 4096> buf{};
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p.get())) > 0) r.out.append(buf.data(), n);
  const int st = pclose(p.release());
  r.rc = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return r;
}

// The names under "Subcommands:" in a --help text.
std::vector<std::string> subcommands(const std::string& help) {
  std::vector<std::string> out;
  std::istringstream in(help);
  std::string line;
  bool in_list = false;
  while (std::getline(in, line)) {
    if (line.rfind("Subcommands:", 0) == 0) {
      in_list = true;
      continue;
    }
    if (!in_list || line.size() < 3 || line[0] != ' ' || line[2] == ' ') continue;
    out.push_back(line.substr(2, line.find(' ', 2) - 2));
  }
  return out;
}

// The bash completion knows every command of the CLI (its lists are kept by hand).
TEST(Package, TheCompletionKnowsEveryCommand) {
  const std::string completion = readFile(MS_SOURCE_DIR "/packaging/completion/microseg");
  // The words of `local <var>="..."`.
  auto words = [&](const std::string& var) {
    std::set<std::string> out;
    const std::string start = "local " + var + "=\"";
    const size_t at = completion.find(start);
    if (at == std::string::npos) return out;
    std::istringstream in(completion.substr(at + start.size(), completion.find('"', at + start.size()) - at - start.size()));
    for (std::string w; in >> w;) out.insert(w);
    return out;
  };
  auto top = subcommands(sh(MS_BUILD_DIR "/microseg --help").out);
  ASSERT_GE(top.size(), 5u);
  for (const auto& c : top) EXPECT_TRUE(words("commands").count(c)) << c;
  for (const auto& c : subcommands(sh(MS_BUILD_DIR "/microseg policy --help").out)) {
    EXPECT_TRUE(words("policy_commands").count(c)) << "policy " << c;
  }
}

// What the completion offers after an option's value: the value is not
// taken for a command (bash-completion's helpers stubbed: only ours runs).
TEST(Package, TheCompletionSkipsOptionValues) {
  const std::string script =
      "_init_completion() { cur=${COMP_WORDS[COMP_CWORD]}; prev=${COMP_WORDS[COMP_CWORD-1]}; "
      "words=(\"${COMP_WORDS[@]}\"); cword=$COMP_CWORD; }; _filedir() { COMPREPLY=(FILES); }; "
      "source " MS_SOURCE_DIR "/packaging/completion/microseg; "
      "t() { COMP_WORDS=(\"$@\"); COMP_CWORD=$(( $# - 1 )); COMPREPLY=(); _microseg; echo \"${COMPREPLY[*]}\"; }; ";
  auto complete = [&](const std::string& words) { return sh("bash -c '" + script + "t " + words + "'").out; };
  EXPECT_EQ(complete("microseg --socket /run/x pol"), "policy\n");
  EXPECT_EQ(complete("microseg --socket /run/x policy va"), "validate\n");
  EXPECT_EQ(complete("microseg -o json policy validate \"\""), "FILES\n");
  EXPECT_EQ(complete("microseg flows --verdict re"), "revoked\n");
}

TEST(Package, InstallsChecksOutAndPurgesLeavingNothing) {
  if (sh("dpkg-query -W -f='${Status}' microseg").out.find("install ok installed") != std::string::npos) {
    GTEST_SKIP() << "a microseg package is installed on this machine: not touching it";
  }
  char tmpl[] = "/tmp/microseg-pkg.XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  const std::string dir = tmpl;
  trackTempDir(dir);
  struct Cleanup {
    std::string dir;
    ~Cleanup() {
      sh("dpkg -P microseg >/dev/null 2>&1");
      std::error_code ec;
      fs::remove_all(dir, ec);
      untrackTempDir(dir);
    }
  } cleanup{dir};

  Shell pack = sh("cd " MS_BUILD_DIR " && cpack -G DEB -B " + dir);
  ASSERT_EQ(pack.rc, 0) << pack.out;
  std::string deb;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.path().extension() == ".deb") deb = e.path();
  }
  ASSERT_FALSE(deb.empty()) << pack.out;
  EXPECT_NE(fs::path(deb).filename().string().find("microseg_0."), std::string::npos) << deb;

  Shell info = sh("dpkg-deb --info " + deb);
  EXPECT_NE(info.out.find("Depends:"), std::string::npos) << "shared-library dependencies: " << info.out;
  Shell install = sh("dpkg -i " + deb);
  ASSERT_EQ(install.rc, 0) << install.out;

  Shell v = sh("/usr/sbin/microseg --version");
  EXPECT_EQ(v.rc, 0);
  EXPECT_EQ(v.out, "microseg 0.1.0\n");
  Shell dv = sh("/usr/sbin/microsegd --version");
  EXPECT_EQ(dv.out, "microsegd 0.1.0\n");
  Shell verify = sh("systemd-analyze verify /lib/systemd/system/microsegd.service");
  EXPECT_EQ(verify.rc, 0) << verify.out;
  for (const char* f : {"/etc/microseg/microseg.yaml", "/usr/share/man/man8/microsegd.8.gz",
                        "/usr/share/man/man8/microseg.8.gz", "/usr/share/bash-completion/completions/microseg",
                        "/usr/share/doc/microseg/README.md", "/usr/share/microseg/examples/shop.yaml"}) {
    EXPECT_TRUE(fs::exists(f)) << f;
  }
  Shell conf = sh("dpkg-query --showformat='${Conffiles}' -W microseg");
  EXPECT_NE(conf.out.find("/etc/microseg/microseg.yaml"), std::string::npos) << conf.out;

  // Purge: every file the package brought is gone, its configuration too.
  Shell files = sh("dpkg -L microseg");
  ASSERT_EQ(files.rc, 0);
  ASSERT_EQ(sh("dpkg -P microseg").rc, 0);
  std::istringstream in(files.out);
  std::string path;
  while (std::getline(in, path)) {
    struct stat st {};
    if (path.empty() || lstat(path.c_str(), &st) != 0 || S_ISDIR(st.st_mode)) continue;
    ADD_FAILURE() << path << " is left after the purge";
  }
  EXPECT_FALSE(fs::exists("/etc/microseg"));
  EXPECT_NE(sh("dpkg-query -W microseg").rc, 0);
}

}  // namespace
}  // namespace microseg::e2e
