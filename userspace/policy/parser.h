// The policy reader's front door: YAML policy files -> a validated
// policy::Bundle with located diagnostics. It only gathers the parts, each
// in its own file:
//   schema.h           a text's documents -> model objects (parseText)
//   references.h       cross-document checks (validateBundle)
//   loader.h           PolicyLoader: paths -> bundle, reading only what changed
//                      (loadPaths); it uses files.h (which files),
//                      document_reader.h (cutting a file into documents),
//                      rule_reuse.h + rule_lists.h (reusing a policy's rules),
//                      locations.h (moving what was read before)
//   yaml_reader.h      libyaml -> yaml_tree.h, one document at a time
#pragma once

#include "policy/loader.h"
#include "policy/references.h"
#include "policy/schema.h"
