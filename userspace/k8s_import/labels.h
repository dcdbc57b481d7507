// How Kubernetes labels become microseg labels (documented in
// policies/README.md, "Importing Kubernetes network policies").
//
// A pod's Workload carries, in one label set:
//  - the pod's own labels, as they are;
//  - its namespace's labels, each under an encoded key: `team` becomes
//    `ns.k8s.microseg.dev/team`, `kubernetes.io/metadata.name` becomes
//    `kubernetes.io.ns.k8s.microseg.dev/metadata.name` (the prefix gets
//    the suffix `.ns.k8s.microseg.dev`, so the encoding is one-to-one);
//    `kubernetes.io/metadata.name: <namespace>` is always among them, as
//    the API server sets it;
//  - `k8s.microseg.dev/pod: <workload name>`, so every pod is an identity
//    of its own (rules may differ per pod: named ports, pod IPs);
//  - `microseg.dev/namespace: <namespace>` (from metadata.namespace).
// A namespaceSelector becomes the same selector on the encoded keys, so
// pod labels and namespace labels can never be confused. Keys under
// `microseg.dev` (the domain or a subdomain) are refused in pod labels and
// pod selectors: a pod labelled `x.ns.k8s.microseg.dev/team: red` would
// otherwise pass for a pod of a namespace it is not in.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "k8s_import/objects.h"

namespace microseg::k8s {

// Every imported pod has it (its namespace's name): selectors for pods
// require it, so they never select a Workload that is not a pod.
inline constexpr const char* kNamespaceNameKey = "kubernetes.io.ns.k8s.microseg.dev/metadata.name";
inline constexpr const char* kPodKey = "k8s.microseg.dev/pod";
inline constexpr std::string_view kNamespaceSuffix = "ns.k8s.microseg.dev";

// Kubernetes label syntax (that of microseg labels too).
bool validLabelKey(std::string_view key);
bool validLabelValue(std::string_view value);
// An IANA service name, as a named container port must be: at most 15
// characters, lowercase alphanumerics and '-', a letter, no "--", no '-' at
// either end.
bool validPortName(std::string_view name);
// A DNS-1123 label (a namespace name).
bool validDnsLabel(std::string_view name);
// A DNS-1123 subdomain (an object name).
bool validDnsSubdomain(std::string_view name);

// True for keys in the domain microseg.dev or under it.
bool reservedKey(std::string_view key);

// The encoded key of namespace label `key`; nullopt if the result would not
// be a valid key (a prefix that is already near 253 characters).
std::optional<std::string> namespaceKey(std::string_view key);

}  // namespace microseg::k8s
