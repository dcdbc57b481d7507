// `microseg policy validate -`: the text piped in is read like a file
// named "-" (cli/stdin_files.h), with the loader's diagnostics and bounds.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <string>

#include "cli/stdin_files.h"
#include "policy/loader.h"

namespace microseg::cli {
namespace {

// Runs `fn` with stdin reading `text` (a pipe; restored after).
template <typename F>
void withStdin(const std::string& text, F&& fn) {
  int p[2];
  ASSERT_EQ(pipe(p), 0);
  ASSERT_EQ(write(p[1], text.data(), text.size()), ssize_t(text.size()));
  close(p[1]);
  const int saved = dup(STDIN_FILENO);
  dup2(p[0], STDIN_FILENO);
  close(p[0]);
  fn();
  dup2(saved, STDIN_FILENO);
  close(saved);
}

TEST(StdinFiles, ThePipedTextIsTheFileDash) {
  const std::string doc =
      "apiVersion: microseg.dev/v1\nkind: Workload\nmetadata: {name: w}\nspec:\n  cgroups: [\"w\"]\n---\n"
      "apiVersion: microseg.dev/v1\nkind: Policy\nmetadata: {name: p}\nspec:\n  selector: {identity: w}\n"
      "  egres: []\n";
  withStdin(doc, [&] {
    auto in = StdinFiles::read(1 << 20);
    ASSERT_TRUE(in) << in.error().str();
    policy::PolicyLoader loader;
    auto res = loader.load({"-"}, *in);
    ASSERT_FALSE(res.ok());
    EXPECT_EQ(res.errors.front().str().rfind("-:12:3: error: spec: unknown field 'egres'", 0), 0u)
        << res.errors.front().str();
  });
}

TEST(StdinFiles, MoreThanTheBoundIsAnError) {
  withStdin(std::string(5000, '#'), [&] {
    auto in = StdinFiles::read(4096);
    ASSERT_FALSE(in);
    EXPECT_EQ(in.error().str(), "read of 'stdin' failed: more than 4096 bytes (the limit of a policy file)");
  });
}

}  // namespace
}  // namespace microseg::cli
