#include "k8s_import/names.h"

#include <xxhash.h>

#include <cstdio>

namespace microseg::k8s {

namespace {

constexpr size_t kMaxName = 63;
constexpr size_t kHashDigits = 8;

std::string sanitize(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    const bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
    if (ok) {
      out += c;
    } else if (!out.empty() && out.back() != '-') {
      out += '-';
    }
  }
  while (!out.empty() && out.back() == '-') out.pop_back();
  return out.empty() ? "x" : out;
}

std::string hashed(const std::string& candidate, const std::string& key) {
  std::string head = candidate.substr(0, kMaxName - kHashDigits - 1);
  while (!head.empty() && head.back() == '-') head.pop_back();
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(XXH64(key.data(), key.size(), 0)));
  return (head.empty() ? "" : head + "-") + std::string(hex, kHashDigits);
}

}  // namespace

void Namer::add(const std::string& key, const std::vector<std::string>& parts) {
  std::string joined;
  for (const auto& p : parts) joined += (joined.empty() ? "" : "-") + p;
  candidates_[key] = sanitize(joined);
}

bool Namer::assign(std::string& error) {
  std::map<std::string, int> wanted;
  for (const auto& [key, c] : candidates_) wanted[c]++;
  std::map<std::string, std::string> owner;
  for (const auto& [key, c] : candidates_) {
    const std::string n = wanted[c] > 1 || c.size() > kMaxName ? hashed(c, key) : c;
    if (auto [it, fresh] = owner.emplace(n, key); !fresh) {
      error = "objects '" + it->second + "' and '" + key + "' would both be named '" + n + "'";
      return false;
    }
    names_[key] = n;
  }
  return true;
}

}  // namespace microseg::k8s
