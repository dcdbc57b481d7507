// `microseg policy promote NAME`: a staged policy (spec.staged: true) put in
// force by removing its `staged: true` line from the file that defines it,
// and nothing else: every other byte of the file stays as written
// (comments, order, quoting). Only the plain block-style form is edited
// (`staged: true` alone on its line, an optional comment after it); any
// other form (flow style `spec: {staged: true, ...}`, `staged: True`, an
// anchor) is left for the user to edit by hand, with an error saying so.
#pragma once

#include <string>

#include "common/result.h"

namespace microseg::policy {

// The text of `file` (its contents `text`) with policy `name`'s
// `staged: true` line removed. The result is parsed again and must define
// `name` not staged, with as many policies as before.
Result<std::string> promoteText(const std::string& text, const std::string& file, const std::string& name);

// promoteText() on the file itself, replaced atomically (a temporary file
// beside it with its mode and owner, fsync, rename; a symlink's target is
// what is edited). Returns the text it had, for undo().
Result<std::string> promoteFile(const std::string& path, const std::string& name);

// Writes `text` back to `path` atomically (undoing promoteFile()).
Result<void> replaceFile(const std::string& path, const std::string& text);

}  // namespace microseg::policy
