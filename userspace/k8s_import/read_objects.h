// Kubernetes objects from YAML or JSON text (`kubectl get -o yaml|json`
// output, hand-written manifests, several `---` documents, `List`s), read
// with the policy reader (policy/yaml_reader.h: libyaml; JSON is YAML
// flow syntax). Every problem is a located Diagnostic naming the object
// (kind, namespace/name) and the field:
//   pol.yaml:14:21: error: NetworkPolicy shop/api-in: spec.ingress[0].ports[0].protocol: SCTP is not supported ...
// The policy kinds are read strictly: a field that is not in their API
// (or that microseg cannot honour) is an error, never skipped. Of a Pod
// and a Namespace only the fields the translation uses are read
// (metadata, container ports, QoS class, addresses, phase); the rest of
// their spec and status does not change what policy means.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "k8s_import/objects.h"

namespace microseg::k8s {

struct ReadResult {
  Objects objects;
  std::vector<policy::Diagnostic> errors;
  // Not errors, but said: e.g. rules of a direction policyTypes leaves out,
  // which Kubernetes ignores too.
  std::vector<policy::Diagnostic> warnings;
};

// Reads every document of `text` into `out` (appending). `file` names the
// input in locations.
void readObjects(std::string_view text, const std::string& file, ReadResult& out);

}  // namespace microseg::k8s
