// The one encoding of outside bytes as text (common/text.h): what it keeps,
// what it replaces, and that it is the same rule nlohmann::json's
// error_handler_t::replace applies, so a string reads the same whichever
// path printed it.
#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "common/text.h"

namespace microseg::text {
namespace {

const std::string kFffd(kReplacement);

TEST(Text, ValidUtf8PassesUnchanged) {
  for (const std::string& s : std::vector<std::string>{"", "curl", "caf\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80", "\xef\xbf\xbd",
                              std::string("nul\0inside", 10), "\xed\x9f\xbf", "\xf4\x8f\xbf\xbf"}) {
    EXPECT_TRUE(isUtf8(s)) << s;
    EXPECT_EQ(toUtf8(s), s);
  }
}

TEST(Text, EachMaximalIllFormedSubpartBecomesOneReplacement) {
  struct Case {
    std::string in, out;
  };
  const Case cases[] = {
      {"\xff", kFffd},
      {"a\xff\xfe" "b", "a" + kFffd + kFffd + "b"},               // two lone bytes
      {"\x80", kFffd},                                             // a continuation alone
      {"\xc3", kFffd},                                             // truncated at the end
      {"\xe2\x82", kFffd},                                         // truncated 3-byte: one
      {"\xe2\x82" "x", kFffd + "x"},                               // truncated before ASCII
      {"\xc0\xaf", kFffd + kFffd},                                 // overlong: C0 never starts
      {"\xe0\x80\xaf", kFffd + kFffd + kFffd},                     // overlong 3-byte
      {"\xed\xa0\x80", kFffd + kFffd + kFffd},                     // a surrogate
      {"\xf4\x90\x80\x80", kFffd + kFffd + kFffd + kFffd},         // above U+10FFFF
      {"\xf0\x9f\x98", kFffd},                                     // truncated 4-byte
      {"\xf0\x9f\x98\xc3\xa9", kFffd + "\xc3\xa9"},                // truncated, then valid
      {"/bad\xff\xfename", "/bad" + kFffd + kFffd + "name"},
  };
  for (const auto& c : cases) {
    EXPECT_FALSE(isUtf8(c.in)) << c.in;
    EXPECT_EQ(toUtf8(c.in), c.out) << c.in;
    EXPECT_TRUE(isUtf8(toUtf8(c.in)));
  }
}

TEST(Text, AppendKeepsWhatIsThere) {
  std::string out = "x=";
  appendUtf8(out, "a\xff");
  EXPECT_EQ(out, "x=a" + kFffd);
}

// The JSON writer and toUtf8() agree byte for byte on any input: strings
// that reach JSON through a document are replaced the same as strings
// encoded before they were put in.
TEST(Text, JsonTextReplacesExactlyAsToUtf8) {
  std::mt19937 rng(20261207);
  // Bytes weighted toward the interesting ranges: lead bytes, continuations, ASCII.
  const unsigned char pool[] = {'a', 'z', '"', '\\', 0x01, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xc1,
                                0xc2, 0xdf, 0xe0, 0xe1, 0xec, 0xed, 0xee, 0xef, 0xf0, 0xf1, 0xf3, 0xf4, 0xf5, 0xff};
  for (int n = 0; n < 20000; n++) {
    std::string s(rng() % 12, '\0');
    for (auto& c : s) c = static_cast<char>(pool[rng() % sizeof(pool)]);
    ASSERT_EQ(jsonText(nlohmann::json(s)), jsonText(nlohmann::json(toUtf8(s)))) << nlohmann::json(toUtf8(s));
    ASSERT_NO_THROW((void)nlohmann::json(toUtf8(s)).dump()) << "strict dump of the encoded text";
  }
}

TEST(Text, JsonTextNeverThrowsOnBytes) {
  nlohmann::json doc = {{"comm", "\xff\xfe"}, {"nested", {{"cgroup", "/a\xc3"}}}};
  EXPECT_THROW((void)doc.dump(), nlohmann::json::type_error) << "what the flow log did before";
  EXPECT_EQ(jsonText(doc), "{\"comm\":\"" + kFffd + kFffd + "\",\"nested\":{\"cgroup\":\"/a" + kFffd + "\"}}");
  EXPECT_EQ(jsonText(nlohmann::json{{"a", 1}}, 2), "{\n  \"a\": 1\n}");
}

}  // namespace
}  // namespace microseg::text
