// A fast reader for the YAML that policy files are made of: block mappings
// and sequences, flow collections, plain and quoted single-line scalars,
// comments. It builds exactly the yaml::Tree that yaml-cpp's events would
// (same nodes, texts, tags and marks) and declines everything else: anchors,
// tags, block scalars, multi-line scalars, directives, tabs, CR, non-ASCII,
// and anything yaml-cpp would reject or read in a way this reader does not
// reproduce. A declined file is read by yaml-cpp, which stays the reference
// (and the source of syntax-error messages). yaml-cpp 0.7 reads some 4 MB/s;
// this reads policy files ~50x faster.
#pragma once

#include <cstddef>
#include <string_view>
#include <vector>

#include "policy/yaml_tree.h"

namespace microseg::policy::yaml {

// A document's text: after its '---' line (if any), up to the next one.
struct DocumentSpan {
  size_t begin = 0, end = 0;  // byte offsets in the whole text
  int firstLine = 0;          // 0-based line of `begin`
};

// Splits `text` at its '---' lines. False if the text is outside what the
// fast reader handles (see above) anywhere: the caller then uses yaml-cpp
// for the whole text.
bool splitDocuments(std::string_view text, std::vector<DocumentSpan>& out);

// Reads one document of `text` into `tree` (cleared first). False if it is
// outside the subset; `tree` is then unspecified.
bool readDocument(std::string_view text, const DocumentSpan& span, Tree& tree);

}  // namespace microseg::policy::yaml
