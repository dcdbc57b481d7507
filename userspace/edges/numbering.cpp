#include "edges/numbering.h"

#include <cerrno>

namespace microseg::edges {

using nlohmann::json;

Numbering numberingOf(const identity::IdentityTable& ids, const compiler::RuleRegistry& rules) {
  Numbering n;
  n.workloads = ids.labels;
  for (const auto& [id, e] : ids.externals) {
    identity::ExternalIdentity members;
    members.externals = e.externals;
    members.cidrPeers = e.cidrPeers;
    n.ranges.emplace(id, std::move(members));
  }
  for (const auto& [id, f] : ids.fqdns) n.names.emplace(id, f.pattern);
  n.rules = rules.handedOut();
  n.nextRuleId = rules.nextId();
  return n;
}

identity::IdentityTable previousTable(const Numbering& n) {
  identity::IdentityTable t;
  t.labels = n.workloads;
  t.externals = n.ranges;
  for (const auto& [id, pattern] : n.names) t.fqdns[id].pattern = pattern;
  return t;
}

json numberingToJson(const Numbering& n) {
  json workloads = json::array(), ranges = json::array(), names = json::array(), rules = json::array();
  for (const auto& [id, labels] : n.workloads) workloads.push_back({{"id", id}, {"labels", labels}});
  for (const auto& [id, e] : n.ranges) {
    ranges.push_back({{"id", id}, {"externals", e.externals}, {"cidr_peers", e.cidrPeers}});
  }
  for (const auto& [id, pattern] : n.names) names.push_back({{"id", id}, {"fqdn", pattern}});
  for (const auto& p : n.rules) rules.push_back({{"policy", p.policy}, {"egress", p.ids[0]}, {"ingress", p.ids[1]}});
  return json{{"workloads", std::move(workloads)},
              {"ranges", std::move(ranges)},
              {"names", std::move(names)},
              {"rules", std::move(rules)},
              {"next_rule_id", n.nextRuleId}};
}

Result<Numbering> numberingFromJson(const json& j) {
  Numbering n;
  auto bad = [](const std::string& where, const char* what) {
    return Error{"read numbering", where, EINVAL, what};
  };
  if (!j.is_object()) return bad("numbering", "not an object");
  try {
    for (const auto& w : j.at("workloads")) {
      const uint32_t id = w.at("id").get<uint32_t>();
      if (id < MS_IDENTITY_FIRST_WORKLOAD || id >= MS_IDENTITY_FIRST_EXTERNAL) {
        return bad("numbering.workloads", "an id outside the workloads' range");
      }
      if (!n.workloads.emplace(id, w.at("labels").get<policy::Labels>()).second) {
        return bad("numbering.workloads", "an id twice");
      }
    }
    for (const auto& r : j.at("ranges")) {
      const uint32_t id = r.at("id").get<uint32_t>();
      if (id < MS_IDENTITY_FIRST_EXTERNAL || id >= MS_IDENTITY_FIRST_FQDN) {
        return bad("numbering.ranges", "an id outside the ranges' range");
      }
      identity::ExternalIdentity e;
      e.externals = r.at("externals").get<std::vector<std::string>>();
      e.cidrPeers = r.at("cidr_peers").get<std::vector<std::string>>();
      if (!n.ranges.emplace(id, std::move(e)).second) return bad("numbering.ranges", "an id twice");
    }
    if (j.contains("names")) {  // absent in the files of earlier versions
      for (const auto& f : j.at("names")) {
        const uint32_t id = f.at("id").get<uint32_t>();
        if (id < MS_IDENTITY_FIRST_FQDN) return bad("numbering.names", "an id outside the names' range");
        if (!n.names.emplace(id, f.at("fqdn").get<std::string>()).second) {
          return bad("numbering.names", "an id twice");
        }
      }
    }
    for (const auto& p : j.at("rules")) {
      compiler::RuleRegistry::PolicyIds ids;
      ids.policy = p.at("policy").get<std::string>();
      ids.ids[0] = p.at("egress").get<std::vector<uint32_t>>();
      ids.ids[1] = p.at("ingress").get<std::vector<uint32_t>>();
      n.rules.push_back(std::move(ids));
    }
    n.nextRuleId = j.at("next_rule_id").get<uint32_t>();
  } catch (const json::exception& e) {
    return Error{"read numbering", "numbering", EINVAL, e.what()};
  }
  return n;
}

}  // namespace microseg::edges
