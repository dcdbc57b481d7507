#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <stdexcept>
#include <thread>

#include "common/fd.h"
#include "control/metrics_http.h"
#include "control/metrics_text.h"

namespace microseg::metrics {
namespace {

using std::chrono::milliseconds;
using std::chrono::steady_clock;

// ---- text format ------------------------------------------------------------

std::vector<Family> sample() {
  return {Family{"microseg_verdicts_total", "New flows.\nSecond line \\ \"quoted\"", Type::Counter,
                 {Sample{{{"verdict", "deny"}}, 9007199254740991.0}, Sample{{{"verdict", "a\"b\\c\nd"}}, 1}}},
          Family{"microseg_policy_generation", "Generation.", Type::Gauge, {Sample{{}, 3}}},
          Family{"microseg_map_entries", "", Type::Gauge,
                 {Sample{{{"map", "policy"}, {"kind", "x,y=z}"}}, 0.25}, Sample{{{"map", "policy"}, {"kind", "x"}}, -2}}},
          Family{"microseg_empty_total", "No samples yet.", Type::Counter, {}},
          Family{"microseg_special", "Specials.", Type::Gauge,
                 {Sample{{{"v", "inf"}}, INFINITY}, Sample{{{"v", "-inf"}}, -INFINITY}, Sample{{{"v", "nan"}}, NAN},
                  Sample{{{"v", "third"}}, 1.0 / 3}}}};
}

std::string one(double v) { return render({Family{"g", "", Type::Gauge, {Sample{{}, v}}}}); }

TEST(MetricsText, RendersACounterWithoutLabels) {
  EXPECT_EQ(render({Family{"requests_total", "Requests.", Type::Counter, {Sample{{}, 12}}}}),
            "# HELP requests_total Requests.\n# TYPE requests_total counter\nrequests_total 12\n");
}

TEST(MetricsText, RendersAGaugeWithLabelsInNameOrder) {
  EXPECT_EQ(render({Family{"temp", "T.", Type::Gauge, {Sample{{{"b", "y"}, {"a", "x"}}, 1.5}, Sample{{{"a", "z"}}, 2}}}}),
            "# HELP temp T.\n# TYPE temp gauge\ntemp{a=\"x\",b=\"y\"} 1.5\ntemp{a=\"z\"} 2\n");
}

TEST(MetricsText, RendersFamiliesInOrderIncludingEmptyOnes) {
  EXPECT_EQ(render({Family{"a_total", "", Type::Counter, {}}, Family{"b", "h", Type::Gauge, {Sample{{}, 0}}}}),
            "# HELP a_total \n# TYPE a_total counter\n# HELP b h\n# TYPE b gauge\nb 0\n");
  EXPECT_EQ(render({}), "");
}

TEST(MetricsText, EscapesLabelValuesAndHelp) {
  const std::string t = render(sample());
  // HELP: backslash and newline escaped, quotes left alone.
  EXPECT_NE(t.find("# HELP microseg_verdicts_total New flows.\\nSecond line \\\\ \"quoted\"\n"), std::string::npos) << t;
  // Label value: backslash, quote and newline escaped.
  EXPECT_NE(t.find("microseg_verdicts_total{verdict=\"a\\\"b\\\\c\\nd\"} 1\n"), std::string::npos) << t;
}

// A workload's or a cgroup's name that is not UTF-8 still renders a valid
// exposition (the format is UTF-8), replaced as text::toUtf8() does.
TEST(MetricsText, NonUtf8LabelValuesAndHelpAreReplaced) {
  const std::string t = render({Family{"w_total", "help \xff", Type::Counter, {Sample{{{"workload", "a\xff\xfe" "b"}}, 1}}}});
  EXPECT_NE(t.find("w_total{workload=\"a\xef\xbf\xbd\xef\xbf\xbd" "b\"} 1\n"), std::string::npos) << t;
  EXPECT_NE(t.find("# HELP w_total help \xef\xbf\xbd\n"), std::string::npos) << t;
  auto back = parse(t);
  ASSERT_TRUE(back) << back.error().str();
  EXPECT_EQ((*back)[0].samples[0].labels.at("workload"), "a\xef\xbf\xbd\xef\xbf\xbd" "b");
  // The strict parser refuses raw invalid bytes, naming the line.
  auto bad = parse("# TYPE g gauge\ng{w=\"\xff\"} 1\n");
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().str().find("line 2"), std::string::npos) << bad.error().str();
  EXPECT_NE(bad.error().str().find("UTF-8"), std::string::npos) << bad.error().str();
}

TEST(MetricsText, FormatsIntegersWithoutExponentOrFraction) {
  EXPECT_EQ(formatValue(9007199254740991.0), "9007199254740991");  // 2^53 - 1
  EXPECT_EQ(formatValue(1234567890123.0), "1234567890123");
  EXPECT_EQ(formatValue(1e18), "1000000000000000000");
  EXPECT_EQ(formatValue(0), "0");
  EXPECT_EQ(formatValue(-0.0), "0");
  EXPECT_EQ(formatValue(-5), "-5");
  EXPECT_EQ(one(9007199254740991.0), "# HELP g \n# TYPE g gauge\ng 9007199254740991\n");
}

TEST(MetricsText, FormatsFractionsExactlyAndSpecialsAsPrometheus) {
  EXPECT_EQ(formatValue(0.25), "0.25");
  EXPECT_EQ(formatValue(0.1), "0.1");
  EXPECT_EQ(formatValue(-2.5), "-2.5");
  EXPECT_EQ(std::strtod(formatValue(1.0 / 3).c_str(), nullptr), 1.0 / 3);
  EXPECT_EQ(std::strtod(formatValue(1.5e-7).c_str(), nullptr), 1.5e-7);
  EXPECT_EQ(std::strtod(formatValue(1e300).c_str(), nullptr), 1e300);
  EXPECT_EQ(formatValue(INFINITY), "+Inf");
  EXPECT_EQ(formatValue(-INFINITY), "-Inf");
  EXPECT_EQ(formatValue(NAN), "NaN");
}

void expectThrowsNaming(const std::vector<Family>& fams, const std::string& name) {
  try {
    (void)render(fams);
    ADD_FAILURE() << "no exception for '" << name << "'";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("'" + name + "'"), std::string::npos) << e.what();
  }
}

TEST(MetricsText, InvalidNamesThrowNamingThem) {
  for (const char* bad : {"bad-name", "1abc", "", "a b", "é"}) {
    expectThrowsNaming({Family{bad, "", Type::Gauge, {}}}, bad);
  }
  for (const char* bad : {"__x", "a-b", "1a", "", "a:b"}) {
    expectThrowsNaming({Family{"ok", "", Type::Gauge, {Sample{{{bad, "1"}}, 1}}}}, bad);
  }
  expectThrowsNaming({Family{"twice", "", Type::Gauge, {}}, Family{"twice", "", Type::Gauge, {}}}, "twice");
  EXPECT_NO_THROW(render({Family{"a:b_c9", "", Type::Gauge, {Sample{{{"_x", "1"}, {"B2", ""}}, 1}}}}));
}

void expectSameFamilies(const std::vector<Family>& a, const std::vector<Family>& b) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); i++) {
    EXPECT_EQ(a[i].name, b[i].name);
    EXPECT_EQ(a[i].help, b[i].help) << a[i].name;
    EXPECT_EQ(a[i].type, b[i].type) << a[i].name;
    ASSERT_EQ(a[i].samples.size(), b[i].samples.size()) << a[i].name;
    for (size_t j = 0; j < a[i].samples.size(); j++) {
      EXPECT_EQ(a[i].samples[j].labels, b[i].samples[j].labels) << a[i].name << " #" << j;
      const double x = a[i].samples[j].value, y = b[i].samples[j].value;
      if (std::isnan(x)) {
        EXPECT_TRUE(std::isnan(y)) << a[i].name << " #" << j;
      } else {
        EXPECT_EQ(x, y) << a[i].name << " #" << j;
      }
    }
  }
}

TEST(MetricsText, RoundTripThroughTheStrictParserGivesTheSameFamilies) {
  const auto fams = sample();
  const std::string text = render(fams);
  auto parsed = parse(text);
  ASSERT_TRUE(parsed) << parsed.error().str() << "\n" << text;
  expectSameFamilies(fams, *parsed);
  EXPECT_EQ(render(*parsed), text);
}

TEST(MetricsText, ParserAcceptsValidVariants) {
  auto r = parse(
      "# TYPE a gauge\n"
      "a{} 1\n"
      "a{x=\"1\",} 1e3\n"
      "a{x=\"2\",y=\"\"} -0.5\n"
      "a{x=\"1,y=2\"} +Inf\n"  // not the same series as x=1,y=2
      "a{x=\"1\",y=\"2\"} -Inf\n"
      "# HELP b_total\n"
      "# TYPE b_total counter\n"
      "b_total NaN\n");
  ASSERT_TRUE(r) << r.error().str();
  ASSERT_EQ(r->size(), 2u);
  ASSERT_EQ((*r)[0].samples.size(), 5u);
  EXPECT_EQ((*r)[0].samples[1].value, 1000);
  EXPECT_EQ((*r)[0].samples[2].value, -0.5);
  EXPECT_EQ((*r)[0].samples[3].labels.at("x"), "1,y=2");
  EXPECT_EQ((*r)[0].samples[3].value, INFINITY);
  EXPECT_EQ((*r)[1].help, "");
  EXPECT_EQ((*r)[1].type, Type::Counter);
  EXPECT_TRUE(std::isnan((*r)[1].samples[0].value));
  auto empty = parse("");
  ASSERT_TRUE(empty);
  EXPECT_TRUE(empty->empty());
}

struct BadCase {
  const char* what;
  std::string text;
  int line;
  const char* says;
};

TEST(MetricsText, ParserRejectsMalformedInputNamingTheLine) {
  const std::vector<BadCase> cases = {
      {"sample before TYPE", "x_total 1\n", 1, "before its TYPE"},
      {"sample after HELP only", "# HELP x_total h\nx_total 1\n", 2, "before its TYPE"},
      {"duplicate TYPE", "# TYPE a_total counter\n# TYPE a_total counter\n", 2, "duplicate TYPE"},
      {"duplicate TYPE after samples", "# TYPE a gauge\na 1\n# TYPE a gauge\n", 3, "duplicate TYPE"},
      {"duplicate series", "# TYPE a_total counter\na_total{x=\"1\"} 1\na_total{x=\"1\"} 2\n", 3, "duplicate series"},
      {"duplicate series, no labels", "# TYPE a gauge\na 1\na 2\n", 3, "duplicate series"},
      {"duplicate series, label order", "# TYPE a gauge\na{x=\"1\",y=\"2\"} 1\na{y=\"2\",x=\"1\"} 2\n", 3,
       "duplicate series"},
      {"counter without _total", "# HELP a h\n# TYPE a counter\n", 2, "_total"},
      {"bad value", "# TYPE a gauge\na one\n", 2, "not a number"},
      {"hex value", "# TYPE a gauge\na 0x10\n", 2, "not a number"},
      {"lower-case inf", "# TYPE a gauge\na inf\n", 2, "not a number"},
      {"truncated exponent", "# TYPE a gauge\na 1e\n", 2, "not a number"},
      {"empty value", "# TYPE a gauge\na \n", 2, "not a number"},
      {"garbage line", "# TYPE a gauge\na 1\n!!! what\n", 3, "not a HELP, TYPE or sample line"},
      {"garbage after name", "# TYPE a gauge\na-b 1\n", 2, "not a HELP, TYPE or sample line"},
      {"non-contiguous samples", "# TYPE a gauge\na 1\n# TYPE b gauge\nb 1\na 2\n", 5, "not contiguous"},
      {"non-contiguous HELP", "# TYPE a gauge\n# TYPE b gauge\n# HELP a x\n", 3, "not contiguous"},
      {"duplicate HELP", "# HELP a x\n# HELP a y\n# TYPE a gauge\n", 2, "duplicate HELP"},
      {"HELP after samples", "# TYPE a gauge\na 1\n# HELP a x\n", 3, "after its samples"},
      {"plain comment", "# TYPE a gauge\n# just a comment\n", 2, "neither HELP nor TYPE"},
      {"empty line", "# TYPE a gauge\n\na 1\n", 2, "empty line"},
      {"no final newline", "# TYPE a gauge\na 1", 2, "newline"},
      {"timestamp", "# TYPE a gauge\na 1 1700000000\n", 2, "after the value"},
      {"unsupported type", "# TYPE a histogram\n", 1, "unsupported TYPE"},
      {"TYPE without type", "# TYPE a\n", 1, "unsupported TYPE"},
      {"bad name in TYPE", "# TYPE 9a gauge\n", 1, "invalid metric name"},
      {"HELP but no TYPE", "# TYPE a gauge\n# HELP b x\n", 2, "no TYPE"},
      {"bad escape in label", "# TYPE a gauge\na{x=\"\\t\"} 1\n", 2, "escape"},
      {"bad escape in HELP", "# HELP a \\\"x\n# TYPE a gauge\n", 1, "escape"},
      {"reserved label", "# TYPE a gauge\na{__name__=\"x\"} 1\n", 2, "invalid label name"},
      {"duplicate label", "# TYPE a gauge\na{x=\"1\",x=\"2\"} 1\n", 2, "duplicate label"},
      {"unterminated label value", "# TYPE a gauge\na{x=\"1} 1\n", 2, "unterminated"},
      {"missing comma", "# TYPE a gauge\na{x=\"1\"y=\"2\"} 1\n", 2, "expected ','"},
      {"unquoted label value", "# TYPE a gauge\na{x=1} 1\n", 2, "malformed label"},
      {"missing value", "# TYPE a gauge\na{x=\"1\"}\n", 2, "missing value"},
  };
  for (const auto& c : cases) {
    auto r = parse(c.text);
    ASSERT_FALSE(r) << c.what;
    const std::string msg = r.error().str();
    EXPECT_NE(msg.find("'line " + std::to_string(c.line) + "'"), std::string::npos) << c.what << ": " << msg;
    EXPECT_NE(msg.find(c.says), std::string::npos) << c.what << ": " << msg;
  }
}

// ---- HTTP endpoint ----------------------------------------------------------

UniqueFd connectTo(uint16_t port, int family = AF_INET) {
  UniqueFd fd(socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_storage ss{};
  socklen_t len;
  if (family == AF_INET) {
    auto* a = reinterpret_cast<sockaddr_in*>(&ss);
    a->sin_family = AF_INET;
    a->sin_port = htons(port);
    a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    len = sizeof(*a);
  } else {
    auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
    a->sin6_family = AF_INET6;
    a->sin6_port = htons(port);
    a->sin6_addr = in6addr_loopback;
    len = sizeof(*a);
  }
  if (connect(fd.get(), reinterpret_cast<sockaddr*>(&ss), len) != 0) return UniqueFd();
  timeval tv{4, 0};
  setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  return fd;
}

std::string readAll(int fd) {
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = recv(fd, buf, sizeof(buf), 0)) > 0) out.append(buf, static_cast<size_t>(n));
  return out;
}

std::string exchange(uint16_t port, const std::string& request, int family = AF_INET) {
  UniqueFd fd = connectTo(port, family);
  if (!fd) return "connect failed";
  if (send(fd.get(), request.data(), request.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(request.size())) {
    return "send failed";
  }
  return readAll(fd.get());
}

// The status code of a response; CivetWeb answers its own errors with the
// version it read ("HTTP/1.0 400", "HTTP/9.9 505").
int status(const std::string& response) {
  if (response.rfind("HTTP/", 0) != 0 || response.size() < 12 || response[8] != ' ') return -1;
  return std::stoi(response.substr(9, 3));
}

std::string body(const std::string& response) {
  const auto p = response.find("\r\n\r\n");
  return p == std::string::npos ? std::string() : response.substr(p + 4);
}

bool hasHeader(const std::string& response, const std::string& line) {
  const auto head = response.substr(0, response.find("\r\n\r\n") + 2);
  return head.find("\r\n" + line + "\r\n") != std::string::npos;
}

const std::string kGet = "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";

// A malformed request gets a 400 or the connection closed without an
// answer; CivetWeb does the one or the other depending on where it stops.
bool refused(const std::string& response) {
  return response.empty() || status(response) == 400 || status(response) == 505;
}

TEST(MetricsHttp, ServesRenderedMetricsWithTheRightHeaders) {
  std::atomic<int> scrapes{0};
  HttpEndpoint ep("127.0.0.1:0", [&] {
    scrapes++;
    return render({Family{"scrapes_total", "Scrapes.", Type::Counter, {Sample{{}, double(scrapes.load())}}}});
  });
  ASSERT_TRUE(ep.start());
  ASSERT_NE(ep.port(), 0);
  const auto r = exchange(ep.port(), kGet);
  EXPECT_EQ(status(r), 200) << r;
  EXPECT_TRUE(hasHeader(r, "Content-Type: text/plain; version=0.0.4; charset=utf-8")) << r;
  EXPECT_TRUE(hasHeader(r, "Connection: close")) << r;
  const std::string expected = "# HELP scrapes_total Scrapes.\n# TYPE scrapes_total counter\nscrapes_total 1\n";
  EXPECT_EQ(body(r), expected);
  EXPECT_TRUE(hasHeader(r, "Content-Length: " + std::to_string(expected.size()))) << r;
  // render() runs per scrape; HTTP/1.0 and a query string are fine.
  const auto r2 = exchange(ep.port(), "GET /metrics?x=1 HTTP/1.0\r\n\r\n");
  EXPECT_EQ(status(r2), 200) << r2;
  EXPECT_NE(body(r2).find("scrapes_total 2\n"), std::string::npos) << r2;
  ASSERT_TRUE(parse(body(r2)));
}

TEST(MetricsHttp, OtherPathsAre404) {
  HttpEndpoint ep("127.0.0.1:0", [] { return std::string(); });
  ASSERT_TRUE(ep.start());
  for (const char* path : {"/other", "/", "/metrics/", "/metricsx", "/metrics/../metricsx"}) {
    EXPECT_EQ(status(exchange(ep.port(), std::string("GET ") + path + " HTTP/1.1\r\n\r\n")), 404) << path;
  }
  const auto star = exchange(ep.port(), "GET * HTTP/1.1\r\n\r\n");
  EXPECT_TRUE(refused(star) || status(star) == 404) << star;
}

TEST(MetricsHttp, OtherMethodsAre405) {
  HttpEndpoint ep("127.0.0.1:0", [] { return std::string("x"); });
  ASSERT_TRUE(ep.start());
  for (const char* method : {"POST", "HEAD", "PUT", "DELETE"}) {
    const auto r = exchange(ep.port(), std::string(method) + " /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    EXPECT_EQ(status(r), 405) << method << ": " << r;
    EXPECT_TRUE(hasHeader(r, "Allow: GET")) << r;
  }
  // A request body the server never reads does not cost the client its answer.
  const auto r = exchange(ep.port(), "POST /metrics HTTP/1.1\r\nContent-Length: 3000\r\n\r\n" + std::string(3000, 'b'));
  EXPECT_EQ(status(r), 405) << r;
  EXPECT_EQ(body(r), "only GET is served\n");
}

TEST(MetricsHttp, GarbageIsRefused) {
  HttpEndpoint ep("127.0.0.1:0", [] { return std::string("x"); });
  ASSERT_TRUE(ep.start());
  for (const std::string& req : std::vector<std::string>{"garbage\r\n\r\n", "GET /metrics\r\n\r\n", "GET /metrics HTTP/9.9\r\n\r\n",
                                "GET metrics HTTP/1.1\r\n\r\n", "GET /metrics HTTP/1.1\r\nno colon here\r\n\r\n",
                                "GET /metrics HTTP/1.1\r\nbad name: x\r\n\r\n", std::string("\x16\x03\x01\x02\x00\n\n", 7)}) {
    const auto r = exchange(ep.port(), req);
    EXPECT_TRUE(refused(r)) << req << " -> " << r;
  }
  // What never completes a head is cut at the head timeout.
  const auto t0 = steady_clock::now();
  EXPECT_TRUE(refused(exchange(ep.port(), "SSH-2.0-OpenSSH_9.2\r\n")));
  EXPECT_LT(steady_clock::now() - t0, milliseconds(HttpEndpoint::kHeadTimeoutMs + 1000));
  EXPECT_EQ(status(exchange(ep.port(), kGet)), 200) << "still serving";
}

TEST(MetricsHttp, OversizedHeadIsRefused) {
  HttpEndpoint ep("127.0.0.1:0", [] { return std::string("x"); });
  ASSERT_TRUE(ep.start());
  const std::string big = "GET /metrics HTTP/1.1\r\nX-Big: " + std::string(9000, 'a');
  for (const std::string& req : {big, big + "\r\n\r\n"}) {
    const auto r = exchange(ep.port(), req);
    const int code = status(r);
    EXPECT_TRUE(r.empty() || code == 413 || code == 431 || code == 400) << r.substr(0, 200);
    EXPECT_EQ(r.find("\r\n\r\nx"), std::string::npos) << "never served";
  }
  // Just under the limit is fine.
  const std::string fits = "GET /metrics HTTP/1.1\r\nX-Big: " + std::string(8000, 'a') + "\r\n\r\n";
  EXPECT_EQ(status(exchange(ep.port(), fits)), 200);
}

TEST(MetricsHttp, SilentClientDoesNotBlockASecondScrape) {
  HttpEndpoint ep("127.0.0.1:0", [] { return std::string("# TYPE a gauge\na 1\n"); });
  ASSERT_TRUE(ep.start());
  UniqueFd idle = connectTo(ep.port());
  ASSERT_TRUE(idle);
  const auto t0 = steady_clock::now();
  const auto r = exchange(ep.port(), kGet);
  EXPECT_EQ(status(r), 200) << r;
  EXPECT_LT(steady_clock::now() - t0, milliseconds(500));
}

TEST(MetricsHttp, IdleClientsFewerThanWorkersDoNotDelayAScrape) {
  HttpEndpoint ep("127.0.0.1:0", [] { return std::string("# TYPE a gauge\na 1\n"); });
  ASSERT_TRUE(ep.start());
  std::vector<UniqueFd> idle;
  for (int i = 0; i < HttpEndpoint::kWorkers - 4; i++) {
    idle.push_back(connectTo(ep.port()));
    ASSERT_TRUE(idle.back()) << i;
    (void)send(idle.back().get(), "GET /met", 8, MSG_NOSIGNAL);  // never finishes
  }
  std::this_thread::sleep_for(milliseconds(50));
  const auto t0 = steady_clock::now();
  const auto r = exchange(ep.port(), kGet);
  EXPECT_EQ(status(r), 200) << r;
  EXPECT_LT(steady_clock::now() - t0, milliseconds(500));
}

// More dawdlers than workers: the scrape waits in the queue, at most one
// head timeout (each dawdler is cut after it), and is then served.
TEST(MetricsHttp, MoreDawdlersThanWorkersDelayAScrapeByAtMostOneHeadTimeout) {
  HttpEndpoint ep("127.0.0.1:0", [] { return std::string("# TYPE a gauge\na 1\n"); });
  ASSERT_TRUE(ep.start());
  std::vector<UniqueFd> idle;
  for (int i = 0; i < HttpEndpoint::kWorkers + 16; i++) {
    idle.push_back(connectTo(ep.port()));
    ASSERT_TRUE(idle.back()) << i;
    (void)send(idle.back().get(), "GET /met", 8, MSG_NOSIGNAL);
  }
  std::this_thread::sleep_for(milliseconds(50));
  const auto t0 = steady_clock::now();
  const auto r = exchange(ep.port(), kGet);
  EXPECT_EQ(status(r), 200) << r;
  EXPECT_LT(steady_clock::now() - t0, milliseconds(HttpEndpoint::kHeadTimeoutMs + 1000));
}

TEST(MetricsHttp, IncompleteHeadIsDroppedAfterTwoSeconds) {
  HttpEndpoint ep("127.0.0.1:0", [] { return std::string("x"); });
  ASSERT_TRUE(ep.start());
  UniqueFd fd = connectTo(ep.port());
  ASSERT_TRUE(fd);
  ASSERT_GT(send(fd.get(), "GET /metrics HTTP/1.1\r\n", 23, MSG_NOSIGNAL), 0);
  const auto t0 = steady_clock::now();
  const std::string r = readAll(fd.get());
  EXPECT_TRUE(refused(r)) << r;  // closed, or a 400 for the partial head; never served
  const auto took = steady_clock::now() - t0;
  EXPECT_GT(took, milliseconds(1500));
  EXPECT_LT(took, milliseconds(3500));
}

TEST(MetricsHttp, HeadArrivingInPiecesIsServed) {
  HttpEndpoint ep("127.0.0.1:0", [] { return std::string("# TYPE a gauge\na 1\n"); });
  ASSERT_TRUE(ep.start());
  UniqueFd fd = connectTo(ep.port());
  ASSERT_TRUE(fd);
  for (const std::string& piece : std::vector<std::string>{"GE", "T /metr", "ics HTTP/1.1\r\nHo", "st: x\r\n", "\r\n"}) {
    ASSERT_GT(send(fd.get(), piece.data(), piece.size(), MSG_NOSIGNAL), 0);
    std::this_thread::sleep_for(milliseconds(30));
  }
  const auto r = readAll(fd.get());
  EXPECT_EQ(status(r), 200) << r;
  EXPECT_EQ(body(r), "# TYPE a gauge\na 1\n");
}

TEST(MetricsHttp, RenderFailureIs500) {
  HttpEndpoint ep("127.0.0.1:0", []() -> std::string { throw std::invalid_argument("invalid metric name 'x-y'"); });
  ASSERT_TRUE(ep.start());
  const auto r = exchange(ep.port(), kGet);
  EXPECT_EQ(status(r), 500) << r;
  EXPECT_NE(body(r).find("x-y"), std::string::npos) << r;
}

TEST(MetricsHttp, BadListenAddressIsAClearError) {
  for (const char* addr : {"nonsense", "", "127.0.0.1", "host:9464", "localhost:9464", "127.0.0.1:99999",
                           "127.0.0.1:-1", "127.0.0.1:", "[::1", "[::1]", "[::1]:x", "::1:9464", "[127.0.0.1]:9464",
                           "1.2.3:80", "0.0.0.0:9464", "[::]:9464"}) {
    HttpEndpoint ep(addr, [] { return std::string(); });
    auto r = ep.start();
    ASSERT_FALSE(r) << addr;
    const std::string msg = r.error().str();
    EXPECT_NE(msg.find(*addr ? std::string("'") + addr + "'" : "empty"), std::string::npos) << msg;
    EXPECT_NE(msg.find(std::strerror(EINVAL)), std::string::npos) << msg;
    EXPECT_EQ(ep.port(), 0);
  }
}

TEST(MetricsHttp, PortInUseNamesTheAddressAndErrno) {
  HttpEndpoint first("127.0.0.1:0", [] { return std::string(); });
  ASSERT_TRUE(first.start());
  const std::string addr = "127.0.0.1:" + std::to_string(first.port());
  HttpEndpoint second(addr, [] { return std::string(); });
  auto r = second.start();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().err, EADDRINUSE);
  EXPECT_NE(r.error().str().find("'" + addr + "'"), std::string::npos) << r.error().str();
}

// Debian builds CivetWeb without IPv6: an IPv6 address is refused with an
// error that says why (and served, should the library have it).
TEST(MetricsHttp, IPv6IsServedOrRefusedClearly) {
  HttpEndpoint ep("[::1]:0", [] { return std::string("# TYPE a gauge\na 6\n"); });
  auto started = ep.start();
  if (!started) {
    EXPECT_EQ(started.error().err, EAFNOSUPPORT) << started.error().str();
    EXPECT_NE(started.error().str().find("'[::1]:0'"), std::string::npos) << started.error().str();
    EXPECT_NE(started.error().str().find("no IPv6"), std::string::npos) << started.error().str();
    return;
  }
  const auto r = exchange(ep.port(), kGet, AF_INET6);
  EXPECT_EQ(status(r), 200) << r;
  EXPECT_EQ(body(r), "# TYPE a gauge\na 6\n");
}

TEST(MetricsHttp, StopsPromptlyAndCanRestart) {
  HttpEndpoint ep("127.0.0.1:0", [] { return std::string("x"); });
  ASSERT_TRUE(ep.start());
  auto again = ep.start();
  EXPECT_FALSE(again);
  const uint16_t port = ep.port();
  auto t0 = steady_clock::now();
  ep.stop();
  EXPECT_LT(steady_clock::now() - t0, milliseconds(500)) << "without clients";
  ASSERT_TRUE(ep.start());
  UniqueFd idle = connectTo(ep.port());
  ASSERT_TRUE(idle);
  std::this_thread::sleep_for(milliseconds(50));
  // A worker waiting for a client's head sees the stop between CivetWeb's
  // 2 s poll quanta: a stop waits for it at most the head timeout.
  t0 = steady_clock::now();
  ep.stop();
  EXPECT_LT(steady_clock::now() - t0, milliseconds(HttpEndpoint::kHeadTimeoutMs + 500)) << "with an idle client";
  EXPECT_EQ(ep.port(), 0);
  EXPECT_FALSE(connectTo(port)) << "nothing listens on the first port";
  ep.stop();  // idempotent
  ASSERT_TRUE(ep.start());
  EXPECT_EQ(status(exchange(ep.port(), kGet)), 200);
}

}  // namespace
}  // namespace microseg::metrics
