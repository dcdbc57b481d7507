// Attacks through the policy input (README "Control socket", "Reloads"): an
// empty set does not unmanage every workload unless asked for; a FIFO does
// not freeze the daemon; a member of the socket group reads no file through
// the daemon that it could not read itself.
#include <fcntl.h>
#include <grp.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <memory>
#include <thread>

#include "harness.h"
#include "policies.h"

namespace microseg::e2e {
namespace {

using nlohmann::json;

class AttacksPolicyInput : public WorkloadTest {
 protected:
  void startDaemon(const std::string& policy) {
    daemon_ = std::make_unique<Daemon>(tree_, policy, "enforce");
    ASSERT_TRUE(daemon_->started()) << daemon_->log();
  }
  uint64_t generation() {
    auto s = daemon_->status();
    return s ? (*s)["policy_generation"].get<uint64_t>() : 0;
  }
};

// An empty file applied (or written over the watched one) is refused: the
// generation in force stays, and client-b is still refused. Only
// `allow_empty` applies it.
TEST_F(AttacksPolicyInput, AnEmptySetDoesNotUnmanageEveryWorkload) {
  Child s = tcpServer(srv_, AF_INET, "127.0.0.1", port_);
  ASSERT_TRUE(s.ready());
  startDaemon(allowPolicy("client-a", port_));
  auto tcpFrom = [&](const std::string& cg) {
    return runIn(cg, [&] { return tcpConnect(AF_INET, "127.0.0.1", port_, 500); });
  };
  ASSERT_EQ(tcpFrom(b_), EPERM);
  const uint64_t g0 = generation();

  const std::string empty = daemon_->policyDir() + "/../empty.yaml";
  { std::ofstream(empty).flush(); }
  auto r = daemon_->cli({"policy", "apply", empty});
  EXPECT_EQ(r.rc, 1) << r.out << r.err;
  EXPECT_NE(r.err.find("defines no Workload"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("--allow-empty"), std::string::npos) << r.err;

  // The watched file emptied: refused too.
  daemon_->writePolicy("policy.yaml", "");
  for (int i = 0; i < 100; i++) {
    auto st = daemon_->status();
    if (st && (*st)["last_reload"].value("trigger", "") == "policy files changed") break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  auto st = daemon_->status();
  ASSERT_TRUE(st);
  EXPECT_EQ((*st)["last_reload"]["ok"], false) << st->dump();
  EXPECT_EQ(generation(), g0);
  EXPECT_EQ(tcpFrom(b_), EPERM) << "the generation in force still governs client-b";
  EXPECT_EQ((*st)["workloads"].size(), 3u);

  // Asked for explicitly: applied, everything unmanaged.
  const std::string req = R"({"version":1,"command":"policy.apply","allow_empty":true,"paths":[")" + empty + "\"]}\n";
  const std::string reply = unixExchange(daemon_->socketPath(), req);
  ASSERT_NE(reply.find("\"ok\":true"), std::string::npos) << reply;
  EXPECT_GT(generation(), g0);
  EXPECT_EQ(tcpFrom(b_), 0) << "unmanaged now, as asked";
}

// `policy apply` of a FIFO used to block the whole daemon until someone
// opened it for writing. It is refused at once, and the daemon serves.
TEST_F(AttacksPolicyInput, AFifoIsRefusedAtOnce) {
  startDaemon(allowPolicy("client-a", port_));
  const std::string fifo = daemon_->policyDir() + "/../trap.yaml";
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  const auto t0 = std::chrono::steady_clock::now();
  auto r = daemon_->cli({"policy", "apply", fifo});
  const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_EQ(r.rc, 1) << r.out << r.err;
  EXPECT_NE(r.err.find("not a regular file"), std::string::npos) << r.err;
  EXPECT_LT(ms, 2000.0);
  auto st = daemon_->status();
  ASSERT_TRUE(st);
  EXPECT_EQ((*st)["policy_generation"], 1u);
  unlink(fifo.c_str());
}

// A member of the socket group (not root) applies a root-only file: before,
// the errors echoed its lines (a password hash, say). Now the daemon opens
// it with the caller's credentials: permission denied, no content, in the
// reply or in status. A file the caller may read applies as before.
TEST_F(AttacksPolicyInput, AGroupMemberReadsNothingItCouldNotReadItself) {
  constexpr uid_t kNobody = 65534;
  constexpr gid_t kNogroup = 65534;
  Child server = tcpServer(srv_, AF_INET, "127.0.0.1", port_);
  ASSERT_TRUE(server.ready());
  daemon_ = std::make_unique<Daemon>(tree_, allowPolicy("client-a", port_), "enforce",
                                     std::vector<std::string>{"--socket-group", std::to_string(kNogroup)});
  ASSERT_TRUE(daemon_->started()) << daemon_->log();
  ASSERT_EQ(chmod(std::filesystem::path(daemon_->socketPath()).parent_path().c_str(), 0711), 0);
  const std::string dir = std::filesystem::path(daemon_->policyDir()).parent_path();
  const std::string secret = dir + "/shadow.yaml", open = dir + "/open.yaml";
  {
    std::ofstream(secret) << "root:$6$SECRETHASH$abcdef:19000:0:99999:7:::\nkind: [unclosed\n";
    std::ofstream(open) << allowPolicy("client-b", port_);
  }
  ASSERT_EQ(chmod(secret.c_str(), 0600), 0);
  ASSERT_EQ(chmod(open.c_str(), 0644), 0);
  // As nobody:nogroup (the socket's group: may mutate).
  auto asNobody = [&](const std::string& path, std::string& out) {
    const std::string outFile = dir + "/nobody.out";
    pid_t pid = fork();
    if (pid == 0) {
      if (setgroups(0, nullptr) != 0 || setresgid(kNogroup, kNogroup, kNogroup) != 0 ||
          setresuid(kNobody, kNobody, kNobody) != 0) {
        _exit(10);
      }
      int fd = ::open(outFile.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0666);
      if (fd < 0) _exit(11);
      dup2(fd, 1);
      dup2(fd, 2);
      execl(MS_BUILD_DIR "/microseg", "microseg", "--socket", daemon_->socketPath().c_str(), "policy", "apply",
            path.c_str(), static_cast<char*>(nullptr));
      _exit(127);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    std::ifstream in(outFile);
    std::stringstream ss;
    ss << in.rdbuf();
    out = ss.str();
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  };
  ASSERT_EQ(chmod(dir.c_str(), 0777), 0);  // nobody writes its output there
  std::string out;
  EXPECT_EQ(asNobody(secret, out), 1) << out;
  EXPECT_NE(out.find("ermission denied"), std::string::npos) << out;
  EXPECT_EQ(out.find("SECRETHASH"), std::string::npos) << "the file's text reached the caller: " << out;
  auto st = daemon_->status();
  ASSERT_TRUE(st);
  EXPECT_EQ(st->dump().find("SECRETHASH"), std::string::npos) << "status (readable by the group) echoes it";
  EXPECT_EQ((*st)["policy_generation"], 1u);

  // Root applying the same file reads it (and its errors name its lines:
  // root could read it anyway).
  auto rootTry = daemon_->cli({"policy", "apply", secret});
  EXPECT_EQ(rootTry.rc, 1);
  EXPECT_NE(rootTry.err.find("shadow.yaml:"), std::string::npos) << rootTry.err;

  // A file nobody may read: applied.
  EXPECT_EQ(asNobody(open, out), 0) << out;
  st = daemon_->status();
  ASSERT_TRUE(st);
  EXPECT_EQ((*st)["policy_generation"], 2u);
  EXPECT_EQ(runIn(b_, [&] { return tcpConnect(AF_INET, "127.0.0.1", port_, 500); }), 0) << "client-b's set is in force";
}

}  // namespace
}  // namespace microseg::e2e
