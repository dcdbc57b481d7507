#include "cluster/etcd_client.h"

#include <fstream>
#include <sstream>

#include "cluster/etcd_channels.h"

namespace microseg::cluster {
namespace {

using Conn = EtcdConnection;

Result<std::string> readFile(const std::string& path, const char* what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return sysError(std::string("read ") + what, path);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

const char* codeName(grpc::StatusCode c) {
  switch (c) {
    case grpc::StatusCode::OK: return "ok";
    case grpc::StatusCode::CANCELLED: return "cancelled";
    case grpc::StatusCode::INVALID_ARGUMENT: return "invalid argument";
    case grpc::StatusCode::DEADLINE_EXCEEDED: return "deadline exceeded";
    case grpc::StatusCode::NOT_FOUND: return "not found";
    case grpc::StatusCode::PERMISSION_DENIED: return "permission denied";
    case grpc::StatusCode::RESOURCE_EXHAUSTED: return "resource exhausted";
    case grpc::StatusCode::FAILED_PRECONDITION: return "failed precondition";
    case grpc::StatusCode::UNAVAILABLE: return "unavailable";
    case grpc::StatusCode::UNAUTHENTICATED: return "unauthenticated";
    default: return "error";
  }
}

// etcd's range_end for a Get/Delete: the key alone, or every key under it.
void setRange(std::string* rangeEnd, const std::string& key, bool prefix) {
  if (prefix) *rangeEnd = prefixEnd(key);
}

Range toRange(const etcdserverpb::RangeResponse& r) {
  Range out;
  out.revision = r.header().revision();
  out.more = r.more();
  out.kvs.reserve(static_cast<size_t>(r.kvs_size()));
  for (const auto& kv : r.kvs()) {
    out.kvs.push_back(KeyValue{kv.key(), kv.value(), kv.create_revision(), kv.mod_revision(), kv.version(), kv.lease()});
  }
  return out;
}

void toRequestOp(const TxnOp& op, etcdserverpb::RequestOp* out) {
  switch (op.kind) {
    case TxnOp::Kind::Get: {
      auto* r = out->mutable_request_range();
      r->set_key(op.key);
      setRange(r->mutable_range_end(), op.key, op.prefix);
      break;
    }
    case TxnOp::Kind::Put: {
      auto* r = out->mutable_request_put();
      r->set_key(op.key);
      r->set_value(op.value);
      r->set_lease(op.lease);
      break;
    }
    case TxnOp::Kind::Delete: {
      auto* r = out->mutable_request_delete_range();
      r->set_key(op.key);
      setRange(r->mutable_range_end(), op.key, op.prefix);
      break;
    }
  }
}

void toCompare(const Compare& c, etcdserverpb::Compare* out) {
  out->set_key(c.key);
  if (c.prefix) out->set_range_end(prefixEnd(c.key));
  switch (c.op) {
    case Compare::Op::Equal: out->set_result(etcdserverpb::Compare::EQUAL); break;
    case Compare::Op::Greater: out->set_result(etcdserverpb::Compare::GREATER); break;
    case Compare::Op::Less: out->set_result(etcdserverpb::Compare::LESS); break;
    case Compare::Op::NotEqual: out->set_result(etcdserverpb::Compare::NOT_EQUAL); break;
  }
  switch (c.target) {
    case Compare::Target::Version:
      out->set_target(etcdserverpb::Compare::VERSION);
      out->set_version(c.number);
      break;
    case Compare::Target::CreateRevision:
      out->set_target(etcdserverpb::Compare::CREATE);
      out->set_create_revision(c.number);
      break;
    case Compare::Target::ModRevision:
      out->set_target(etcdserverpb::Compare::MOD);
      out->set_mod_revision(c.number);
      break;
    case Compare::Target::Value:
      out->set_target(etcdserverpb::Compare::VALUE);
      out->set_value(c.value);
      break;
    case Compare::Target::Lease:
      out->set_target(etcdserverpb::Compare::LEASE);
      out->set_lease(c.number);
      break;
  }
}

// A unary call on the current endpoint, then on the others while the
// failure says another member may answer.
template <typename Resp, typename Call>
Result<Resp> unary(EtcdClient::Channels& ch, const EtcdOptions& options, const std::string& op, Call&& call) {
  grpc::Status last;
  std::string lastName;
  const size_t n = ch.endpoints.size();
  const size_t first = ch.current.load();
  for (size_t k = 0; k < n; k++) {
    const size_t i = (first + k) % n;
    auto conn = ch.connection(i);
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + options.requestTimeout);
    Resp resp;
    grpc::Status st = call(*conn, &ctx, &resp);
    if (st.ok()) {
      if (k > 0) ch.current = i;
      return resp;
    }
    last = st;
    lastName = ch.at(i).name;
    if (!tryElsewhere(st)) break;
    ch.renewIfStuck(i, conn);
  }
  return grpcError(op, lastName, last);
}

}  // namespace

Error grpcError(const std::string& op, const std::string& endpoint, const grpc::Status& status) {
  return Error{op, "etcd " + endpoint, 0, std::string(codeName(status.error_code())) +
                                              (status.error_message().empty() ? "" : ": " + status.error_message())};
}

bool tryElsewhere(const grpc::Status& status) {
  switch (status.error_code()) {
    case grpc::StatusCode::UNAVAILABLE:
    case grpc::StatusCode::DEADLINE_EXCEEDED:
    case grpc::StatusCode::CANCELLED:
    case grpc::StatusCode::UNKNOWN:  // etcd: "leader changed", "no leader"
      return true;
    default:
      return false;
  }
}

std::string prefixEnd(const std::string& prefix) {
  std::string end = prefix;
  while (!end.empty()) {
    auto& last = reinterpret_cast<unsigned char&>(end.back());
    if (last < 0xff) {
      last++;
      return end;
    }
    end.pop_back();
  }
  return std::string(1, '\0');  // every key
}

std::shared_ptr<const EtcdConnection> EtcdClient::Channels::connect(const Endpoint& ep) const {
  auto c = std::make_shared<EtcdConnection>();
  c->channel = grpc::CreateCustomChannel(ep.target, ep.creds, args);
  c->kv = etcdserverpb::KV::NewStub(c->channel);
  c->lease = etcdserverpb::Lease::NewStub(c->channel);
  c->watch = etcdserverpb::Watch::NewStub(c->channel);
  c->maintenance = etcdserverpb::Maintenance::NewStub(c->channel);
  c->created = std::chrono::steady_clock::now();
  return c;
}

void EtcdClient::Channels::renewIfStuck(size_t i, const std::shared_ptr<const EtcdConnection>& used) {
  Endpoint& ep = at(i);
  if (used->channel->GetState(false) != GRPC_CHANNEL_TRANSIENT_FAILURE) return;
  if (std::chrono::steady_clock::now() - used->created < std::chrono::seconds(1)) return;
  std::lock_guard<std::mutex> lock(ep.mu);
  if (ep.conn == used) ep.conn = connect(ep);
}

EtcdClient::EtcdClient(EtcdOptions options)
    : options_(std::move(options)), channels_(std::make_unique<Channels>()) {}

EtcdClient::~EtcdClient() = default;

Result<std::unique_ptr<EtcdClient>> EtcdClient::connect(const EtcdOptions& options) {
  if (options.endpoints.empty()) return Error{"connect to etcd", "", EINVAL, "no endpoint given"};
  const bool tlsFiles = !options.caFile.empty() || !options.certFile.empty();
  grpc::SslCredentialsOptions ssl;
  if (!options.caFile.empty()) {
    auto ca = readFile(options.caFile, "etcd CA certificate");
    if (!ca) return ca.error();
    ssl.pem_root_certs = *ca;
  }
  if (!options.certFile.empty() || !options.keyFile.empty()) {
    if (options.certFile.empty() || options.keyFile.empty()) {
      return Error{"connect to etcd", "", EINVAL, "a client certificate needs both --etcd-cert and --etcd-key"};
    }
    auto cert = readFile(options.certFile, "etcd client certificate");
    if (!cert) return cert.error();
    auto key = readFile(options.keyFile, "etcd client key");
    if (!key) return key.error();
    ssl.pem_cert_chain = *cert;
    ssl.pem_private_key = *key;
  }
  std::unique_ptr<EtcdClient> c(new EtcdClient(options));
  grpc::ChannelArguments& args = c->channels_->args;
  // A member that stops answering is noticed by pings, not only when a
  // request times out. Each channel has subchannels of its own, so that a
  // renewed one (renewIfStuck) really connects anew.
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 5000);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 3000);
  args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  args.SetInt(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  args.SetMaxReceiveMessageSize(64 << 20);
  for (const auto& url : options.endpoints) {
    std::string target = url;
    bool tls = tlsFiles;
    if (url.rfind("unix://", 0) == 0) {
      // A unix socket (reachable from any network namespace: a node in a
      // namespace of its own reaches an etcd of another).
      const std::string path = url.substr(7);
      if (path.empty() || path[0] != '/') {
        return Error{"connect to etcd", url, EINVAL, "a unix endpoint is unix:///absolute/path"};
      }
      auto ep = std::make_unique<Channels::Endpoint>();
      ep->name = url;
      ep->target = "unix:" + path;
      ep->creds = grpc::InsecureChannelCredentials();
      ep->conn = c->channels_->connect(*ep);
      c->channels_->endpoints.push_back(std::move(ep));
      continue;
    }
    if (url.rfind("http://", 0) == 0) {
      target = url.substr(7);
      tls = false;
    } else if (url.rfind("https://", 0) == 0) {
      target = url.substr(8);
      tls = true;
    }
    while (!target.empty() && target.back() == '/') target.pop_back();
    if (target.empty() || target.find('/') != std::string::npos) {
      return Error{"connect to etcd", url, EINVAL, "an endpoint is [http[s]://]HOST:PORT"};
    }
    if (tls && ssl.pem_root_certs.empty()) {
      return Error{"connect to etcd", url, EINVAL, "an https endpoint needs --etcd-cacert"};
    }
    auto ep = std::make_unique<Channels::Endpoint>();
    ep->name = url;
    ep->target = target;
    ep->creds = tls ? grpc::SslCredentials(ssl) : grpc::InsecureChannelCredentials();
    ep->conn = c->channels_->connect(*ep);
    c->channels_->endpoints.push_back(std::move(ep));
  }
  return c;
}

std::string EtcdClient::currentEndpoint() const { return channels_->at(channels_->current.load()).name; }

Result<Range> EtcdClient::get(const std::string& key, bool prefix, int64_t revision) {
  etcdserverpb::RangeRequest req;
  req.set_key(key);
  setRange(req.mutable_range_end(), key, prefix);
  req.set_revision(revision);
  auto r = unary<etcdserverpb::RangeResponse>(*channels_, options_, "read " + key,
                                              [&](const Conn& c, grpc::ClientContext* ctx, auto* resp) {
                                                return c.kv->Range(ctx, req, resp);
                                              });
  if (!r) return r.error();
  return toRange(*r);
}

Result<int64_t> EtcdClient::put(const std::string& key, const std::string& value, int64_t lease) {
  etcdserverpb::PutRequest req;
  req.set_key(key);
  req.set_value(value);
  req.set_lease(lease);
  auto r = unary<etcdserverpb::PutResponse>(*channels_, options_, "write " + key,
                                            [&](const Conn& c, grpc::ClientContext* ctx, auto* resp) {
                                              return c.kv->Put(ctx, req, resp);
                                            });
  if (!r) return r.error();
  return r->header().revision();
}

Result<int64_t> EtcdClient::remove(const std::string& key, bool prefix) {
  etcdserverpb::DeleteRangeRequest req;
  req.set_key(key);
  setRange(req.mutable_range_end(), key, prefix);
  auto r = unary<etcdserverpb::DeleteRangeResponse>(*channels_, options_, "delete " + key,
                                                    [&](const Conn& c, grpc::ClientContext* ctx, auto* resp) {
                                                      return c.kv->DeleteRange(ctx, req, resp);
                                                    });
  if (!r) return r.error();
  return r->header().revision();
}

Result<TxnResult> EtcdClient::txn(const std::vector<Compare>& compare, const std::vector<TxnOp>& onSuccess,
                                  const std::vector<TxnOp>& onFailure) {
  etcdserverpb::TxnRequest req;
  for (const auto& c : compare) toCompare(c, req.add_compare());
  for (const auto& op : onSuccess) toRequestOp(op, req.add_success());
  for (const auto& op : onFailure) toRequestOp(op, req.add_failure());
  auto r = unary<etcdserverpb::TxnResponse>(*channels_, options_, "transaction",
                                            [&](const Conn& c, grpc::ClientContext* ctx, auto* resp) {
                                              return c.kv->Txn(ctx, req, resp);
                                            });
  if (!r) return r.error();
  TxnResult out;
  out.succeeded = r->succeeded();
  out.revision = r->header().revision();
  for (const auto& resp : r->responses()) {
    if (resp.has_response_range()) out.ranges.push_back(toRange(resp.response_range()));
  }
  return out;
}

Result<int64_t> EtcdClient::grantLease(int64_t ttlSeconds) {
  etcdserverpb::LeaseGrantRequest req;
  req.set_ttl(ttlSeconds);
  auto r = unary<etcdserverpb::LeaseGrantResponse>(*channels_, options_, "grant a lease",
                                                   [&](const Conn& c, grpc::ClientContext* ctx, auto* resp) {
                                                     return c.lease->LeaseGrant(ctx, req, resp);
                                                   });
  if (!r) return r.error();
  if (!r->error().empty()) return Error{"grant a lease", "etcd", 0, r->error()};
  return r->id();
}

Result<void> EtcdClient::revokeLease(int64_t id) {
  etcdserverpb::LeaseRevokeRequest req;
  req.set_id(id);
  auto r = unary<etcdserverpb::LeaseRevokeResponse>(*channels_, options_, "revoke a lease",
                                                    [&](const Conn& c, grpc::ClientContext* ctx, auto* resp) {
                                                      return c.lease->LeaseRevoke(ctx, req, resp);
                                                    });
  if (!r) return r.error();
  return {};
}

Result<int64_t> EtcdClient::leaseRemaining(int64_t id) {
  etcdserverpb::LeaseTimeToLiveRequest req;
  req.set_id(id);
  auto r = unary<etcdserverpb::LeaseTimeToLiveResponse>(*channels_, options_, "ask a lease's time to live",
                                                        [&](const Conn& c, grpc::ClientContext* ctx, auto* resp) {
                                                          return c.lease->LeaseTimeToLive(ctx, req, resp);
                                                        });
  if (!r) return r.error();
  return r->ttl() <= 0 ? -1 : r->ttl();
}

std::vector<EtcdClient::EndpointStatus> EtcdClient::endpointStatus() {
  std::vector<EndpointStatus> out;
  for (size_t i = 0; i < channels_->endpoints.size(); i++) {
    EndpointStatus s;
    s.endpoint = channels_->at(i).name;
    auto conn = channels_->connection(i);
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(1));
    etcdserverpb::StatusRequest req;
    etcdserverpb::StatusResponse resp;
    const auto from = std::chrono::steady_clock::now();
    grpc::Status st = conn->maintenance->Status(&ctx, req, &resp);
    s.latencyMs = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - from).count();
    if (st.ok()) {
      s.healthy = resp.errors_size() == 0 && resp.leader() != 0;
      s.version = resp.version();
      s.memberId = resp.header().member_id();
      s.leader = resp.leader() == resp.header().member_id();
      s.revision = resp.header().revision();
      for (const auto& e : resp.errors()) s.error += (s.error.empty() ? "" : "; ") + e;
      if (resp.leader() == 0 && s.error.empty()) s.error = "no leader";
    } else {
      s.error = grpcError("status", s.endpoint, st).detail;
      if (tryElsewhere(st)) channels_->renewIfStuck(i, conn);
    }
    out.push_back(std::move(s));
  }
  return out;
}

}  // namespace microseg::cluster
