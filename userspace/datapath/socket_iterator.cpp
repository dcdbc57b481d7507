#include "datapath/socket_iterator.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <thread>

#include <spdlog/spdlog.h>

#include "common/fd.h"
#include "datapath/map_writes.h"
#include "revoke.skel.h"

namespace microseg::datapath {
namespace {

// The iterator's fd, created in the netns `path` (the kernel binds a
// socket iterator to the netns of the task that creates it): on a thread
// of its own, so no thread of the caller ever changes netns.
Result<UniqueFd> iteratorIn(bpf_link* link, const std::string& path) {
  if (path.empty()) {
    UniqueFd fd(bpf_iter_create(bpf_link__fd(link)));
    if (!fd) return Error{"create socket iterator", "", errno, {}};
    return fd;
  }
  UniqueFd ns(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!ns) return Error{"open network namespace", path, errno, {}};
  int fd = -1, err = 0;
  std::thread t([&] {
    if (::setns(ns.get(), CLONE_NEWNET) != 0) {
      err = errno;
      return;
    }
    fd = bpf_iter_create(bpf_link__fd(link));
    if (fd < 0) err = errno;
    // The thread ends here: its netns goes with it.
  });
  t.join();
  if (fd < 0) return Error{"create socket iterator in", path, err, {}};
  return UniqueFd(fd);
}

Result<void> readRecords(int fd, std::vector<ms_sock_record>& out) {
  std::vector<char> buf(64 * sizeof(ms_sock_record));
  size_t have = 0;
  for (;;) {
    const ssize_t n = ::read(fd, buf.data() + have, buf.size() - have);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Error{"read socket iterator", "", errno, {}};
    if (n == 0) break;
    have += static_cast<size_t>(n);
    size_t whole = have / sizeof(ms_sock_record);
    for (size_t i = 0; i < whole; i++) {
      ms_sock_record r;
      std::memcpy(&r, buf.data() + i * sizeof(r), sizeof(r));
      out.push_back(r);
    }
    const size_t used = whole * sizeof(ms_sock_record);
    std::memmove(buf.data(), buf.data() + used, have - used);
    have -= used;
  }
  if (have != 0) return Error{"read socket iterator", "", EPROTO, "a record was cut short"};
  return {};
}

}  // namespace

void SocketIterator::SkelDeleter::operator()(::revoke_bpf* s) const { revoke_bpf__destroy(s); }

SocketIterator::~SocketIterator() = default;

Result<std::unique_ptr<SocketIterator>> SocketIterator::open(const std::string& pinDir) {
  std::unique_ptr<SocketIterator> it(new SocketIterator());
  ::revoke_bpf* skel = revoke_bpf__open();
  if (!skel) return libbpfError("open BPF object", "revoke", -errno);
  it->skel_.reset(skel);
  // The datapath's per-socket state, for the ages: the iterators only read it.
  if (!pinDir.empty()) {
    const std::string path = pinDir + "/" + bpf_map__name(skel->maps.ms_sockets);
    UniqueFd fd(bpf_obj_get(path.c_str()));
    if (!fd) {
      spdlog::warn("revocation: {}: {}; connection ages are unknown", path, std::strerror(errno));
    } else if (int rc = bpf_map__reuse_fd(skel->maps.ms_sockets, fd.get()); rc != 0) {
      spdlog::warn("revocation: {}: {}; connection ages are unknown", path, std::strerror(-rc));
    }
  }
  if (int rc = revoke_bpf__load(skel); rc != 0) {
    return Error{"load BPF programs", "revoke", rc < 0 ? -rc : errno,
                 "revoking connections needs socket iterators and bpf_sock_destroy() (Linux >= 6.5)"};
  }
  return it;
}

Result<std::vector<ms_sock_record>> SocketIterator::list(const std::string& netnsPath) {
  std::lock_guard<std::mutex> lock(mu_);
  return run(false, netnsPath);
}

Result<std::vector<ms_sock_record>> SocketIterator::destroy(const std::vector<uint64_t>& cookies,
                                                           const std::string& netnsPath) {
  std::lock_guard<std::mutex> lock(mu_);
  const int map = bpf_map__fd(skel_->maps.ms_revoke_cookies);
  const uint32_t cap = bpf_map__max_entries(skel_->maps.ms_revoke_cookies);
  std::vector<ms_sock_record> out;
  // In batches of what the map holds; each batch is a pass of its own.
  for (size_t from = 0; from < cookies.size(); from += cap) {
    const size_t to = std::min(cookies.size(), from + cap);
    const uint8_t one = 1;
    for (size_t i = from; i < to; i++) {
      if (bpf_map_update_elem(map, &cookies[i], &one, BPF_ANY) != 0) {
        return Error{"update map", "ms_revoke_cookies", errno, {}};
      }
    }
    auto got = run(true, netnsPath);
    for (size_t i = from; i < to; i++) bpf_map_delete_elem(map, &cookies[i]);
    if (!got) return got.error();
    out.insert(out.end(), got->begin(), got->end());
  }
  return out;
}

Result<std::vector<ms_sock_record>> SocketIterator::run(bool destroyPass, const std::string& netnsPath) {
  skel_->bss->ms_destroy_pass = destroyPass ? 1 : 0;
  std::vector<ms_sock_record> out;
  for (bpf_program* p : {skel_->progs.ms_socks_tcp, skel_->progs.ms_socks_udp}) {
    std::unique_ptr<bpf_link, void (*)(bpf_link*)> link(bpf_program__attach_iter(p, nullptr),
                                                        [](bpf_link* l) { bpf_link__destroy(l); });
    if (!link) return libbpfError("attach iterator", bpf_program__name(p), -errno);
    auto fd = iteratorIn(link.get(), netnsPath);
    if (!fd) return fd.error();
    if (auto r = readRecords(fd->get(), out); !r) return r.error();
  }
  return out;
}

}  // namespace microseg::datapath
