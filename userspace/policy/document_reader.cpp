#include "policy/document_reader.h"

#include <unistd.h>
#if defined(__x86_64__)
#define XXH_DISPATCH_DISABLE_REPLACE  // called by name where it pays (documentHash)
#include <xxh_x86dispatch.h>
#endif
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include <cerrno>
#include <cstdint>
#include <cstring>

namespace microseg::policy {

XXH128_hash_t documentHash(std::string_view text) {
#if defined(__x86_64__)
  return XXH3_128bits_dispatch(text.data(), text.size());
#else
  return XXH3_128bits(text.data(), text.size());
#endif
}


namespace {

// Does a "---" / "..." marker line start at `pos` (three `marker`s, then a
// space, a tab or the line's end)?
bool markerAt(std::string_view text, size_t pos, char marker) {
  const size_t n = text.size();
  if (pos + 3 > n || text[pos] != marker || text[pos + 1] != marker || text[pos + 2] != marker) return false;
  return pos + 3 == n || text[pos + 3] == ' ' || text[pos + 3] == '\t' || text[pos + 3] == '\n';
}

// Can a line starting with `c` be a marker ('---', '...') or a directive?
bool markerStart(unsigned char c) { return c == '-' || c == '.' || c == '%'; }

// Bits set in a 16-bit mask (__builtin_popcount is a libgcc call on
// baseline x86-64, which has no POPCNT: it was 5% of a reload).
inline unsigned bits16(unsigned x) {
  x = x - ((x >> 1) & 0x5555u);
  x = (x & 0x3333u) + ((x >> 2) & 0x3333u);
  x = (x + (x >> 4)) & 0x0f0fu;
  return (x + (x >> 8)) & 0x1fu;
}

// Calls atLine(offset, lines) for the start of every line after the first
// that can be a marker or a directive (markerStart), and for offset == size
// after a final '\n', in order; `lines` is the number of '\n' before
// `offset`. false as soon as atLine is, or where the text has a line break
// other than '\n' ('\r', NEL, LS, PS); else `newlines` gets the number of
// '\n' in the text. Sixteen bytes at a time where SSE2 is there, and only
// the lines that can matter cost a call: a 100k-rule file has 340k lines,
// and a call per line to find the next '\n' was 6 ms of a reload.
template <typename AtLine>
bool scanLines(std::string_view text, size_t& newlines, AtLine&& atLine) {
  const auto* d = reinterpret_cast<const unsigned char*>(text.data());
  const size_t n = text.size();
  auto otherBreak = [&](size_t i) {
    if (d[i] == '\r') return true;
    if (d[i] == 0xc2) return i + 1 < n && d[i + 1] == 0x85;
    if (d[i] == 0xe2) return i + 2 < n && d[i + 1] == 0x80 && (d[i + 2] == 0xa8 || d[i + 2] == 0xa9);
    return false;
  };
  size_t i = 0, lines = 0;
#if defined(__SSE2__)
  const __m128i nl = _mm_set1_epi8('\n'), cr = _mm_set1_epi8('\r');
  const __m128i c2 = _mm_set1_epi8(static_cast<char>(0xc2)), e2 = _mm_set1_epi8(static_cast<char>(0xe2));
  const __m128i dash = _mm_set1_epi8('-'), dot = _mm_set1_epi8('.'), pct = _mm_set1_epi8('%');
  // Line breaks are counted per byte lane (a lane adds 1 for each '\n' it
  // sees) and summed every 255 blocks, before a lane can overflow, and
  // where a call needs the count: a popcount per block was most of the scan.
  const __m128i zero = _mm_setzero_si128();
  __m128i lanes = zero;
  unsigned inLanes = 0;  // blocks counted in `lanes`
  auto laneSum = [&] {
    const __m128i s = _mm_sad_epu8(lanes, zero);
    return static_cast<size_t>(_mm_cvtsi128_si32(s)) + static_cast<size_t>(_mm_cvtsi128_si32(_mm_srli_si128(s, 8)));
  };
  // 17 bytes readable: the 16 looked at and the one after the last.
  for (; i + 17 <= n; i += 16) {
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(d + i));
    const __m128i next = _mm_loadu_si128(reinterpret_cast<const __m128i*>(d + i + 1));
    const __m128i odd = _mm_or_si128(_mm_cmpeq_epi8(v, cr), _mm_or_si128(_mm_cmpeq_epi8(v, c2), _mm_cmpeq_epi8(v, e2)));
    for (unsigned m = static_cast<unsigned>(_mm_movemask_epi8(odd)); m != 0; m &= m - 1) {
      if (otherBreak(i + static_cast<size_t>(__builtin_ctz(m)))) return false;
    }
    const __m128i isBreak = _mm_cmpeq_epi8(v, nl);
    const __m128i marks =
        _mm_or_si128(_mm_cmpeq_epi8(next, dash), _mm_or_si128(_mm_cmpeq_epi8(next, dot), _mm_cmpeq_epi8(next, pct)));
    const unsigned at = static_cast<unsigned>(_mm_movemask_epi8(_mm_and_si128(isBreak, marks)));
    if (at != 0) {
      const unsigned breaks = static_cast<unsigned>(_mm_movemask_epi8(isBreak));
      const size_t counted = lines + laneSum();
      for (unsigned m = at; m != 0; m &= m - 1) {
        const unsigned bit = static_cast<unsigned>(__builtin_ctz(m));
        if (!atLine(i + bit + 1, counted + bits16(breaks & ((2u << bit) - 1)))) return false;
      }
    }
    lanes = _mm_sub_epi8(lanes, isBreak);  // a '\n' lane is -1
    if (++inLanes == 255) {
      lines += laneSum();
      lanes = zero;
      inLanes = 0;
    }
  }
  lines += laneSum();
#endif
  for (; i < n; i++) {
    if (otherBreak(i)) return false;
    if (d[i] != '\n') continue;
    lines++;
    if ((i + 1 == n || markerStart(d[i + 1])) && !atLine(i + 1, lines)) return false;
  }
  newlines = lines;
  return true;
}

}  // namespace

bool DocumentReader::fill() {
  if (start_ > 0) {  // keep only the current document
    std::memmove(buf_.data(), buf_.data() + start_, end_ - start_);
    end_ -= start_;
    scan_ -= start_;
    start_ = 0;
  }
  if (end_ == buf_.size()) buf_.resize(buf_.size() * 2);  // a document bigger than the buffer
  for (;;) {
    const ssize_t n = ::read(fd_, buf_.data() + end_, buf_.size() - end_);
    if (n > 0) {
      end_ += static_cast<size_t>(n);
      read_ += static_cast<size_t>(n);
      if (read_ > maxBytes_) {
        errno_ = EFBIG;
        return false;
      }
      return true;
    }
    if (n == 0) {
      eof_ = true;
      return true;
    }
    if (errno != EINTR) {
      errno_ = errno;
      return false;
    }
  }
}

DocumentReader::Step DocumentReader::next(std::string_view& text, int& firstLine) {
  if (done_) return Step::End;
  for (;;) {
    // Only whole lines are looked at (a line start needs the 3 bytes after
    // it, a multi-byte line break its last byte), all of it at the end.
    size_t limit = end_;
    if (!eof_) {
      const void* nl = scan_ < end_ ? memrchr(buf_.data() + scan_, '\n', end_ - scan_) : nullptr;
      limit = nl != nullptr ? static_cast<size_t>(static_cast<const char*>(nl) - buf_.data()) + 1 : scan_;
    }
    const std::string_view seen(buf_.data(), limit);
    bool uncut = false, wait = false;
    size_t cut = SIZE_MAX;
    // false: stop (the document ends at `p`, or the file cannot be cut)
    auto look = [&](size_t p) {
      if (p == seen.size()) return true;  // the final '\n'
      if (seen[p] == '%' || markerAt(seen, p, '.')) {
        uncut = true;
        return false;
      }
      if (p > start_ && markerAt(seen, p, '-')) {
        cut = p;
        return false;
      }
      return true;
    };
    bool go = true;
    if (pending_ && (scan_ < limit || eof_)) {
      pending_ = false;
      go = look(scan_);
    }
    if (go && !pending_ && scan_ < limit) {
      const size_t from = scan_;
      const int base = lines_;
      size_t newlines = 0;
      const bool whole = scanLines(seen.substr(from), newlines, [&](size_t off, size_t lines) {
        const size_t p = from + off;
        lines_ = base + static_cast<int>(lines);
        scan_ = p;
        if (p == limit && !eof_) {  // the start of a line not read whole yet
          pending_ = true;
          wait = true;
          return false;
        }
        return look(p);
      });
      if (!whole && !wait && cut == SIZE_MAX) uncut = true;  // a line break other than '\n'
      if (whole) {
        scan_ = limit;
        lines_ = base + static_cast<int>(newlines);
      }
    }
    if (uncut) return Step::Uncut;
    if (cut != SIZE_MAX) {
      text = seen.substr(start_, cut - start_);
      firstLine = startLine_;
      docLines_ = lines_ - startLine_;
      start_ = cut;
      startLine_ = lines_;
      any_ = true;
      return Step::Document;
    }
    if (eof_) {
      done_ = true;
      if (start_ == end_ && any_) return Step::End;
      text = std::string_view(buf_.data() + start_, end_ - start_);
      firstLine = startLine_;
      docLines_ = lines_ - startLine_;
      return Step::Document;
    }
    if (!fill()) return Step::Failed;
  }
}

DocumentReader::Step DocumentReader::peek(size_t length, std::string_view& text) {
  // Only at a document's start, nothing of it scanned yet.
  if (done_ || length == 0 || scan_ != start_ || (pending_ && start_ != 0)) return Step::Uncut;
  // The bytes and the marker line after them (4 bytes tell a "---").
  while (end_ - start_ < length + 4 && !eof_) {
    if (!fill()) return Step::Failed;
  }
  const std::string_view seen(buf_.data(), end_);
  // The file's first line is looked at as next() would: a directive or a
  // "..." there means it is not cut.
  if (pending_ && (seen.empty() || seen[0] == '%' || markerAt(seen, 0, '.'))) return Step::Uncut;
  const size_t cut = start_ + length;
  if (cut > end_) return Step::Uncut;
  if (cut < end_ && (seen[cut - 1] != '\n' || !markerAt(seen, cut, '-'))) return Step::Uncut;
  text = seen.substr(start_, length);
  return Step::Document;
}

void DocumentReader::take(size_t length, int lines, int& firstLine) {
  firstLine = startLine_;
  docLines_ = lines;
  start_ += length;
  scan_ = start_;
  pending_ = false;
  startLine_ += lines;
  lines_ = startLine_;
  any_ = true;
  if (start_ == end_ && eof_) done_ = true;
}

bool readWhole(int fd, std::string& out, int& err, size_t maxBytes) {
  out.clear();
  if (::lseek(fd, 0, SEEK_SET) != 0) {
    err = errno;
    return false;
  }
  char chunk[1 << 16];
  for (;;) {
    const ssize_t n = ::read(fd, chunk, sizeof chunk);
    if (n > 0) {
      out.append(chunk, static_cast<size_t>(n));
      if (out.size() > maxBytes) {
        err = EFBIG;
        return false;
      }
    } else if (n == 0) {
      return true;
    } else if (errno != EINTR) {
      err = errno;
      return false;
    }
  }
}

}  // namespace microseg::policy
