#include "k8s_import/emit_yaml.h"

#include <yaml.h>

#include <memory>
#include <stdexcept>

namespace microseg::k8s {

namespace {

constexpr const char* kApiVersion = "microseg.dev/v1";

// A string that a plain scalar would turn into a number, a bool or null
// (YAML 1.1, as libyaml and the policy reader read it).
bool needsQuotes(const std::string& s) {
  if (s.empty()) return true;
  std::string lower;
  for (char c : s) lower += static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
  for (const char* word : {"~", "null", "true", "false", "yes", "no", "on", "off", "y", "n", ".inf", ".nan"}) {
    if (lower == word) return true;
  }
  // Numbers (decimal, hex, octal, sexagesimal, floats) and dates: a digit,
  // sign or dot first, then nothing a number or a date could not hold.
  const char c = s[0];
  if (!((c >= '0' && c <= '9') || c == '-' || c == '+' || c == '.')) return false;
  return s.find_first_not_of("0123456789abcdefABCDEFoOxX.-+_:") == std::string::npos;
}

class Emitter {
 public:
  Emitter() {
    yaml_emitter_initialize(&e_);
    yaml_emitter_set_output(&e_, &Emitter::write, &out_);
    yaml_emitter_set_unicode(&e_, 1);
    yaml_emitter_set_width(&e_, -1);  // no folding: one item, one line
    yaml_emitter_set_indent(&e_, 2);
    emit([](yaml_event_t* ev) { return yaml_stream_start_event_initialize(ev, YAML_UTF8_ENCODING); });
  }
  ~Emitter() { yaml_emitter_delete(&e_); }
  Emitter(const Emitter&) = delete;
  Emitter& operator=(const Emitter&) = delete;

  std::string finish() {
    emit([](yaml_event_t* ev) { return yaml_stream_end_event_initialize(ev); });
    return std::move(out_);
  }
  void documentStart() {
    emit([](yaml_event_t* ev) { return yaml_document_start_event_initialize(ev, nullptr, nullptr, nullptr, 0); });
  }
  void documentEnd() {
    emit([](yaml_event_t* ev) { return yaml_document_end_event_initialize(ev, 1); });
  }
  void map(bool flow = false) {
    emit([&](yaml_event_t* ev) {
      return yaml_mapping_start_event_initialize(ev, nullptr, nullptr, 1,
                                                 flow ? YAML_FLOW_MAPPING_STYLE : YAML_BLOCK_MAPPING_STYLE);
    });
  }
  void endMap() {
    emit([](yaml_event_t* ev) { return yaml_mapping_end_event_initialize(ev); });
  }
  void seq(bool flow = false) {
    emit([&](yaml_event_t* ev) {
      return yaml_sequence_start_event_initialize(ev, nullptr, nullptr, 1,
                                                  flow ? YAML_FLOW_SEQUENCE_STYLE : YAML_BLOCK_SEQUENCE_STYLE);
    });
  }
  void endSeq() {
    emit([](yaml_event_t* ev) { return yaml_sequence_end_event_initialize(ev); });
  }
  void str(const std::string& s) { scalar(s, needsQuotes(s) ? YAML_DOUBLE_QUOTED_SCALAR_STYLE : YAML_ANY_SCALAR_STYLE); }
  void num(long v) { scalar(std::to_string(v), YAML_PLAIN_SCALAR_STYLE); }
  void kv(const std::string& k, const std::string& v) {
    str(k);
    str(v);
  }

 private:
  void scalar(const std::string& s, yaml_scalar_style_t style) {
    emit([&](yaml_event_t* ev) {
      return yaml_scalar_event_initialize(ev, nullptr, nullptr,
                                          reinterpret_cast<yaml_char_t*>(const_cast<char*>(s.data())),
                                          static_cast<int>(s.size()), 1, 1, style);
    });
  }
  template <typename F>
  void emit(F init) {
    yaml_event_t ev;
    if (!init(&ev) || !yaml_emitter_emit(&e_, &ev)) {
      throw std::runtime_error(std::string("YAML emitter: ") + (e_.problem ? e_.problem : "cannot emit"));
    }
  }
  static int write(void* data, unsigned char* buffer, size_t size) {
    static_cast<std::string*>(data)->append(reinterpret_cast<const char*>(buffer), size);
    return 1;
  }

  yaml_emitter_t e_;
  std::string out_;
};

void labels(Emitter& e, const Labels& l) {
  e.map(true);
  for (const auto& [k, v] : l) e.kv(k, v);
  e.endMap();
}

void metadata(Emitter& e, const std::string& name, const std::string& ns, const Annotations& annotations) {
  e.str("metadata");
  e.map();
  e.kv("name", name);
  if (!ns.empty()) e.kv("namespace", ns);
  if (!annotations.empty()) {
    e.str("annotations");
    labels(e, annotations);
  }
  e.endMap();
}

const char* opName(policy::SelectorOp op) {
  switch (op) {
    case policy::SelectorOp::In: return "In";
    case policy::SelectorOp::NotIn: return "NotIn";
    case policy::SelectorOp::Exists: return "Exists";
    case policy::SelectorOp::DoesNotExist: return "DoesNotExist";
  }
  return "?";
}

void selector(Emitter& e, const OutSelector& s) {
  e.map(true);
  if (!s.matchLabels.empty()) {
    e.str("matchLabels");
    labels(e, s.matchLabels);
  }
  if (!s.matchExpressions.empty()) {
    e.str("matchExpressions");
    e.seq(true);
    for (const auto& r : s.matchExpressions) {
      e.map(true);
      e.kv("key", r.key);
      e.kv("operator", opName(r.op));
      if (!r.values.empty()) {
        e.str("values");
        e.seq(true);
        for (const auto& v : r.values) e.str(v);
        e.endSeq();
      }
      e.endMap();
    }
    e.endSeq();
  }
  e.endMap();
}

void peer(Emitter& e, const OutPeer& p) {
  switch (p.kind) {
    case OutPeer::Kind::Selector:
      selector(e, p.selector);
      return;
    case OutPeer::Kind::Identity:
      e.map(true);
      e.kv("identity", p.identity);
      e.endMap();
      return;
    case OutPeer::Kind::Cidr:
      e.map(true);
      e.kv("cidr", p.cidr.str());
      if (!p.except.empty()) {
        e.str("except");
        e.seq(true);
        for (const auto& x : p.except) e.str(x.str());
        e.endSeq();
      }
      e.endMap();
      return;
  }
}

const char* actionName(Action a) {
  switch (a) {
    case Action::Allow: return "allow";
    case Action::Deny: return "deny";
    case Action::Pass: return "pass";
  }
  return "?";
}

void rules(Emitter& e, const char* section, const char* peersKey, const std::vector<OutRule>& rs) {
  e.str(section);
  e.seq(rs.empty());
  for (const auto& r : rs) {
    e.map();
    if (r.explicitAction || r.action != Action::Allow) e.kv("action", actionName(r.action));
    if (r.peers) {
      e.str(peersKey);
      e.seq(true);
      for (const auto& p : *r.peers) peer(e, p);
      e.endSeq();
    }
    if (!r.ports.empty()) {
      e.str("ports");
      e.seq(true);
      for (const auto& p : r.ports) {
        e.map(true);
        if (p.port != 0) {
          e.str("port");
          e.num(p.port);
        }
        if (p.endPort != 0) {
          e.str("endPort");
          e.num(p.endPort);
        }
        e.kv("protocol", protocolName(p.protocol));
        e.endMap();
      }
      e.endSeq();
    }
    e.endMap();
  }
  e.endSeq();
}

void workload(Emitter& e, const OutWorkload& w) {
  e.documentStart();
  e.map();
  e.kv("apiVersion", kApiVersion);
  e.kv("kind", "Workload");
  metadata(e, w.name, w.ns, w.annotations);
  e.str("spec");
  e.map();
  e.str("cgroups");
  e.seq(true);
  for (const auto& c : w.cgroups) e.str(c);
  e.endSeq();
  e.str("labels");
  labels(e, w.labels);
  e.endMap();
  e.endMap();
  e.documentEnd();
}

void policy(Emitter& e, const OutPolicy& p) {
  e.documentStart();
  e.map();
  e.kv("apiVersion", kApiVersion);
  e.kv("kind", "Policy");
  metadata(e, p.name, p.ns, p.annotations);
  e.str("spec");
  e.map();
  // Written only where it differs from the default (application), so the
  // NetworkPolicy translation reads the same with or without tiers.
  if (p.tier != Tier::Application) e.kv("tier", p.tier == Tier::Admin ? "admin" : "baseline");
  if (p.tier == Tier::Admin) {
    e.str("priority");
    e.num(p.priority);
  }
  e.str("selector");
  selector(e, p.selector);
  if (p.ingress) rules(e, "ingress", "from", *p.ingress);
  if (p.egress) rules(e, "egress", "to", *p.egress);
  e.endMap();
  e.endMap();
  e.documentEnd();
}

}  // namespace

std::string emitYaml(const Documents& docs) {
  Emitter e;
  for (const auto& w : docs.workloads) workload(e, w);
  for (const auto& p : docs.policies) policy(e, p);
  return e.finish();
}

}  // namespace microseg::k8s
