// The shared store's record: round trip, and refusal of anything malformed or over its bounds.
#include <doctest/doctest.h>

#include "src/cache/shared_entry.hpp"

using namespace sluice::cache;

TEST_CASE("shared entry: encodes and decodes whole") {
  SharedEntry e;
  e.key = std::string(
      "select 1\x1f"
      "db\x1fuser",
      17);
  e.cluster = "main";
  e.tables = {"t", "v"};
  e.replica = true;
  e.data = sluice::replication::Position{{{0u, 0x16B374D848ull}, {7u, 3}}};
  e.expires_unix_ms = 1'765'000'000'123;
  e.value = std::string("T\0\0\0\x06", 5);
  auto bytes = encode_shared(e);
  auto d = decode_shared(bytes, 1024);
  REQUIRE(d);
  CHECK(d->key == e.key);
  CHECK(d->cluster == "main");
  CHECK(d->tables == e.tables);
  CHECK(d->replica);
  CHECK(d->data == e.data);
  CHECK(d->expires_unix_ms == e.expires_unix_ms);
  CHECK(d->value == e.value);

  CHECK_FALSE(decode_shared(bytes, 4));  // the value is over the bound
  for (std::size_t cut = 0; cut < bytes.size(); ++cut) CHECK_FALSE(decode_shared(bytes.substr(0, cut), 1024));
  CHECK_FALSE(decode_shared(bytes + "x", 1024));  // trailing bytes
  auto bad = bytes;
  bad[0] = 'X';
  CHECK_FALSE(decode_shared(bad, 1024));
  bad = bytes;
  bad[4] = 2;  // the replica flag is 0 or 1
  CHECK_FALSE(decode_shared(bad, 1024));
}

TEST_CASE("shared entry: a length past the record is refused, not read") {
  SharedEntry e;
  e.key = "k";
  auto bytes = encode_shared(e);
  // The key's length field follows the magic, the flag and the expiry.
  bytes[13] = '\x7f';
  CHECK_FALSE(decode_shared(bytes, 1024));
}
