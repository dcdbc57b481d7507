// libyaml's reader (yaml_reader.h) against yaml-cpp, whose trees the
// parser was first written against: the trees yaml-cpp 0.7 built for these
// texts (nodes, texts, tags and marks, through an event handler into a
// Tree) were recorded when the project dropped yaml-cpp (2026-12-07), after
// checking that libyaml's reader built the same ones; these tests keep
// them. The random texts are kept as digests of what the reader read, 100
// texts a digest: at recording, wherever both accepted a text (2,114 of
// 3,000) the trees were the same, and yaml-cpp accepted every text libyaml
// did (it also accepted 126 damaged texts libyaml rejects).
// Then the bounds of what a document may cost (Limits).
#include <gtest/gtest.h>
#include <xxhash.h>

#include <functional>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "policy/parser.h"
#include "policy/yaml_reader.h"
#include "policy/yaml_tree.h"

namespace microseg::policy::yaml {
namespace {

using Trees = std::vector<std::unique_ptr<Tree>>;

void copyNode(Node n, Tree& t) {
  switch (n.type()) {
    case Type::Scalar: t.addScalar(n.mark(), n.Tag(), n.Scalar()); break;
    case Type::Null: t.addNull(n.mark()); break;
    case Type::Sequence:
      t.open(Type::Sequence, n.mark());
      for (size_t i = 0; i < n.size(); i++) copyNode(n.item(i), t);
      t.close();
      break;
    case Type::Map:
      t.open(Type::Map, n.mark());
      for (size_t i = 0; i < n.size(); i++) {
        copyNode(n.key(i), t);
        copyNode(n.value(i), t);
      }
      t.close();
      break;
    case Type::Undefined: break;
  }
}

// Non-null documents, as the policy parser sees them. False on a syntax error.
bool libyamlTrees(const std::string& text, Trees& out) {
  Tree tree;
  auto err = readDocuments(text, tree, [&](const Tree& doc) {
    if (doc.root().IsNull() || doc.empty()) return;
    auto copy = std::make_unique<Tree>();
    copyNode(doc.root(), *copy);
    out.push_back(std::move(copy));
  });
  return !err;
}

std::string quoted(std::string_view s) {
  std::string out = "\"";
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += ch;
    } else if (c < 0x20 || c >= 0x7f) {
      static const char* d = "0123456789abcdef";
      out += "\\x";
      out += d[c >> 4];
      out += d[c & 15];
    } else {
      out += ch;
    }
  }
  return out + "\"";
}

// A node as text: scalars quoted, then "!" if quoted in the YAML, <tag> if
// tagged, @line:column (0-based); "~" for null, whose mark is left out
// (yaml-cpp put an empty value's at the next token, libyaml at the key).
std::string describe(Node n) {
  const std::string at = "@" + std::to_string(n.mark().line) + ":" + std::to_string(n.mark().column);
  switch (n.type()) {
    case Type::Null: return "~";
    case Type::Scalar: {
      const std::string_view tag = n.Tag();
      return quoted(n.Scalar()) + (tag == "?" ? "" : tag == "!" ? "!" : "<" + std::string(tag) + ">") + at;
    }
    case Type::Sequence: {
      std::string s = "[" + at;
      for (size_t i = 0; i < n.size(); i++) s += (i ? ", " : " ") + describe(n.item(i));
      return s + "]";
    }
    case Type::Map: {
      std::string s = "{" + at;
      for (size_t i = 0; i < n.size(); i++) s += (i ? ", " : " ") + describe(n.key(i)) + ": " + describe(n.value(i));
      return s + "}";
    }
    case Type::Undefined: return "?";
  }
  return "?";
}

// Every non-null document, a line each; "rejected" on a syntax error.
std::string read(const std::string& text) {
  Trees trees;
  if (!libyamlTrees(text, trees)) return "rejected\n";
  std::string s;
  for (const auto& t : trees) s += describe(t->root()) + "\n";
  return s;
}

TEST(YamlReader, ReadsPolicyStylesAsYamlCppDid) {
  const char* texts[] = {

      // flow and block mixed, comments, quotes, an indentless list
      "# header\n"
      "apiVersion: microseg.dev/v1   # trailing\n"
      "kind: 'Policy'\n"
      "metadata: {name: \"p\", annotations: {a: b}}\n"
      "spec:\n"
      "  selector: {matchLabels: {app: web}}\n"
      "  egress:\n"
      "  - to: [{identity: db}, world]\n"
      "    ports:\n"
      "      - port: 5432\n"
      "        protocol: TCP\n"
      "      - {port: 8000, endPort: 8100}\n"
      "\n"
      "    # between rules\n"
      "  - action: deny\n"
      "    to:\n"
      "      -   identity: api\n"
      "      - reserved: host\n"
      "  ingress: []\n"
      "---\n"
      "--- # an empty document\n"
      "apiVersion: microseg.dev/v1\n"
      "kind: Workload\n"
      "metadata:\n"
      "    name: w\n"
      "spec: {cgroups: [\"a/*\", b], labels: {k: ''}}\n",
      // empty values, nulls, keys that are not plain
      "a:\nb: ~\n\"c\": null\n'd e': x y z\nf: -1\ng: 'it''s'\nh: \"q\\\"\\\\\"\n",
      // a document that starts indented, multi-line flow collections
      "  spec:\n    cidrs: [10.0.0.0/8,\n      \"fd00::/8\"]\n    except: [\n      10.1.0.0/16\n    ]\n",
      // a flow mapping as the whole document
      "{apiVersion: microseg.dev/v1, kind: Workload, metadata: {name: w}, spec: {cgroups: [a]}}\n",
      // values with ':' '#' and ',' inside
      "spiffeId: spiffe://example.org/ns/a#b\nlist: a,b\nurl: http://x:80/y\n",
      // no newline at the end
      "a: b",
  };
  const char* yamlCpp[] = {
      "{@1:0 \"apiVersion\"@1:0: \"microseg.dev/v1\"@1:12, \"kind\"@2:0: \"Policy\"!@2:6, "
      "\"metadata\"@3:0: {@3:10 \"name\"@3:11: \"p\"!@3:17, "
      "\"annotations\"@3:22: {@3:35 \"a\"@3:36: \"b\"@3:39}}, "
      "\"spec\"@4:0: {@5:2 \"selector\"@5:2: {@5:12 \"matchLabels\"@5:13: {@5:26 \"app\"@5:27: \"web\"@"
      "5:32}}, \"egress\"@6:2: [@7:2 {@7:4 \"to\"@7:4: [@7:8 {@7:9 \"identity\"@7:10: \"db\"@7:20}, "
      "\"world\"@7:25], \"ports\"@8:4: [@9:6 {@9:8 \"port\"@9:8: \"5432\"@9:14, "
      "\"protocol\"@10:8: \"TCP\"@10:18}, {@11:8 \"port\"@11:9: \"8000\"@11:15, "
      "\"endPort\"@11:21: \"8100\"@11:30}]}, {@14:4 \"action\"@14:4: \"deny\"@14:12, "
      "\"to\"@15:4: [@16:6 {@16:10 \"identity\"@16:10: \"api\"@16:20}, "
      "{@17:8 \"reserved\"@17:8: \"host\"@17:18}]}], \"ingress\"@18:2: [@18:11]}}\n"
      "{@21:0 \"apiVersion\"@21:0: \"microseg.dev/v1\"@21:12, \"kind\"@22:0: \"Workload\"@22:6, "
      "\"metadata\"@23:0: {@24:4 \"name\"@24:4: \"w\"@24:10}, "
      "\"spec\"@25:0: {@25:6 \"cgroups\"@25:7: [@25:16 \"a/*\"!@25:17, \"b\"@25:24], "
      "\"labels\"@25:28: {@25:36 \"k\"@25:37: \"\"!@25:40}}}\n",
      "{@0:0 \"a\"@0:0: ~, \"b\"@1:0: ~, \"c\"!@2:0: ~, \"d e\"!@3:0: \"x y z\"@3:7, "
      "\"f\"@4:0: \"-1\"@4:3, \"g\"@5:0: \"it's\"!@5:3, \"h\"@6:0: \"q\\\"\\\\\"!@6:3}\n",
      "{@0:2 \"spec\"@0:2: {@1:4 \"cidrs\"@1:4: [@1:11 \"10.0.0.0/8\"@1:12, \"fd00::/8\"!@2:6], "
      "\"except\"@3:4: [@3:12 \"10.1.0.0/16\"@4:6]}}\n",
      "{@0:0 \"apiVersion\"@0:1: \"microseg.dev/v1\"@0:13, \"kind\"@0:30: \"Workload\"@0:36, "
      "\"metadata\"@0:46: {@0:56 \"name\"@0:57: \"w\"@0:63}, "
      "\"spec\"@0:67: {@0:73 \"cgroups\"@0:74: [@0:83 \"a\"@0:84]}}\n",
      "{@0:0 \"spiffeId\"@0:0: \"spiffe://example.org/ns/a#b\"@0:10, \"list\"@1:0: \"a,b\"@1:6, "
      "\"url\"@2:0: \"http://x:80/y\"@2:5}\n",
      "{@0:0 \"a\"@0:0: \"b\"@0:3}\n",
  };
  static_assert(std::size(texts) == std::size(yamlCpp));
  for (size_t i = 0; i < std::size(texts); i++) EXPECT_EQ(read(texts[i]), yamlCpp[i]) << texts[i];
}

TEST(YamlReader, ReadsTheRestOfYamlAsYamlCppDid) {
  const char* texts[] = {

      "a: !!str 80\n",              // tags
      "a: |\n  text\n",             // block scalars
      "a: >-\n  folded\n  text\n",  // folded
      "a: b\n  c\n",                // a plain scalar continued on the next line
      "a: \xc3\xa9\n",              // non-ASCII
      "%YAML 1.1\n---\na: b\n",     // directives
      "a: b\n...\n",                // document end
      "--- {a: b}\n",               // content after the marker
      "a: \"multi\n  line\"\n",     // a quoted scalar over two lines
  };
  const char* yamlCpp[] = {
      "{@0:0 \"a\"@0:0: \"80\"<tag:yaml.org,2002:str>@0:3}\n",
      "{@0:0 \"a\"@0:0: \"text\\x0a\"!@0:3}\n",
      "{@0:0 \"a\"@0:0: \"folded text\"!@0:3}\n",
      "{@0:0 \"a\"@0:0: \"b c\"@0:3}\n",
      "{@0:0 \"a\"@0:0: \"\\xc3\\xa9\"@0:3}\n",
      "{@2:0 \"a\"@2:0: \"b\"@2:3}\n",
      "{@0:0 \"a\"@0:0: \"b\"@0:3}\n",
      "{@0:4 \"a\"@0:5: \"b\"@0:8}\n",
      "{@0:0 \"a\"@0:0: \"multi line\"!@0:3}\n",
  };
  static_assert(std::size(texts) == std::size(yamlCpp));
  for (size_t i = 0; i < std::size(texts); i++) EXPECT_EQ(read(texts[i]), yamlCpp[i]) << texts[i];
}

TEST(YamlReader, RejectsMalformedYaml) {
  const char* texts[] = {
      "a: [b, c\n",    // unclosed
      "a:\n  - b\n - c\n",  // bad indentation
      "a: b: c\n",     // a mapping value where none can start
      "a: *nope\n",    // an alias without its anchor
  };
  for (const char* t : texts) {
    Tree tree;
    EXPECT_TRUE(readDocuments(t, tree, [](const Tree&) {}).has_value()) << t;
  }
}

TEST(YamlReader, AliasesShareTheirNode) {
  Tree tree;
  std::string seen;
  auto err = readDocuments("a: &x [1, 2]\nb: *x\nc: &y v\nd: *y\n", tree, [&](const Tree& doc) {
    const Node r = doc.root();
    EXPECT_TRUE(r["a"].is(r["b"]));
    EXPECT_EQ(r["d"].Scalar(), "v");
    seen = "yes";
  });
  EXPECT_FALSE(err) << err->message;
  EXPECT_EQ(seen, "yes");
}

TEST(YamlReader, AnAliasInsideItsOwnAnchorIsAnError) {
  // Defined where its collection ends, so the tree can never be a cycle.
  Tree tree;
  auto err = readDocuments("a: &x [1, *x]\n", tree, [](const Tree&) {});
  ASSERT_TRUE(err.has_value());
  EXPECT_NE(err->message.find("'*x'"), std::string::npos) << err->message;
  EXPECT_EQ(err->at.line, 0);
}

// Random documents from a small grammar of the constructs policy files use,
// then random line-level damage.
std::string randomDoc(std::mt19937& rng) {
  auto pick = [&](int n) { return static_cast<int>(rng() % static_cast<unsigned>(n)); };
  const char* scalars[] = {"a", "b c", "'q'", "\"d\"", "~", "null", "-1", "10.0.0.0/8", "x:y", "a#b", "''", "8080"};
  const char* keys[] = {"k", "key", "'sq'", "\"dq\"", "a b", "null"};
  std::function<std::string(int)> flow = [&](int depth) -> std::string {
    const int k = depth > 2 ? 0 : pick(3);
    if (k == 0) return scalars[pick(12)];
    std::string s = k == 1 ? "[" : "{";
    const int n = pick(3);
    for (int i = 0; i < n; i++) {
      if (i) s += pick(4) ? ", " : ",\n   ";
      if (k == 2) s += std::string(keys[pick(6)]) + ": ";
      s += flow(depth + 1);
    }
    return s + (k == 1 ? "]" : "}");
  };
  std::function<void(int, int, std::string&)> block = [&](int indent, int depth, std::string& out) {
    const std::string sp(static_cast<size_t>(indent), ' ');
    const int n = 1 + pick(3);
    const bool seq = pick(3) == 0;
    for (int i = 0; i < n; i++) {
      if (pick(8) == 0) out += sp + "# c\n";
      out += sp + (seq ? "- " : std::string(keys[pick(6)]) + ":");
      const int v = depth > 2 ? 0 : pick(3);
      if (v == 0) {
        out += (seq ? "" : " ") + (pick(3) ? std::string(scalars[pick(12)]) : flow(0)) + (pick(5) ? "" : " # t") + "\n";
      } else if (seq) {
        out += std::string(keys[pick(6)]) + ": " + scalars[pick(12)] + "\n";
        std::string sub;
        block(indent + 2, depth + 1, sub);
        out += sub.find("- ") == std::string::npos ? sub : "";
      } else {
        out += "\n";
        block(indent + (pick(2) ? 2 : (v == 2 ? 0 : 4)), depth + 1, out);
      }
    }
  };
  std::string doc;
  block(pick(4) == 0 ? 2 : 0, 0, doc);
  return doc;
}

std::string damage(std::string t, std::mt19937& rng) {
  auto pick = [&](size_t n) { return n == 0 ? 0 : static_cast<size_t>(rng() % n); };
  std::vector<std::string> lines;
  std::stringstream ss(t);
  for (std::string l; std::getline(ss, l);) lines.push_back(l);
  if (lines.empty()) return t;
  const char* inserts[] = {" ", ":", ": ", "- ", ",", "[", "]", "{", "}", "\"", "'", "#", " #", "~"};
  for (int k = 0, n = 1 + static_cast<int>(pick(2)); k < n; k++) {
    std::string& l = lines[pick(lines.size())];
    switch (pick(5)) {
      case 0: l = " " + l; break;
      case 1:
        if (!l.empty() && l[0] == ' ') l.erase(0, 1);
        break;
      case 2: l.insert(pick(l.size() + 1), inserts[pick(14)]); break;
      case 3:
        if (!l.empty()) l.erase(pick(l.size()), 1);
        break;
      default: std::swap(l, lines[pick(lines.size())]); break;
    }
  }
  std::string out;
  for (const auto& l : lines) out += l + "\n";
  return out;
}

TEST(YamlReader, RandomDocumentsReadAsWhenCheckedAgainstYamlCpp) {
  // XXH64 of what read() gave for each 100 texts, chained from 0, at the
  // recording (see the top of the file).
  const uint64_t recorded[] = {
    0xffec52efe1d83d91ull,
    0x369715f98cc6b110ull,
    0x043901fea7a34502ull,
    0xd41abc23d51fa4f7ull,
    0x0a9884389967b1d6ull,
    0xa97ce2ac6255f696ull,
    0xc242843d261142d1ull,
    0xc12efd21c7a02145ull,
    0xb01722f68ef33f4dull,
    0xe81250d787c42e39ull,
    0x4523798bd8e1844dull,
    0x4ffb3c415e650c6cull,
    0x50a65f4fc33f0e08ull,
    0xf00e47b17cd2d8b7ull,
    0xe1b1e656fa966ed6ull,
    0x45aed2ff0c4c9420ull,
    0x3f7f5625a019f403ull,
    0xe96c561da6705b55ull,
    0xe051f5526a2b0a41ull,
    0x7b5b43b94b7e051dull,
    0xcc6b58d4169bdc53ull,
    0x8585db41c54ce015ull,
    0xf6871423e09e6573ull,
    0xcbb7b2338c2adfa5ull,
    0x20373915de9c9cbdull,
    0x14c4d304e2e95027ull,
    0x937002f799c7799aull,
    0xb37dfae07b3b09e4ull,
    0x35921173b5d68376ull,
    0xdf08ea11e75b9b57ull,
  };
  std::mt19937 rng(20261201);
  uint64_t h = 0;
  for (int i = 0; i < 3000; i++) {
    std::string text = randomDoc(rng);
    if (i % 3 == 0) text += "---\n" + randomDoc(rng);
    if (i % 2 == 1) text = damage(text, rng);
    const std::string r = read(text);
    h = XXH64(r.data(), r.size(), h);
    if (i % 100 == 99) {
      EXPECT_EQ(h, recorded[i / 100]) << "texts " << i - 99 << "-" << i << " are not read as they were";
      h = 0;
    }
  }
}

// ---- bounds (Limits) ----------------------------------------------------------

TEST(YamlReader, NestingUpToTheBoundIsRead) {
  Tree tree;
  const std::string ok = std::string(64, '[') + std::string(64, ']') + "\n";
  EXPECT_FALSE(readDocuments(ok, tree, [](const Tree&) {}).has_value());
  const auto err = readDocuments("a: " + ok, tree, [](const Tree&) {});
  ASSERT_TRUE(err.has_value());
  EXPECT_TRUE(err->limit);
  EXPECT_EQ(err->at, (Mark{0, 66}));  // the 64th '[' is the 65th collection
  EXPECT_EQ(err->message, "nesting deeper than 64 levels of collections");
  Limits deeper;
  deeper.maxDepth = 65;
  EXPECT_FALSE(readDocuments("a: " + ok, tree, [](const Tree&) {}, deeper).has_value());
}

TEST(YamlReader, AliasesMayStandForAMultipleOfTheDocument) {
  // 100 own nodes in a list, aliased 4 times (4 x 101 through aliases),
  // with a floor of 0: within 4 x the nodes written so far only if those
  // are counted as they come.
  std::string text = "a: &a [";
  for (int i = 0; i < 100; i++) text += (i ? ", x" : "x");
  text += "]\n";
  Limits l;
  l.aliasFloor = 0;
  Tree tree;
  EXPECT_FALSE(readDocuments(text + "b: [*a, *a, *a]\n", tree, [](const Tree&) {}, l).has_value());
  const auto err = readDocuments(text + "b: [*a, *a, *a, *a, *a]\n", tree, [](const Tree&) {}, l);
  ASSERT_TRUE(err.has_value());
  EXPECT_TRUE(err->limit);
  EXPECT_EQ(err->at, (Mark{1, 20}));  // the 5th: 5 x 101 > 4 x 105
}

TEST(YamlReader, AliasBoundsCountAliasesInsideAliases) {
  Tree tree;
  Limits l;
  l.aliasFloor = 60;
  l.aliasFactor = 1;
  // b's three *a are 12 nodes through aliases, and b stands for 13: with
  // the fourth *b, 12 + 4 x 13 = 64 pass 60.
  const auto err = readDocuments("a: &a [x, y, z]\nb: &b [*a, *a, *a]\nc: [*b, *b, *b, *b]\n", tree,
                                 [](const Tree&) {}, l);
  ASSERT_TRUE(err.has_value());
  EXPECT_EQ(err->at, (Mark{2, 16}));
}

TEST(YamlReader, AStrayCommaIsASyntaxError) {
  // (yaml-cpp 0.7 read a ',' before any node as an endless run of empty
  // documents.)
  auto r = parseText(", namespace: shop}\nspec:\n  selector: {identity: ", "loop.yaml");
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0].message.rfind("YAML syntax: ", 0), 0u) << r.errors[0].str();
  EXPECT_EQ(r.errors[0].loc.line, 1);
}

TEST(YamlReader, SyntaxErrorIsTheFilesOnlyDiagnostic) {
  // The documents before the error are not reported (nor kept), as when
  // the whole file was parsed before any document was looked at.
  auto r = parseText("apiVersion: microseg.dev/v1\nkind: Nope\n---\na: [b\n", "f.yaml");
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0].message.rfind("YAML syntax: ", 0), 0u) << r.errors[0].str();
  EXPECT_TRUE(r.bundle.workloads.empty());
}

// A byte libyaml cannot read (ill-formed UTF-8, a control character) is
// located where it is: libyaml gives no line or column for it (it was
// reported at 1:1, found by the policy_loader fuzzer), only its offset.
TEST(YamlReader, AByteThatIsNotTextIsLocatedWhereItIs) {
  auto r = parseText("a: 1\nb: x\xff y\n", "f.yaml");
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0].str(), "f.yaml:2:5: error: YAML syntax: invalid leading UTF-8 octet");
  // Columns count characters, as libyaml's marks do; "\r\n" is one break.
  r = parseText("a: 1\r\nb: \xc3\xa9\xc3\xa9\x01\n", "f.yaml");
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0].str(), "f.yaml:2:6: error: YAML syntax: control characters are not allowed");
  // A truncated sequence at the end: where it starts.
  r = parseText("a: [1]\n\xe2\x82", "f.yaml");
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0].str(), "f.yaml:2:1: error: YAML syntax: incomplete UTF-8 octet sequence");
}

// The text's first problem is the one reported. libyaml decodes up to 16
// KiB ahead of where it parses, so a byte it cannot read was reported
// before a syntax error earlier in the text; the policy loader, which
// parses a file a document at a time, reported the syntax error (found by
// the policy_loader fuzzer: the loader's result was not a fresh parse's).
TEST(YamlReader, TheFirstProblemInTheTextIsReported) {
  auto r = parseText("a: [b\n---\nc: \xff\n", "f.yaml");
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0].loc.line, 2) << r.errors[0].str();
  EXPECT_EQ(r.errors[0].message.find("UTF-8"), std::string::npos) << r.errors[0].str();
  // A problem only because the text is cut before the byte does not count:
  // the quoted scalar is open where the byte is.
  r = parseText("a: \"b\xff\"\n", "f.yaml");
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0].str(), "f.yaml:1:6: error: YAML syntax: invalid leading UTF-8 octet");
  // And the bounds: a document nested too deep before the byte.
  Tree tree;
  Limits tight;
  tight.maxDepth = 2;
  auto err = readDocuments("a: [[[1]]]\n---\nb: \xff\n", tree, [](const Tree&) {}, tight);
  ASSERT_TRUE(err.has_value());
  EXPECT_TRUE(err->limit) << err->message;
  EXPECT_EQ(err->at.line, 0);
}

TEST(YamlReader, PolicyWithAnchorsAndBlockScalars) {
  auto r = parseText(
      "apiVersion: microseg.dev/v1\nkind: Workload\nmetadata: {name: w}\n"
      "spec:\n  cgroups: [&c a]\n  labels: {app: *c}\n  spiffeId: >-\n    spiffe://x/y\n",
      "f.yaml");
  ASSERT_TRUE(r.ok()) << r.errors[0].str();
  ASSERT_EQ(r.bundle.workloads.size(), 1u);
  EXPECT_EQ(r.bundle.workloads[0].labels.at("app"), "a");
  EXPECT_EQ(r.bundle.workloads[0].spiffeId, "spiffe://x/y");
}

}  // namespace
}  // namespace microseg::policy::yaml
