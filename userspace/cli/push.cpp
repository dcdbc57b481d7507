#include "cli/push.h"

#include <pwd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <map>

#include "cluster/records.h"
#include "policy/files.h"
#include "policy/loader.h"

namespace microseg::cli {
namespace {

using nlohmann::json;

std::string baseName(const std::string& path) {
  std::string p = path;
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  const size_t slash = p.rfind('/');
  return slash == std::string::npos ? p : p.substr(slash + 1);
}

// What a directory load reads (policy/files.cpp): a name with an extension
// .yaml or .yml that is not only the extension.
bool yamlName(const std::string& name) {
  const size_t dot = name.rfind('.');
  if (dot == std::string::npos || dot == 0) return false;
  const std::string ext = name.substr(dot);
  return ext == ".yaml" || ext == ".yml";
}

bool readAll(int fd, std::string& out, size_t maxBytes) {
  char buf[64 * 1024];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return false;
    if (n == 0) return true;
    out.append(buf, static_cast<size_t>(n));
    if (out.size() > maxBytes) {
      errno = EFBIG;
      return false;
    }
  }
}

std::string str(const json& v) { return v.is_string() ? v.get<std::string>() : std::string(); }

}  // namespace

PushFiles collectPushFiles(const std::vector<std::string>& paths) {
  PushFiles out;
  std::vector<policy::Diagnostic> diags;
  const auto& access = policy::defaultFileAccess();
  const size_t maxBytes = policy::LoadLimits{}.maxFileBytes;
  const auto listed = policy::listFiles(paths, access, diags);
  std::map<std::string, std::string> pathOf;  // pushed name -> where it was read
  for (const auto& f : listed) {
    const std::string name = baseName(f.path);
    if (!f.inDirectory && !yamlName(name)) {
      diags.push_back({{f.path, 0, 0},
                       "not named *.yaml or *.yml: every node loads the pushed set as a directory, which "
                       "reads only those; rename it"});
      continue;
    }
    auto open = policy::openPolicyFile(f, access, maxBytes, diags);
    if (!open) continue;  // a problem (appended), or a directory entry the loader skips too
    PushFile pf{name, f.path, {}};
    if (!readAll(open->fd.get(), pf.text, maxBytes)) {
      diags.push_back({{f.path, 0, 0}, std::string("cannot read: ") + std::strerror(errno)});
      continue;
    }
    auto [it, fresh] = pathOf.emplace(name, f.path);
    if (!fresh) {
      diags.push_back({{f.path, 0, 0}, "has the name of " + it->second + " ('" + name +
                                           "'): a pushed set is one directory, where one would replace the "
                                           "other; rename one"});
      continue;
    }
    out.files.push_back(std::move(pf));
  }
  for (const auto& d : diags) out.errors.push_back(d.str());
  return out;
}

Result<PushTarget> resolvePushTarget(const PushFlags& flags, const std::optional<json>& daemonStatus,
                                     const std::string& daemonError, const std::string& socket) {
  PushTarget t;
  json cluster;
  if (flags.endpoints.empty()) {
    if (!daemonStatus) {
      return Error{"find etcd", "", EINVAL,
                   "no --etcd-endpoints given, and the local daemon could not be asked for its own (" +
                       daemonError + ")"};
    }
    cluster = daemonStatus->value("config", json::object()).value("cluster", json());
    if (!cluster.is_object() || !cluster.contains("etcd_endpoints") || !cluster["etcd_endpoints"].is_array() ||
        cluster["etcd_endpoints"].empty()) {
      return Error{"find etcd", "", EINVAL,
                   "no --etcd-endpoints given, and the daemon at " + socket + " is not in cluster mode"};
    }
    for (const auto& e : cluster["etcd_endpoints"]) {
      if (!str(e).empty()) t.etcd.endpoints.push_back(str(e));
    }
    t.from = "the configuration of the daemon at " + socket;
  } else {
    t.etcd.endpoints = flags.endpoints;
    t.from = "--etcd-endpoints";
  }
  // The daemon's prefix and TLS files only go with its endpoints.
  auto pick = [&](const std::optional<std::string>& flag, const char* key, std::string& into) {
    if (flag) {
      into = *flag;
    } else if (cluster.is_object() && !str(cluster.value(key, json())).empty()) {
      into = str(cluster[key]);
    }
  };
  pick(flags.prefix, "prefix", t.prefix);
  pick(flags.caFile, "etcd_cacert", t.etcd.caFile);
  pick(flags.certFile, "etcd_cert", t.etcd.certFile);
  pick(flags.keyFile, "etcd_key", t.etcd.keyFile);
  if (t.prefix.empty() || t.prefix[0] != '/') {
    return Error{"find etcd", t.prefix, EINVAL, "the cluster prefix must start with '/' (like /microseg)"};
  }
  return t;
}

Result<PushOutcome> pushSet(cluster::EtcdClient& etcd, const std::string& prefix, const std::vector<PushFile>& files,
                            const std::string& pushedBy, int64_t now, bool dryRun) {
  const cluster::Keys keys(prefix);
  std::vector<cluster::PolicyText> texts;
  for (const auto& f : files) texts.push_back({f.name, f.text});
  const auto prepared = cluster::preparePolicy(texts, pushedBy, now);
  PushOutcome o;
  o.manifestId = prepared.manifest.id;
  o.chunks = prepared.chunks.size();
  for (const auto& f : files) o.bytes += f.text.size();
  auto stored = etcd.get(keys.policy());
  if (!stored) return stored.error();
  if (!stored->kvs.empty()) {
    o.storedRevision = stored->kvs[0].modRevision;
    if (auto m = cluster::decodeManifest(stored->kvs[0].value)) o.storedId = m->id;
  }
  o.unchanged = !o.storedId.empty() && o.storedId == o.manifestId;
  if (dryRun) {
    if (o.unchanged) o.revision = o.storedRevision;
    return o;
  }
  auto rev = cluster::pushPolicy(etcd, keys, prepared);
  if (!rev) return rev.error();
  o.revision = *rev;
  auto gc = cluster::collectPolicyGarbage(etcd, keys);
  if (gc) {
    o.collected = *gc;
  } else {
    o.collectError = gc.error().str();
  }
  return o;
}

std::string pushedByName() {
  std::string user;
  const char* sudo = std::getenv("SUDO_USER");
  if (getuid() == 0 && sudo != nullptr && *sudo != '\0') {
    user = sudo;
  } else if (const passwd* pw = getpwuid(getuid()); pw != nullptr && pw->pw_name != nullptr) {
    user = pw->pw_name;
  } else {
    user = "uid" + std::to_string(getuid());
  }
  char host[256] = {};
  if (gethostname(host, sizeof(host) - 1) != 0) std::strcpy(host, "localhost");
  return user + "@" + host;
}

bool etcdUnreachable(const Error& e) {
  // The client names gRPC's status in the detail (cluster/etcd_client.cpp).
  for (const char* word : {"unavailable", "deadline exceeded"}) {
    if (e.detail.rfind(word, 0) == 0) return true;
  }
  return false;
}

json pushJson(const PushOutcome& o, const PushTarget& target, const std::vector<PushFile>& files,
              const std::string& pushedBy, bool dryRun) {
  json list = json::array();
  for (const auto& f : files) list.push_back(json{{"name", f.name}, {"path", f.path}, {"size", f.text.size()}});
  json out{{"dry_run", dryRun},
           {"manifest_id", o.manifestId},
           {"revision", o.revision},
           {"unchanged", o.unchanged},
           {"previous_revision", o.storedRevision},
           {"previous_manifest_id", o.storedId},
           {"files", list},
           {"bytes", o.bytes},
           {"chunks", o.chunks},
           {"pushed_by", pushedBy},
           {"endpoints", target.etcd.endpoints},
           {"prefix", target.prefix}};
  if (!dryRun) {
    out["chunks_collected"] = o.collected;
    if (!o.collectError.empty()) out["collect_error"] = o.collectError;
  }
  return out;
}

}  // namespace microseg::cli
