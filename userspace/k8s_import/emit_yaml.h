// microseg documents (documents.h) as YAML text, written with libyaml's
// emitter (quoting is its business, except for strings YAML would read as
// something else: `"80"`, `"true"`, `"null"`, `""` are quoted here). The
// same documents always give the same bytes.
#pragma once

#include <string>

#include "k8s_import/documents.h"

namespace microseg::k8s {

std::string emitYaml(const Documents& docs);

}  // namespace microseg::k8s
