// `microseg grants` as a table (cli/grant_commands.h).
#include <gtest/gtest.h>

#include <sstream>

#include "cli/grant_commands.h"

namespace microseg::cli {
namespace {

using nlohmann::json;

TEST(GrantsTable, ShowsEachGrantAndSanitizesText) {
  json r = {{"grants",
             {{{"id", 3},
               {"from", "ops"},
               {"to", "db"},
               {"ports", "5432/tcp"},
               {"state", "active"},
               {"created", "2026-12-07T15:00:00Z"},
               {"expires", "2026-12-07T15:30:00Z"},
               {"remaining_seconds", 1500},
               {"uid", 1000},
               {"pid", 77},
               {"reason", "INC-1\x1b[31m"}},
              {{"id", 2},
               {"from", "ops"},
               {"to", "gone"},
               {"ports", "22/tcp"},
               {"state", "revoked"},
               {"remaining_seconds", 0},
               {"uid", 0},
               {"pid", 1}}}}};
  std::ostringstream out;
  printGrants(r, out);
  const std::string s = out.str();
  EXPECT_NE(s.find("25m"), std::string::npos) << s;
  EXPECT_NE(s.find("uid 1000 pid 77"), std::string::npos) << s;
  EXPECT_NE(s.find("revoked"), std::string::npos) << s;
  EXPECT_EQ(s.find('\x1b'), std::string::npos) << "no escape sequence reaches the terminal";
  std::ostringstream empty;
  printGrants(json{{"grants", json::array()}}, empty);
  EXPECT_EQ(empty.str(), "no grants\n");
}

}  // namespace
}  // namespace microseg::cli
