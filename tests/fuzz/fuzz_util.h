// What the fuzz targets share: a failed property stops the run (libFuzzer
// saves the input), inputs become files without touching the disk, and a
// policy result is written out whole so two can be compared.
#pragma once

#include <spdlog/spdlog.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "policy/parser.h"

namespace microseg::fuzz {

// A property that does not hold: the message, then abort() (a crash to
// libFuzzer, which saves the input).
[[noreturn]] inline void fail(const std::string& what, const std::string& detail = "") {
  std::fprintf(stderr, "\n==== fuzz property failed: %s\n%s\n", what.c_str(), detail.c_str());
  std::abort();
}
inline void check(bool ok, const std::string& what, const std::string& detail = "") {
  if (!ok) fail(what, detail);
}

// The targets' handlers log as the daemon would; a run of millions of
// inputs should not print them.
inline void quietLogs() { spdlog::set_level(spdlog::level::off); }

// A file that lives in memory (memfd) under a path any open(2) accepts
// (/proc/self/fd/N): the loader and the config reader open it like any
// regular file, and nothing is left on disk when a run stops.
class MemFile {
 public:
  MemFile() : fd_(memfd_create("microseg-fuzz", MFD_CLOEXEC)) {
    if (fd_ < 0) fail("memfd_create failed");
    path_ = "/proc/self/fd/" + std::to_string(fd_);
  }
  ~MemFile() { ::close(fd_); }
  MemFile(const MemFile&) = delete;
  MemFile& operator=(const MemFile&) = delete;

  void write(std::string_view text) {
    if (ftruncate(fd_, 0) != 0) fail("ftruncate of the memfd failed");
    size_t done = 0;
    while (done < text.size()) {
      const ssize_t n = pwrite(fd_, text.data() + done, text.size() - done, static_cast<off_t>(done));
      if (n <= 0) fail("pwrite to the memfd failed");
      done += static_cast<size_t>(n);
    }
  }
  const std::string& path() const { return path_; }

 private:
  int fd_;
  std::string path_;
};

inline std::string locText(const policy::SourceLocation& l) {
  return l.file.str() + ":" + std::to_string(l.line) + ":" + std::to_string(l.column);
}

inline std::string labelsText(const policy::Labels& labels) {
  std::string s = "{";
  for (const auto& [k, v] : labels) s += k + "=" + v + ",";
  return s + "}";
}

// Everything a ParseResult holds, locations included, as text: two
// results are the same if their dumps are.
inline std::string dump(const policy::ParseResult& r) {
  using namespace policy;
  std::string s;
  auto selector = [](const LabelSelector& sel) {
    std::string t = labelsText(sel.matchLabels);
    for (const auto& req : sel.matchExpressions) {
      t += " " + req.key + " op" + std::to_string(int(req.op)) + " [";
      for (const auto& v : req.values) t += v + ",";
      t += "]";
    }
    return t;
  };
  auto peer = [&](const Peer& p) {
    std::string t = "kind" + std::to_string(int(p.kind)) + " @" + locText(p.loc);
    switch (p.kind) {
      case Peer::Kind::Selector: t += " sel " + selector(p.selector()); break;
      case Peer::Kind::Identity: t += " id " + p.identity; break;
      case Peer::Kind::Reserved: t += " reserved" + std::to_string(int(p.reserved)); break;
      case Peer::Kind::Cidr: t += " cidr " + p.cidrText(); break;
      case Peer::Kind::Fqdn: t += " fqdn " + p.identity; break;
    }
    return t;
  };
  for (const auto& w : r.bundle.workloads) {
    s += "W " + w.name + " ns=" + w.namespaceName + " " + locText(w.loc) + " spiffe=" + w.spiffeId +
         " labels=" + labelsText(w.labels);
    for (const auto& c : w.cgroups) s += " cg=" + c;
    s += "\n";
  }
  for (const auto& e : r.bundle.externals) {
    s += "E " + e.name + " ns=" + e.namespaceName + " " + locText(e.loc) + " labels=" + labelsText(e.labels);
    for (const auto& c : e.cidrs) s += " " + c.str();
    for (const auto& c : e.except) s += " -" + c.str();
    s += "\n";
  }
  for (const auto& p : r.bundle.policies) {
    s += "P " + p.name + " ns=" + p.namespaceName + " " + locText(p.loc) + " sel " + peer(p.selector) +
         " enf=" + (p.enforcement ? std::to_string(int(*p.enforcement)) : "-") +
         " has=" + std::to_string(p.hasEgress) + std::to_string(p.hasIngress) + std::to_string(p.hasCidrPeers) + "\n";
    for (const auto* list : {&p.egress, &p.ingress}) {
      s += " list\n";
      for (const auto& rule : *list) {
        s += "  R " + std::to_string(int(rule.action)) + " " + locText(rule.loc);
        if (rule.peers) {
          for (const auto& pe : *rule.peers) s += " [" + peer(pe) + "]";
        } else {
          s += " any";
        }
        for (const auto& pr : rule.ports) {
          s += " " + std::to_string(pr.first) + "-" + std::to_string(pr.last) + "/" +
               std::to_string(int(pr.protocol)) + "@" + locText(pr.loc);
        }
        s += "\n";
      }
    }
  }
  for (const auto& d : r.errors) s += "! " + d.str() + "\n";
  return s;
}

// What a fresh read of `text` as file `file` gives under `limits`: the
// whole text parsed at once, then the cross-document checks (the loader's
// promise is that its result is exactly this).
inline policy::ParseResult freshParse(std::string_view text, const std::string& file,
                                      const policy::yaml::Limits& limits = {}) {
  policy::ParseResult r;
  policy::parseInto(text, file, 0, r.bundle, r.errors, limits);
  policy::validateBundle(r.bundle, r.errors);
  return r;
}

}  // namespace microseg::fuzz
