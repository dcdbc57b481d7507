// The control protocol without a daemon: ControlServer::reply(line, peer)
// with a few commands registered (a read-only one that echoes the request,
// a mutating one, a text command, one that throws), as the socket path
// calls it (one line, at most kMaxMessageBytes).
//
// Properties:
//  - every reply is one line of valid UTF-8, one JSON object of the
//    protocol's shape, with a known error code when it is a failure;
//  - a handler runs only for a request that is strict JSON (valid UTF-8, no
//    key twice in one object: checked here by a parser of its own), an
//    object with version 1 and a registered command; a mutating handler only
//    for root or a member of the socket group;
//  - a strict request for `status` always gets its handler, and its echo
//    comes back equal to the request (numbers, strings, nesting);
//  - bytes a handler writes that are not UTF-8 (a cgroup's name) reach the
//    reply replaced, never raw.
//
// Input: one byte (the peer: root, primary-group member, supplementary-group
// member, or another uid), then the request line.
#include <set>
#include <string>
#include <vector>

#include "common/text.h"
#include "control/protocol.h"
#include "control/server.h"
#include "fuzz_util.h"

using namespace microseg;
using nlohmann::json;

namespace {

constexpr gid_t kGroup = 4242;
bool gHandlerRan = false;
bool gMutatorRan = false;

// Bytes from "hex" text: how a handler here is made to write bytes that
// are not UTF-8 (the request itself must be UTF-8).
std::string unhex(const std::string& s) {
  std::string out;
  for (size_t i = 0; i + 1 < s.size(); i += 2) {
    auto nibble = [](char c) { return std::isxdigit(static_cast<unsigned char>(c)) ? std::stoi(std::string(1, c), nullptr, 16) : 0; };
    out += static_cast<char>(nibble(s[i]) * 16 + nibble(s[i + 1]));
  }
  return out;
}

std::string stringField(const json& body, const char* key) {
  auto it = body.find(key);
  return it != body.end() && it->is_string() ? it->get<std::string>() : std::string();
}

// An independent strictness check: a SAX parse that refuses a key given
// twice in one object.
struct StrictSax : nlohmann::json_sax<json> {
  std::vector<std::set<std::string>> keys;
  bool duplicate = false;
  bool null() override { return true; }
  bool boolean(bool) override { return true; }
  bool number_integer(number_integer_t) override { return true; }
  bool number_unsigned(number_unsigned_t) override { return true; }
  bool number_float(number_float_t, const string_t&) override { return true; }
  bool string(string_t&) override { return true; }
  bool binary(binary_t&) override { return true; }
  bool start_object(std::size_t) override {
    keys.emplace_back();
    return true;
  }
  bool key(string_t& k) override {
    if (!keys.back().insert(k).second) duplicate = true;
    return true;
  }
  bool end_object() override {
    keys.pop_back();
    return true;
  }
  bool start_array(std::size_t) override { return true; }
  bool end_array() override { return true; }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception&) override { return false; }
};

// The request is strict JSON by this target's own reading: parsed whole,
// no duplicate key, every number a double holds.
bool strictJson(const std::string& line) {
  if (!text::isUtf8(line)) return false;
  StrictSax sax;
  try {
    if (!json::sax_parse(line, &sax)) return false;
  } catch (const json::exception&) {
    return false;
  }
  if (sax.duplicate) return false;
  try {
    (void)json::parse(line);
  } catch (const json::exception&) {
    return false;  // e.g. 1e400
  }
  return true;
}

control::ControlServer& server() {
  static control::ControlServer* s = [] {
    control::ControlServer::Options o;
    o.group = kGroup;
    auto* srv = new control::ControlServer(o);
    srv->registerCommand(
        "status",
        [](const control::Request& r) {
          gHandlerRan = true;
          return r.body;
        },
        false);
    srv->registerCommand(
        "mode.set",
        [](const control::Request& r) -> json {
          gHandlerRan = gMutatorRan = true;
          const std::string mode = stringField(r.body, "mode");
          if (mode != "monitor" && mode != "enforce") {
            throw control::ControlError(control::kErrBadRequest, "unknown mode '" + mode + "'",
                                        {"mode: " + mode, unhex(stringField(r.body, "hex"))});
          }
          return {{"mode", mode}, {"previous", "monitor"}};
        },
        true);
    srv->registerTextCommand(
        "flows",
        [](const control::Request& r, std::string& out) {
          gHandlerRan = true;
          out += "{\"rows\":[";
          control::appendJsonString(out, unhex(stringField(r.body, "hex")));
          out += ",";
          control::appendJsonString(out, r.body.dump());
          out += "]}";
        },
        false);
    srv->registerCommand(
        "explain",
        [](const control::Request& r) -> json {
          gHandlerRan = true;
          throw std::runtime_error("failed on " + unhex(stringField(r.body, "hex")));
        },
        false);
    return srv;
  }();
  return *s;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  fuzz::quietLogs();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1 || size - 1 > control::kMaxMessageBytes) return 0;
  control::PeerCred peer;
  peer.pid = 1;
  switch (data[0] & 0x03) {
    case 0: peer.uid = 0; peer.gid = 0; peer.groups = std::vector<gid_t>{}; break;
    case 1: peer.uid = 1000; peer.gid = kGroup; peer.groups = std::vector<gid_t>{}; break;
    case 2: peer.uid = 1001; peer.gid = 1001; peer.groups = std::vector<gid_t>{7, kGroup}; break;
    default: peer.uid = 1002; peer.gid = 1002; peer.groups = std::vector<gid_t>{7}; break;
  }
  const bool mayMutate = (data[0] & 0x03) != 3;
  std::string line(reinterpret_cast<const char*>(data) + 1, size - 1);
  // The socket path hands over what came before the first newline.
  if (const size_t nl = line.find('\n'); nl != std::string::npos) line.resize(nl);

  gHandlerRan = gMutatorRan = false;
  const std::string reply = server().reply(line, peer);

  fuzz::check(reply.find('\n') == std::string::npos, "a reply holds a raw newline", reply);
  fuzz::check(text::isUtf8(reply), "a reply is not UTF-8", reply);
  json msg;
  try {
    msg = json::parse(reply);
  } catch (const json::exception& e) {
    fuzz::fail("a reply is not JSON", reply);
  }
  fuzz::check(msg.is_object() && msg.value("version", 0) == control::kProtocolVersion && msg.contains("ok") &&
                  msg["ok"].is_boolean(),
              "a reply is not a protocol message", reply);
  if (msg["ok"].get<bool>()) {
    fuzz::check(gHandlerRan && msg.contains("result"), "a success without a handler", reply);
  } else {
    static const std::set<std::string> kCodes = {control::kErrBadRequest, control::kErrUnsupportedVersion,
                                                 control::kErrUnknownCommand, control::kErrPermissionDenied,
                                                 control::kErrInvalidPolicy, control::kErrInternal,
                                                 control::kErrBusy};
    const json& err = msg.value("error", json());
    fuzz::check(err.is_object() && err.contains("code") && err["code"].is_string() &&
                    kCodes.count(err["code"].get<std::string>()) == 1 && err.contains("message") &&
                    err["message"].is_string() && err.contains("details") && err["details"].is_array(),
                "a failure reply is not of the protocol's shape", reply);
  }

  const bool strict = strictJson(line);
  if (gHandlerRan) {
    fuzz::check(strict, "a handler ran for a request that is not strict JSON", line);
    const json req = json::parse(line);
    fuzz::check(req.is_object() && req["version"] == control::kProtocolVersion && req["command"].is_string(),
                "a handler ran for a request without version 1 and a command", line);
  }
  if (gMutatorRan) fuzz::check(mayMutate, "a mutating handler ran for a caller who may not mutate", line);

  if (strict) {
    const json req = json::parse(line);
    if (req.is_object() && req.contains("version") && req["version"].is_number_integer() &&
        req["version"] == control::kProtocolVersion && req.value("command", json()) == "status") {
      fuzz::check(msg["ok"] == true && msg["result"] == req, "the echo of a strict status request differs",
                  "request: " + line + "\nreply: " + reply);
    }
  }
  return 0;
}
