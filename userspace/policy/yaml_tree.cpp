#include "policy/yaml_tree.h"


namespace microseg::policy::yaml {

Type Node::type() const { return tree_ == nullptr ? Type::Undefined : tree_->nodes_[index_].type; }

std::string_view Node::Scalar() const {
  if (!IsScalar()) return {};
  const auto& r = tree_->nodes_[index_];
  return tree_->text(r.first, r.count);
}

std::string_view Node::Tag() const {
  if (tree_ == nullptr) return {};
  const auto& r = tree_->nodes_[index_];
  switch (r.tag) {
    case Tree::TagKind::None: return {};
    case Tree::TagKind::Plain: return "?";
    case Tree::TagKind::NonPlain: return "!";
    case Tree::TagKind::Other: return tree_->text(r.tagFirst, r.tagCount);
  }
  return {};
}

Mark Node::mark() const {
  if (tree_ == nullptr) return {};
  const auto& r = tree_->nodes_[index_];
  return {r.line, r.column};
}

size_t Node::size() const {
  const Type t = type();
  if (t == Type::Sequence) return tree_->nodes_[index_].count;
  if (t == Type::Map) return tree_->nodes_[index_].count / 2;
  return 0;
}

Node Node::item(size_t i) const { return {tree_, tree_->kids_[tree_->nodes_[index_].first + i]}; }
Node Node::key(size_t i) const { return {tree_, tree_->kids_[tree_->nodes_[index_].first + 2 * i]}; }
Node Node::value(size_t i) const { return {tree_, tree_->kids_[tree_->nodes_[index_].first + 2 * i + 1]}; }

Node Node::operator[](std::string_view key) const {
  const Type t = type();
  if (t == Type::Scalar) {
    throw SubscriptError(mark(), "operator[] call on a scalar (key: \"" + std::string(key) + "\")");
  }
  if (t != Type::Map) return {};
  const size_t n = size();
  for (size_t i = 0; i < n; i++) {
    const Node k = this->key(i);
    if (k.IsScalar() && k.Scalar() == key) return value(i);
  }
  return {};
}

void Tree::clear() {
  nodes_.clear();
  kids_.clear();
  strings_.clear();
  open_.clear();
  pending_.clear();
  root_ = 0;
}

uint32_t Tree::push(const Rec& r) {
  const auto index = static_cast<uint32_t>(nodes_.size());
  nodes_.push_back(r);
  attach(index);
  return index;
}

void Tree::attach(uint32_t index) {
  if (open_.empty()) {
    root_ = index;
    return;
  }
  const Open& o = open_.back();
  // An empty value takes its key's position (see yaml_tree.h); only the
  // first key it is the value of, as it stays one node when aliased.
  if (nodes_[o.node].type == Type::Map && (pending_.size() - o.pendingFrom) % 2 == 1) {
    Rec& v = nodes_[index];
    if (v.type == Type::Null && !v.keyMarked) {
      const Rec& k = nodes_[pending_.back()];
      v.line = k.line;
      v.column = k.column;
      v.keyMarked = true;
    }
  }
  pending_.push_back(index);
}

uint32_t Tree::addScalar(Mark at, std::string_view tag, std::string_view value) {
  Rec r;
  r.type = Type::Scalar;
  r.line = at.line;
  r.column = at.column;
  r.first = static_cast<uint32_t>(strings_.size());
  r.count = static_cast<uint32_t>(value.size());
  strings_.append(value);
  if (tag == "?") {
    r.tag = TagKind::Plain;
  } else if (tag == "!") {
    r.tag = TagKind::NonPlain;
  } else if (!tag.empty()) {
    r.tag = TagKind::Other;
    r.tagFirst = static_cast<uint32_t>(strings_.size());
    r.tagCount = static_cast<uint32_t>(tag.size());
    strings_.append(tag);
  }
  return push(r);
}

uint32_t Tree::addNull(Mark at) {
  Rec r;
  r.type = Type::Null;
  r.line = at.line;
  r.column = at.column;
  return push(r);
}

void Tree::addExisting(uint32_t index) { attach(index); }

uint32_t Tree::open(Type collection, Mark at) {
  Rec r;
  r.type = collection;
  r.tag = TagKind::Plain;
  r.line = at.line;
  r.column = at.column;
  const uint32_t index = push(r);
  open_.push_back({index, pending_.size()});
  return index;
}

void Tree::close() {
  const Open o = open_.back();
  open_.pop_back();
  Rec& r = nodes_[o.node];
  r.first = static_cast<uint32_t>(kids_.size());
  r.count = static_cast<uint32_t>(pending_.size() - o.pendingFrom);
  kids_.insert(kids_.end(), pending_.begin() + static_cast<std::ptrdiff_t>(o.pendingFrom), pending_.end());
  pending_.resize(o.pendingFrom);
}


}  // namespace microseg::policy::yaml
