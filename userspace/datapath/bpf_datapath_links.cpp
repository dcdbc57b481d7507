// The programs' links and the pin dir: attaching (the wire identity's
// sender only while the node signs), adopting a pinned run's links,
// pinning, and taking it all down (bpf_datapath.h says when each runs).
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "datapath/bpf_datapath.h"
#include "datapath/bpf_object.h"
#include "datapath/map_writes.h"
#include "datapath/pin_dir.h"
#include "microseg.skel.h"

namespace microseg::datapath {

Result<void> BpfDatapath::activate() {
  std::vector<bpf_program*> progs;
  for (bpf_program* p : programs(skel_->obj)) {
    if (!attachedOnDemand(p)) progs.push_back(p);
  }
  if (adopted_) {
    for (bpf_program* p : progs) {
      const std::string path = pinDir_ + "/" + linkPinName(p);
      bpf_link* link = bpf_link__open(path.c_str());
      if (!link) return libbpfError("open pinned link", path, -errno);
      links_.emplace_back(link);
      // Atomic in the kernel: the hook never runs without a program.
      if (int rc = bpf_link__update_program(link, p); rc != 0) {
        return libbpfError("update program in pinned link", path, rc);
      }
    }
    // The on-demand programs' links the last run left: a signer keeps
    // signing, ages keep being stamped, until a sync says otherwise.
    if (auto r = adoptOnDemand(skel_->progs.ms_sockops, signerLink_); !r) return r;
    if (auto r = adoptOnDemand(skel_->progs.ms_established, agesLink_); !r) return r;
    if (agesLink_) agesWanted_ = true;
    spdlog::info("datapath: programs replaced in {} pinned links (never detached)",
                 links_.size() + (signerLink_ ? 1 : 0) + (agesLink_ ? 1 : 0));
    // A program or map the object no longer has: its pin goes (a link of
    // it is detached).
    if (int n = removeStray(pinDir_, pinnedSet()); n > 0) {
      spdlog::info("datapath: removed {} pinned objects this build does not have from {}", n, pinDir_);
    }
  } else {
    std::error_code ec;
    std::filesystem::create_directories(pinDir_, ec);
    if (ec) return Error{"create pin dir", pinDir_, ec.value(), {}};
    for (bpf_program* p : progs) {
      bpf_link* link = bpf_program__attach_cgroup(p, cgroupFd_.get());
      if (!link) {
        int e = errno;
        links_.clear();  // all or nothing
        return Error{"attach program",
                     std::string(bpf_program__name(p)) + "' to '" + options_.cgroupRoot, e, {}};
      }
      links_.emplace_back(link);
    }
    if (auto r = pin(progs); !r) return r;
  }
  activated_ = true;
  if (auto r = syncSigner(); !r) return r;
  if (auto r = setConnectionAges(agesWanted_); !r) return r;
  retireLegacy();
  return {};
}

Result<void> BpfDatapath::adoptOnDemand(bpf_program* p, LinkPtr& link) {
  const std::string path = pinDir_ + "/" + linkPinName(p);
  bpf_link* l = bpf_link__open(path.c_str());
  const int openErr = errno;
  if (l == nullptr) {
    if (openErr == ENOENT) return {};
    // Something is pinned there that cannot be adopted (not a link, or no
    // fd to open it with): one attached beside it would be a second one.
    // Fail closed: the pinned links keep enforcing.
    return Error{"open pinned link", path, openErr,
                 std::string("the ") + bpf_program__name(p) +
                     " link of the last run cannot be adopted; remove the pin or run `microsegd --cleanup`"};
  }
  link.reset(l);
  if (int rc = bpf_link__update_program(l, p); rc != 0) return libbpfError("update program in pinned link", path, rc);
  return {};
}

Result<void> BpfDatapath::syncOnDemand(bpf_program* p, LinkPtr& link, bool want, const char* what) {
  if (!activated_) return {};  // activate() calls again
  const std::string path = pinDir_ + "/" + linkPinName(p);
  if (want && !link) {
    bpf_link* l = bpf_program__attach_cgroup(p, cgroupFd_.get());
    if (!l) {
      return Error{"attach program", std::string(bpf_program__name(p)) + "' to '" + options_.cgroupRoot, errno, {}};
    }
    link.reset(l);
    ::unlink(path.c_str());
    if (int rc = bpf_link__pin(l, path.c_str()); rc != 0) {
      bpf_link__detach(l);
      link.reset();
      return libbpfError("pin link", path, rc);
    }
    spdlog::info("datapath: {} attached", what);
  } else if (!want && link) {
    bpf_link__detach(link.get());
    link.reset();
    ::unlink(path.c_str());
    spdlog::info("datapath: {} detached", what);
  }
  return {};
}

Result<void> BpfDatapath::syncSigner() {
  // The config says sign nothing already when it goes: a SYN in flight goes without.
  return syncOnDemand(skel_->progs.ms_sockops, signerLink_, config_.wire_key_id != 0,
                      "wire identity sender (SYNs to other nodes are signed while attached)");
}

Result<void> BpfDatapath::setConnectionAges(bool on) {
  agesWanted_ = on;
  return syncOnDemand(skel_->progs.ms_established, agesLink_, on,
                      "connection ages (ms_established stamps each TCP connection's establishment)");
}

PinnedSet BpfDatapath::pinnedSet() const {
  PinnedSet want;
  for (bpf_map* m : pinnedMaps(skel_->obj)) want.maps.emplace_back(bpf_map__name(m));
  for (bpf_program* p : programs(skel_->obj)) {
    (attachedOnDemand(p) ? want.optionalLinks : want.links).push_back(linkPinName(p));
  }
  return want;
}

Result<void> BpfDatapath::pin(const std::vector<bpf_program*>& progs) {
  // Pinned links keep enforcing when the daemon stops or crashes; pinned
  // maps are what a restarted daemon adopts. links_ are in `progs` order.
  for (size_t i = 0; i < links_.size() && i < progs.size(); i++) {
    const std::string path = pinDir_ + "/" + linkPinName(progs[i]);
    ::unlink(path.c_str());
    if (int rc = bpf_link__pin(links_[i].get(), path.c_str()); rc != 0) return libbpfError("pin link", path, rc);
  }
  for (bpf_map* m : pinnedMaps(skel_->obj)) {
    const std::string path = pinDir_ + "/" + bpf_map__name(m);
    ::unlink(path.c_str());
    if (int rc = bpf_map__pin(m, path.c_str()); rc != 0) return libbpfError("pin map", path, rc);
  }
  return {};
}

void BpfDatapath::retireLegacy() {
  for (const auto& d : legacyDirs_) {
    int n = removePinDir(d);
    spdlog::info("datapath: retired old pinned state {} ({} objects)", d, n);
  }
  legacyDirs_.clear();
}

void BpfDatapath::release() {
  // Closing our link fds does not detach pinned links.
  links_.clear();
  signerLink_.reset();
  agesLink_.reset();
  released_ = true;
}

void BpfDatapath::uninstall() {
  for (auto& l : links_) bpf_link__detach(l.get());
  links_.clear();
  for (LinkPtr* l : {&signerLink_, &agesLink_}) {
    if (*l) bpf_link__detach(l->get());
    l->reset();
  }
  int n = removePinDir(pinDir_);
  retireLegacy();
  if (::rmdir(options_.stateDir.c_str()) != 0 && errno != ENOENT) {
    spdlog::warn("datapath: state dir {} not removed: {}", options_.stateDir, std::strerror(errno));
  }
  spdlog::info("datapath: uninstalled: detached from {}, {} pinned objects removed",
               options_.cgroupRoot, n);
}

Result<int> BpfDatapath::cleanupStateDir(const std::string& stateDir) {
  std::error_code ec;
  if (!std::filesystem::exists(stateDir, ec)) return 0;
  int n = 0;
  std::vector<std::string> dirs;
  for (const auto& e : std::filesystem::directory_iterator(stateDir, ec)) {
    if (e.is_directory()) dirs.push_back(e.path().string());
  }
  for (const auto& d : dirs) n += removePinDir(d);
  if (::rmdir(stateDir.c_str()) != 0 && errno != ENOENT) return sysError("remove state dir", stateDir);
  return n;
}

}  // namespace microseg::datapath
