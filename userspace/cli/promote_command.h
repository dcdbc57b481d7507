// `microseg policy promote NAME`: a staged policy put in force. The CLI
// edits the file itself, with the rights of whoever runs it (the daemon,
// root, never writes a file on a caller's behalf), then has the daemon
// reload; a rejected reload puts the file back as it was.
#pragma once

#include <string>

namespace microseg::cli {

int cmdPromote(const std::string& socket, bool json, const std::string& name);

}  // namespace microseg::cli
