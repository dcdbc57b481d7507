// `microseg policy push` against a real etcd (etcd_harness.h): what it
// stores is exactly the files given, read back through the daemons' own
// reader (cluster/policy_store.h fetchPolicy); an invalid set, a clash of
// names and a dry run write nothing. And `microseg cluster status` of a real
// microsegd in cluster mode following the pushed policy (--policy etcd).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "cluster/etcd_client.h"
#include "cluster/policy_store.h"
#include "cluster/records.h"
#include "etcd_harness.h"
#include "harness.h"
#include "policies.h"

namespace microseg::e2e {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

std::string readText(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

class ClusterPushTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(etcd_.ok());
    char tmpl[] = "/tmp/microseg-push.XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    trackTempDir(dir_);
    cluster::EtcdOptions o;
    o.endpoints = etcd_.endpoints();
    auto c = cluster::EtcdClient::connect(o);
    ASSERT_TRUE(c) << c.error().str();
    etcdClient_ = std::move(*c);
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
    untrackTempDir(dir_);
  }

  std::string write(const std::string& rel, const std::string& text) {
    const fs::path p = fs::path(dir_) / rel;
    fs::create_directories(p.parent_path());
    std::ofstream(p) << text;
    return p.string();
  }

  // MS_BUILD_DIR/microseg args... (no daemon: --socket points nowhere
  // unless the test gives one).
  CliResult cli(std::vector<std::string> args, const std::string& socket = "") {
    CliResult r;
    const std::string out = dir_ + "/cli.out", err = dir_ + "/cli.err";
    std::vector<std::string> full = {MS_BUILD_DIR "/microseg", "--socket",
                                     socket.empty() ? dir_ + "/no-daemon.sock" : socket};
    full.insert(full.end(), args.begin(), args.end());
    const pid_t pid = fork();
    if (pid == 0) {
      const int o = open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      const int e = open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      dup2(o, 1);
      dup2(e, 2);
      std::vector<char*> argv;
      for (auto& a : full) argv.push_back(a.data());
      argv.push_back(nullptr);
      execv(argv[0], argv.data());
      _exit(127);
    }
    if (pid < 0) return r;
    trackServer(pid);
    int st = 0;
    const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (waitpid(pid, &st, WNOHANG) == 0) {
      if (std::chrono::steady_clock::now() > end) {
        kill(pid, SIGKILL);
        waitpid(pid, &st, 0);
        r.err = "(microseg did not finish within 30 s)\n";
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    untrackServer(pid);
    if (WIFEXITED(st)) r.rc = WEXITSTATUS(st);
    r.out = readText(out);
    r.err += readText(err);
    return r;
  }

  std::vector<std::string> target() const { return {"--etcd-endpoints", etcd_.endpointList(), "--cluster-prefix", prefix_}; }
  CliResult push(std::vector<std::string> args) {
    for (const auto& a : target()) args.push_back(a);
    args.insert(args.begin(), {"policy", "push"});
    return cli(args);
  }

  // The store's revision: it moves with any write at all.
  int64_t storeRevision() {
    auto r = etcdClient_->get(keys_.policy());
    return r ? r->revision : -1;
  }
  std::optional<cluster::PolicyManifest> manifest(int64_t* modRevision = nullptr) {
    auto r = etcdClient_->get(keys_.policy());
    if (!r || r->kvs.empty()) return std::nullopt;
    if (modRevision != nullptr) *modRevision = r->kvs[0].modRevision;
    return cluster::decodeManifest(r->kvs[0].value);
  }
  std::set<std::string> blobKeys() {
    std::set<std::string> out;
    auto r = etcdClient_->get(keys_.blobs(), true);
    if (r) {
      for (const auto& kv : r->kvs) out.insert(kv.key.substr(keys_.blobs().size()));
    }
    return out;
  }

  EtcdCluster etcd_{1};
  std::unique_ptr<cluster::EtcdClient> etcdClient_;
  std::string dir_;
  const std::string prefix_ = "/test-push-" + std::to_string(getpid());
  const cluster::Keys keys_{prefix_};
};

std::string policyA(int port) { return allowPolicy("client-a", port); }

TEST_F(ClusterPushTest, ADirectoryIsStoredAsExactlyItsFilesInOneRevision) {
  write("set/workloads.yaml", workloads());
  const std::string pol =
      "apiVersion: microseg.dev/v1\nkind: Policy\nmetadata: {name: a-out}\nspec:\n"
      "  selector: {identity: client-a}\n  egress:\n    - to: [{identity: server}]\n"
      "      ports: [{port: 8080, protocol: TCP}]\n";
  write("set/policy.yml", pol);
  write("set/notes.txt", "not a policy file: not pushed\n");
  const int64_t before = storeRevision();

  CliResult r = push({dir_ + "/set", "-o", "json"});
  ASSERT_EQ(r.rc, 0) << r.err << r.out;
  const json out = json::parse(r.out);
  const int64_t rev = out.at("revision").get<int64_t>();
  // The chunks go first; the manifest's write (the set's revision) makes
  // the set visible at once.
  EXPECT_GT(rev, before);
  int64_t modRev = 0;
  auto m = manifest(&modRev);
  ASSERT_TRUE(m);
  EXPECT_EQ(modRev, rev);
  EXPECT_EQ(m->id, out.at("manifest_id").get<std::string>());
  EXPECT_NE(m->pushedBy.find('@'), std::string::npos) << m->pushedBy;
  EXPECT_EQ(out.at("pushed_by").get<std::string>(), m->pushedBy);
  auto files = cluster::fetchPolicy(*etcdClient_, keys_, *m);
  ASSERT_TRUE(files) << files.error().str();
  ASSERT_EQ(files->size(), 2u);
  EXPECT_EQ((*files)[0].name, "policy.yml");
  EXPECT_EQ((*files)[0].text, pol);
  EXPECT_EQ((*files)[1].name, "workloads.yaml");
  EXPECT_EQ((*files)[1].text, workloads());

  // The same set again: nothing written, the same revision said.
  const int64_t settled = storeRevision();
  r = push({dir_ + "/set"});
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.out.find("is stored already at revision " + std::to_string(rev)), std::string::npos) << r.out;
  EXPECT_EQ(storeRevision(), settled);

  // A change: a new revision, and the chunks only the old set named are gone.
  const auto oldBlobs = blobKeys();
  write("set/policy.yml", pol + "# edited\n");
  r = push({dir_ + "/set", "-o", "json"});
  ASSERT_EQ(r.rc, 0) << r.err;
  const json second = json::parse(r.out);
  EXPECT_GT(second.at("revision").get<int64_t>(), rev);
  EXPECT_EQ(second.at("previous_revision").get<int64_t>(), rev);
  EXPECT_EQ(second.at("chunks_collected").get<size_t>(), 1u);
  m = manifest();
  ASSERT_TRUE(m);
  std::set<std::string> named;
  for (const auto& f : m->files) named.insert(f.blobs.begin(), f.blobs.end());
  EXPECT_EQ(blobKeys(), named);
  EXPECT_NE(oldBlobs, named);
}

TEST_F(ClusterPushTest, AnInvalidSetExitsNonZeroNamesFileAndLineAndWritesNothing) {
  write("good/all.yaml", policyA(8080));
  ASSERT_EQ(push({dir_ + "/good"}).rc, 0);
  int64_t pushedAt = 0;
  ASSERT_TRUE(manifest(&pushedAt));
  const int64_t before = storeRevision();
  const auto blobsBefore = blobKeys();

  // Line 5 names a field no Workload has.
  write("bad/all.yaml", workloads());
  const std::string bad = write("bad/typo.yaml",
                                "apiVersion: microseg.dev/v1\nkind: Workload\nmetadata: {name: extra}\n"
                                "spec:\n  cgroupz: [\"x\"]\n");
  CliResult r = push({dir_ + "/bad"});
  EXPECT_EQ(r.rc, 1) << r.err;
  EXPECT_NE(r.err.find(bad + ":5"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("nothing pushed"), std::string::npos) << r.err;
  EXPECT_EQ(storeRevision(), before);
  EXPECT_EQ(blobKeys(), blobsBefore);

  // Two files of one name from two directories: both named, nothing written.
  write("other/all.yaml", policyA(9090));
  r = push({dir_ + "/good", dir_ + "/other"});
  EXPECT_EQ(r.rc, 1) << r.err;
  EXPECT_NE(r.err.find(dir_ + "/other/all.yaml: error: has the name of " + dir_ + "/good/all.yaml"),
            std::string::npos)
      << r.err;
  EXPECT_EQ(storeRevision(), before);

  // A set without a Workload would be refused by every node that manages one.
  write("empty/only-comments.yaml", "# nothing yet\n");
  r = push({dir_ + "/empty"});
  EXPECT_EQ(r.rc, 1) << r.err;
  EXPECT_NE(r.err.find("the set has no Workload"), std::string::npos) << r.err;
  EXPECT_EQ(storeRevision(), before);
  int64_t still = 0;
  ASSERT_TRUE(manifest(&still));
  EXPECT_EQ(still, pushedAt);
}

TEST_F(ClusterPushTest, ADryRunValidatesComparesAndWritesNothing) {
  write("set/all.yaml", policyA(8080));
  const int64_t before = storeRevision();
  CliResult r = push({dir_ + "/set", "--dry-run", "-o", "json"});
  ASSERT_EQ(r.rc, 0) << r.err;
  const json out = json::parse(r.out);
  EXPECT_TRUE(out.at("dry_run").get<bool>());
  EXPECT_EQ(out.at("revision").get<int64_t>(), 0);
  EXPECT_FALSE(out.at("manifest_id").get<std::string>().empty());
  EXPECT_EQ(storeRevision(), before);
  EXPECT_FALSE(manifest());
  EXPECT_TRUE(blobKeys().empty());

  // Its manifest id is the one a real push stores.
  ASSERT_EQ(push({dir_ + "/set"}).rc, 0);
  auto m = manifest();
  ASSERT_TRUE(m);
  EXPECT_EQ(m->id, out.at("manifest_id").get<std::string>());
  const int64_t after = storeRevision();
  r = push({dir_ + "/set", "--dry-run"});
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.out.find("etcd holds it already"), std::string::npos) << r.out;
  EXPECT_EQ(storeRevision(), after);
}

TEST_F(ClusterPushTest, NoEtcdKnownIsAUsageErrorAndAnUnreachableOneExitsThree) {
  write("set/all.yaml", policyA(8080));
  // No flag, no daemon to ask.
  CliResult r = cli({"policy", "push", dir_ + "/set"});
  EXPECT_EQ(r.rc, 2) << r.err;
  EXPECT_NE(r.err.find("no --etcd-endpoints given"), std::string::npos) << r.err;
  // Nothing listens on port 1. (The flag before the path: one endpoint
  // list per use, the path is not taken for a second endpoint.)
  r = cli({"policy", "push", "--etcd-endpoints", "http://127.0.0.1:1", dir_ + "/set", "--cluster-prefix", prefix_});
  EXPECT_EQ(r.rc, 3) << r.err;
  EXPECT_NE(r.err.find("nothing pushed"), std::string::npos) << r.err;
  EXPECT_FALSE(manifest());
}

// A real microsegd in cluster mode, following the pushed set.
class ClusterStatusTest : public ClusterPushTest {
 protected:
  void SetUp() override {
    ClusterPushTest::SetUp();
    if (HasFatalFailure()) return;
    for (const char* w : {"client-a", "client-b", "server"}) tree_.create(w);
    port_ = freePortBase();
  }
  void TearDown() override {
    if (HasFailure() && daemon_) std::cerr << "---- microsegd log ----\n" << daemon_->log().substr(0, 20000) << "\n";
    daemon_.reset();
    ClusterPushTest::TearDown();
  }
  CgroupTree tree_;
  int port_ = 0;
  std::unique_ptr<Daemon> daemon_;
};

TEST_F(ClusterStatusTest, ListsTheNodeWithThePushedRevisionItApplied) {
  write("set/all.yaml", policyA(port_));
  CliResult r = push({dir_ + "/set", "-o", "json"});
  ASSERT_EQ(r.rc, 0) << r.err;
  const int64_t rev = json::parse(r.out).at("revision").get<int64_t>();
  const std::string node = "push-node-" + std::to_string(getpid());
  daemon_ = std::make_unique<Daemon>(
      tree_, "", "monitor",
      std::vector<std::string>{"--policy", "etcd", "--etcd-endpoints", etcd_.endpointList(), "--cluster-prefix",
                               prefix_, "--node-name", node, "--data-dir", dir_ + "/data", "--node-ttl", "5"});
  ASSERT_TRUE(daemon_->started()) << daemon_->log();

  auto nodeRevision = [&](json* report = nullptr) -> int64_t {
    CliResult s = daemon_->cli({"cluster", "status", "-o", "json"});
    if (s.rc != 0) return -1;
    const json j = json::parse(s.out);
    if (report != nullptr) *report = j;
    for (const auto& n : j.value("nodes", json::array())) {
      if (n.value("name", "") == node) return n.value("policy_revision", int64_t{0});
    }
    return 0;
  };
  json report;
  bool seen = false;
  for (int i = 0; i < 100 && !seen; i++) {
    seen = nodeRevision(&report) == rev;
    if (!seen) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_TRUE(seen) << report.dump(2);
  EXPECT_EQ(report.at("this_node").at("node"), node);
  EXPECT_EQ(report.at("this_node").at("policy_source"), "etcd");
  EXPECT_EQ(report.at("this_node").at("policy_revision").get<int64_t>(), rev);
  ASSERT_FALSE(report.at("etcd").empty());
  EXPECT_TRUE(report.at("etcd")[0].at("healthy").get<bool>());
  bool clientA = false;
  for (const auto& i : report.at("identities")) {
    clientA = clientA || i.at("labels").value("app", "") == "client-a";
  }
  EXPECT_TRUE(clientA) << report.at("identities").dump();

  // The table says the same.
  CliResult table = daemon_->cli({"cluster", "status"});
  ASSERT_EQ(table.rc, 0) << table.err;
  EXPECT_NE(table.out.find(node), std::string::npos) << table.out;
  EXPECT_NE(table.out.find("etcd@" + std::to_string(rev)), std::string::npos) << table.out;

  // A new push (without endpoints: the daemon's own) reaches it.
  write("set/all.yaml", policyA(port_ + 1));
  r = cli({"policy", "push", dir_ + "/set", "-o", "json"}, daemon_->socketPath());
  ASSERT_EQ(r.rc, 0) << r.err;
  const json second = json::parse(r.out);
  EXPECT_EQ(second.at("prefix"), prefix_);
  const int64_t rev2 = second.at("revision").get<int64_t>();
  ASSERT_GT(rev2, rev);
  seen = false;
  for (int i = 0; i < 100 && !seen; i++) {
    seen = nodeRevision(&report) == rev2;
    if (!seen) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_TRUE(seen) << report.dump(2);

  // `policy apply` is refused on a node that follows the cluster.
  CliResult apply = daemon_->cli({"policy", "apply", dir_ + "/set"});
  EXPECT_EQ(apply.rc, 1);
  EXPECT_NE(apply.err.find("microseg policy push"), std::string::npos) << apply.err;
}

TEST_F(ClusterStatusTest, ASingleHostDaemonIsNotAClusterExitFive) {
  daemon_ = std::make_unique<Daemon>(tree_, policyA(port_), "monitor");
  ASSERT_TRUE(daemon_->started()) << daemon_->log();
  CliResult r = daemon_->cli({"cluster", "status"});
  EXPECT_EQ(r.rc, 5) << r.err;
  EXPECT_NE(r.err.find("is not in cluster mode"), std::string::npos) << r.err;
  EXPECT_TRUE(r.out.empty()) << r.out;
  // And a push with no --etcd-endpoints cannot take its endpoints.
  write("set/all.yaml", policyA(port_));
  r = cli({"policy", "push", dir_ + "/set"}, daemon_->socketPath());
  EXPECT_EQ(r.rc, 2) << r.err;
  EXPECT_NE(r.err.find("is not in cluster mode"), std::string::npos) << r.err;
}

// `policy apply --allow-empty`: the one way to unmanage every workload.
TEST_F(ClusterStatusTest, ApplyingASetWithoutWorkloadsTakesAllowEmpty) {
  daemon_ = std::make_unique<Daemon>(tree_, policyA(port_), "monitor");
  ASSERT_TRUE(daemon_->started()) << daemon_->log();
  const auto generation = [&] { return daemon_->status()->value("policy_generation", int64_t{-1}); };
  const int64_t before = generation();
  write("empty/none.yaml", "# no workloads here\n");
  CliResult r = daemon_->cli({"policy", "apply", dir_ + "/empty"});
  EXPECT_EQ(r.rc, 1) << r.err;
  EXPECT_NE(r.err.find("--allow-empty"), std::string::npos) << r.err;
  EXPECT_EQ(generation(), before);
  ASSERT_EQ(daemon_->status()->at("workloads").size(), 3u);

  r = daemon_->cli({"policy", "apply", "--allow-empty", dir_ + "/empty"});
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_GT(generation(), before);
  EXPECT_TRUE(daemon_->status()->at("workloads").empty());
}

}  // namespace
}  // namespace microseg::e2e
