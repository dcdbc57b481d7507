// Kubernetes objects (objects.h) -> microseg documents (documents.h).
//
// - Every Pod becomes a Workload (labels: labels.h; cgroups: the
//   `--cgroup-pattern`, or the kubelet's systemd-driver slice of the pod).
// - Every NetworkPolicy becomes a Policy of tier application in its
//   namespace, for `microsegd --default-enforcement selected`: its
//   sections are the directions policyTypes lists (so an empty one isolates
//   as in Kubernetes); AdminNetworkPolicy becomes tier admin with its
//   priority, BaselineAdminNetworkPolicy tier baseline, rules in order
//   with explicit actions.
// - Peers: pod selectors become label selectors (always bound to pods:
//   they require the namespace name key); ipBlock / networks become a
//   `cidr` peer plus the pods whose IP is inside (microseg names a local
//   pod by its socket, never by its IP).
// - Named ports: an ingress rule's named port is the subject pod's port,
//   an egress rule's the peer pod's. Where the subject pods of one policy
//   give a name different numbers, the policy is split into one Policy per
//   group of pods (`<name>-1`, `-2`, ... each selecting its pods by
//   `k8s.microseg.dev/pod In [...]`); an egress rule is split into one
//   rule per number, each to the peer pods that have it.
// - A rule that can match nothing (its peers or its ports resolve to none)
//   is left out: written without them it would mean "any".
// The import is a snapshot: pods that come later need a new import.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "k8s_import/documents.h"
#include "k8s_import/objects.h"

namespace microseg::k8s {

struct TranslateOptions {
  // A cgroup path glob relative to microsegd's --cgroup-root, with
  // {namespace}, {name}, {uid} and {uid_} (the uid with '-' as '_').
  // nullopt: the kubelet's systemd-driver path, from status.qosClass.
  std::optional<std::string> cgroupPattern;
};

struct TranslateResult {
  Documents documents;
  std::vector<policy::Diagnostic> errors;
  std::vector<policy::Diagnostic> warnings;
  bool ok() const { return errors.empty(); }
};

TranslateResult translate(const Objects& objects, const TranslateOptions& options);

// "" if `pattern` is a usable --cgroup-pattern, else what is wrong with it.
std::string checkCgroupPattern(const std::string& pattern);

}  // namespace microseg::k8s
