// A file replaced whole or not at all: a temporary file beside it (0600,
// never through a symlink), written, fsync'd, renamed over it. What the
// daemon keeps in its data dir (grants, observed edges) and the cluster
// agent's caches (etcd's view, the wire keys) are saved this way.
#pragma once

#include <string>

#include "common/result.h"

namespace microseg {

// `what` names the file in errors ("grants": "write grants of '<tmp>'
// failed", "save grants of '<path>' failed").
Result<void> writeFileAtomically(const std::string& path, const std::string& text, const std::string& what);

}  // namespace microseg
