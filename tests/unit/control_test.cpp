// Control socket: protocol handling and a hostile client's effect (none).
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <thread>

#include "control/client.h"
#include "control/server.h"

namespace microseg::control {
namespace {

using nlohmann::json;

class ControlTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/microseg-ctl.XXXXXX";
    dir_ = mkdtemp(tmpl);
    path_ = dir_ + "/ctl.sock";
    ControlServer::Options o;
    o.path = path_;
    o.idleTimeoutMs = 300;
    server_ = std::make_unique<ControlServer>(o);
    server_->registerCommand("echo", [](const Request& r) { return json{{"got", r.body.value("x", 0)}}; }, false);
    server_->registerCommand("set", [](const Request&) { return json{{"done", true}}; }, true);
    server_->registerCommand("boom", [](const Request&) -> json {
      throw ControlError(kErrInvalidPolicy, "bad policy", {"a.yaml:1:2: error: x"});
    }, false);
    server_->registerCommand("crash", [](const Request&) -> json { throw std::runtime_error("oops"); }, false);
    ASSERT_TRUE(server_->start());
  }
  void TearDown() override {
    server_.reset();
    rmdir(dir_.c_str());
  }
  // Raw exchange: send bytes, read the reply line.
  std::string raw(const std::string& bytes) {
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::strcpy(a.sun_path, path_.c_str());
    if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) return "connect failed";
    size_t off = 0;
    while (off < bytes.size()) {
      ssize_t n = send(fd, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
      if (n <= 0) break;
      off += static_cast<size_t>(n);
    }
    std::string out;
    char buf[4096];
    timeval tv{3, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    ssize_t n;
    while ((n = recv(fd, buf, sizeof(buf), 0)) > 0) out.append(buf, static_cast<size_t>(n));
    close(fd);
    return out;
  }
  std::string code(const std::string& reply) {
    auto j = json::parse(reply);
    return j["ok"].get<bool>() ? "ok" : j["error"]["code"].get<std::string>();
  }

  std::string dir_, path_;
  std::unique_ptr<ControlServer> server_;
};

TEST_F(ControlTest, RoundTrip) {
  auto r = call(path_, {{"command", "echo"}, {"x", 7}});
  ASSERT_TRUE(r) << r.error().str();
  EXPECT_TRUE((*r)["ok"].get<bool>());
  EXPECT_EQ((*r)["version"], 1);
  EXPECT_EQ((*r)["result"]["got"], 7);
}

TEST_F(ControlTest, SocketIsOwnerOnly) {
  struct stat st {};
  ASSERT_EQ(stat(path_.c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

TEST_F(ControlTest, ProtocolErrors) {
  EXPECT_EQ(code(raw("{nope\n")), kErrBadRequest);
  EXPECT_EQ(code(raw("[1,2]\n")), kErrBadRequest);
  EXPECT_EQ(code(raw("{\"command\":\"echo\"}\n")), kErrBadRequest);
  EXPECT_EQ(code(raw("{\"version\":2,\"command\":\"echo\"}\n")), kErrUnsupportedVersion);
  EXPECT_EQ(code(raw("{\"version\":\"1\",\"command\":\"echo\"}\n")), kErrUnsupportedVersion);
  EXPECT_EQ(code(raw("{\"version\":1}\n")), kErrBadRequest);
  EXPECT_EQ(code(raw("{\"version\":1,\"command\":\"nope\"}\n")), kErrUnknownCommand);
  auto boom = json::parse(raw("{\"version\":1,\"command\":\"boom\"}\n"));
  EXPECT_EQ(boom["error"]["code"], kErrInvalidPolicy);
  EXPECT_EQ(boom["error"]["details"][0], "a.yaml:1:2: error: x");
  EXPECT_EQ(code(raw("{\"version\":1,\"command\":\"crash\"}\n")), kErrInternal);
}

TEST_F(ControlTest, OversizedMessageIsRefusedAndServerKeepsServing) {
  std::string big(1 << 20, 'a');
  auto reply = raw(big);
  ASSERT_FALSE(reply.empty());
  EXPECT_EQ(code(reply), kErrBadRequest);
  EXPECT_NE(reply.find("exceeds"), std::string::npos);
  auto r = call(path_, {{"command", "echo"}, {"x", 1}});
  ASSERT_TRUE(r);
  EXPECT_TRUE((*r)["ok"].get<bool>());
}

TEST_F(ControlTest, SilentClientDoesNotBlockOthers) {
  int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::strcpy(a.sun_path, path_.c_str());
  ASSERT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
  ASSERT_EQ(send(fd, "{\"vers", 6, 0), 6);  // and then nothing
  const auto t0 = std::chrono::steady_clock::now();
  auto r = call(path_, {{"command", "echo"}}, 2000);
  EXPECT_TRUE(r && (*r)["ok"].get<bool>());
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(500));
  close(fd);
}

TEST_F(ControlTest, MutationsNeedRoot) {
  PeerCred nobody{1234, 65534, 65534};
  auto denied = server_->handle("{\"version\":1,\"command\":\"set\"}", nobody);
  EXPECT_EQ(denied["error"]["code"], kErrPermissionDenied);
  auto readOnly = server_->handle("{\"version\":1,\"command\":\"echo\"}", nobody);
  EXPECT_TRUE(readOnly["ok"].get<bool>());
  PeerCred root{1, 0, 0};
  EXPECT_TRUE(server_->handle("{\"version\":1,\"command\":\"set\"}", root)["ok"].get<bool>());
}

TEST_F(ControlTest, NonRootCannotEvenConnectToA0600Socket) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to switch to an unprivileged uid";
  pid_t pid = fork();
  if (pid == 0) {
    if (setresgid(65534, 65534, 65534) != 0 || setresuid(65534, 65534, 65534) != 0) _exit(10);
    auto r = call(path_, {{"command", "set"}}, 1000);
    _exit(!r && r.error().err == EACCES ? 0 : 1);
  }
  int st = 0;
  waitpid(pid, &st, 0);
  EXPECT_TRUE(WIFEXITED(st));
  EXPECT_EQ(WEXITSTATUS(st), 0);
}

TEST(ControlClient, ClearErrorWhenNoDaemon) {
  auto r = call("/tmp/microseg-definitely-not-here.sock", {{"command", "status"}}, 500);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().err, ENOENT);
  EXPECT_NE(r.error().str().find("is microsegd running?"), std::string::npos) << r.error().str();
}

}  // namespace
}  // namespace microseg::control
