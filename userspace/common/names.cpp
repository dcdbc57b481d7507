#include "common/names.h"

#include "bpf/abi.h"

namespace microseg {

const char* modeName(uint32_t m) {
  switch (m) {
    case MS_MODE_MONITOR: return "monitor";
    case MS_MODE_ENFORCE: return "enforce";
    default: return "inherit";
  }
}

std::optional<uint32_t> parseMode(std::string_view s) {
  if (s == "monitor") return MS_MODE_MONITOR;
  if (s == "enforce") return MS_MODE_ENFORCE;
  if (s == "inherit") return MS_MODE_INHERIT;
  return std::nullopt;
}

const char* verdictName(uint8_t v) {
  switch (v) {
    case MS_VERDICT_ALLOW: return "allow";
    case MS_VERDICT_DENY: return "deny";
    case MS_VERDICT_AUDIT: return "audit";
    case MS_VERDICT_REVOKED: return "revoked";
    case MS_VERDICT_WOULD_REVOKE: return "would-revoke";
    default: return "unknown";
  }
}

std::optional<uint8_t> parseVerdict(std::string_view s) {
  if (s == "allow") return MS_VERDICT_ALLOW;
  if (s == "deny") return MS_VERDICT_DENY;
  if (s == "audit") return MS_VERDICT_AUDIT;
  if (s == "revoked") return MS_VERDICT_REVOKED;
  if (s == "would-revoke") return MS_VERDICT_WOULD_REVOKE;
  return std::nullopt;
}

const char* reasonName(uint8_t r) {
  switch (r) {
    case MS_REASON_RULE: return "rule";
    case MS_REASON_DEFAULT_DENY: return "default-deny";
    case MS_REASON_UDP_ANSWER: return "udp-answer";
    case MS_REASON_NOT_ISOLATED: return "not-isolated";
    case MS_REASON_NO_POLICY: return "no-policy";
    case MS_REASON_PENDING: return "pending-identity";
    case MS_REASON_WIRE_INVALID: return "wire-identity-invalid";
    case MS_REASON_GRANT: return "grant";
    default: return "unknown";
  }
}

const char* peerViaName(uint8_t v) {
  switch (v) {
    case MS_PEER_VIA_SOCKET: return "socket";
    case MS_PEER_VIA_WIRE: return "wire";
    case MS_PEER_VIA_FQDN: return "fqdn";
    default: return "address";
  }
}

const char* directionName(uint8_t d) { return d == MS_DIR_INGRESS ? "ingress" : "egress"; }

std::optional<uint8_t> parseDirection(std::string_view s) {
  if (s == "egress") return MS_DIR_EGRESS;
  if (s == "ingress") return MS_DIR_INGRESS;
  return std::nullopt;
}

const char* hookName(uint8_t h) {
  switch (h) {
    case MS_HOOK_CONNECT4: return "connect4";
    case MS_HOOK_CONNECT6: return "connect6";
    case MS_HOOK_SENDMSG4: return "sendmsg4";
    case MS_HOOK_SENDMSG6: return "sendmsg6";
    case MS_HOOK_INGRESS: return "ingress";
    default: return "unknown";
  }
}

const char* protocolName(uint8_t p) {
  switch (p) {
    case MS_PROTO_TCP: return "tcp";
    case MS_PROTO_UDP: return "udp";
    default: return "other";
  }
}

std::optional<uint8_t> parseProtocol(std::string_view s) {
  if (s == "tcp" || s == "TCP") return MS_PROTO_TCP;
  if (s == "udp" || s == "UDP") return MS_PROTO_UDP;
  return std::nullopt;
}

}  // namespace microseg
