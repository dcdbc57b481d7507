// libyaml's reader (yaml_reader.h) against yaml-cpp, whose trees the
// parser was first written against: wherever both accept a text, the trees
// must be the same (nodes, texts, tags and marks). The reference trees come
// from yaml-cpp's event stream through the builder below.
#include <gtest/gtest.h>
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/exceptions.h>
#include <yaml-cpp/mark.h>
#include <yaml-cpp/parser.h>

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

// yaml-cpp 0.7 can loop forever on some malformed input (a ',' before any
// node starts an endless stream of empty documents): the builder gives up
// when there are more events than the input could hold.
struct NoProgressError {};

// yaml-cpp events -> Tree, one document per HandleNextDocument().
class TreeBuilder : public YAML::EventHandler {
 public:
  // `inputSize`: bytes of the whole input, which bounds the nodes it can
  // hold (see NoProgressError).
  TreeBuilder(Tree& tree, size_t inputSize) : tree_(tree), maxEvents_(2 * inputSize + 64) {}
  void OnDocumentStart(const YAML::Mark&) override;
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark& mark, YAML::anchor_t anchor) override;
  void OnAlias(const YAML::Mark& mark, YAML::anchor_t anchor) override;
  void OnScalar(const YAML::Mark& mark, const std::string& tag, YAML::anchor_t anchor,
                const std::string& value) override;
  void OnSequenceStart(const YAML::Mark& mark, const std::string& tag, YAML::anchor_t anchor,
                       YAML::EmitterStyle::value style) override;
  void OnSequenceEnd() override { tree_.close(); }
  void OnMapStart(const YAML::Mark& mark, const std::string& tag, YAML::anchor_t anchor,
                  YAML::EmitterStyle::value style) override;
  void OnMapEnd() override { tree_.close(); }

 private:
  void anchor(YAML::anchor_t anchor, uint32_t index);
  void count(const YAML::Mark& mark);
  Tree& tree_;
  size_t maxEvents_;
  size_t events_ = 0;
  std::vector<uint32_t> anchors_;  // anchor id (from 1) -> node
};


// ---- yaml-cpp events ---------------------------------------------------------

void TreeBuilder::count(const YAML::Mark&) {
  if (++events_ > maxEvents_) throw NoProgressError{};
}

void TreeBuilder::OnDocumentStart(const YAML::Mark& mark) {
  count(mark);
  tree_.clear();
  anchors_.clear();
}

void TreeBuilder::anchor(YAML::anchor_t anchor, uint32_t index) {
  if (anchor == YAML::NullAnchor) return;
  if (anchors_.size() < anchor) anchors_.resize(anchor);
  anchors_[anchor - 1] = index;
}

void TreeBuilder::OnNull(const YAML::Mark& mark, YAML::anchor_t a) {
  count(mark);
  anchor(a, tree_.addNull({mark.line, mark.column}));
}

void TreeBuilder::OnAlias(const YAML::Mark& mark, YAML::anchor_t a) {
  count(mark);
  // yaml-cpp only hands out anchors it has seen (an unknown alias is a
  // parse error before this).
  if (a != YAML::NullAnchor && a <= anchors_.size()) tree_.addExisting(anchors_[a - 1]);
}

void TreeBuilder::OnScalar(const YAML::Mark& mark, const std::string& tag, YAML::anchor_t a,
                           const std::string& value) {
  count(mark);
  anchor(a, tree_.addScalar({mark.line, mark.column}, tag, value));
}

void TreeBuilder::OnSequenceStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t a,
                                  YAML::EmitterStyle::value) {
  count(mark);
  anchor(a, tree_.open(Type::Sequence, {mark.line, mark.column}));
}

void TreeBuilder::OnMapStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t a,
                             YAML::EmitterStyle::value) {
  count(mark);
  anchor(a, tree_.open(Type::Map, {mark.line, mark.column}));
}


// Deep equality (types, texts, tags, marks), except the mark of an empty
// sequence item: yaml-cpp puts it at the next token (often the next line),
// libyaml after the '-'.
bool sameNode(Node a, Node b, int depth) {
  if (depth > 1000) return false;
  if (a.type() != b.type() || a.Tag() != b.Tag()) return false;
  if (!a.IsNull() && !(a.mark() == b.mark())) return false;
  switch (a.type()) {
    case Type::Scalar: return a.Scalar() == b.Scalar();
    case Type::Sequence:
      if (a.size() != b.size()) return false;
      for (size_t i = 0; i < a.size(); i++) {
        if (!sameNode(a.item(i), b.item(i), depth + 1)) return false;
      }
      return true;
    case Type::Map:
      if (a.size() != b.size()) return false;
      for (size_t i = 0; i < a.size(); i++) {
        if (!sameNode(a.key(i), b.key(i), depth + 1) || !sameNode(a.value(i), b.value(i), depth + 1)) return false;
      }
      return true;
    default: return true;
  }
}

bool sameDocument(const Tree& a, const Tree& b) { return sameNode(a.root(), b.root(), 0); }

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

// False if yaml-cpp rejects the text.
bool yamlCppTrees(const std::string& text, Trees& out) {
  std::stringstream in(text);
  try {
    YAML::Parser p(in);
    for (size_t docs = 0;; docs++) {
      if (docs > text.size()) return false;  // endless empty documents
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

// Both reject: BothReject. One rejects: the reader that did.
enum class Outcome { Same, Differ, BothReject, OnlyLibyamlRejects, OnlyYamlCppRejects };

Outcome compare(const std::string& text) {
  Trees mine, ref;
  const bool a = libyamlTrees(text, mine), b = yamlCppTrees(text, ref);
  if (!a && !b) return Outcome::BothReject;
  if (!a) return Outcome::OnlyLibyamlRejects;
  if (!b) return Outcome::OnlyYamlCppRejects;
  if (mine.size() != ref.size()) return Outcome::Differ;
  for (size_t i = 0; i < mine.size(); i++) {
    if (!sameDocument(*mine[i], *ref[i])) return Outcome::Differ;
  }
  return Outcome::Same;
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
  for (const char* t : texts) EXPECT_EQ(compare(t), Outcome::Same) << t;
}

TEST(YamlReader, ReadsTheRestOfYamlAsYamlCppDoes) {
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
  for (const char* t : texts) EXPECT_EQ(compare(t), Outcome::Same) << t;
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
  // Where both accept, the trees are the same. Damaged texts that only one
  // of them accepts are counted: yaml-cpp 0.7 accepts some malformed YAML
  // that libyaml (the stricter, reference implementation) rejects.
  std::mt19937 rng(20261201);
  int same = 0, onlyLibyamlRejects = 0;
  for (int i = 0; i < 3000; i++) {
    std::string text = randomDoc(rng);
    if (i % 3 == 0) text += "---\n" + randomDoc(rng);
    if (i % 2 == 1) text = damage(text, rng);
    const Outcome o = compare(text);
    ASSERT_NE(o, Outcome::Differ) << text;
    ASSERT_NE(o, Outcome::OnlyYamlCppRejects) << text;
    same += o == Outcome::Same;
    onlyLibyamlRejects += o == Outcome::OnlyLibyamlRejects;
  }
  EXPECT_GT(same, 1500);
  EXPECT_LT(onlyLibyamlRejects, 300);
}

TEST(YamlReader, AStrayCommaIsASyntaxError) {
  // yaml-cpp 0.7 reads a ',' before any node as an endless run of empty
  // documents.
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
