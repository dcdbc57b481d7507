// Control socket: protocol handling, socket lifecycle, and that a hostile or
// broken client has no effect on the server or other clients.
#include <fcntl.h>
#include <grp.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <thread>

#include "control/client.h"
#include "control/server.h"

namespace microseg::control {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

int connectTo(const std::string& path) {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::strncpy(a.sun_path, path.c_str(), sizeof(a.sun_path) - 1);
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

// Reads until EOF or timeout.
std::string readAll(int fd, int timeoutMs = 3000) {
  std::string out;
  const auto deadline = Clock::now() + std::chrono::milliseconds(timeoutMs);
  char buf[4096];
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) break;
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, static_cast<int>(left)) <= 0) break;
    ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

// Runs fn in a forked child as uid 65534 (supplementary groups `groups`,
// primary gid `gid`); returns its exit status, or -1.
int asNobody(gid_t gid, const std::vector<gid_t>& groups, const std::function<int()>& fn) {
  pid_t pid = fork();
  if (pid == 0) {
    if (setgroups(groups.size(), groups.data()) != 0) _exit(90);
    if (setresgid(gid, gid, gid) != 0 || setresuid(65534, 65534, 65534) != 0) _exit(91);
    _exit(fn());
  }
  int st = 0;
  if (pid < 0 || waitpid(pid, &st, 0) != pid || !WIFEXITED(st)) return -1;
  return WEXITSTATUS(st);
}

class ControlTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/microseg-ctl.XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    path_ = dir_ + "/ctl.sock";
    ControlServer::Options o;
    o.path = path_;
    o.requestTimeoutMs = 300;
    server_ = makeServer(o);
    ASSERT_TRUE(server_->start());
  }
  void TearDown() override {
    server_.reset();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  static std::unique_ptr<ControlServer> makeServer(const ControlServer::Options& o) {
    auto s = std::make_unique<ControlServer>(o);
    s->registerCommand("echo", [](const Request& r) { return json{{"got", r.body.value("x", 0)}}; }, false);
    s->registerCommand(
        "whoami",
        [](const Request& r) { return json{{"pid", r.peer.pid}, {"uid", r.peer.uid}, {"gid", r.peer.gid}}; },
        false);
    s->registerCommand("set", [](const Request&) { return json{{"done", true}}; }, true);
    // A result written as text, the same as "rows" below as a document.
    s->registerTextCommand("rows-text", [](const Request& r, std::string& out) {
      out += "{\"rows\":[";
      for (int i = 0; i < r.body.value("n", 0); i++) {
        out += (i ? ",{\"n\":" : "{\"n\":") + std::to_string(i) + ",\"name\":";
        appendJsonString(out, "r\"" + std::to_string(i) + "\xff");
        out += "}";
      }
      out += "]}";
      if (r.body.value("fail", false)) throw ControlError(kErrBadRequest, "half written");
    }, false);
    s->registerCommand("rows", [](const Request& r) {
      json rows = json::array();
      for (int i = 0; i < r.body.value("n", 0); i++) rows.push_back({{"name", "r\"" + std::to_string(i) + "\xff"}, {"n", i}});
      return json{{"rows", rows}};
    }, false);
    s->registerCommand("nothing", [](const Request&) { return json(); }, false);
    s->registerCommand("big", [](const Request&) { return json{{"blob", std::string(4 << 20, 'b')}}; }, false);
    s->registerCommand("slow", [](const Request&) {
      std::this_thread::sleep_for(std::chrono::milliseconds(600));
      return json::object();
    }, false);
    s->registerCommand("slow-set", [](const Request&) {
      std::this_thread::sleep_for(std::chrono::milliseconds(800));
      return json{{"done", true}};
    }, true);
    s->registerCommand("boom", [](const Request&) -> json {
      throw ControlError(kErrInvalidPolicy, "bad policy", {"a.yaml:1:2: error: x", "b.yaml:3:4: error: y"});
    }, true);
    s->registerCommand("crash", [](const Request&) -> json { throw std::runtime_error("oops"); }, false);
    s->registerCommand("weird", [](const Request&) -> json { throw 42; }, false);
    // Cgroup names are bytes, not necessarily UTF-8.
    s->registerCommand("bytes", [](const Request&) { return json{{"cgroup", "/bad\xff\xfename"}}; }, false);
    return s;
  }

  // Raw exchange: send bytes, read until the server closes.
  std::string raw(const std::string& bytes) {
    int fd = connectTo(path_);
    if (fd < 0) return "connect failed";
    size_t off = 0;
    while (off < bytes.size()) {
      ssize_t n = send(fd, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
      if (n <= 0) break;  // the server may refuse early and close: read its reply
      off += static_cast<size_t>(n);
    }
    std::string out = readAll(fd);
    close(fd);
    return out;
  }
  static std::string code(const std::string& reply) {
    auto j = json::parse(reply);
    return j["ok"].get<bool>() ? "ok" : j["error"]["code"].get<std::string>();
  }
  bool echoWorks(int timeoutMs = 2000) {
    auto r = call(path_, {{"command", "echo"}, {"x", 5}}, timeoutMs);
    return r && (*r)["ok"].get<bool>() && (*r)["result"]["got"] == 5;
  }

  std::string dir_, path_;
  std::unique_ptr<ControlServer> server_;
};

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

// A request is strict JSON: a key twice (which one a handler reads would be
// a guess), a number no double holds, bytes that are not UTF-8: each is a
// bad_request naming what is wrong, and the server keeps serving.
TEST_F(ControlTest, StrictJsonRequests) {
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

// The deadline counts from the connect: a byte now and then does not keep
// the slot (before, each byte restarted a 5 s idle timer, so 64 such clients
// held every slot for 30 s).
TEST_F(ControlTest, ATrickleOfBytesDoesNotKeepASlot) {
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
    if (poll(&p, 1, 100) > 0) {  // EOF: the server closed
      char c;
      cut = recv(fd, &c, 1, 0) == 0;
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

// Handlers run on workers: a slow one (600 ms) does not hold up the I/O
// loop, and read-only commands run while a mutation (800 ms) is in progress.
TEST_F(ControlTest, ASlowHandlerDoesNotHoldUpOtherRequests) {
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

TEST_F(ControlTest, MutationsRunOneAtATime) {
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

// One uid (root included) cannot take every slot: its connections beyond
// maxClientsPerUid are refused at once, other uids still get in.
TEST_F(ControlTest, OneUidCannotTakeEverySlot) {
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
