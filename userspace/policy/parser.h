// YAML -> policy::Bundle, with every problem reported as a located Diagnostic.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "policy/model.h"

namespace microseg::policy {

struct ParseResult {
  Bundle bundle;
  std::vector<Diagnostic> errors;  // empty = valid
  bool ok() const { return errors.empty(); }
};

// Parse one YAML text (may hold several `---` documents). `file` is used in
// locations only. Does not run cross-document checks.
ParseResult parseText(const std::string& text, const std::string& file);

// Load FILE or DIR (every *.yaml / *.yml directly inside, sorted by name; a
// directory with none is an error), parse all documents, then validate the
// whole set (duplicate names, unknown identity references, ...).
ParseResult loadPaths(const std::vector<std::string>& paths);

// loadPaths() that remembers what it read: a document whose text is the same
// as last time, in the same file, is not parsed again (its objects are
// shared with the previous result, their locations moved if it now starts
// on another line). A one-rule change in a 100k-rule file parses one
// document. Documents are cut at '---' lines (see cutDocuments in the
// source); a file with directives, '...' or line breaks other than '\n' is
// parsed whole every time.
class PolicyLoader {
 public:
  PolicyLoader();
  ~PolicyLoader();
  PolicyLoader(const PolicyLoader&) = delete;
  PolicyLoader& operator=(const PolicyLoader&) = delete;

  ParseResult load(const std::vector<std::string>& paths);

  struct Stats {
    size_t documents = 0;  // read in the last load()
    size_t reused = 0;     // of which not parsed again
  };
  const Stats& lastStats() const { return stats_; }

 private:
  struct Document;
  // Per file: its documents by their text (looked up by a view of it).
  struct TextHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  using FileCache = std::unordered_multimap<std::string, std::unique_ptr<Document>, TextHash, std::equal_to<>>;
  using Cache = std::unordered_map<std::string, FileCache>;
  Cache cache_;
  Stats stats_;
};

// Cross-document checks on an already parsed bundle; appends to `errors`.
void validateBundle(const Bundle& bundle, std::vector<Diagnostic>& errors);

}  // namespace microseg::policy
