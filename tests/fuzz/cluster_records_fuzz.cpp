// cluster::decode*() on any text: the JSON records other nodes wrote into
// etcd (untrusted: any node, or anything with write access to the prefix,
// can put any bytes there). A record is taken whole or not at all
// (records.h): what a decoder accepts must say exactly what the text says.
// Every field it read, written again by encode(), equals the text's value
// (a number is not wrapped, truncated or rounded into range), and decode
// of encode is the same record.
#include <string>

#include "cluster/records.h"
#include "common/text.h"
#include "fuzz_util.h"

using namespace microseg;
using nlohmann::json;

namespace {

// Every field of `original` that `encoded` has, not null there, is equal
// in both (nlohmann compares numbers by value across integer and float).
void sameFields(const json& original, const json& encoded, const std::string& what, const std::string& text) {
  for (auto it = encoded.begin(); it != encoded.end(); ++it) {
    const auto o = original.find(it.key());
    if (o == original.end() || o->is_null()) continue;
    if (it.key() == "files") continue;  // compared item by item by the caller
    fuzz::check(*o == it.value(), what + ": field '" + it.key() + "' decoded as something else",
                "text:    " + text + "\nencoded: " + encoded.dump());
  }
}

template <typename Record, typename Decode>
void roundTrip(const std::string& text, Decode decode, const std::string& what) {
  const std::optional<Record> r = decode(text);
  if (!r) return;
  const std::string enc = cluster::encode(*r);
  fuzz::check(text::isUtf8(enc), what + ": encode() is not UTF-8", enc);
  const json original = json::parse(text);
  const json encoded = json::parse(enc);
  sameFields(original, encoded, what, text);
  if (original.contains("files") && encoded.contains("files")) {
    const json& of = original["files"];
    const json& ef = encoded["files"];
    fuzz::check(of.size() == ef.size(), what + ": files lost or added", text);
    for (size_t i = 0; i < of.size(); i++) sameFields(of[i], ef[i], what + " files[" + std::to_string(i) + "]", text);
  }
  const std::optional<Record> again = decode(enc);
  fuzz::check(again.has_value() && cluster::encode(*again) == enc, what + ": decode(encode(r)) is not r", enc);
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  fuzz::quietLogs();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  roundTrip<cluster::NodeRecord>(text, cluster::decodeNode, "node record");
  roundTrip<cluster::IdentityRecord>(text, cluster::decodeIdentity, "identity record");
  roundTrip<cluster::EndpointRecord>(text, cluster::decodeEndpoint, "endpoint record");
  roundTrip<cluster::PolicyManifest>(text, cluster::decodeManifest, "policy manifest");
  return 0;
}
