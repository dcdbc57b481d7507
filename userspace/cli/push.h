// `microseg policy push`: the fleet's policy set into etcd (cluster/
// policy_store.h stores it). The files are pushed under their own names and
// each daemon writes them into one directory of its own, which it loads like
// any policy directory; so what is pushed is what such a directory would
// read: the *.yaml / *.yml files, one name once.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cluster/etcd_client.h"
#include "cluster/policy_store.h"
#include "common/result.h"

namespace microseg::cli {

struct PushFile {
  std::string name;  // as pushed: the file's own name
  std::string path;  // where it was read
  std::string text;
};

struct PushFiles {
  std::vector<PushFile> files;
  std::vector<std::string> errors;  // "PATH: error: ..."; empty = every file read
  bool ok() const { return errors.empty(); }
};

// The files `paths` name, as the loader lists them (a directory: its *.yaml
// and *.yml entries, not recursive), read whole. Errors: a path that cannot
// be read, a file given by name that a daemon's directory load would not
// read (not *.yaml / *.yml), two files of the same name from different
// paths (both named: a pushed set is one directory).
PushFiles collectPushFiles(const std::vector<std::string>& paths);

// Where the set goes: etcd and the key prefix.
struct PushTarget {
  cluster::EtcdOptions etcd;
  std::string prefix = "/microseg";
  std::string from;  // "--etcd-endpoints" or "the daemon's configuration (SOCKET)"
};

struct PushFlags {
  std::vector<std::string> endpoints;
  std::optional<std::string> prefix, caFile, certFile, keyFile;
};

// The flags win; what they leave open comes from the local daemon's
// `status` (its `config.cluster`), if it answered (`daemonStatus`, else
// `daemonError` says why not). An error message if there is no endpoint.
Result<PushTarget> resolvePushTarget(const PushFlags& flags, const std::optional<nlohmann::json>& daemonStatus,
                                     const std::string& daemonError, const std::string& socket);

struct PushOutcome {
  std::string manifestId;
  int64_t revision = 0;         // the set's revision (the stored one's if unchanged; 0 on a dry run)
  int64_t storedRevision = 0;   // the revision of the set stored before (0: none)
  std::string storedId;         // its manifest id
  bool unchanged = false;       // the same set was stored already: nothing written
  size_t chunks = 0;
  size_t bytes = 0;
  size_t collected = 0;         // old chunks removed after the push
  std::string collectError;     // why collecting them failed (the push itself succeeded)
};

// Stores the set (unless `dryRun`: then only reads what is stored), then
// removes the chunks no manifest names any more.
Result<PushOutcome> pushSet(cluster::EtcdClient& etcd, const std::string& prefix, const std::vector<PushFile>& files,
                            const std::string& pushedBy, int64_t now, bool dryRun);

// user@host of the caller (the sudo user's name when run through sudo).
std::string pushedByName();

// Whether an etcd failure means "not reachable" (exit 3) rather than "refused".
bool etcdUnreachable(const Error& e);

struct PushArgs {
  std::vector<std::string> paths;
  PushFlags flags;
  bool dryRun = false;
};

// The command: validated exactly as `policy validate` does (nothing written
// if anything is wrong), then stored; prints the outcome (a table, or JSON
// if `jsonOutput`) and returns an exit code (exit_codes.h).
int cmdPush(const std::string& socket, bool jsonOutput, const PushArgs& a);

nlohmann::json pushJson(const PushOutcome& o, const PushTarget& target, const std::vector<PushFile>& files,
                        const std::string& pushedBy, bool dryRun);

}  // namespace microseg::cli
