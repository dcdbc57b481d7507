// The start-up probe's table (datapath/probe.h) and its message: every
// feature is named with the Linux version that has it, and the features the
// datapath is known to need are in it. (Whether this kernel has them, and
// whether the table covers every helper the programs call: e2e,
// datapath_contract_test.cpp.)
#include <gtest/gtest.h>

#include <regex>
#include <set>

#include "datapath/probe.h"

namespace microseg::datapath {
namespace {

using Kind = KernelFeature::Kind;

TEST(ProbeTable, EveryFeatureHasANameAndAVersion) {
  std::set<std::string> names;
  const std::regex version(R"(\d+\.\d+)");
  for (const auto& f : kernelFeatures()) {
    EXPECT_FALSE(f.name.empty());
    EXPECT_TRUE(names.insert(f.name).second) << "named twice: " << f.name;
    EXPECT_TRUE(std::regex_match(f.since, version)) << f.name << ": " << f.since;
  }
}

TEST(ProbeTable, HasWhatTheDatapathNeeds) {
  auto has = [](auto pred) {
    for (const auto& f : kernelFeatures()) {
      if (pred(f)) return true;
    }
    return false;
  };
  auto helperIn = [&](bpf_func_id id, bpf_prog_type type) {
    return has([&](const KernelFeature& f) { return f.kind == Kind::Helper && f.helper == id && f.progType == type; });
  };
  EXPECT_TRUE(has([](const KernelFeature& f) { return f.kind == Kind::CgroupLink; }));
  EXPECT_TRUE(has([](const KernelFeature& f) {
    return f.kind == Kind::File && std::string(f.what) == "/sys/kernel/btf/vmlinux";
  }));
  EXPECT_TRUE(has([](const KernelFeature& f) {
    return f.kind == Kind::Kfunc && std::string(f.what) == "bpf_rdonly_cast" && std::string(f.since) == "6.2";
  }));
  EXPECT_TRUE(has([](const KernelFeature& f) {
    return f.kind == Kind::BtfMember && std::string(f.what) == "cgroup" && std::string(f.member) == "ancestors";
  }));
  EXPECT_TRUE(has([](const KernelFeature& f) { return f.kind == Kind::MapType && f.mapType == BPF_MAP_TYPE_RINGBUF; }));
  EXPECT_TRUE(has([](const KernelFeature& f) { return f.kind == Kind::MapType && f.mapType == BPF_MAP_TYPE_SK_STORAGE; }));
  for (auto type : {BPF_PROG_TYPE_CGROUP_SKB, BPF_PROG_TYPE_CGROUP_SOCK_ADDR}) {
    EXPECT_TRUE(helperIn(BPF_FUNC_sk_lookup_tcp, type));
    EXPECT_TRUE(helperIn(BPF_FUNC_get_socket_cookie, type));
    EXPECT_TRUE(helperIn(BPF_FUNC_sk_storage_get, type));
    EXPECT_TRUE(helperIn(BPF_FUNC_ktime_get_coarse_ns, type));
    EXPECT_TRUE(helperIn(BPF_FUNC_loop, type));
    EXPECT_TRUE(helperIn(BPF_FUNC_ringbuf_reserve, type));
  }
}

TEST(ProbeTable, TheMessageNamesTheFeatureAndTheVersion) {
  for (const auto& f : kernelFeatures()) {
    if (f.kind == Kind::Kfunc) {
      EXPECT_EQ(missingFeatureLine(f), "kernel lacks the bpf_rdonly_cast() kfunc (a socket's creator cgroup) (Linux >= 6.2)");
    }
  }
  EXPECT_EQ(kExitKernelMissing, 3);
}

TEST(ProbeTable, TheLoadErrorIsRecognisedAsAMissingFeature) {
  ProbeReport report;
  report.checked = kernelFeatures().size();
  report.missing = {&kernelFeatures().front(), &kernelFeatures().back()};
  const Error e = kernelMissingError(report);
  EXPECT_TRUE(isKernelMissing(e));
  EXPECT_EQ(e.str(), "probe kernel features of 'running kernel' failed: 2 of " + std::to_string(report.checked) +
                         " features missing (listed above); nothing was attached");
  EXPECT_FALSE(isKernelMissing(sysError("open cgroup root", "/sys/fs/cgroup/x", ENOENT)));
}

}  // namespace
}  // namespace microseg::datapath
