#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <cstring>

#include "flows/flow_record.h"
#include "flows/flow_store.h"

namespace microseg::flows {
namespace {

ms_addr v4(const char* s) {
  ms_addr a{};
  a.a[10] = 0xff;
  a.a[11] = 0xff;
  inet_pton(AF_INET, s, a.a + 12);
  return a;
}

TEST(FlowRecord, MappedAddressesPrintAsIpv4) {
  EXPECT_EQ(formatAddr(v4("127.0.0.1")), "127.0.0.1");
  ms_addr six{};
  inet_pton(AF_INET6, "::1", six.a);
  EXPECT_EQ(formatAddr(six), "::1");
}

TEST(FlowRecord, IsoTimeIsUtcWithMicroseconds) {
  EXPECT_EQ(isoTime(int64_t(1700000000) * 1000000000 + 123456789), "2023-11-14T22:13:20.123456Z");
}

TEST(FlowRecord, EventToJsonHasTheDocumentedFields) {
  identity::IdentityTable ids;
  ids.byWorkload["client-b"] = 257;
  ids.byWorkload["server"] = 258;
  ids.workloads[257] = {"client-b"};
  ids.workloads[258] = {"server"};
  std::map<uint64_t, std::string> paths{{42, "/client-b"}}, workloads{{42, "client-b"}};
  compiler::RuleRegistry rules;
  rules.idFor("other", policy::Direction::Ingress, 3);
  const uint32_t allowA = rules.idFor("allow-a", policy::Direction::Egress, 0);
  FlowContext ctx{&ids, &paths, &workloads, &rules, 0};

  ms_event e{};
  e.timestamp_ns = 1000;
  e.src_cgroup_id = 42;
  e.pid = 99;
  e.src_identity = 257;
  e.dst_identity = 258;
  e.dst_addr = v4("127.0.0.1");
  e.dst_port = htons(8080);
  e.protocol = MS_PROTO_TCP;
  e.verdict = MS_VERDICT_AUDIT;
  e.direction = MS_DIR_EGRESS;
  e.hook = MS_HOOK_CONNECT4;
  e.reason = MS_REASON_DEFAULT_DENY;
  std::strcpy(e.comm, "curl");
  auto j = eventToJson(e, ctx);
  EXPECT_EQ(j["verdict"], "audit");
  EXPECT_EQ(j["direction"], "egress");
  EXPECT_EQ(j["protocol"], "tcp");
  EXPECT_EQ(j["src"]["workload"], "client-b");
  EXPECT_EQ(j["src"]["identity"], 257);
  EXPECT_EQ(j["src"]["cgroup"], "/client-b");
  EXPECT_EQ(j["src"]["pid"], 99);
  EXPECT_EQ(j["src"]["comm"], "curl");
  EXPECT_EQ(j["dst"]["addr"], "127.0.0.1");
  EXPECT_EQ(j["dst"]["port"], 8080);
  EXPECT_EQ(j["dst"]["workload"], "server");
  EXPECT_EQ(j["rule"], "default-deny");
  EXPECT_TRUE(j.contains("time"));

  e.reason = MS_REASON_RULE;
  e.rule_id = allowA;
  e.verdict = MS_VERDICT_ALLOW;
  EXPECT_EQ(eventToJson(e, ctx)["rule"], "allow-a/0");
}

// A revocation record says what ended the connection and its age (null
// when the kernel had no stamp); other records have no such block.
TEST(FlowRecord, ARevocationRecordSaysWhatEndedItAndHowOldItWas) {
  identity::IdentityTable ids;
  std::map<uint64_t, std::string> paths, workloads;
  compiler::RuleRegistry rules;
  FlowContext ctx{&ids, &paths, &workloads, &rules, 0};
  FlowStore store(10);
  ms_event e{};
  e.src_identity = 257;
  e.dst_identity = 258;
  e.dst_port = htons(8080);
  e.protocol = MS_PROTO_TCP;
  e.direction = MS_DIR_EGRESS;
  e.reason = MS_REASON_DEFAULT_DENY;
  e.verdict = MS_VERDICT_REVOKED;
  const uint64_t id = store.add(e, 1000).id;
  store.setRevocation(id, "generation 12 (SIGHUP)", 5234567891);
  auto j = recordToJson(*store.find(id), 1, ctx);
  EXPECT_EQ(j["verdict"], "revoked");
  EXPECT_EQ(j["revocation"]["by"], "generation 12 (SIGHUP)");
  EXPECT_DOUBLE_EQ(j["revocation"]["connection_age_s"].get<double>(), 5.234);

  e.verdict = MS_VERDICT_WOULD_REVOKE;
  const uint64_t unknown = store.add(e, 2000).id;
  store.setRevocation(unknown, "grant 7 expired", -1);
  j = recordToJson(*store.find(unknown), 1, ctx);
  EXPECT_EQ(j["verdict"], "would-revoke");
  EXPECT_TRUE(j["revocation"]["connection_age_s"].is_null());

  e.verdict = MS_VERDICT_DENY;
  EXPECT_FALSE(recordToJson(store.add(e, 3000), 1, ctx).contains("revocation"));
}

// Any process may name itself any bytes (prctl(PR_SET_NAME)) and any cgroup
// may be named so: the record and the flow-log line still encode, with the
// bytes replaced (before, dump() threw type_error 316 and the daemon died).
TEST(FlowRecord, NonUtf8CommAndCgroupAreReplacedNotFatal) {
  identity::IdentityTable ids;
  std::map<uint64_t, std::string> paths{{42, "/client-b/\xff\xfejob"}}, workloads{{42, "client-b"}};
  compiler::RuleRegistry rules;
  FlowContext ctx{&ids, &paths, &workloads, &rules, 0};
  ms_event e{};
  e.src_cgroup_id = 42;
  e.pid = 7;
  e.dst_addr = v4("127.0.0.1");
  e.dst_port = htons(80);
  e.protocol = MS_PROTO_TCP;
  e.verdict = MS_VERDICT_DENY;
  e.reason = MS_REASON_DEFAULT_DENY;
  std::memcpy(e.comm, "ev\xc3il\x80\xff", 7);
  auto j = eventToJson(e, ctx);
  EXPECT_EQ(j["src"]["comm"], "ev\xef\xbf\xbdil\xef\xbf\xbd\xef\xbf\xbd");
  EXPECT_EQ(j["src"]["cgroup"], "/client-b/\xef\xbf\xbd\xef\xbf\xbdjob");
  EXPECT_NO_THROW((void)j.dump()) << "strict dump";

  // The flow log's line, and a comm the kernel cut in the middle of a character.
  FlowRecord r;
  r.key.verdict = MS_VERDICT_DENY;
  r.key.reason = MS_REASON_DEFAULT_DENY;
  r.srcCgroupId = 42;
  r.comm = "0123456789abcd\xe2\x82";  // 16 bytes: TASK_COMM_LEN cut a 3-byte character
  r.count = 3;
  std::string line;
  ASSERT_NO_THROW(line = recordLine(r, 3, ctx));
  ASSERT_EQ(line.back(), '\n');
  auto parsed = nlohmann::json::parse(line);
  EXPECT_EQ(parsed["src"]["comm"], "0123456789abcd\xef\xbf\xbd");
  EXPECT_EQ(parsed["src"]["cgroup"], "/client-b/\xef\xbf\xbd\xef\xbf\xbdjob");
  EXPECT_EQ(parsed["count"], 3);
}

}  // namespace
}  // namespace microseg::flows
