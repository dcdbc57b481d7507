// The control-socket tests' fixture: a server with made-up commands on a
// socket in a temp dir, raw exchanges, a child process as another uid.
#pragma once

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
#include <memory>
#include <string>
#include <vector>
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

}  // namespace
}  // namespace microseg::control
