// One policy object's selectors, peers and rules in microseg's terms (the
// rules of translate.h). Internal to k8s_import.
#pragma once

#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "k8s_import/documents.h"
#include "k8s_import/translate.h"

namespace microseg::k8s {

struct TranslationContext {
  std::map<std::string, Labels> nsLabels;  // every namespace of a pod, with kubernetes.io/metadata.name
  std::vector<const Pod*> pods;            // by namespace, then name
  std::map<const Pod*, std::string> workloadName;
};

class RuleTranslator {
 public:
  RuleTranslator(const TranslationContext& ctx, const PolicyObject& p, TranslateResult& out);

  // What `pod` gives the named ports of the ingress rules (each distinct
  // name and protocol, in order): port * 4 + protocol, or -1 if it has no
  // such port. Pods with equal resolutions can share one Policy.
  std::vector<int> resolution(const Pod& pod) const;
  // A pod set (Peer::Kind::Pods) as a selector; nullopt after an error.
  std::optional<OutSelector> selector(const Peer& peer);
  // The rules of one direction; ingress named ports as `subject` resolves
  // them (see resolution()).
  // `who` names the subject pods in warnings ("pods x-a, x-b").
  std::vector<OutRule> rules(const std::vector<Rule>& rules, bool egress, const std::vector<int>& subject,
                             const std::string& who);

 private:
  using NamedItem = std::pair<std::string, std::optional<Protocol>>;
  static int encode(const Pod& pod, const NamedItem& item);
  bool inPeer(const Peer& peer, const Pod& pod) const;
  // Appends `peer` to `out` (selectors and cidrs) and `identities` (pods by IP).
  bool addPeer(const Peer& peer, std::vector<OutPeer>& out, std::set<std::string>& identities);
  void warn(const Rule& r, const std::string& message);

  const TranslationContext& ctx_;
  const PolicyObject& p_;
  TranslateResult& out_;
  std::vector<NamedItem> named_;  // the ingress rules' named ports
  std::set<std::string> warned_;  // a policy split in several says things once
};

}  // namespace microseg::k8s
