// Control socket: protocol handling, socket lifecycle, and that a hostile or
// broken client has no effect on the server or other clients (the limits a
// client meets are in control_limits_test.cpp).
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include <sstream>

#include "control_fixture.h"

namespace microseg::control {
namespace {


TEST_F(ControlTest, RoundTrip) {
  auto r = call(path_, {{"command", "echo"}, {"x", 7}});
  ASSERT_TRUE(r) << r.error().str();
  EXPECT_EQ((*r)["version"], 1);
  EXPECT_TRUE((*r)["ok"].get<bool>());
  EXPECT_EQ((*r)["result"]["got"], 7);
  // A handler with nothing to say still yields an object.
  auto n = call(path_, {{"command", "nothing"}});
  ASSERT_TRUE(n);
  EXPECT_TRUE((*n)["result"].is_object());
  // The reply is one line.
  const std::string line = raw("{\"version\":1,\"command\":\"echo\",\"x\":3}\n");
  EXPECT_EQ(line.find('\n'), line.size() - 1) << line;
}

TEST_F(ControlTest, HandlerSeesThePeerFromSoPeercred) {
  auto r = call(path_, {{"command", "whoami"}});
  ASSERT_TRUE(r) << r.error().str();
  EXPECT_EQ((*r)["result"]["pid"], getpid());
  EXPECT_EQ((*r)["result"]["uid"], geteuid());
  EXPECT_EQ((*r)["result"]["gid"], getegid());
}

TEST_F(ControlTest, RequestWithoutTrailingNewlineIsAnsweredAtEof) {
  int fd = connectTo(path_);
  ASSERT_GE(fd, 0);
  const std::string req = "{\"version\":1,\"command\":\"echo\",\"x\":9}";
  ASSERT_EQ(send(fd, req.data(), req.size(), 0), static_cast<ssize_t>(req.size()));
  shutdown(fd, SHUT_WR);
  auto reply = json::parse(readAll(fd));
  close(fd);
  EXPECT_EQ(reply["result"]["got"], 9);
}

TEST_F(ControlTest, SocketIsOwnerOnly) {
  struct stat st {};
  ASSERT_EQ(lstat(path_.c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  EXPECT_EQ(st.st_uid, geteuid());
}

TEST_F(ControlTest, GroupSocketIs0660AndOwnedByTheGroup) {
  ControlServer::Options o;
  o.path = dir_ + "/group.sock";
  o.group = getegid();
  auto s = makeServer(o);
  ASSERT_TRUE(s->start());
  struct stat st {};
  ASSERT_EQ(lstat(o.path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0660u);
  EXPECT_EQ(st.st_gid, getegid());
}

TEST_F(ControlTest, StopRemovesTheSocketAndIsIdempotent) {
  server_->stop();
  EXPECT_FALSE(std::filesystem::exists(path_));
  server_->stop();
  auto r = call(path_, {{"command", "echo"}}, 500);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().err, ENOENT);
}

TEST_F(ControlTest, StaleSocketIsReplaced) {
  server_.reset();
  // A socket file nobody listens on, as a crashed daemon leaves behind.
  int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::strcpy(a.sun_path, path_.c_str());
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
  close(fd);
  auto r = call(path_, {{"command", "echo"}}, 500);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().err, ECONNREFUSED);
  EXPECT_NE(r.error().str().find("not running"), std::string::npos) << r.error().str();

  ControlServer::Options o;
  o.path = path_;
  server_ = makeServer(o);
  ASSERT_TRUE(server_->start());
  EXPECT_TRUE(echoWorks());
}

TEST_F(ControlTest, NeverReplacesANonSocketOrALiveServer) {
  const std::string file = dir_ + "/regular";
  { std::ofstream(file) << "keep me"; }
  ControlServer::Options o;
  o.path = file;
  auto s = makeServer(o);
  auto r = s->start();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().err, EEXIST);
  std::ifstream in(file);
  std::string content;
  std::getline(in, content);
  EXPECT_EQ(content, "keep me");

  o.path = path_;  // the fixture's server is listening there
  auto second = makeServer(o);
  auto r2 = second->start();
  ASSERT_FALSE(r2);
  EXPECT_EQ(r2.error().err, EADDRINUSE);
  second.reset();
  EXPECT_TRUE(echoWorks()) << "the first server keeps its socket";
}

TEST_F(ControlTest, ProtocolErrors) {
  EXPECT_EQ(code(raw("{nope\n")), kErrBadRequest);
  EXPECT_EQ(code(raw("\n")), kErrBadRequest);
  EXPECT_EQ(code(raw("[1,2]\n")), kErrBadRequest);
  EXPECT_EQ(code(raw("{\"command\":\"echo\"}\n")), kErrBadRequest) << "missing version";
  EXPECT_EQ(code(raw("{\"version\":2,\"command\":\"echo\"}\n")), kErrUnsupportedVersion);
  EXPECT_EQ(code(raw("{\"version\":\"1\",\"command\":\"echo\"}\n")), kErrUnsupportedVersion);
  EXPECT_EQ(code(raw("{\"version\":1.5,\"command\":\"echo\"}\n")), kErrUnsupportedVersion);
  EXPECT_EQ(code(raw("{\"version\":1}\n")), kErrBadRequest) << "missing command";
  EXPECT_EQ(code(raw("{\"version\":1,\"command\":7}\n")), kErrBadRequest);
  auto unknown = json::parse(raw("{\"version\":1,\"command\":\"nope\"}\n"));
  EXPECT_EQ(unknown["error"]["code"], kErrUnknownCommand);
  EXPECT_NE(unknown["error"]["message"].get<std::string>().find("echo"), std::string::npos)
      << "names the known commands";
  auto v2 = json::parse(raw("{\"version\":2,\"command\":\"echo\"}\n"));
  EXPECT_EQ(v2["version"], 1) << "replies always speak version 1";
  EXPECT_TRUE(v2["error"]["details"].is_array());
  EXPECT_TRUE(echoWorks());
}

TEST_F(ControlTest, HandlerErrorsBecomeReplies) {
  auto boom = call(path_, {{"command", "boom"}});
  ASSERT_TRUE(boom);
  EXPECT_FALSE((*boom)["ok"].get<bool>());
  EXPECT_EQ((*boom)["error"]["code"], kErrInvalidPolicy);
  EXPECT_EQ((*boom)["error"]["message"], "bad policy");
  EXPECT_EQ((*boom)["error"]["details"], json::array({"a.yaml:1:2: error: x", "b.yaml:3:4: error: y"}));
  auto crash = call(path_, {{"command", "crash"}});
  ASSERT_TRUE(crash);
  EXPECT_EQ((*crash)["error"]["code"], kErrInternal);
  EXPECT_EQ((*crash)["error"]["message"], "oops");
  auto weird = call(path_, {{"command", "weird"}});
  ASSERT_TRUE(weird);
  EXPECT_EQ((*weird)["error"]["code"], kErrInternal);
  EXPECT_TRUE(echoWorks()) << "still serving";
}

TEST_F(ControlTest, AResultWrittenAsTextIsTheMessageADocumentMakes) {
  const PeerCred root{1, 0, 0, std::nullopt};
  for (int n : {0, 1, 3}) {
    const std::string n_ = std::to_string(n);
    EXPECT_EQ(server_->reply("{\"version\":1,\"command\":\"rows-text\",\"n\":" + n_ + "}", root),
              server_->reply("{\"version\":1,\"command\":\"rows\",\"n\":" + n_ + "}", root))
        << "byte for byte, escapes and invalid UTF-8 included";
  }
  auto r = call(path_, {{"command", "rows-text"}, {"n", 2}});
  ASSERT_TRUE(r) << r.error().str();
  EXPECT_EQ((*r)["result"]["rows"][1]["name"], "r\"1\xef\xbf\xbd");
  // A handler that fails after writing: only the failure goes out.
  auto failed = call(path_, {{"command", "rows-text"}, {"n", 2}, {"fail", true}});
  ASSERT_TRUE(failed);
  EXPECT_FALSE((*failed)["ok"].get<bool>());
  EXPECT_EQ((*failed)["error"]["code"], kErrBadRequest);
  EXPECT_EQ((*failed)["error"]["message"], "half written");
  EXPECT_TRUE(echoWorks());
}

TEST_F(ControlTest, InvalidUtf8InAResultIsReplacedNotFatal) {
  auto r = call(path_, {{"command", "bytes"}});
  ASSERT_TRUE(r) << r.error().str();
  EXPECT_EQ((*r)["result"]["cgroup"], "/bad\xef\xbf\xbd\xef\xbf\xbdname");
  EXPECT_TRUE(echoWorks());
}

TEST_F(ControlTest, MessageSizeLimitIsExact) {
  auto padded = [](size_t size) {
    json j = {{"version", 1}, {"command", "echo"}, {"x", 1}, {"pad", ""}};
    const size_t base = j.dump().size();
    j["pad"] = std::string(size - base, 'p');
    return j.dump();
  };
  ASSERT_EQ(padded(kMaxMessageBytes).size(), kMaxMessageBytes);
  EXPECT_EQ(code(raw(padded(kMaxMessageBytes) + "\n")), "ok");
  auto over = json::parse(raw(padded(kMaxMessageBytes + 1) + "\n"));
  EXPECT_EQ(over["error"]["code"], kErrBadRequest);
  EXPECT_EQ(over["error"]["message"], "message exceeds 65536 bytes");
}

TEST_F(ControlTest, OversizedMessageIsRefusedAndServerKeepsServing) {
  const std::string reply = raw(std::string(1 << 20, 'a'));  // 1 MiB, no newline
  ASSERT_FALSE(reply.empty());
  auto j = json::parse(reply);
  EXPECT_EQ(j["error"]["code"], kErrBadRequest);
  EXPECT_EQ(j["error"]["message"], "message exceeds 65536 bytes");
  EXPECT_TRUE(echoWorks());
}

TEST_F(ControlTest, SilentClientDoesNotBlockOthersAndIsDropped) {
  int fd = connectTo(path_);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(send(fd, "{\"vers", 6, 0), 6);  // and then nothing
  const auto t0 = Clock::now();
  EXPECT_TRUE(echoWorks());
  EXPECT_LT(Clock::now() - t0, std::chrono::milliseconds(250));
  // Dropped once the request deadline (300 ms here) passed: EOF, no reply.
  EXPECT_EQ(readAll(fd, 3000), "");
  EXPECT_LT(Clock::now() - t0, std::chrono::milliseconds(2500));
  close(fd);
}

TEST_F(ControlTest, ClientThatDoesNotReadItsReplyDoesNotBlockOthers) {
  int fd = connectTo(path_);
  ASSERT_GE(fd, 0);
  const std::string req = "{\"version\":1,\"command\":\"big\"}\n";  // 4 MiB reply, never read
  ASSERT_EQ(send(fd, req.data(), req.size(), 0), static_cast<ssize_t>(req.size()));
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  const auto t0 = Clock::now();
  EXPECT_TRUE(echoWorks());
  EXPECT_LT(Clock::now() - t0, std::chrono::milliseconds(250));
  close(fd);
}

TEST_F(ControlTest, LargeReplyArrivesWhole) {
  auto r = call(path_, {{"command", "big"}});
  ASSERT_TRUE(r) << r.error().str();
  EXPECT_EQ((*r)["result"]["blob"].get<std::string>().size(), 4u << 20);
}

TEST_F(ControlTest, ClientTimesOut) {
  auto r = call(path_, {{"command", "slow"}}, 150);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().err, ETIMEDOUT);
}

TEST_F(ControlTest, TooManyClientsAreTurnedAwayAtOnce) {
  ControlServer::Options o;
  o.path = dir_ + "/small.sock";
  o.maxClients = 2;
  auto s = makeServer(o);
  ASSERT_TRUE(s->start());
  int a = connectTo(o.path), b = connectTo(o.path);
  ASSERT_GE(a, 0);
  ASSERT_GE(b, 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(50));  // both accepted
  const auto t0 = Clock::now();
  auto r = call(o.path, {{"command", "echo"}}, 300);  // retried while 300 ms last
  ASSERT_TRUE(r) << r.error().str();
  EXPECT_LT(Clock::now() - t0, std::chrono::milliseconds(400));
  EXPECT_FALSE((*r)["ok"].get<bool>());
  EXPECT_EQ((*r)["error"]["code"], kErrBusy);
  EXPECT_NE((*r)["error"]["message"].get<std::string>().find("too many"), std::string::npos);
  EXPECT_GE(s->stats().refusedFull, 1u);
  close(a);
  close(b);
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  auto ok = call(o.path, {{"command", "echo"}}, 2000);
  ASSERT_TRUE(ok);
  EXPECT_TRUE((*ok)["ok"].get<bool>()) << "slots come back";
}

// 32 at once from one uid: 8 get in at a time, the others are told "busy"
// and call() retries them while their timeout lasts.
TEST_F(ControlTest, ManyConcurrentClientsAllServed) {
  std::vector<std::thread> threads;
  std::atomic<int> good{0};
  for (int i = 0; i < 32; i++) {
    threads.emplace_back([&, i] {
      auto r = call(path_, {{"command", "echo"}, {"x", i}}, 5000);
      if (r && (*r)["ok"].get<bool>() && (*r)["result"]["got"] == i) good++;
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(good.load(), 32);
}

TEST_F(ControlTest, MutationsNeedRootOrTheGroup) {
  PeerCred nobody{1234, 65534, 65534, std::nullopt};
  auto denied = server_->handle("{\"version\":1,\"command\":\"set\"}", nobody);
  EXPECT_EQ(denied["error"]["code"], kErrPermissionDenied);
  EXPECT_TRUE(server_->handle("{\"version\":1,\"command\":\"echo\"}", nobody)["ok"].get<bool>())
      << "read-only commands are open to anyone who can connect";
  PeerCred root{1, 0, 0, std::nullopt};
  EXPECT_TRUE(server_->handle("{\"version\":1,\"command\":\"set\"}", root)["ok"].get<bool>());

  ControlServer::Options o;
  o.path = dir_ + "/unused.sock";
  o.group = 4242;
  auto grouped = makeServer(o);  // not started: handle() needs no socket
  const std::string set = "{\"version\":1,\"command\":\"set\"}";
  EXPECT_TRUE(grouped->handle(set, PeerCred{1234, 1000, 4242, std::nullopt})["ok"].get<bool>()) << "primary";
  EXPECT_TRUE(grouped->handle(set, PeerCred{1234, 1000, 1000, std::vector<gid_t>{7, 4242}})["ok"].get<bool>())
      << "supplementary";
  EXPECT_EQ(grouped->handle(set, PeerCred{1234, 1000, 1000, std::vector<gid_t>{7}})["error"]["code"],
            kErrPermissionDenied);
}

TEST_F(ControlTest, MutationsAreLoggedWithUidAndPid) {
  std::ostringstream log;
  auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(log);
  auto previous = spdlog::default_logger();
  spdlog::set_default_logger(std::make_shared<spdlog::logger>("test", sink));
  spdlog::set_level(spdlog::level::info);
  server_->handle("{\"version\":1,\"command\":\"set\"}", PeerCred{123, 0, 0, std::nullopt});
  server_->handle("{\"version\":1,\"command\":\"set\"}", PeerCred{456, 65534, 65534, std::nullopt});
  spdlog::set_default_logger(previous);
  EXPECT_NE(log.str().find("control: set by uid=0 pid=123"), std::string::npos) << log.str();
  EXPECT_NE(log.str().find("control: set refused for uid=65534 pid=456"), std::string::npos) << log.str();
}

TEST_F(ControlTest, NonRootCannotConnectToA0600Socket) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to switch to an unprivileged uid";
  ASSERT_EQ(chmod(dir_.c_str(), 0711), 0);
  const std::string path = path_;
  int rc = asNobody(65534, {}, [&] {
    auto r = call(path, {{"command", "echo"}}, 1000);
    if (r) return 1;
    if (r.error().err != EACCES) return 2;
    return r.error().str().find("permission denied") != std::string::npos ? 0 : 3;
  });
  EXPECT_EQ(rc, 0);
}

TEST_F(ControlTest, NonRootPeerIsRefusedMutationsOverTheSocket) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to switch to an unprivileged uid";
  ASSERT_EQ(chmod(dir_.c_str(), 0711), 0);
  // Open the socket to everyone so the request reaches the server's check.
  ASSERT_EQ(chmod(path_.c_str(), 0666), 0);
  const std::string path = path_;
  int rc = asNobody(65534, {}, [&] {
    auto set = call(path, {{"command", "set"}}, 1000);
    if (!set || (*set)["ok"].get<bool>()) return 1;
    if ((*set)["error"]["code"] != kErrPermissionDenied) return 2;
    auto who = call(path, {{"command", "whoami"}}, 1000);
    if (!who || (*who)["result"]["uid"] != 65534) return 3;
    return 0;
  });
  EXPECT_EQ(rc, 0);
}

TEST_F(ControlTest, SupplementaryGroupMemberMayMutateOverTheSocket) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to switch to an unprivileged uid";
  ASSERT_EQ(chmod(dir_.c_str(), 0711), 0);
  ControlServer::Options o;
  o.path = dir_ + "/group.sock";
  o.group = 4242;
  auto s = makeServer(o);
  ASSERT_TRUE(s->start());
  const std::string path = o.path;
  auto mutate = [&] {
    auto set = call(path, {{"command", "set"}}, 1000);
    if (!set) return 10 + std::min(set.error().err, 100);
    return (*set)["ok"].get<bool>() ? 0 : 1;
  };
  EXPECT_EQ(asNobody(65534, {4242}, mutate), 0) << "supplementary member";
  EXPECT_EQ(asNobody(4242, {}, mutate), 0) << "primary member";
  EXPECT_EQ(asNobody(65534, {}, mutate), 10 + EACCES) << "others cannot even connect";
}

TEST(ControlClient, ClearErrorWhenNoDaemon) {
  auto r = call("/tmp/microseg-definitely-not-here.sock", {{"command", "status"}}, 500);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().err, ENOENT);
  EXPECT_NE(r.error().str().find("microsegd is not running at this path"), std::string::npos)
      << r.error().str();
  EXPECT_NE(r.error().str().find("/tmp/microseg-definitely-not-here.sock"), std::string::npos);
}

TEST(ControlClient, RefusesToSendBadRequests) {
  auto notObject = call("/tmp/x.sock", json::array({1, 2}), 500);
  ASSERT_FALSE(notObject);
  EXPECT_EQ(notObject.error().err, EINVAL);
  auto tooBig = call("/tmp/x.sock", {{"command", "echo"}, {"pad", std::string(kMaxMessageBytes, 'p')}}, 500);
  ASSERT_FALSE(tooBig);
  EXPECT_EQ(tooBig.error().err, EMSGSIZE);
}

TEST(ControlProtocol, Replies) {
  auto ok = successReply(json{{"a", 1}});
  EXPECT_EQ(ok, json::parse(R"({"version":1,"ok":true,"result":{"a":1}})"));
  auto err = errorReply(ControlError(kErrBadRequest, "field 'mode' is required"));
  EXPECT_EQ(err, json::parse(R"({"version":1,"ok":false,
      "error":{"code":"bad_request","message":"field 'mode' is required","details":[]}})"));
}

}  // namespace
}  // namespace microseg::control
