// The datapath's contract with the BPF object and the kernel, checked on
// the real ones: what is pinned is what the object has (its maps but the
// per-run ones, a link per program), and the start-up probe knows every
// helper and kfunc the programs call and finds them all on this kernel.
#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <gtest/gtest.h>
#include <linux/bpf.h>
#include <unistd.h>

#include <filesystem>
#include <memory>
#include <set>

#include "bpf/abi.h"
#include "datapath/probe.h"
#include "harness.h"
#include "microseg.skel.h"
#include "policies.h"

namespace microseg::e2e {
namespace {

struct SkelDeleter {
  void operator()(microseg_bpf* s) const { microseg_bpf__destroy(s); }
};

// The object as built (opened, not loaded: nothing reaches the kernel).
std::unique_ptr<microseg_bpf, SkelDeleter> openObject() { return std::unique_ptr<microseg_bpf, SkelDeleter>(microseg_bpf__open()); }

TEST(DatapathContract, PinnedStateIsEveryMapAndProgramOfTheObject) {
  auto skel = openObject();
  ASSERT_TRUE(skel);
  // What the object has, read here with libbpf alone. The maps tagged
  // MS_PER_RUN (rule hits: rule ids are numbered per run; scratch space)
  // belong to one run and are never pinned.
  std::set<std::string> perRun;
  const btf* b = bpf_object__btf(skel->obj);
  ASSERT_NE(b, nullptr);
  for (uint32_t id = 1; id < btf__type_cnt(b); id++) {
    const btf_type* t = btf__type_by_id(b, id);
    if (!btf_is_decl_tag(t) || std::string(btf__name_by_offset(b, t->name_off)) != "microseg:per_run") continue;
    perRun.insert(btf__name_by_offset(b, btf__type_by_id(b, t->type)->name_off));
  }
  EXPECT_TRUE(perRun.count("ms_rule_hits")) << "the object's per-run tags were not read";
  std::set<std::string> want;
  bpf_map* m = nullptr;
  bpf_object__for_each_map(m, skel->obj) {
    if (!bpf_map__is_internal(m) && !perRun.count(bpf_map__name(m))) want.insert(bpf_map__name(m));
  }
  bpf_program* p = nullptr;
  // The wire identity's sender (sockops) is attached and pinned only while
  // the node signs (cluster mode): never here.
  bpf_object__for_each_program(p, skel->obj) {
    if (bpf_program__type(p) != BPF_PROG_TYPE_SOCK_OPS) want.insert(std::string("link_") + bpf_program__name(p));
  }
  ASSERT_GE(want.size(), 15u);

  CgroupTree tree;
  Daemon d(tree, allowPolicy("client-a", 5000), "monitor");
  ASSERT_TRUE(d.started()) << d.log();
  const std::string dir = d.stateDir() + "/abi-" + std::to_string(MS_ABI_VERSION);
  std::set<std::string> pinned;
  for (const auto& e : std::filesystem::directory_iterator(dir)) pinned.insert(e.path().filename().string());
  EXPECT_EQ(pinned, want);
  EXPECT_EQ(attachedPrograms(tree.root(), BPF_CGROUP_SOCK_OPS), 0) << "a node that signs nothing runs no sockops";
  EXPECT_EQ(attachedPrograms(tree.root(), BPF_CGROUP_INET4_CONNECT), 1);

  // A restart adopts all of it and leaves the same set.
  d.crash();
  ASSERT_TRUE(d.start()) << d.log();
  pinned.clear();
  for (const auto& e : std::filesystem::directory_iterator(dir)) pinned.insert(e.path().filename().string());
  EXPECT_EQ(pinned, want);
  EXPECT_NE(d.log().find("adopted pinned state"), std::string::npos) << d.log();
}

TEST(DatapathContract, ProbeKnowsEveryHelperAndKfuncTheProgramsCall) {
  auto skel = openObject();
  ASSERT_TRUE(skel);
  const auto& features = datapath::kernelFeatures();
  auto known = [&](bpf_prog_type type, int helper) {
    for (const auto& f : features) {
      if (f.kind == datapath::KernelFeature::Kind::Helper && f.progType == type && f.helper == helper) return true;
    }
    return false;
  };
  size_t calls = 0;
  bpf_program* p = nullptr;
  bpf_object__for_each_program(p, skel->obj) {
    const bpf_insn* insn = bpf_program__insns(p);
    for (size_t i = 0; i < bpf_program__insn_cnt(p); i++) {
      if (insn[i].code != (BPF_JMP | BPF_CALL) || insn[i].src_reg != 0) continue;  // a helper call
      calls++;
      EXPECT_TRUE(known(bpf_program__type(p), insn[i].imm))
          << bpf_program__name(p) << " calls helper " << insn[i].imm << ", which the probe does not check";
    }
  }
  EXPECT_GT(calls, 100u);
  // Kfuncs: the object's extern functions, read from the built ELF
  // (libbpf's open turns them into placeholders).
  std::unique_ptr<btf, void (*)(btf*)> b(btf__parse_elf(MS_BUILD_DIR "/bpf/microseg.bpf.o", nullptr), btf__free);
  ASSERT_EQ(libbpf_get_error(b.get()), 0);
  size_t kfuncs = 0;
  for (uint32_t id = 1; id < btf__type_cnt(b.get()); id++) {
    const btf_type* t = btf__type_by_id(b.get(), id);
    if (!btf_is_func(t) || btf_vlen(t) != BTF_FUNC_EXTERN) continue;
    kfuncs++;
    const std::string name = btf__name_by_offset(b.get(), t->name_off);
    bool checked = false;
    for (const auto& f : features) {
      checked |= f.kind == datapath::KernelFeature::Kind::Kfunc && name == f.what;
    }
    EXPECT_TRUE(checked) << "the programs call kfunc " << name << ", which the probe does not check";
  }
  EXPECT_GE(kfuncs, 1u);
}

TEST(DatapathContract, ProbePassesOnThisKernelAndTheDaemonSaysWhatItChecked) {
  const auto report = datapath::probeKernel();
  for (const auto* f : report.missing) ADD_FAILURE() << datapath::missingFeatureLine(*f);
  EXPECT_EQ(report.checked, datapath::kernelFeatures().size());

  CgroupTree tree;
  Daemon d(tree, allowPolicy("client-a", 5000), "monitor");
  ASSERT_TRUE(d.started()) << d.log();
  const std::string line = "kernel probe: all " + std::to_string(report.checked) + " features present: ";
  const std::string log = d.log();
  const auto at = log.find(line);
  ASSERT_NE(at, std::string::npos) << log;
  const std::string listed = log.substr(at, log.find('\n', at) - at);
  for (const auto& f : datapath::kernelFeatures()) {
    EXPECT_NE(listed.find(f.name), std::string::npos) << "the log line does not name " << f.name;
  }
}

TEST(DatapathContract, ProbeNamesAMissingFeatureAndItsVersion) {
  // A feature no kernel has, through the real probe path.
  datapath::KernelFeature absent{datapath::KernelFeature::Kind::Kfunc, "the bpf_no_such_kfunc() kfunc", "99.0",
                                 "bpf_no_such_kfunc"};
  const std::vector<datapath::KernelFeature> features = {absent};
  const auto report = datapath::probeKernel(features);
  ASSERT_EQ(report.missing.size(), 1u);
  EXPECT_EQ(datapath::missingFeatureLine(*report.missing[0]),
            "kernel lacks the bpf_no_such_kfunc() kfunc (Linux >= 99.0)");
}

}  // namespace
}  // namespace microseg::e2e
