// microsegd's configuration file (daemon/config_file.h): every key read
// into DaemonConfig, every bad value a located error, and the same bounds
// as a policy file (size, nesting, aliases, regular files only).
#include <gtest/gtest.h>

#include <stdlib.h>
#include <sys/stat.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "daemon/config_file.h"

namespace microseg::daemon {
namespace {

std::string dump(const std::vector<policy::Diagnostic>& errors) {
  std::string s;
  for (const auto& e : errors) s += "  " + e.str() + "\n";
  return s;
}

class ConfigFile : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/microseg-config-test-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    path_ = dir_ + "/microseg.yaml";
  }
  void TearDown() override {
    std::error_code ec;
    if (!dir_.empty()) std::filesystem::remove_all(dir_, ec);
  }
  std::vector<policy::Diagnostic> load(const std::string& text, const policy::LoadLimits& limits = {}) {
    std::ofstream(path_) << text;
    return loadConfigFile(path_, cfg_, level_, limits);
  }
  // The one error `text` gives, as "LINE:COL: error: MESSAGE".
  std::string oneError(const std::string& text) {
    const auto errs = load(text);
    if (errs.size() != 1) return "errors: " + std::to_string(errs.size()) + "\n" + dump(errs);
    return errs[0].str().substr(path_.size() + 1);
  }
  std::string dir_, path_;
  DaemonConfig cfg_;
  std::string level_;
};

TEST_F(ConfigFile, EveryKeyIsRead) {
  const auto errs = load(
      "# the packaged example's keys, and the rest\n"
      "cgroupRoot: /sys/fs/cgroup/unified/microseg\n"
      "policy: [/etc/microseg/policies, /etc/microseg/extra.yaml]\n"
      "mode: enforce\n"
      "socket: /run/m.sock\n"
      "socketGroup: \"123\"\n"
      "stateDir: /sys/fs/bpf/m\n"
      "flowLog: '-'\n"
      "logAllowed: true\n"
      "answerTtlSeconds: 45\n"
      "defaultEnforcement: selected\n"
      "logLevel: debug\n"
      "rescanIntervalMs: 250\n"
      "metricsListen: 127.0.0.1:9464\n"
      "flowStoreSize: 5000\n"
      "dataDir: /var/lib/m\n"
      "etcdEndpoints: [http://127.0.0.1:2379, unix:///run/etcd.sock]\n"
      "nodeName: node-a\n"
      "nodeAddresses: [10.0.0.1, fd00::1]\n"
      "clusterPrefix: /fleet\n"
      "etcdCacert: /etc/m/ca.pem\n"
      "etcdCert: /etc/m/c.pem\n"
      "etcdKey: /etc/m/k.pem\n"
      "nodeTtl: 45\n"
      "wireIdentity: off\n");
  ASSERT_TRUE(errs.empty()) << dump(errs);
  EXPECT_FALSE(cfg_.cluster.wireIdentity);
  EXPECT_EQ(cfg_.dataDir, "/var/lib/m");
  EXPECT_EQ(cfg_.cluster.etcdEndpoints,
            (std::vector<std::string>{"http://127.0.0.1:2379", "unix:///run/etcd.sock"}));
  EXPECT_EQ(cfg_.cluster.nodeName, "node-a");
  EXPECT_EQ(cfg_.cluster.nodeAddresses, (std::vector<std::string>{"10.0.0.1", "fd00::1"}));
  EXPECT_EQ(cfg_.cluster.prefix, "/fleet");
  EXPECT_EQ(cfg_.cluster.etcdCaCert, "/etc/m/ca.pem");
  EXPECT_EQ(cfg_.cluster.etcdCert, "/etc/m/c.pem");
  EXPECT_EQ(cfg_.cluster.etcdKey, "/etc/m/k.pem");
  EXPECT_EQ(cfg_.cluster.nodeTtlSeconds, 45u);
  EXPECT_EQ(cfg_.cgroupRoot, "/sys/fs/cgroup/unified/microseg");
  EXPECT_EQ(cfg_.policyPaths, (std::vector<std::string>{"/etc/microseg/policies", "/etc/microseg/extra.yaml"}));
  EXPECT_EQ(cfg_.mode, MS_MODE_ENFORCE);
  EXPECT_EQ(cfg_.socketPath, "/run/m.sock");
  EXPECT_EQ(cfg_.socketGroup, 123u);
  EXPECT_EQ(cfg_.stateDir, "/sys/fs/bpf/m");
  EXPECT_EQ(cfg_.flowLog, "-");
  EXPECT_TRUE(cfg_.logAllowed);
  EXPECT_EQ(cfg_.answerTtlSeconds, 45u);
  EXPECT_EQ(cfg_.defaultEnforcement, compiler::DefaultEnforcement::Selected);
  EXPECT_EQ(level_, "debug");
  EXPECT_EQ(cfg_.rescanIntervalMs, 250u);
  EXPECT_EQ(cfg_.metricsListen, "127.0.0.1:9464");
  EXPECT_EQ(cfg_.flowStoreSize, 5000u);
}

TEST_F(ConfigFile, ThePackagedExampleIsValid) {
  const auto errs = loadConfigFile(std::string(MS_SOURCE_DIR) + "/packaging/microseg.yaml", cfg_, level_);
  EXPECT_TRUE(errs.empty()) << dump(errs);
}

TEST_F(ConfigFile, WireIdentityIsOnUnlessTurnedOff) {
  ASSERT_TRUE(load("etcdEndpoints: http://127.0.0.1:2379\n").empty());
  EXPECT_TRUE(cfg_.cluster.wireIdentity);
  ASSERT_TRUE(load("wireIdentity: off\n").empty());
  EXPECT_FALSE(cfg_.cluster.wireIdentity);
  ASSERT_TRUE(load("wireIdentity: on\n").empty());
  EXPECT_TRUE(cfg_.cluster.wireIdentity);
}

TEST_F(ConfigFile, APolicyPathAloneAndAnEmptyFile) {
  ASSERT_TRUE(load("policy: /p.yaml\n").empty());
  EXPECT_EQ(cfg_.policyPaths, (std::vector<std::string>{"/p.yaml"}));
  EXPECT_TRUE(load("").empty());
  EXPECT_TRUE(load("# nothing set\n").empty());
}

TEST_F(ConfigFile, BadValuesAreLocated) {
  EXPECT_EQ(oneError("mode: enforce\nmodes: monitor\n"),
            "2:1: error: unknown setting 'modes' (known: answerTtlSeconds, cgroupRoot, clusterPrefix, dataDir, "
            "defaultEnforcement, edgeRetention, etcdCacert, etcdCert, etcdEndpoints, etcdKey, flowLog, flowStoreSize, "
            "fqdnMaxTtl, fqdnMinTtl, logAllowed, logLevel, maxGrant, metricsListen, mode, nodeAddresses, nodeName, "
            "nodeTtl, policy, "
            "rescanIntervalMs, revokeEstablished, socket, socketGroup, stateDir, wireIdentity)");
  EXPECT_EQ(oneError("mode: on\n"), "1:7: error: mode: 'on' is not one of enforce, monitor");
  EXPECT_EQ(oneError("mode: monitor\nmode: enforce\n"), "2:1: error: duplicate key 'mode'");
  EXPECT_EQ(oneError("socket: [a]\n"), "1:9: error: socket: must be a string");
  EXPECT_EQ(oneError("socket:\n"), "1:1: error: socket: must be a string");
  EXPECT_EQ(oneError("answerTtlSeconds: 0\n"), "1:19: error: answerTtlSeconds: 0 is out of range (1-3600)");
  EXPECT_EQ(oneError("flowStoreSize: 10000001\n"), "1:16: error: flowStoreSize: 10000001 is out of range (1-10000000)");
  EXPECT_EQ(oneError("rescanIntervalMs: \"500\"\n"),
            "1:19: error: rescanIntervalMs: must be an integer (decimal digits)");
  EXPECT_EQ(oneError("logLevel: loud\n"), "1:11: error: logLevel: 'loud' is not one of debug, error, info, trace, warn");
  EXPECT_EQ(oneError("wireIdentity: true\n"), "1:15: error: wireIdentity: 'true' is not one of off, on");
  EXPECT_EQ(oneError("logAllowed: yes\n"), "1:13: error: logAllowed: 'yes' is not one of false, true");
  EXPECT_EQ(oneError("defaultEnforcement: some\n"),
            "1:21: error: defaultEnforcement: 'some' is not one of always, selected");
  EXPECT_EQ(oneError("socketGroup: no-such-group-here\n"), "1:14: error: socketGroup: no group named 'no-such-group-here'");
  EXPECT_EQ(oneError("- a\n- b\n"), "1:1: error: configuration must be a mapping of settings");
  EXPECT_EQ(oneError("mode: [\n"), "2:1: error: YAML syntax: did not find expected node content while parsing a flow node");
}

TEST_F(ConfigFile, IntegersAreDecimalDigits) {
  // yaml-cpp read these as numbers; a reader of the file would not.
  EXPECT_EQ(oneError("answerTtlSeconds: +30\n"), "1:19: error: answerTtlSeconds: must be an integer (decimal digits)");
  EXPECT_EQ(oneError("answerTtlSeconds: 0x1e\n"), "1:19: error: answerTtlSeconds: must be an integer (decimal digits)");
  EXPECT_EQ(oneError("answerTtlSeconds: 030\n"),
            "1:19: error: answerTtlSeconds: must be an integer (decimal digits, no leading zero)");
  EXPECT_EQ(oneError("answerTtlSeconds: -5\n"), "1:19: error: answerTtlSeconds: must be an integer (decimal digits)");
  EXPECT_EQ(oneError("answerTtlSeconds: 99999999999999999999\n"),
            "1:19: error: answerTtlSeconds: must be an integer (decimal digits)");
  EXPECT_EQ(oneError("socketGroup: \"99999999999\"\n"), "1:14: error: socketGroup: no group named '99999999999'");
}

TEST_F(ConfigFile, ControlCharactersAreRefused) {
  EXPECT_EQ(oneError("stateDir: \"/sys/fs/bpf/a\\0b\"\n"),
            "1:11: error: stateDir: contains a control character (\\x00 at byte 13)");
  EXPECT_EQ(oneError("\"mo\\x01de\": x\n"),
            "1:1: error: unknown setting 'mo\\x01de' (known: answerTtlSeconds, cgroupRoot, clusterPrefix, "
            "dataDir, defaultEnforcement, edgeRetention, etcdCacert, etcdCert, etcdEndpoints, etcdKey, flowLog, flowStoreSize, "
            "fqdnMaxTtl, fqdnMinTtl, logAllowed, logLevel, maxGrant, metricsListen, mode, nodeAddresses, nodeName, "
            "nodeTtl, policy, rescanIntervalMs, "
            "revokeEstablished, socket, socketGroup, stateDir, wireIdentity)");
}

TEST_F(ConfigFile, MaxGrantIsADuration) {
  EXPECT_TRUE(load("maxGrant: 15m\n").empty());
  EXPECT_EQ(cfg_.maxGrantSeconds, 900);
  EXPECT_EQ(oneError("maxGrant: 5x\n"),
            "1:11: error: maxGrant: duration '5x' is not a whole number of seconds, minutes or hours (30s, 15m, 8h)");
}

TEST_F(ConfigFile, RevokeEstablishedIsNeverOrOnChange) {
  EXPECT_FALSE(cfg_.revokeOnChange) << "the default: never";
  EXPECT_TRUE(load("revokeEstablished: on-change\n").empty());
  EXPECT_TRUE(cfg_.revokeOnChange);
  EXPECT_TRUE(load("revokeEstablished: never\n").empty());
  EXPECT_FALSE(cfg_.revokeOnChange);
  EXPECT_EQ(oneError("revokeEstablished: always\n"),
            "1:20: error: revokeEstablished: 'always' is not one of never, on-change");
}

TEST_F(ConfigFile, EdgeRetentionIsADurationInDaysToo) {
  EXPECT_EQ(cfg_.edgeRetentionSeconds, 7 * 86400) << "the default";
  EXPECT_TRUE(load("edgeRetention: 2d\n").empty());
  EXPECT_EQ(cfg_.edgeRetentionSeconds, 2 * 86400);
  EXPECT_TRUE(load("edgeRetention: 90m\n").empty());
  EXPECT_EQ(cfg_.edgeRetentionSeconds, 90 * 60);
  EXPECT_EQ(oneError("edgeRetention: 0d\n"), "1:16: error: edgeRetention: duration '0d' is zero");
  EXPECT_EQ(oneError("edgeRetention: 1w\n"),
            "1:16: error: edgeRetention: duration '1w' is not a whole number of seconds, minutes, hours or days "
            "(30s, 15m, 8h, 7d)");
}

TEST_F(ConfigFile, OneDocumentOnly) {
  EXPECT_EQ(oneError("mode: enforce\n---\nmode: monitor\n"),
            "3:1: error: configuration must be one YAML document (a second one starts here)");
}

TEST_F(ConfigFile, TheBoundsOfAPolicyFile) {
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(oneError("policy: " + std::string(100000, '[') + "\n"),
            "1:72: error: YAML limit: nesting deeper than 64 levels of collections");
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(500));
  std::string laughs = "a: &a [x, x, x, x, x, x, x, x, x, x]\n";
  for (char c = 'b'; c <= 'h'; c++) {
    laughs += std::string(1, c) + ": &" + c + " [";
    for (int i = 0; i < 10; i++) laughs += std::string(i ? ", *" : "*") + char(c - 1);
    laughs += "]\n";
  }
  const auto errs = load(laughs);
  ASSERT_EQ(errs.size(), 1u) << dump(errs);
  EXPECT_NE(errs[0].message.find("YAML limit: alias"), std::string::npos) << errs[0].str();
  policy::LoadLimits small;
  small.maxFileBytes = 10;
  const auto big = load("mode: enforce\n", small);
  ASSERT_EQ(big.size(), 1u) << dump(big);
  EXPECT_EQ(big[0].str(), path_ + ": error: 14 bytes: over the size limit of 10 bytes");
}

TEST_F(ConfigFile, OnlyARegularFile) {
  const std::string fifo = dir_ + "/fifo.yaml";
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  auto errs = loadConfigFile(fifo, cfg_, level_);
  ASSERT_EQ(errs.size(), 1u) << dump(errs);
  EXPECT_EQ(errs[0].str(), fifo + ": error: not a regular file (a FIFO): only regular files are read");
  errs = loadConfigFile(dir_ + "/missing.yaml", cfg_, level_);
  ASSERT_EQ(errs.size(), 1u) << dump(errs);
  EXPECT_EQ(errs[0].str(), dir_ + "/missing.yaml: error: cannot open for reading: No such file or directory");
}

}  // namespace
}  // namespace microseg::daemon
