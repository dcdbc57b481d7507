#include "cluster/policy_store.h"

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <set>

namespace microseg::cluster {
namespace fs = std::filesystem;

PreparedPolicy preparePolicy(const std::vector<PolicyText>& files, const std::string& pushedBy, int64_t now) {
  PreparedPolicy p;
  std::string all;
  std::set<std::string> seen;
  for (const auto& f : files) {
    PolicyFile pf;
    pf.name = f.name;
    pf.size = f.text.size();
    for (size_t off = 0; off < f.text.size() || (off == 0 && f.text.empty()); off += kChunkBytes) {
      std::string chunk = f.text.substr(off, kChunkBytes);
      const std::string h = hashText(chunk);
      pf.blobs.push_back(h);
      if (seen.insert(h).second) p.chunks.emplace_back(h, std::move(chunk));
      if (f.text.empty()) break;
    }
    all += f.name + '\0' + std::to_string(f.text.size()) + '\0' + f.text;
    p.manifest.files.push_back(std::move(pf));
  }
  p.manifest.id = hashText(all);
  p.manifest.pushedBy = pushedBy;
  p.manifest.pushedAt = now;
  return p;
}

Result<int64_t> pushPolicy(EtcdClient& etcd, const Keys& keys, const PreparedPolicy& p) {
  auto current = etcd.get(keys.policy());
  if (!current) return current.error();
  if (!current->kvs.empty()) {
    auto m = decodeManifest(current->kvs[0].value);
    if (m && m->id == p.manifest.id) return current->kvs[0].modRevision;
  }
  // Chunks first (content-addressed: writing one twice changes nothing),
  // then the manifest, written only if every chunk it names is there: a
  // daemon never sees a manifest whose chunks are not, even when another
  // push's garbage collection removed one of ours meanwhile (then the
  // chunks are written again).
  if (p.chunks.size() > kMaxChunks) {
    return Error{"push policy", keys.policy(), EFBIG,
                 "a policy set is at most " + std::to_string(kMaxChunks * kChunkBytes / (1024 * 1024)) + " MiB"};
  }
  std::vector<Compare> chunksThere;
  for (const auto& [hash, text] : p.chunks) chunksThere.push_back(Compare::present(keys.blob(hash)));
  for (int attempt = 0; attempt < 5; attempt++) {
    for (const auto& [hash, text] : p.chunks) {
      auto r = etcd.put(keys.blob(hash), text);
      if (!r) return r.error();
    }
    auto r = etcd.txn(chunksThere, {TxnOp::put(keys.policy(), encode(p.manifest))});
    if (!r) return r.error();
    if (r->succeeded) return r->revision;
  }
  return Error{"push policy", keys.policy(), EAGAIN, "its chunks kept vanishing (concurrent pushes?)"};
}

Result<std::vector<PolicyText>> fetchPolicy(EtcdClient& etcd, const Keys& keys, const PolicyManifest& m) {
  std::vector<PolicyText> out;
  for (const auto& f : m.files) {
    PolicyText t;
    t.name = f.name;
    for (const auto& h : f.blobs) {
      auto r = etcd.get(keys.blob(h));
      if (!r) return r.error();
      if (r->kvs.empty()) return Error{"read policy chunk", keys.blob(h), 0, "missing (pushed set incomplete?)"};
      if (hashText(r->kvs[0].value) != h) {
        return Error{"read policy chunk", keys.blob(h), 0, "its text does not have its hash"};
      }
      t.text += r->kvs[0].value;
    }
    if (t.text.size() != f.size) return Error{"read policy file", f.name, 0, "size differs from the manifest"};
    out.push_back(std::move(t));
  }
  return out;
}

Result<void> materializePolicy(const std::vector<PolicyText>& files, const std::string& dir) {
  const std::string fresh = dir + ".new";
  std::error_code ec;
  fs::remove_all(fresh, ec);
  fs::create_directories(fresh, ec);
  if (ec) return Error{"create policy directory", fresh, ec.value(), {}};
  for (const auto& f : files) {
    const fs::path rel(f.name);
    bool escapes = rel.is_absolute() || rel.empty();
    for (const auto& part : rel) escapes = escapes || part == ".." || part == ".";
    if (escapes) return Error{"write pushed policy file", f.name, EINVAL, "a file name must stay inside the set"};
    const fs::path path = fs::path(fresh) / rel;
    fs::create_directories(path.parent_path(), ec);
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << f.text;
    out.close();
    if (!out) return sysError("write pushed policy file", path.string());
  }
  const std::string old = dir + ".old";
  fs::remove_all(old, ec);
  if (fs::exists(dir)) fs::rename(dir, old, ec);
  if (ec) return Error{"replace policy directory", dir, ec.value(), {}};
  fs::rename(fresh, dir, ec);
  if (ec) return Error{"replace policy directory", dir, ec.value(), {}};
  fs::remove_all(old, ec);
  return {};
}

Result<size_t> collectPolicyGarbage(EtcdClient& etcd, const Keys& keys) {
  auto manifest = etcd.get(keys.policy());
  if (!manifest) return manifest.error();
  std::set<std::string> keep;
  if (!manifest->kvs.empty()) {
    auto m = decodeManifest(manifest->kvs[0].value);
    if (!m) return size_t{0};  // not ours to judge: keep everything
    for (const auto& f : m->files) keep.insert(f.blobs.begin(), f.blobs.end());
  }
  auto blobs = etcd.get(keys.blobs(), true);
  if (!blobs) return blobs.error();
  size_t removed = 0;
  for (const auto& kv : blobs->kvs) {
    const std::string hash = kv.key.substr(keys.blobs().size());
    if (keep.count(hash)) continue;
    // Written after the manifest in force: a push in progress may need it.
    if (!manifest->kvs.empty() && kv.modRevision > manifest->kvs[0].modRevision) continue;
    // Only if the manifest did not change meanwhile (a new push may use it).
    auto r = etcd.txn({Compare::modRevisionIs(keys.policy(), manifest->kvs.empty() ? 0 : manifest->kvs[0].modRevision)},
                      {TxnOp::remove(kv.key)});
    if (!r) return r.error();
    if (!r->succeeded) break;
    removed++;
  }
  return removed;
}

}  // namespace microseg::cluster
