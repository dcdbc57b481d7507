// The one table of names (common/names.h): every value bpf/abi.h defines has
// the name the flow log, the metrics and the CLI have always printed, and
// parsing gives the value back.
#include <gtest/gtest.h>

#include "bpf/abi.h"
#include "common/names.h"

namespace microseg {
namespace {

TEST(Names, Modes) {
  EXPECT_STREQ(modeName(MS_MODE_MONITOR), "monitor");
  EXPECT_STREQ(modeName(MS_MODE_ENFORCE), "enforce");
  EXPECT_STREQ(modeName(MS_MODE_INHERIT), "inherit");
  for (uint32_t m : {MS_MODE_MONITOR, MS_MODE_ENFORCE, MS_MODE_INHERIT}) EXPECT_EQ(parseMode(modeName(m)), m);
  EXPECT_FALSE(parseMode("off"));
  EXPECT_FALSE(parseMode("Enforce"));
}

TEST(Names, Verdicts) {
  EXPECT_STREQ(verdictName(MS_VERDICT_ALLOW), "allow");
  EXPECT_STREQ(verdictName(MS_VERDICT_DENY), "deny");
  EXPECT_STREQ(verdictName(MS_VERDICT_AUDIT), "audit");
  EXPECT_STREQ(verdictName(200), "unknown");
  for (uint8_t v : {MS_VERDICT_ALLOW, MS_VERDICT_DENY, MS_VERDICT_AUDIT}) EXPECT_EQ(parseVerdict(verdictName(v)), v);
  EXPECT_FALSE(parseVerdict("unknown"));
}

TEST(Names, ReasonsDirectionsHooksProtocols) {
  EXPECT_STREQ(reasonName(MS_REASON_RULE), "rule");
  EXPECT_STREQ(reasonName(MS_REASON_DEFAULT_DENY), "default-deny");
  EXPECT_STREQ(reasonName(MS_REASON_UDP_ANSWER), "udp-answer");
  EXPECT_STREQ(reasonName(MS_REASON_NOT_ISOLATED), "not-isolated");
  EXPECT_STREQ(reasonName(MS_REASON_NO_POLICY), "no-policy");
  EXPECT_STREQ(reasonName(MS_REASON_PENDING), "pending-identity");
  EXPECT_STREQ(reasonName(99), "unknown");
  EXPECT_STREQ(directionName(MS_DIR_EGRESS), "egress");
  EXPECT_STREQ(directionName(MS_DIR_INGRESS), "ingress");
  EXPECT_EQ(parseDirection("ingress"), MS_DIR_INGRESS);
  EXPECT_EQ(parseDirection("egress"), MS_DIR_EGRESS);
  EXPECT_FALSE(parseDirection("both"));
  EXPECT_STREQ(hookName(MS_HOOK_CONNECT4), "connect4");
  EXPECT_STREQ(hookName(MS_HOOK_CONNECT6), "connect6");
  EXPECT_STREQ(hookName(MS_HOOK_SENDMSG4), "sendmsg4");
  EXPECT_STREQ(hookName(MS_HOOK_SENDMSG6), "sendmsg6");
  EXPECT_STREQ(hookName(MS_HOOK_INGRESS), "ingress");
  EXPECT_STREQ(hookName(0), "unknown");
  EXPECT_STREQ(protocolName(MS_PROTO_TCP), "tcp");
  EXPECT_STREQ(protocolName(MS_PROTO_UDP), "udp");
  EXPECT_STREQ(protocolName(1), "other");
  EXPECT_EQ(parseProtocol("TCP"), MS_PROTO_TCP);
  EXPECT_EQ(parseProtocol("udp"), MS_PROTO_UDP);
  EXPECT_FALSE(parseProtocol("icmp"));
}

TEST(Names, Commands) {
  EXPECT_STREQ(command::kStatus, "status");
  EXPECT_STREQ(command::kModeGet, "mode.get");
  EXPECT_STREQ(command::kModeSet, "mode.set");
  EXPECT_STREQ(command::kPolicyReload, "policy.reload");
  EXPECT_STREQ(command::kPolicyApply, "policy.apply");
  EXPECT_STREQ(command::kPolicyShow, "policy.show");
  EXPECT_STREQ(command::kPolicyDiff, "policy.diff");
  EXPECT_STREQ(command::kFlows, "flows");
  EXPECT_STREQ(command::kExplain, "explain");
  EXPECT_STREQ(command::kWorkloads, "workloads");
  EXPECT_STREQ(command::kGraph, "graph");
  EXPECT_STREQ(command::kUninstall, "uninstall");
  EXPECT_STREQ(command::kClusterStatus, "cluster.status");
  EXPECT_STREQ(command::kReach, "reach");
  EXPECT_STREQ(command::kSuggest, "suggest");
}

}  // namespace
}  // namespace microseg
