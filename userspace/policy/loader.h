// PolicyLoader: policy paths -> a validated Bundle, reading again only what
// changed since its last load (files by their stat stamp, documents by
// their text, rules by their items' text) and checking only the references
// of new policies.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "policy/files.h"
#include "policy/references.h"
#include "policy/schema.h"
#include "policy/yaml_reader.h"

namespace microseg::policy {

// What one load may cost: a file bigger than maxFileBytes is refused
// (before it is read, and if it grows while it is read), and every
// document is read within `yaml` (nesting, aliases; yaml_reader.h).
struct LoadLimits {
  size_t maxFileBytes = size_t(64) << 20;
  yaml::Limits yaml;
};

// Loads policy paths (parser.h's loadPaths() is a fresh one's load()) and
// remembers what it read: a document whose text is the same as last time,
// in the same file, is not parsed again (its objects are shared with the
// previous result, their locations moved if it now starts on another
// line). A one-rule change in a 100k-rule file parses one document. A file
// is read a chunk at a time and cut at '---' lines as it is read
// (document_reader.h); a file with directives, '...' or line breaks other
// than '\n' is one document. What is kept of a document for the next read
// is its length and a 128-bit hash of its text, not the text. A file whose
// device, inode, size, mtime and ctime (fstat of the file opened) are those
// it had when it was last read, and which had not changed for 2 s before
// that read, is not read again (timestamps are coarse: a file written twice
// within a few ms can keep its stamp, so a file still fresh when read is
// always read again).
// A document whose text changed, in place of one that was a policy of at
// least `minReuseItems` rules, is parsed again only in part where its text
// allows (rule_reuse.h, rule_lists.h): the items of its rule lists whose
// text is that of the first or last items of the old list keep their
// rules, and only the items between them and the rest of the document are
// parsed. A one-rule change in a 10,000-rule policy parses one rule. The
// result is always what parsing the whole text gives; where that is not
// certain, the whole text is parsed.
// References are checked by a ReferenceCheck (references.h): again only
// for the policies that are new, while the Workloads and Externals are the
// same objects as last time.
// Its loops call progressTick() (policy/progress.h).
class PolicyLoader {
 public:
  // `stableAfter`: how long a file must have been unchanged when it was
  // read for its stamp to be trusted the next time.
  // `readChunk`: bytes read at a time (the buffer grows for a bigger document).
  // `minReuseItems`: the rules a policy document needs for its rules to be
  // reused by the next read of an edited version (each costs 8 bytes kept).
  explicit PolicyLoader(std::chrono::nanoseconds stableAfter = std::chrono::seconds(2),
                        size_t readChunk = size_t(256) << 10, size_t minReuseItems = 64);
  ~PolicyLoader();
  PolicyLoader(const PolicyLoader&) = delete;
  PolicyLoader& operator=(const PolicyLoader&) = delete;

  // Every file-system access of the load (open of a path, a directory's
  // listing, fstat) goes through `access` (files.h); the first form uses
  // defaultFileAccess(). Only regular files are read; a path that is not
  // one, or not a directory of them, is an error.
  ParseResult load(const std::vector<std::string>& paths);
  ParseResult load(const std::vector<std::string>& paths, const FileAccess& access);

  // For the next load()s, which read every file again (what was read under
  // other limits is forgotten).
  void setLimits(const LoadLimits& limits);
  const LoadLimits& limits() const { return limits_; }

  struct Stats {
    size_t documents = 0;       // in the files of the last load()
    size_t reused = 0;          // of which not parsed again
    size_t files = 0;
    size_t filesUnchanged = 0;  // of which opened but not read (their stamp unchanged)
    size_t policiesChecked = 0; // policies whose references were checked (references.h)
    size_t spliced = 0;         // documents parsed again in part (rules reused)
    size_t rulesReused = 0;     // rules of those documents not parsed again
    size_t unscanned = 0;       // reused documents found without a scan for their end
  };
  const Stats& lastStats() const { return stats_; }

 private:
  struct FileState;
  bool readDocuments(const std::string& file, int fd, FileState* before, FileState& state, std::string& error);
  std::unordered_map<std::string, std::unique_ptr<FileState>> cache_;  // by path
  ReferenceCheck references_;
  std::vector<char> readBuf_;  // the part of a file being read (document_reader.h)
  LoadLimits limits_;
  size_t readChunk_;
  size_t minReuseItems_;
  Stats stats_;
  int64_t stableNs_;
};

// Load FILE or DIR (every *.yaml / *.yml directly inside, sorted by name; a
// directory with none is an error), parse all documents, then validate the
// whole set (duplicate names, unknown identity references, ...).
ParseResult loadPaths(const std::vector<std::string>& paths);

}  // namespace microseg::policy
