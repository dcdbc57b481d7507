#include "k8s_import/labels.h"

namespace microseg::k8s {

namespace {

bool lowerAlnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }
bool alnum(char c) { return lowerAlnum(c) || (c >= 'A' && c <= 'Z'); }

// [A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?, at most 63
bool labelName(std::string_view s) {
  if (s.empty() || s.size() > 63 || !alnum(s.front()) || !alnum(s.back())) return false;
  for (char c : s) {
    if (!alnum(c) && c != '-' && c != '_' && c != '.') return false;
  }
  return true;
}

// [a-z0-9]([-a-z0-9]*[a-z0-9])?, any length
bool dnsLabelChars(std::string_view s) {
  if (s.empty() || !lowerAlnum(s.front()) || !lowerAlnum(s.back())) return false;
  for (char c : s) {
    if (!lowerAlnum(c) && c != '-') return false;
  }
  return true;
}

}  // namespace

bool validDnsLabel(std::string_view s) { return s.size() <= 63 && dnsLabelChars(s); }

// As Kubernetes checks it: at most 253 in all, no bound per part.
bool validDnsSubdomain(std::string_view s) {
  if (s.empty() || s.size() > 253) return false;
  for (size_t from = 0;;) {
    const size_t dot = s.find('.', from);
    if (!dnsLabelChars(s.substr(from, dot == std::string_view::npos ? std::string_view::npos : dot - from))) {
      return false;
    }
    if (dot == std::string_view::npos) return true;
    from = dot + 1;
  }
}

bool validLabelKey(std::string_view key) {
  const size_t slash = key.find('/');
  if (slash == std::string_view::npos) return labelName(key);
  return validDnsSubdomain(key.substr(0, slash)) && labelName(key.substr(slash + 1));
}

bool validLabelValue(std::string_view v) { return v.empty() || labelName(v); }

bool validPortName(std::string_view s) {
  if (s.empty() || s.size() > 15 || s.front() == '-' || s.back() == '-') return false;
  bool letter = false;
  for (size_t i = 0; i < s.size(); i++) {
    const char c = s[i];
    if (c == '-' && i > 0 && s[i - 1] == '-') return false;
    if (c >= 'a' && c <= 'z') letter = true;
    if (!lowerAlnum(c) && c != '-') return false;
  }
  return letter;
}

bool reservedKey(std::string_view key) {
  const size_t slash = key.find('/');
  if (slash == std::string_view::npos) return false;
  const std::string_view prefix = key.substr(0, slash);
  constexpr std::string_view kDomain = "microseg.dev";
  if (prefix == kDomain) return true;
  return prefix.size() > kDomain.size() && prefix.ends_with(kDomain) &&
         prefix[prefix.size() - kDomain.size() - 1] == '.';
}

std::optional<std::string> namespaceKey(std::string_view key) {
  const size_t slash = key.find('/');
  std::string out;
  if (slash == std::string_view::npos) {
    out = std::string(kNamespaceSuffix) + "/" + std::string(key);
  } else {
    out = std::string(key.substr(0, slash)) + "." + std::string(kNamespaceSuffix) + std::string(key.substr(slash));
  }
  if (!validLabelKey(out)) return std::nullopt;
  return out;
}

}  // namespace microseg::k8s
