// `microseg policy validate -`: the policy text piped in, served to the
// policy loader as the file "-" (every other path is opened as usual), so
// it is read, bounded and diagnosed exactly like a file.
#pragma once

#include <cstddef>
#include <string>

#include "common/fd.h"
#include "common/result.h"
#include "policy/files.h"

namespace microseg::cli {

class StdinFiles : public policy::FileAccess {
 public:
  // Reads all of stdin (at most `maxBytes`: more is an error naming the
  // bound) into an anonymous file.
  static Result<StdinFiles> read(size_t maxBytes);
  Result<UniqueFd> open(const std::string& path, int flags) const override;

 private:
  UniqueFd text_;  // memfd: a regular file, as the loader wants
};

}  // namespace microseg::cli
