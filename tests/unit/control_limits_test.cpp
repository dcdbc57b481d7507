// Control socket: what one client can take (a request deadline from the
// connect, connections per uid, handlers on workers that uids take turns
// for) and strict JSON requests.
#include <cerrno>
#include <future>

#include "control_fixture.h"

namespace microseg::control {
namespace {

class ControlLimitsTest : public ControlTest {};

// A request is strict JSON: a key twice (which one a handler reads would be
// a guess), a number no double holds, bytes that are not UTF-8: each is a
// bad_request naming what is wrong, and the server keeps serving.
TEST_F(ControlLimitsTest, StrictJsonRequests) {
  auto message = [&](const std::string& line) {
    auto j = json::parse(raw(line + "\n"));
    EXPECT_EQ(j["error"]["code"], kErrBadRequest) << line;
    return j["error"]["message"].get<std::string>();
  };
  EXPECT_NE(message("{\"version\":1,\"command\":\"echo\",\"command\":\"set\"}").find("duplicate key \"command\""),
            std::string::npos);
  EXPECT_NE(message("{\"version\":1,\"command\":\"echo\",\"o\":{\"x\":1,\"x\":2}}").find("duplicate key \"x\""),
            std::string::npos)
      << "in a nested object too";
  EXPECT_NE(message("{\"version\":1,\"command\":\"echo\",\"x\":1e400}").find("out of range"), std::string::npos)
      << "was dropped without a reply";
  EXPECT_NE(message("{\"version\":1,\"command\":\"echo\",\"x\":-1e400}").find("out of range"), std::string::npos);
  EXPECT_NE(message("{\"version\":1,\"command\":\"echo\",\"s\":\"a\xff\"}").find("not valid UTF-8"), std::string::npos);
  EXPECT_NE(message("{\"version\":1,\"command\":\"ech\xc3\"}").find("not valid UTF-8"), std::string::npos);
  // The same key in different objects is no duplicate; escapes are keys too.
  EXPECT_EQ(code(raw("{\"version\":1,\"command\":\"echo\",\"a\":{\"x\":1},\"b\":{\"x\":2}}\n")), "ok");
  EXPECT_NE(message("{\"version\":1,\"command\":\"echo\",\"x\":1,\"\\u0078\":2}").find("duplicate key \"x\""),
            std::string::npos);
  // The empty key is a key (the long fuzz run found it passing twice).
  EXPECT_NE(message("{\"version\":1,\"command\":\"echo\",\"\":0,\"\":1}").find("duplicate key \"\""),
            std::string::npos);
  // Deep nesting within the size limit is answered, not a crash.
  EXPECT_EQ(code(raw("{\"version\":1,\"command\":\"echo\",\"d\":" + std::string(30000, '[') +
                     std::string(30000, ']') + "}\n")),
            "ok");
  // The duplicate check stays cheap on a request of thousands of keys (it
  // runs on the I/O thread).
  std::string many = "{\"version\":1,\"command\":\"echo\"";
  for (int i = 0; many.size() < kMaxMessageBytes - 32; i++) many += ",\"k" + std::to_string(i) + "\":0";
  const auto t0 = Clock::now();
  EXPECT_EQ(code(raw(many + "}\n")), "ok");
  EXPECT_LT(Clock::now() - t0, std::chrono::milliseconds(200));
  const PeerCred root{1, 0, 0, std::nullopt};
  EXPECT_EQ(server_->handle("{\"version\":1,\"command\":\"echo\",\"x\":1e400}", root)["error"]["code"], kErrBadRequest);
  EXPECT_TRUE(echoWorks());
}

// The deadline counts from the connect: a byte now and then does not keep
// the slot (before, each byte restarted a 5 s idle timer, so 64 such clients
// held every slot for 30 s).
TEST_F(ControlLimitsTest, ATrickleOfBytesDoesNotKeepASlot) {
  int fd = connectTo(path_);
  ASSERT_GE(fd, 0);
  const auto t0 = Clock::now();
  const std::string req = "{\"version\":1,\"command\":\"echo\"}";
  bool cut = false;
  for (size_t i = 0; i < req.size() && Clock::now() - t0 < std::chrono::seconds(3); i++) {
    if (send(fd, &req[i], 1, MSG_NOSIGNAL) != 1) {
      cut = true;
      break;
    }
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 100) > 0) {  // the server closed: EOF, or a reset when our last byte was still unread there
      char c;
      const ssize_t n = recv(fd, &c, 1, 0);
      cut = n == 0 || (n < 0 && errno == ECONNRESET);
      break;
    }
  }
  const auto took = Clock::now() - t0;
  close(fd);
  EXPECT_TRUE(cut) << "still connected after " << std::chrono::duration_cast<std::chrono::milliseconds>(took).count()
                   << " ms of a byte every 100 ms";
  EXPECT_LT(took, std::chrono::milliseconds(1500));
  EXPECT_GE(server_->stats().requestTimeouts, 1u);
  EXPECT_TRUE(echoWorks());
}

// Handlers run on workers: a slow one (600 ms) does not hold up the I/O
// loop, and read-only commands run while a mutation (800 ms) is in progress.
TEST_F(ControlLimitsTest, ASlowHandlerDoesNotHoldUpOtherRequests) {
  std::thread slow([&] { (void)call(path_, {{"command", "slow"}}, 3000); });
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  auto t0 = Clock::now();
  EXPECT_TRUE(echoWorks());
  EXPECT_LT(Clock::now() - t0, std::chrono::milliseconds(200)) << "echo waited for a slow read-only handler";
  slow.join();

  std::thread mutation([&] {
    auto r = call(path_, {{"command", "slow-set"}}, 3000);
    EXPECT_TRUE(r && (*r)["ok"].get<bool>());
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  t0 = Clock::now();
  EXPECT_TRUE(echoWorks());
  EXPECT_LT(Clock::now() - t0, std::chrono::milliseconds(200)) << "a read-only command waited for a mutation";
  mutation.join();
}

TEST_F(ControlLimitsTest, MutationsRunOneAtATime) {
  const auto t0 = Clock::now();
  std::vector<std::thread> ts;
  std::atomic<int> ok{0};
  for (int i = 0; i < 2; i++) {
    ts.emplace_back([&] {
      auto r = call(path_, {{"command", "slow-set"}}, 5000);
      if (r && (*r)["ok"].get<bool>()) ok++;
    });
  }
  for (auto& t : ts) t.join();
  EXPECT_EQ(ok.load(), 2);
  EXPECT_GE(Clock::now() - t0, std::chrono::milliseconds(1500)) << "two 800 ms mutations overlapped";
}

// One uid (root included) cannot take every slot: its connections beyond
// maxClientsPerUid are refused at once, other uids still get in.
TEST_F(ControlLimitsTest, OneUidCannotTakeEverySlot) {
  ControlServer::Options o;
  o.path = dir_ + "/peruid.sock";
  o.maxClientsPerUid = 2;
  o.group = getegid();
  auto s = makeServer(o);
  ASSERT_TRUE(s->start());
  int a = connectTo(o.path), b = connectTo(o.path);
  ASSERT_GE(a, 0);
  ASSERT_GE(b, 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(50));  // both accepted
  auto r = call(o.path, {{"command", "echo"}}, 100);
  ASSERT_TRUE(r) << r.error().str();
  ASSERT_FALSE((*r)["ok"].get<bool>());
  EXPECT_EQ((*r)["error"]["code"], kErrBusy);
  EXPECT_NE((*r)["error"]["message"].get<std::string>().find("uid " + std::to_string(geteuid())), std::string::npos)
      << (*r)["error"]["message"];
  EXPECT_GE(s->stats().refusedPerUid, 1u);
  if (geteuid() == 0) {
    ASSERT_EQ(chmod(dir_.c_str(), 0711), 0);
    const std::string path = o.path;
    EXPECT_EQ(asNobody(getegid(), {}, [&] {
      auto other = call(path, {{"command", "echo"}, {"x", 5}}, 2000);
      return other && (*other)["ok"].get<bool>() ? 0 : 1;
    }), 0) << "another uid still gets in";
  }
  close(a);
  close(b);
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  auto ok = call(o.path, {{"command", "echo"}}, 2000);
  ASSERT_TRUE(ok);
  EXPECT_TRUE((*ok)["ok"].get<bool>()) << "slots come back";
}


// Other uids together hold at most maxClients - maxClientsPerUid slots: two
// socket-group members filling theirs leave root its own.
TEST_F(ControlLimitsTest, OtherUidsCannotLockRootOut) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to switch to unprivileged uids";
  ASSERT_EQ(chmod(dir_.c_str(), 0711), 0);
  ControlServer::Options o;
  o.path = dir_ + "/reserve.sock";
  o.group = 4242;
  o.maxClients = 4;
  o.maxClientsPerUid = 2;  // root's share: 2; other uids: 2 in all
  auto s = makeServer(o);
  ASSERT_TRUE(s->start());
  // Two uids of the group, each opening two connections and holding them.
  std::vector<pid_t> holders;
  for (uid_t uid : {65533u, 65534u}) {
    pid_t pid = fork();
    if (pid == 0) {
      if (setgroups(0, nullptr) != 0 || setresgid(4242, 4242, 4242) != 0 || setresuid(uid, uid, uid) != 0) _exit(1);
      int a = connectTo(o.path), b = connectTo(o.path);
      (void)!send(a, "{", 1, MSG_NOSIGNAL);
      (void)!send(b, "{", 1, MSG_NOSIGNAL);
      std::this_thread::sleep_for(std::chrono::milliseconds(1000));
      _exit(a >= 0 && b >= 0 ? 0 : 2);
    }
    ASSERT_GT(pid, 0);
    holders.push_back(pid);
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  const auto t0 = Clock::now();
  auto r = call(o.path, {{"command", "echo"}, {"x", 3}}, 500);
  const auto took = Clock::now() - t0;
  for (pid_t pid : holders) waitpid(pid, nullptr, 0);
  ASSERT_TRUE(r) << r.error().str();
  EXPECT_TRUE((*r)["ok"].get<bool>()) << r->dump();
  EXPECT_LT(took, std::chrono::milliseconds(200)) << "root got in at once";
  EXPECT_GE(s->stats().refusedFull, 2u) << "the second uid's two connections found the others' share taken";
}

// `uninstall` wakes the daemon, which stops the server while the reply is
// on its way from the worker to the I/O thread: it still goes out.
TEST_F(ControlLimitsTest, AReplyGoesOutWhenItsHandlerStopsTheServer) {
  ControlServer::Options o;
  o.path = dir_ + "/quit.sock";
  auto s = std::make_unique<ControlServer>(o);
  std::promise<void> stopNow;
  auto stopping = stopNow.get_future();
  s->registerCommand("quit", [&](const Request&) {
    stopNow.set_value();
    std::this_thread::sleep_for(std::chrono::milliseconds(50));  // stop() is called meanwhile
    return json{{"bye", true}};
  }, true);
  ASSERT_TRUE(s->start());
  std::thread stopper([&] {
    stopping.wait();
    s->stop();
  });
  auto r = call(o.path, {{"command", "quit"}}, 2000);
  stopper.join();
  ASSERT_TRUE(r) << r.error().str();
  EXPECT_EQ((*r)["result"]["bye"], true);
}

}  // namespace
}  // namespace microseg::control
