#include "common/fs_credentials.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <future>
#include <string>
#include <thread>

namespace microseg {
namespace {

class FsCredentialsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root (switches to nobody)";
    char tmpl[] = "/tmp/microseg-fscred.XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    chmod(dir_.c_str(), 0755);
    secret_ = dir_ + "/secret";
    std::ofstream(secret_) << "root only\n";
    chmod(secret_.c_str(), 0600);
    shared_ = dir_ + "/shared";
    std::ofstream(shared_) << "group readable\n";
    chmod(shared_.c_str(), 0640);
    chown(shared_.c_str(), 0, 4242);
  }
  void TearDown() override {
    if (dir_.empty()) return;
    unlink(secret_.c_str());
    unlink(shared_.c_str());
    rmdir(dir_.c_str());
  }
  static int openAs(const FsIdentity& who, const std::string& path) {
    auto creds = FsCredentials::assume(who);
    if (!creds) return -1000;
    int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    const int err = fd < 0 ? errno : 0;
    if (fd >= 0) close(fd);
    return err;
  }
  std::string dir_, secret_, shared_;
};

TEST_F(FsCredentialsTest, TheKernelRefusesWhatTheCallerCouldNotRead) {
  const FsIdentity nobody{65534, 65534, {}};
  EXPECT_EQ(openAs(nobody, secret_), EACCES);
  EXPECT_EQ(openAs(nobody, shared_), EACCES) << "not in the file's group";
  EXPECT_EQ(openAs(FsIdentity{65534, 65534, {4242}}, shared_), 0) << "a supplementary group counts";
  EXPECT_EQ(openAs(FsIdentity{65534, 4242, {}}, shared_), 0) << "so does the primary group";
  EXPECT_EQ(openAs(FsIdentity{}, secret_), 0) << "root is root";
}

TEST_F(FsCredentialsTest, TheThreadIsRootAgainAfterwardsAndOtherThreadsNeverChange) {
  gid_t before[64];
  const int nBefore = getgroups(64, before);
  {
    // A thread that exists before the switch (a new one would inherit the
    // creating thread's credentials).
    std::promise<void> switched;
    std::shared_future<void> go = switched.get_future().share();
    int otherErr = -1;
    std::thread t([&] {
      go.wait();
      int fd = open(secret_.c_str(), O_RDONLY | O_CLOEXEC);
      otherErr = fd < 0 ? errno : 0;
      if (fd >= 0) close(fd);
    });
    auto creds = FsCredentials::assume(FsIdentity{65534, 65534, {}});
    switched.set_value();
    t.join();
    ASSERT_TRUE(creds);
    EXPECT_EQ(otherErr, 0) << "another thread stays root meanwhile";
    int fd = open(secret_.c_str(), O_RDONLY | O_CLOEXEC);
    EXPECT_LT(fd, 0);
    if (fd >= 0) close(fd);
  }
  int fd = open(secret_.c_str(), O_RDONLY | O_CLOEXEC);
  EXPECT_GE(fd, 0) << "restored";
  if (fd >= 0) close(fd);
  gid_t after[64];
  ASSERT_EQ(getgroups(64, after), nBefore) << "the thread's groups restored";
  EXPECT_TRUE(std::equal(before, before + nBefore, after));
}

}  // namespace
}  // namespace microseg
