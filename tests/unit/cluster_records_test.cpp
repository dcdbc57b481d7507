// cluster/records.h: the JSON records nodes keep in etcd. They are read
// from a store any node (or anything with write access to the prefix) can
// write, so a record is taken whole or not at all: a field of the wrong kind
// refuses the record, it is never converted into something else.
#include <gtest/gtest.h>

#include "cluster/records.h"

namespace microseg::cluster {
namespace {

TEST(ClusterRecords, EncodedRecordsReadBack) {
  IdentityRecord id{300, {{"app", "web"}}};
  auto back = decodeIdentity(encode(id));
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(back->id, 300u);
  EXPECT_EQ(back->labels, id.labels);

  NodeRecord node;
  node.name = "node-a";
  node.addresses = {"10.0.0.1"};
  node.policyRevision = 9007199254740993;  // beyond a double's integers
  node.workloads = 3;
  node.identity = 301;
  node.updatedAt = 1765000000;
  auto n = decodeNode(encode(node));
  ASSERT_TRUE(n.has_value());
  EXPECT_EQ(n->policyRevision, 9007199254740993);
  EXPECT_EQ(n->workloads, 3u);
  EXPECT_EQ(n->identity, 301u);
}

// Found by the cluster_records fuzzer: {"id":300.5} was identity 300 (and
// 1e20 or -1 anything a conversion makes of them: 1e20 into a uint32 is
// undefined behaviour, -1 wraps). A number is taken only when it is an
// integer that fits the field.
TEST(ClusterRecords, ANumberThatIsNotTheFieldsIntegerRefusesTheRecord) {
  EXPECT_TRUE(decodeIdentity(R"({"id":300,"labels":{}})").has_value());
  EXPECT_FALSE(decodeIdentity(R"({"id":300.5,"labels":{}})").has_value());
  EXPECT_FALSE(decodeIdentity(R"({"id":300.0,"labels":{}})").has_value());
  EXPECT_FALSE(decodeIdentity(R"({"id":1e20,"labels":{}})").has_value());
  EXPECT_FALSE(decodeIdentity(R"({"id":4294967596,"labels":{}})").has_value());  // 2^32 + 300
  EXPECT_FALSE(decodeIdentity(R"({"id":-4294966996,"labels":{}})").has_value());  // -(2^32) + 300
  EXPECT_FALSE(decodeEndpoint(R"({"identity":-1,"kind":"host","workload":""})").has_value());
  EXPECT_FALSE(decodeEndpoint(R"({"identity":"300","kind":"host","workload":""})").has_value());
  EXPECT_FALSE(decodeNode(R"({"name":"n","workloads":-1})").has_value());
  EXPECT_FALSE(decodeNode(R"({"name":"n","workloads":1.5})").has_value());
  EXPECT_FALSE(decodeNode(R"({"name":"n","updated_at":9.3e18})").has_value());
  EXPECT_FALSE(decodeNode(R"({"name":"n","updated_at":9223372036854775808})").has_value());  // 2^63
  EXPECT_TRUE(decodeNode(R"({"name":"n","updated_at":-1})").has_value());  // int64: a number it holds
  EXPECT_FALSE(decodeManifest(R"({"id":"x","pushed_at":1,"pushed_by":"u","files":[{"name":"a","blobs":[],"size":-1}]})")
                   .has_value());
  EXPECT_FALSE(decodeManifest(R"({"id":"x","pushed_at":1.5,"pushed_by":"u","files":[]})").has_value());
  EXPECT_TRUE(decodeManifest(R"({"id":"x","pushed_at":1,"pushed_by":"u","files":[{"name":"a","blobs":[],"size":0}]})")
                  .has_value());
}

}  // namespace
}  // namespace microseg::cluster
