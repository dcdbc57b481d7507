#include "cluster/agent.h"

#include <cstring>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "cluster/agent_work.h"

namespace microseg::cluster {
namespace fs = std::filesystem;
namespace {

std::string readFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

bool operator==(const LocalState& a, const LocalState& b) {
  auto sameAddrs = [](const std::vector<ms_addr>& x, const std::vector<ms_addr>& y) {
    return x.size() == y.size() && std::equal(x.begin(), x.end(), y.begin(), [](const ms_addr& p, const ms_addr& q) {
             return std::memcmp(&p, &q, sizeof(p)) == 0;
           });
  };
  auto sameNetns = [](const LocalState::NetnsAddress& x, const LocalState::NetnsAddress& y) {
    return std::memcmp(&x.addr, &y.addr, sizeof(x.addr)) == 0 && x.workload == y.workload && x.labels == y.labels;
  };
  auto sameListener = [](const LocalState::Listener& x, const LocalState::Listener& y) {
    return std::memcmp(&x.addr, &y.addr, sizeof(x.addr)) == 0 && x.port == y.port && x.proto == y.proto &&
           x.workload == y.workload && x.labels == y.labels;
  };
  return sameAddrs(a.hostAddresses, b.hostAddresses) &&
         std::equal(a.netnsAddresses.begin(), a.netnsAddresses.end(), b.netnsAddresses.begin(),
                    b.netnsAddresses.end(), sameNetns) &&
         std::equal(a.listeners.begin(), a.listeners.end(), b.listeners.begin(), b.listeners.end(), sameListener) &&
         a.labelSets == b.labelSets && a.policyRevision == b.policyRevision && a.policySource == b.policySource &&
         a.policyError == b.policyError && a.policyRejectedRevision == b.policyRejectedRevision &&
         a.workloads == b.workloads && a.endpointsKnown == b.endpointsKnown;
}

std::optional<uint32_t> AgentSnapshot::identityOf(const policy::Labels& labels) const {
  auto it = identityByLabels.find(labelsText(labels));
  if (it == identityByLabels.end()) return std::nullopt;
  return it->second;
}

Agent::Agent(AgentOptions options) : options_(std::move(options)), work_(std::make_unique<AgentWork>(options_)) {}

Result<std::unique_ptr<Agent>> Agent::start(AgentOptions options) {
  if (!validNodeName(options.nodeName)) {
    return Error{"start cluster agent", options.nodeName, EINVAL, "a node name is 1-63 of [A-Za-z0-9._-]"};
  }
  std::error_code ec;
  fs::create_directories(options.dataDir, ec);
  if (ec) return Error{"create data dir", options.dataDir, ec.value(), {}};
  auto etcd = EtcdClient::connect(options.etcd);
  if (!etcd) return etcd.error();
  std::unique_ptr<Agent> a(new Agent(std::move(options)));
  a->etcd_ = std::move(*etcd);
  AgentWork& w = *a->work_;
  // What this node knew when it last ran: used until etcd answers (the
  // identities of its workloads, the other nodes' endpoints, the policy).
  const std::string cache = readFile(w.cacheFile(a->options_));
  if (!cache.empty()) {
    auto j = nlohmann::json::parse(cache, nullptr, false);
    if (j.is_object() && j["kvs"].is_object()) {
      for (const auto& [k, v] : j["kvs"].items()) {
        if (v.is_string()) w.view.apply(k, v.get<std::string>(), false);
      }
      w.view.setRevision(j.value("revision", int64_t{0}));
      w.fromCache = true;
      w.cachedVersion = w.view.endpointsVersion() + w.view.identitiesVersion();
    }
  }
  const std::string meta = readFile(w.policyMetaFile(a->options_));
  if (!meta.empty()) {
    auto j = nlohmann::json::parse(meta, nullptr, false);
    if (j.is_object() && fs::is_directory(a->options_.dataDir + "/policy")) {
      w.policyDir = a->options_.dataDir + "/policy";
      w.policyRevision = j.value("revision", int64_t{0});
      w.policyId = j.value("id", std::string());
    }
  }
  loadWireKeyCache(a->options_, w);
  a->snapshot_ = buildSnapshot(w, a->options_.nodeName);
  a->thread_ = std::thread([raw = a.get()] { raw->run(); });
  return a;
}

Agent::~Agent() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void Agent::setLocal(LocalState state) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (state == local_) return;
    local_ = std::move(state);
    localSeq_++;
  }
  wake_.notify_all();
}

std::shared_ptr<const AgentSnapshot> Agent::snapshot() const {
  std::lock_guard<std::mutex> lock(mu_);
  return snapshot_;
}

std::vector<EtcdClient::EndpointStatus> Agent::health() { return etcd_->endpointStatus(); }

void Agent::leave() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    leave_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

}  // namespace microseg::cluster
