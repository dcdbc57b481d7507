// The fleet's policy set in etcd (README "Cluster: one policy for the
// fleet"): `microseg policy push` stores the files' text as content-addressed
// chunks (<prefix>/blobs/<hash>, at most kChunkBytes each: etcd refuses a
// request over 1.5 MiB by default), then the manifest naming them, in one
// write: one etcd revision is one policy set. Daemons started with
// `--policy etcd` fetch the chunks a new manifest names, check each chunk's
// hash, and write the set into a directory of their own, which they load
// like any policy directory.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "cluster/etcd_client.h"
#include "cluster/records.h"
#include "common/result.h"

namespace microseg::cluster {

inline constexpr size_t kChunkBytes = 512 * 1024;
inline constexpr size_t kMaxChunks = 120;  // etcd allows 128 operations in a transaction

struct PolicyText {
  std::string name;  // relative path, e.g. "shop.yaml" or "team-a/payments.yaml"
  std::string text;
};

// The manifest a set of files gets (its id, the chunks of each file) and the
// chunks themselves, keyed by hash.
struct PreparedPolicy {
  PolicyManifest manifest;
  std::vector<std::pair<std::string, std::string>> chunks;  // hash -> text
};
PreparedPolicy preparePolicy(const std::vector<PolicyText>& files, const std::string& pushedBy, int64_t now);

// Stores a prepared set; returns the revision of the manifest's write (the
// set's revision). A set identical to the one stored (same id) is not
// written again: its revision is returned.
Result<int64_t> pushPolicy(EtcdClient& etcd, const Keys& keys, const PreparedPolicy& p);

// The files a manifest names, read and checked (every chunk's hash).
Result<std::vector<PolicyText>> fetchPolicy(EtcdClient& etcd, const Keys& keys, const PolicyManifest& m);

// Writes `files` into `dir` (created; what was there is replaced: files are
// written to a new directory that is then renamed over `dir`). A file name
// that would leave `dir` (absolute, "..") is refused.
Result<void> materializePolicy(const std::vector<PolicyText>& files, const std::string& dir);

// Removes the chunks no manifest names any more (after a push).
Result<size_t> collectPolicyGarbage(EtcdClient& etcd, const Keys& keys);

}  // namespace microseg::cluster
