#include "policy/loader.h"
#include "policy/cached_document.h"
#include "policy/document_reader.h"
#include "policy/files.h"
#include "policy/locations.h"
#include "policy/progress.h"
#include "policy/rule_reuse.h"

#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string_view>

namespace microseg::policy {

namespace {

struct Stamp {
  dev_t dev = 0;
  ino_t ino = 0;
  off_t size = -1;
  int64_t mtimeNs = 0, ctimeNs = 0;
  bool operator==(const Stamp&) const = default;
};

int64_t ns(const struct timespec& t) { return int64_t(t.tv_sec) * 1000000000 + t.tv_nsec; }

template <typename T>
void append(SharedList<T>& to, const SharedList<T>& from) {
  for (size_t i = 0; i < from.size(); i++) to.push_back(from.shared(i));
}

// `from`'s objects added to `to` (shared, not copied).
void append(Bundle& to, const Bundle& from) {
  append(to.workloads, from.workloads);
  append(to.externals, from.externals);
  append(to.policies, from.policies);
}

}  // namespace

struct PolicyLoader::FileState {
  Stamp stamp;          // before it was read
  int64_t readAtNs = 0; // CLOCK_REALTIME, when it was stat'ed for that read
  std::vector<std::unique_ptr<Document>> docs;  // in the file's order
  const Document* syntax = nullptr;             // the first one with a syntax error
  bool cut = false;  // docs are the file cut at '---' lines (else one document)
};

namespace {

// The documents of a file read before, handed out to the documents read now
// that have the same text. Looked for first where the previous match leads
// (same position, or after an insertion or removal just before), then among
// those of the same length.
class DocumentMatch {
 public:
  explicit DocumentMatch(std::vector<std::unique_ptr<Document>>* old) : old_(old) {}
  // The old document the next one most likely is, if it is still there.
  const Document* expected() const {
    return old_ != nullptr && expect_ < old_->size() ? (*old_)[expect_].get() : nullptr;
  }
  // `replaced`, on a miss: the old document this one most likely replaced
  // (at the position the previous match leads to), if still there.
  std::unique_ptr<Document> take(std::string_view text, const XXH128_hash_t& hash, const Document** replaced) {
    *replaced = nullptr;
    if (old_ == nullptr) return nullptr;
    auto matches = [&](size_t k) {
      const Document* d = k < old_->size() ? (*old_)[k].get() : nullptr;
      return d != nullptr && d->sameText(text.size(), hash);
    };
    size_t found = old_->size();
    if (matches(expect_)) {
      found = expect_;
    } else {
      if (!indexed_) {
        for (size_t k = 0; k < old_->size(); k++) {
          if ((*old_)[k]) byLength_.emplace((*old_)[k]->length, k);
        }
        indexed_ = true;
      }
      auto [lo, hi] = byLength_.equal_range(text.size());
      for (auto it = lo; it != hi; ++it) {
        if (matches(it->second)) {
          found = it->second;
          break;
        }
      }
    }
    if (found == old_->size()) {
      if (expect_ < old_->size()) *replaced = (*old_)[expect_].get();
      expect_++;  // most likely this document replaced that one
      return nullptr;
    }
    expect_ = found + 1;
    return std::move((*old_)[found]);
  }

 private:
  std::vector<std::unique_ptr<Document>>* old_;
  std::unordered_multimap<size_t, size_t> byLength_;  // built on the first miss
  bool indexed_ = false;
  size_t expect_ = 0;  // the old document the next one most likely is
};

}  // namespace

PolicyLoader::PolicyLoader(std::chrono::nanoseconds stableAfter, size_t readChunk, size_t minReuseItems)
    : readChunk_(std::max<size_t>(readChunk, 1)),
      minReuseItems_(std::max<size_t>(minReuseItems, 1)),
      stableNs_(stableAfter.count()) {}
PolicyLoader::~PolicyLoader() = default;

void PolicyLoader::setLimits(const LoadLimits& limits) {
  limits_ = limits;
  cache_.clear();
}

ParseResult PolicyLoader::load(const std::vector<std::string>& paths) { return load(paths, defaultFileAccess()); }

ParseResult PolicyLoader::load(const std::vector<std::string>& paths, const FileAccess& access) {
  ParseResult out;
  stats_ = {};
  std::unordered_map<std::string, std::unique_ptr<FileState>> next;
  for (const ListedFile& listed : listFiles(paths, access, out.errors)) {
    const std::string& f = listed.path;
    stats_.files++;
    // The stamp before reading: a change after it makes it differ next time.
    struct timespec now {};
    clock_gettime(CLOCK_REALTIME, &now);
    auto file = openPolicyFile(listed, access, limits_.maxFileBytes, out.errors);
    if (!file) continue;
    const struct stat& st = file->st;
    const Stamp stamp{st.st_dev, st.st_ino, st.st_size, ns(st.st_mtim), ns(st.st_ctim)};
    std::unique_ptr<FileState> before;
    if (auto it = cache_.find(f); it != cache_.end()) before = std::move(it->second);
    std::unique_ptr<FileState> state;
    if (before && before->stamp == stamp && before->readAtNs - std::max(stamp.mtimeNs, stamp.ctimeNs) >= stableNs_) {
      state = std::move(before);
      stats_.filesUnchanged++;
      stats_.documents += state->docs.size();
      stats_.reused += state->docs.size();
    } else {
      state = std::make_unique<FileState>();
      state->stamp = stamp;
      state->readAtNs = ns(now);
      std::string error;
      if (!readDocuments(f, file->fd.get(), before.get(), *state, error)) {
        out.errors.push_back({{f, 0, 0}, error});
        continue;
      }
    }
    // A syntax error anywhere is the file's only diagnostic (as parseText).
    if (state->syntax != nullptr) {
      out.errors.insert(out.errors.end(), state->syntax->errors.begin(), state->syntax->errors.end());
    } else {
      for (const auto& d : state->docs) {
        out.errors.insert(out.errors.end(), d->errors.begin(), d->errors.end());
        append(out.bundle, d->objects);
      }
    }
    next[f] = std::move(state);
  }
  cache_ = std::move(next);
  // Grown for a big document: kept up to a few MiB (a set of 10k-rule
  // policies needs ~1 MiB on every reload, and a new buffer costs a fault
  // a page), given back beyond.
  constexpr size_t kKeepReadBuf = size_t(4) << 20;
  if (readBuf_.size() > std::max(readChunk_, kKeepReadBuf)) std::vector<char>().swap(readBuf_);
  references_.check(out.bundle, out.errors, stats_.policiesChecked);
  return out;
}

// The documents of `file` (open as `fd`), each the one with the same text
// read from it last time (`before`), else parsed; cut as it is read (see
// DocumentReader), or one document if it cannot be cut.
bool PolicyLoader::readDocuments(const std::string& file, int fd, FileState* before, FileState& state,
                                 std::string& error) {
  const Stats at = stats_;
  DocumentMatch match(before != nullptr ? &before->docs : nullptr);
  // `markerFollows`: a '---' line comes after the text in the file.
  auto add = [&](std::string_view text, int firstLine, int lines, const XXH128_hash_t& hash, bool markerFollows) {
    stats_.documents++;
    const Document* replaced = nullptr;
    std::unique_ptr<Document> doc = match.take(text, hash, &replaced);
    // A syntax error also depends on what follows the text (below): such a
    // document is read again (a file with one is refused whole anyway).
    if (doc && doc->syntaxError) doc.reset();
    if (doc) {
      stats_.reused++;
      if (doc->firstLine != firstLine) {
        const int lines = firstLine - doc->firstLine;
        doc->objects = shifted(doc->objects, lines);
        for (auto& e : doc->errors) shift(e.loc, lines);
        doc->firstLine = firstLine;
      }
    } else {
      doc = std::make_unique<Document>();
      doc->length = text.size();
      doc->hash = hash;
      doc->firstLine = firstLine;
      doc->lines = lines;
      if (replaced == nullptr ||
          !parseReusingRules(text, file, *replaced, *doc, minReuseItems_, limits_.yaml, stats_.rulesReused)) {
        doc->syntaxError = !parseInto(text, file, firstLine, doc->objects, doc->errors, limits_.yaml);
        if (doc->syntaxError && markerFollows) {
          // Read alone, a document stops at the end of its text where the
          // whole file goes on to the '---' line (a quoted scalar left open
          // is "unexpected end of stream" alone, "unexpected document
          // indicator" in the file). The error is the file's: read again
          // with a marker after it (an invalid document costs a second
          // parse).
          Bundle scratch;
          std::vector<Diagnostic> errors;
          if (!parseInto(std::string(text) + "---\n", file, firstLine, scratch, errors, limits_.yaml)) {
            doc->errors = std::move(errors);
          }
        }
        if (worthIndexing(*doc, minReuseItems_)) {  // before the text is scanned for its lists
          if (auto lists = findRuleLists(text)) indexRuleLists(*lists, *doc, minReuseItems_);
        }
      } else {
        stats_.spliced++;
      }
    }
    if (doc->syntaxError && state.syntax == nullptr) state.syntax = doc.get();
    state.docs.push_back(std::move(doc));
    progressTick();
  };
  auto failed = [&](int err) {
    // EFBIG: it grew past the limit since it was opened.
    error = err == EFBIG ? tooBigMessage(limits_.maxFileBytes) : std::string("cannot read: ") + std::strerror(err);
    return false;
  };
  std::string whole;
  int err = 0;
  if (before != nullptr && !before->cut) {
    // Not cut last time (it most likely still cannot be): whole, unless
    // it changed; then it may be cut now.
    if (!readWhole(fd, whole, err, limits_.maxFileBytes)) return failed(err);
    const XXH128_hash_t hash = XXH3_128bits(whole.data(), whole.size());
    if (before->docs.size() == 1 && before->docs[0]->sameText(whole.size(), hash)) {
      add(whole, 0, 0, hash, false);
      return true;
    }
    whole = std::string();
    if (::lseek(fd, 0, SEEK_SET) != 0) return failed(errno);
  }
  {
    DocumentReader reader(fd, readBuf_, readChunk_, limits_.maxFileBytes);
    std::string_view text;
    int firstLine = 0;
    // Where the file was cut last time, the documents most likely come in
    // the same order: the text as long as the one expected next is hashed
    // (as it would be anyway), and if it is that document, the scan for its
    // end is skipped. Hashing runs at 10+ GB/s, the scan at a few: after a
    // one-rule change to a 7 MB file, 4-5 ms of the reload were the scan.
    const bool guess = before != nullptr && before->cut;
    for (;;) {
      if (const Document* e = guess ? match.expected() : nullptr; e != nullptr) {
        const DocumentReader::Step peeked = reader.peek(e->length, text);
        if (peeked == DocumentReader::Step::Failed) return failed(reader.error());
        if (peeked == DocumentReader::Step::Document) {
          const XXH128_hash_t hash = documentHash(text);
          if (e->sameText(text.size(), hash)) {
            const int lines = e->lines;
            reader.take(text.size(), lines, firstLine);
            stats_.unscanned++;
            add(text, firstLine, lines, hash, !reader.atEnd());
            continue;
          }
        }
      }
      const DocumentReader::Step step = reader.next(text, firstLine);
      if (step == DocumentReader::Step::Document) {
        add(text, firstLine, reader.lines(), documentHash(text), !reader.atEnd());
        continue;
      }
      if (step == DocumentReader::Step::End) {
        state.cut = true;
        return true;
      }
      if (step == DocumentReader::Step::Failed) return failed(reader.error());
      break;  // Uncut
    }
  }
  // Not to be cut after all: one document (what was handed out so far goes).
  state.docs.clear();
  state.syntax = nullptr;
  stats_ = at;
  if (!readWhole(fd, whole, err, limits_.maxFileBytes)) return failed(err);
  add(whole, 0, 0, documentHash(whole), false);
  return true;
}

ParseResult loadPaths(const std::vector<std::string>& paths) { return PolicyLoader().load(paths); }

}  // namespace microseg::policy
