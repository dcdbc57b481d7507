// Cutting a policy file into its YAML documents as it is read, and what a
// document is known by between reads (its length and a 128-bit hash), for
// PolicyLoader (loader.h).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <xxhash.h>

namespace microseg::policy {

// What a document is known by between reads (with its length): XXH3-128
// of its text, the same value on every CPU. On x86-64, libxxhash's
// dispatcher picks the widest vector unit there is: with AVX2, 7 MB hash in
// 0.4-0.8 ms instead of 1.0-1.5 ms (SSE2, the baseline build's).
XXH128_hash_t documentHash(std::string_view text);

// A line starting with '---' followed by a space, a tab or its end is always
// a document start: YAML forbids it inside any content (c-forbidden), so
// cutting there yields the stream's documents, each readable alone. Texts
// where that is not the whole story are not cut: directives (they belong to
// the next document), '...' ends, and line breaks other than '\n' (libyaml
// also counts '\r', NEL, LS and PS, which would shift line numbers).
//
// DocumentReader cuts a file that way as it reads it, a chunk at a time:
// each document is handed out contiguous in `buf`, which holds the document
// being looked at and what was read after it, never the whole file (a
// 100k-rule file is 7.5 MB; its texts kept for the next comparison were
// 15 MB of the daemon's memory).
class DocumentReader {
 public:
  enum class Step { Document, End, Uncut, Failed };
  // Reading more than `maxBytes` fails with EFBIG.
  DocumentReader(int fd, std::vector<char>& buf, size_t chunk, size_t maxBytes = SIZE_MAX)
      : fd_(fd), buf_(buf), maxBytes_(maxBytes) {
    if (buf_.size() < chunk) buf_.resize(chunk);
  }
  // Document: the next one is `text` (valid until the next call), starting
  // on line `firstLine` (0-based). End: there are no more. Uncut: the file
  // cannot be cut (see above). Failed: reading failed, errno in error().
  Step next(std::string_view& text, int& firstLine);
  // The '\n' in the document next() or take() handed out last.
  int lines() const { return docLines_; }
  // The document next() or take() handed out last ends at the end of the
  // file, not before a '---' line.
  bool atEnd() const { return done_; }
  // Without a scan: the next `length` bytes, if they end where a scan would
  // cut (before a '---' line, or at the end of the file), as `text` (valid
  // until the next call); nothing is consumed. Whether that is the next
  // document is the caller's to know: the same text as a document of the
  // same file read last time (a cut file), whose lines (none a marker, a
  // directive or another line break) the scan would find again. Failed:
  // reading failed; Uncut: no such text here (next() finds the document).
  Step peek(size_t length, std::string_view& text);
  // Hands out the text peek() showed, of `lines` '\n', as next() would.
  void take(size_t length, int lines, int& firstLine);
  int error() const { return errno_; }

 private:
  bool fill();
  int fd_;
  std::vector<char>& buf_;
  size_t maxBytes_;
  size_t read_ = 0;       // bytes read from fd_
  size_t start_ = 0;      // where the current document starts
  size_t end_ = 0;        // bytes in buf_
  size_t scan_ = 0;       // the line start to look at next
  bool pending_ = true;   // scan_ itself is still to be looked at
  int lines_ = 0;         // '\n' before scan_ (in the file)
  int startLine_ = 0;     // line of start_
  int docLines_ = 0;      // '\n' in the document handed out last
  bool eof_ = false, done_ = false, any_ = false;
  int errno_ = 0;
};

// The file from its start, whole (for a file not cut); errno in `err` on
// failure (EFBIG: more than `maxBytes`).
bool readWhole(int fd, std::string& out, int& err, size_t maxBytes = SIZE_MAX);

}  // namespace microseg::policy
