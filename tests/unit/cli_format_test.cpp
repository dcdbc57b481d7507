// CLI table printer and status rendering (library microseg_cli).
#include <gtest/gtest.h>

#include <sstream>

#include "cli/format.h"
#include "cli/table.h"

namespace microseg::cli {
namespace {

using nlohmann::json;

TEST(Table, AlignsColumnsAndTrimsTrailingSpace) {
  Table t({"NAME", "IDENTITY", "LABELS"});
  t.add({"client-a", "256", "app=a"});
  t.add({"b", "65537", ""});
  EXPECT_EQ(t.str(),
            "NAME      IDENTITY  LABELS\n"
            "client-a  256       app=a\n"
            "b         65537\n");
}

TEST(Table, RightAlignedColumn) {
  Table t({"N", "COUNT"});
  t.align(1, Table::Align::Right);
  t.add({"x", "7"});
  t.add({"yy", "1234"});
  EXPECT_EQ(t.str(),
            "N   COUNT\n"
            "x       7\n"
            "yy   1234\n");
}

TEST(Table, HeaderOnlyAndRaggedRows) {
  Table empty({"A", "B"});
  EXPECT_TRUE(empty.empty());
  EXPECT_EQ(empty.str(), "A  B\n");
  Table t({"A", "B"});
  t.add({"only"});
  t.add({"1", "2", "dropped"});
  EXPECT_EQ(t.size(), 2u);
  EXPECT_EQ(t.str(),
            "A     B\n"
            "only\n"
            "1     2\n");
}

TEST(Table, Utf8CellsCountCharactersNotBytes) {
  Table t({"K", "V"});
  t.add({"caf\xc3\xa9", "1"});  // "café": 4 characters, 5 bytes
  t.add({"tea", "2"});
  EXPECT_EQ(t.str(),
            "K     V\n"
            "caf\xc3\xa9  1\n"
            "tea   2\n");
}

TEST(Table, ControlCharactersAreEscaped) {
  Table t({"NAME"});
  t.add({"evil\x1b[2J\nname"});
  EXPECT_EQ(t.str(), "NAME\nevil\\x1b[2J\\x0aname\n");
  EXPECT_EQ(sanitize("tab\there"), "tab\\x09here");
  EXPECT_EQ(sanitize("caf\xc3\xa9"), "caf\xc3\xa9");
  EXPECT_EQ(displayWidth("\xff\xfe"), 2u) << "invalid UTF-8 counts one per byte";
}

// A comm or a cgroup's name that is not UTF-8 reaches a table replaced, not
// as raw bytes (a lone 0x9b is CSI to some terminals), and the C1 controls
// as characters are escaped like the C0 ones.
TEST(Table, InvalidUtf8AndC1ControlsAreMadeSafe) {
  EXPECT_EQ(sanitize("a\xff\x9b" "b"), "a\xef\xbf\xbd\xef\xbf\xbd" "b");
  EXPECT_EQ(sanitize("x\xc2\x9b" "2J"), "x\\x9b2J") << "U+009B, CSI";
  EXPECT_EQ(sanitize("\xc2\xa0nbsp"), "\xc2\xa0nbsp") << "U+00A0 is printable";
  Table t({"COMM", "N"});
  t.add({"ev\xc3il", "1"});
  EXPECT_EQ(t.str(), "COMM   N\nev\xef\xbf\xbdil  1\n") << "the replacement is one column wide";
}

TEST(Format, Helpers) {
  EXPECT_EQ(formatLabels(json{{"app", "a"}, {"env", "prod"}}), "app=a,env=prod");
  EXPECT_EQ(formatLabels(json::object()), "-");
  EXPECT_EQ(formatList(json::array({"/a", "/b", "/c"})), "/a,/b,/c");
  EXPECT_EQ(formatList(json::array({"/a", "/b", "/c"}), 2), "/a,/b (+1 more)");
  EXPECT_EQ(formatList(json::array()), "-");
  EXPECT_EQ(formatDuration(12), "12s");
  EXPECT_EQ(formatDuration(125), "2m05s");
  EXPECT_EQ(formatDuration(3725), "1h02m05s");
  EXPECT_EQ(formatDuration(2 * 86400 + 3 * 3600 + 60), "2d03h01m");
  EXPECT_EQ(field(json{{"n", 3}}, "n"), "3");
  EXPECT_EQ(field(json{{"s", "x"}}, "s"), "x");
  EXPECT_EQ(field(json{{"s", "x"}}, "missing"), "-");
  EXPECT_EQ(field(json::array(), "x"), "-");
}

json sampleStatus() {
  return json::parse(R"({
    "version_string": "0.1.0", "mode": "enforce", "policy_generation": 3,
    "policy_paths": ["/etc/microseg/policies"], "cgroup_root": "/sys/fs/cgroup/unified/x",
    "state_dir": "/sys/fs/bpf/microseg", "uptime_seconds": 75,
    "workloads": [
      {"name": "client-a", "identity": 256, "labels": {"app": "a"}, "cgroups": ["/client-a"], "mode": "inherit"},
      {"name": "server", "identity": 65537, "labels": {"app": "srv", "tier": "be"},
       "cgroups": ["/s1", "/s2", "/s3", "/s4"], "mode": "monitor"}],
    "counters": {"allowed": 1, "denied": 2, "audited": 3, "events_lost": 0, "udp_answers": 0, "no_policy": 5},
    "policy": {"entries": 12, "rules": 3, "applied_at": "2026-11-22T10:00:00Z"},
    "last_reload": {"ok": true, "time": "2026-11-22T10:00:00Z", "trigger": "startup", "errors": []}
  })");
}

TEST(Format, Status) {
  std::ostringstream out;
  printStatus(sampleStatus(), out);
  EXPECT_EQ(out.str(),
            "mode:         enforce\n"
            "generation:   3 (3 rules, 12 map entries, applied 2026-11-22T10:00:00Z)\n"
            "policy paths: /etc/microseg/policies\n"
            "cgroup root:  /sys/fs/cgroup/unified/x\n"
            "uptime:       1m15s\n"
            "counters:     allowed 1, denied 2, audited 3, events lost 0, udp answers 0, no policy 5\n"
            "last reload:  ok at 2026-11-22T10:00:00Z by startup\n"
            "\n"
            "NAME      IDENTITY  MODE     CGROUPS                LABELS\n"
            "client-a       256  inherit  /client-a              app=a\n"
            "server       65537  monitor  /s1,/s2,/s3 (+1 more)  app=srv,tier=be\n");
}

TEST(Format, StatusWithRejectedReload) {
  json s = sampleStatus();
  s["last_reload"] = json{{"ok", false},
                          {"time", "T"},
                          {"trigger", "inotify"},
                          {"errors", {"p.yaml:7:22: error: port 70000 is out of range"}},
                          {"error_count", 1}};
  std::ostringstream out;
  printStatus(s, out);
  EXPECT_NE(out.str().find("last reload:  REJECTED at T by inotify (1 error; the previous policy stays in force)\n"
                           "  p.yaml:7:22: error: port 70000 is out of range\n"),
            std::string::npos)
      << out.str();
}

TEST(Format, StatusToleratesMissingFields) {
  std::ostringstream out;
  printStatus(json::object(), out);
  EXPECT_EQ(out.str(),
            "mode:         -\n"
            "generation:   -\n"
            "policy paths: -\n"
            "cgroup root:  -\n"
            "uptime:       -\n"
            "counters:     -\n"
            "last reload:  -\n"
            "\n"
            "no workloads defined\n");
}

}  // namespace
}  // namespace microseg::cli
