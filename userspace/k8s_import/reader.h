// The field readers shared by read_objects.cpp and read_policies.cpp:
// typed, located access to one object's YAML nodes. Internal to
// k8s_import.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>

#include "k8s_import/read_objects.h"
#include "policy/yaml_tree.h"

namespace microseg::k8s {

namespace yaml = policy::yaml;

class Reader {
 public:
  Reader(const std::string& file, ReadResult& out) : file_(file), out_(out) {}

  // The object being read: named in every message from now on.
  void setObject(const ObjectRef& ref) { ref_ = ref; }
  const ObjectRef& object() const { return ref_; }
  // The object as its metadata names it, unchecked (for a kind not read).
  void peekObject(const yaml::Node& obj, const std::string& kind);
  SourceLocation loc(const yaml::Node& n) const;
  // "<file>:L:C: error: <Kind ns/name>: <path>: <message>"
  void error(const yaml::Node& n, const std::string& path, const std::string& message);
  void warning(const yaml::Node& n, const std::string& path, const std::string& message);
  size_t errorCount() const { return out_.errors.size(); }

  // A map whose keys are all in `allowed` (each once); false (and errors)
  // otherwise. `what` says where the allowed list comes from, if not the API.
  bool fields(const yaml::Node& n, const std::string& path, std::initializer_list<std::string_view> allowed);
  // A string: any scalar but null. nullopt (and an error) otherwise.
  std::optional<std::string> string(const yaml::Node& n, const std::string& path);
  // An integer written as a number (`80`, not `"80"`), in [lo, hi].
  std::optional<int64_t> integer(const yaml::Node& n, const std::string& path, int64_t lo, int64_t hi);
  std::optional<bool> boolean(const yaml::Node& n, const std::string& path);
  // A sequence (errors otherwise); `null` is an empty one if `nullOk`.
  bool sequence(const yaml::Node& n, const std::string& path, bool nullOk = true);
  // map[string]string with Kubernetes label syntax.
  Labels labels(const yaml::Node& n, const std::string& path);
  // metav1.LabelSelector.
  std::optional<Selector> selector(const yaml::Node& n, const std::string& path);
  // TCP / UDP; SCTP and others are errors.
  std::optional<Protocol> protocol(const yaml::Node& n, const std::string& path);
  // An ipBlock's cidr or an ANP network: host bits are cleared, as
  // Kubernetes parses them.
  std::optional<policy::Cidr> cidr(const yaml::Node& n, const std::string& path);
  // ObjectMeta: name, namespace (if `namespaced`; "default" when absent),
  // labels; the other ObjectMeta fields are allowed and unused. Sets the
  // object. False if the name is missing.
  bool metadata(const yaml::Node& obj, const std::string& kind, bool namespaced, Labels* labels = nullptr,
                std::string* uid = nullptr);

 private:
  std::string file_;
  ReadResult& out_;
  ObjectRef ref_;
};

// The policy kinds (read_policies.cpp). `obj` is the whole object.
void readNetworkPolicy(Reader& r, const yaml::Node& obj, Objects& out);
void readAdminPolicy(Reader& r, const yaml::Node& obj, Tier tier, Objects& out);

}  // namespace microseg::k8s
