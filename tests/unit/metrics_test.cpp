#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cmath>

#include "control/metrics_http.h"
#include "control/metrics_text.h"

namespace microseg::metrics {
namespace {

std::vector<Family> sample() {
  return {Family{"microseg_verdicts_total", "New flows.\nSecond line", Type::Counter,
                 {Sample{{{"verdict", "deny"}}, 9007199254740991.0}, Sample{{{"verdict", "a\"b\\c"}}, 1}}},
          Family{"microseg_policy_generation", "Generation.", Type::Gauge, {Sample{{}, 3}}},
          Family{"microseg_apply_seconds", "Seconds.", Type::Gauge, {Sample{{}, 0.25}}}};
}

TEST(MetricsText, RendersTheExpositionFormat) {
  const std::string t = render(sample());
  EXPECT_NE(t.find("# HELP microseg_verdicts_total New flows.\\nSecond line\n"), std::string::npos) << t;
  EXPECT_NE(t.find("# TYPE microseg_verdicts_total counter\n"), std::string::npos);
  EXPECT_NE(t.find("microseg_verdicts_total{verdict=\"deny\"} 9007199254740991\n"), std::string::npos) << t;
  EXPECT_NE(t.find("microseg_verdicts_total{verdict=\"a\\\"b\\\\c\"} 1\n"), std::string::npos) << t;
  EXPECT_NE(t.find("microseg_policy_generation 3\n"), std::string::npos);
  EXPECT_NE(t.find("microseg_apply_seconds 0.25\n"), std::string::npos);
}

TEST(MetricsText, InvalidNamesThrow) {
  EXPECT_THROW(render({Family{"bad-name", "", Type::Gauge, {}}}), std::invalid_argument);
  EXPECT_THROW(render({Family{"ok", "", Type::Gauge, {Sample{{{"__x", "1"}}, 1}}}}), std::invalid_argument);
}

TEST(MetricsText, RoundTripThroughTheStrictParser) {
  auto parsed = parse(render(sample()));
  ASSERT_TRUE(parsed) << parsed.error().str();
  ASSERT_EQ(parsed->size(), 3u);
  EXPECT_EQ((*parsed)[0].samples[1].labels.at("verdict"), "a\"b\\c");
  EXPECT_EQ((*parsed)[0].samples[0].value, 9007199254740991.0);
  EXPECT_EQ((*parsed)[1].type, Type::Gauge);
}

TEST(MetricsText, ParserRejectsMalformedInput) {
  const char* bad[] = {
      "x_total 1\n",                                                     // sample before TYPE
      "# TYPE a_total counter\n# TYPE a_total counter\n",                // duplicate TYPE
      "# TYPE a_total counter\na_total 1\na_total 2\n",                  // duplicate series
      "# TYPE a counter\n",                                              // counter without _total
      "# TYPE a gauge\na one\n",                                         // bad value
      "# TYPE a gauge\nthis is not a metric line {\n",                   // garbage
      "# TYPE a gauge\n# TYPE b gauge\nb 1\na 1\n",                      // not contiguous
  };
  for (const char* t : bad) {
    auto r = parse(t);
    EXPECT_FALSE(r) << t;
    if (!r) {
      EXPECT_NE(r.error().str().find("line "), std::string::npos) << r.error().str();
    }
  }
}

std::string httpGet(uint16_t port, const std::string& request) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) return "connect failed";
  send(fd, request.data(), request.size(), MSG_NOSIGNAL);
  timeval tv{3, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = recv(fd, buf, sizeof(buf), 0)) > 0) out.append(buf, static_cast<size_t>(n));
  close(fd);
  return out;
}

TEST(MetricsHttp, ServesMetricsAndRefusesTheRest) {
  HttpEndpoint ep("127.0.0.1:0", [] { return render(sample()); });
  ASSERT_TRUE(ep.start());
  ASSERT_NE(ep.port(), 0);
  auto ok = httpGet(ep.port(), "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(ok.rfind("HTTP/1.1 200", 0), 0u) << ok;
  EXPECT_NE(ok.find("Content-Type: text/plain; version=0.0.4"), std::string::npos);
  EXPECT_NE(ok.find("microseg_policy_generation 3"), std::string::npos);
  EXPECT_EQ(httpGet(ep.port(), "GET /other HTTP/1.1\r\n\r\n").rfind("HTTP/1.1 404", 0), 0u);
  EXPECT_EQ(httpGet(ep.port(), "POST /metrics HTTP/1.1\r\n\r\n").rfind("HTTP/1.1 405", 0), 0u);
  EXPECT_EQ(httpGet(ep.port(), "garbage\r\n\r\n").rfind("HTTP/1.1 400", 0), 0u);
  EXPECT_EQ(httpGet(ep.port(), "GET /metrics HTTP/1.1\r\nX: " + std::string(9000, 'a')).rfind("HTTP/1.1 431", 0), 0u);
}

TEST(MetricsHttp, SilentClientDoesNotBlockAScrape) {
  HttpEndpoint ep("127.0.0.1:0", [] { return std::string("# TYPE a gauge\na 1\n"); });
  ASSERT_TRUE(ep.start());
  int idle = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(ep.port());
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(connect(idle, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
  const auto t0 = std::chrono::steady_clock::now();
  auto r = httpGet(ep.port(), "GET /metrics HTTP/1.0\r\n\r\n");
  EXPECT_EQ(r.rfind("HTTP/1.1 200", 0), 0u) << r;
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(500));
  close(idle);
}

TEST(MetricsHttp, BadAddressIsAClearError) {
  for (const char* addr : {"nonsense", "127.0.0.1", "host:9464", "127.0.0.1:99999", "[::1"}) {
    HttpEndpoint ep(addr, [] { return std::string(); });
    auto r = ep.start();
    ASSERT_FALSE(r) << addr;
    EXPECT_NE(r.error().str().find(addr), std::string::npos) << r.error().str();
  }
}

}  // namespace
}  // namespace microseg::metrics
