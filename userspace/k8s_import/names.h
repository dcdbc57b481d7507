// microseg names for imported objects: DNS-1123 labels derived from the
// Kubernetes names (`<namespace>-<name>`), the same for the same input
// whatever the order of the objects. A candidate that is too long (> 63),
// or that several objects would get (`a.b` and `a-b` both become `a-b`),
// becomes its first 54 characters, '-' and 8 hex digits of a hash of the
// object's full key, for every object that wanted it: no object keeps a
// name because it came first.
#pragma once

#include <map>
#include <string>
#include <vector>

namespace microseg::k8s {

class Namer {
 public:
  // `key` names the object uniquely ("Pod/shop/api-7d9f"); `parts` are
  // joined with '-' and made a DNS label (lowercase, other characters '-').
  void add(const std::string& key, const std::vector<std::string>& parts);
  // Gives every key its name; false (with `error`) if two keys would still
  // share one (two hashes equal: not expected in practice).
  bool assign(std::string& error);
  const std::string& name(const std::string& key) const { return names_.at(key); }

 private:
  std::map<std::string, std::string> candidates_;  // key -> candidate
  std::map<std::string, std::string> names_;
};

}  // namespace microseg::k8s
