// One YAML document as a compact tree: what the policy parser reads instead
// of yaml-cpp's node graph. A document is built from libyaml's event stream
// (yaml_reader.h) one document at a time, so the whole file's tree never
// exists at once; the nodes, child lists and scalar texts of a document live
// in three flat arrays that are reused for the next one.
//
// Node mirrors the part of YAML::Node's interface the parser uses, with the
// same semantics: operator[] finds the first pair whose key is a scalar equal
// to the text, an empty value (`port:`) is a Null node, Tag() is "?" for a
// plain scalar and "!" for a quoted one. One deliberate difference: the mark
// of a Null map value is its key's (yaml-cpp marks an empty value at the next
// token, often on the next line; diagnostics point at the key instead).
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>


namespace microseg::policy::yaml {

// 0-based, as yaml-cpp's. line < 0: no position.
struct Mark {
  int line = -1;
  int column = -1;
  bool isNull() const { return line < 0; }
  bool operator==(const Mark&) const = default;
};

enum class Type : uint8_t { Undefined, Null, Scalar, Sequence, Map };

// yaml-cpp's BadSubscript: operator[] on a scalar.
class SubscriptError : public std::runtime_error {
 public:
  SubscriptError(Mark at, const std::string& msg) : std::runtime_error(msg), mark(at) {}
  Mark mark;
};

class Tree;

class Node {
 public:
  Node() = default;
  Node(const Tree* tree, uint32_t index) : tree_(tree), index_(index) {}

  explicit operator bool() const { return IsDefined(); }
  bool IsDefined() const { return tree_ != nullptr; }
  bool IsNull() const { return type() == Type::Null; }
  bool IsScalar() const { return type() == Type::Scalar; }
  bool IsSequence() const { return type() == Type::Sequence; }
  bool IsMap() const { return type() == Type::Map; }
  Type type() const;
  // The text of a scalar; "" for anything else.
  std::string_view Scalar() const;
  std::string_view Tag() const;
  Mark mark() const;
  // Items of a sequence, pairs of a map, 0 otherwise.
  size_t size() const;
  Node item(size_t i) const;
  Node key(size_t i) const;
  Node value(size_t i) const;
  // Map: the value of the first pair whose key is a scalar equal to `key`
  // (undefined if none). Undefined for anything but a map or a scalar;
  // throws SubscriptError on a scalar, as yaml-cpp does.
  Node operator[](std::string_view key) const;
  bool is(const Node& other) const { return tree_ == other.tree_ && index_ == other.index_; }

 private:
  const Tree* tree_ = nullptr;
  uint32_t index_ = 0;
};

// Items of a sequence, for range-for (none for anything else).
struct Items {
  Node seq;
  struct It {
    Node seq;
    size_t i;
    Node operator*() const { return seq.item(i); }
    It& operator++() {
      i++;
      return *this;
    }
    bool operator!=(const It& o) const { return i != o.i; }
  };
  It begin() const { return {seq, 0}; }
  It end() const { return {seq, seq.IsSequence() ? seq.size() : 0}; }
};
inline Items items(const Node& seq) { return {seq}; }

class Tree {
 public:
  Tree() = default;
  Tree(const Tree&) = delete;
  Tree& operator=(const Tree&) = delete;

  // Undefined for an empty tree.
  Node root() const { return nodes_.empty() ? Node() : Node(this, root_); }
  bool empty() const { return nodes_.empty(); }
  // Keeps the capacity: the next document reuses it.
  void clear();

  // ---- building, in document order ----------------------------------------
  // Each add*() makes a node a child of the innermost open collection (in a
  // map: key, value, key, value...), or the root. Returns its index.
  uint32_t addScalar(Mark at, std::string_view tag, std::string_view value);
  uint32_t addNull(Mark at);
  // A node already in the tree again (an alias).
  void addExisting(uint32_t index);
  uint32_t open(Type collection, Mark at);
  void close();
  size_t depth() const { return open_.size(); }

 private:
  friend class Node;
  enum class TagKind : uint8_t { None, Plain, NonPlain, Other };
  struct Rec {
    Type type = Type::Undefined;
    TagKind tag = TagKind::None;
    bool keyMarked = false;  // a Null map value that took its key's mark
    int32_t line = -1, column = -1;
    uint32_t first = 0, count = 0;  // scalar: text in strings_; collection: children in kids_
    uint32_t tagFirst = 0, tagCount = 0;  // TagKind::Other: in strings_
  };
  struct Open {
    uint32_t node;
    size_t pendingFrom;
  };
  uint32_t push(const Rec& r);  // a new node, attached where it belongs
  void attach(uint32_t index);
  std::string_view text(uint32_t first, uint32_t count) const { return {strings_.data() + first, count}; }

  std::vector<Rec> nodes_;
  std::vector<uint32_t> kids_;
  std::string strings_;
  std::vector<Open> open_;
  std::vector<uint32_t> pending_;  // children of the open collections, innermost last
  uint32_t root_ = 0;
};

}  // namespace microseg::policy::yaml
