// The fast YAML reader against yaml-cpp, the reference: wherever the fast
// reader accepts a text it must build exactly yaml-cpp's tree (nodes, texts,
// tags, marks), and yaml-cpp must accept the text too. Everything else it
// declines, and the parser then reads the text with yaml-cpp.
#include <gtest/gtest.h>
#include <yaml-cpp/exceptions.h>
#include <yaml-cpp/parser.h>

#include <functional>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "policy/fast_yaml.h"
#include "policy/parser.h"
#include "policy/yaml_tree.h"

namespace microseg::policy::yaml {
namespace {

using Trees = std::vector<std::unique_ptr<Tree>>;

// Non-null documents, as the policy parser sees them.
bool fastTrees(const std::string& text, Trees& out) {
  std::vector<DocumentSpan> spans;
  if (!splitDocuments(text, spans)) return false;
  for (const auto& s : spans) {
    auto t = std::make_unique<Tree>();
    if (!readDocument(text, s, *t)) return false;
    if (!t->root().IsNull()) out.push_back(std::move(t));
  }
  return true;
}

// False if yaml-cpp rejects the text.
bool yamlCppTrees(const std::string& text, Trees& out) {
  std::stringstream in(text);
  try {
    YAML::Parser p(in);
    for (;;) {
      auto t = std::make_unique<Tree>();
      TreeBuilder b(*t, text.size());
      if (!p.HandleNextDocument(b)) break;
      if (!t->root().IsNull()) out.push_back(std::move(t));
    }
  } catch (const YAML::Exception&) {
    return false;
  } catch (const NoProgressError&) {
    return false;
  }
  return true;
}

enum class Outcome { Declined, Same, Differ, AcceptsInvalid };

Outcome compare(const std::string& text) {
  Trees fast, ref;
  if (!fastTrees(text, fast)) return Outcome::Declined;
  if (!yamlCppTrees(text, ref)) return Outcome::AcceptsInvalid;
  if (fast.size() != ref.size()) return Outcome::Differ;
  for (size_t i = 0; i < fast.size(); i++) {
    if (!sameDocument(*fast[i], *ref[i])) return Outcome::Differ;
  }
  return Outcome::Same;
}

TEST(YamlReader, ReadsPolicyStylesExactlyAsYamlCpp) {
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
  for (const char* t : texts) EXPECT_EQ(compare(t), Outcome::Same) << t;
}

TEST(YamlReader, DeclinesWhatItDoesNotReproduce) {
  const char* texts[] = {
      "a: &x b\nc: *x\n",           // anchors, aliases
      "a: !!str 80\n",              // tags
      "a: |\n  text\n",             // block scalars
      "a: b\n  c\n",                // a plain scalar continued on the next line
      "a:\tb\n",                    // tabs
      "a: b\r\n",                   // CR
      "a: \xc3\xa9\n",              // non-ASCII
      "%YAML 1.2\n---\na: b\n",     // directives
      "a: b\n...\n",                // document end
      "--- a: b\n",                 // content after the marker
      "? a\n: b\n",                 // complex keys
      "a: b: c\n",                  // a mapping value where yaml-cpp refuses one
      "a: [b, c\n",                 // unclosed
      "- \n- a\n",                  // an empty item
      "a: b\n - c\n",               // bad indentation
      "a: \"multi\n  line\"\n",     // a quoted scalar over two lines
  };
  for (const char* t : texts) EXPECT_EQ(compare(t), Outcome::Declined) << t;
}

// Random documents from a small grammar of the constructs policy files use,
// then random line-level damage: the fast reader must either decline or
// agree with yaml-cpp.
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

TEST(YamlReader, RandomDocumentsAgreeWithYamlCpp) {
  std::mt19937 rng(20261201);
  int same = 0;
  for (int i = 0; i < 3000; i++) {
    std::string text = randomDoc(rng);
    if (i % 3 == 0) text += "---\n" + randomDoc(rng);
    if (i % 2 == 1) text = damage(text, rng);
    const Outcome o = compare(text);
    ASSERT_NE(o, Outcome::Differ) << text;
    ASSERT_NE(o, Outcome::AcceptsInvalid) << text;
    same += o == Outcome::Same;
  }
  EXPECT_GT(same, 1000) << "the fast reader declines too much to be tested here";
}

TEST(YamlReader, StreamsThatYamlCppNeverFinishesAreAnError) {
  // yaml-cpp 0.7 reads a ',' before any node as an endless run of empty
  // documents.
  auto r = parseText(", namespace: shop}\nspec:\n  selector: {identity: ", "loop.yaml");
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0].str(),
            "loop.yaml:1:1: error: YAML syntax: the YAML parser makes no progress here (a stray ',', ']' or '}'?)");
}

TEST(YamlReader, SyntaxErrorIsTheFilesOnlyDiagnostic) {
  // The documents before the error are not reported (nor kept), as when
  // the whole file was parsed before any document was looked at.
  auto r = parseText("apiVersion: microseg.dev/v1\nkind: Nope\n---\na: [b\n", "f.yaml");
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0].message.rfind("YAML syntax: ", 0), 0u) << r.errors[0].str();
  EXPECT_TRUE(r.bundle.workloads.empty());
}

TEST(YamlReader, YamlCppReadsWhatTheFastReaderDeclines) {
  // Anchors and a block scalar: the whole file goes to yaml-cpp.
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
