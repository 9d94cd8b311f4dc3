// RESP2 codec: commands byte for byte, replies of every type at every split point, and input
// that cannot be a reply.
#include <doctest/doctest.h>

#include <string>

#include "protocols/common/resp.hpp"

using namespace sluice::resp;

TEST_CASE("resp: a command is an array of bulk strings") {
  std::string out;
  encode(out, {"SET", "k", std::string_view("a\0b", 3), "PX", "100"});
  CHECK(out == std::string("*5\r\n$3\r\nSET\r\n$1\r\nk\r\n$3\r\na\0b\r\n$2\r\nPX\r\n$3\r\n100\r\n", 46));
  out.clear();
  encode(out, {"GET", ""});
  CHECK(out == "*2\r\n$3\r\nGET\r\n$0\r\n\r\n");
}

TEST_CASE("resp: each reply type, whole and at every split point") {
  struct Case {
    std::string bytes;
    Reply::Kind kind;
    std::string text;
    std::int64_t integer;
  };
  Case cases[] = {
      {"+OK\r\n", Reply::Kind::Simple, "OK", 0},
      {"-ERR wrong number of arguments\r\n", Reply::Kind::Error, "ERR wrong number of arguments", 0},
      {":-42\r\n", Reply::Kind::Integer, "", -42},
      {"$5\r\nhe\r\no\r\n", Reply::Kind::Bulk, "he\r\no", 0},
      {"$0\r\n\r\n", Reply::Kind::Bulk, "", 0},
      {"$-1\r\n", Reply::Kind::Nil, "", 0},
      {"*-1\r\n", Reply::Kind::Nil, "", 0},
  };
  for (auto& c : cases) {
    CAPTURE(c.bytes);
    std::string trailing = c.bytes + "+NEXT\r\n";
    Reply r;
    std::size_t used = 0;
    std::string err;
    REQUIRE(decode(trailing, r, used, err) == Decode::Ok);
    CHECK(used == c.bytes.size());
    CHECK(r.kind == c.kind);
    CHECK(r.text == c.text);
    CHECK(r.integer == c.integer);
    for (std::size_t cut = 0; cut < c.bytes.size(); ++cut)
      CHECK(decode(std::string_view(c.bytes).substr(0, cut), r, used, err) == Decode::NeedMore);
  }
}

TEST_CASE("resp: arrays, nested") {
  std::string bytes = "*3\r\n$1\r\na\r\n*2\r\n:1\r\n$-1\r\n+x\r\n";
  Reply r;
  std::size_t used = 0;
  std::string err;
  REQUIRE(decode(bytes, r, used, err) == Decode::Ok);
  CHECK(used == bytes.size());
  REQUIRE(r.kind == Reply::Kind::Array);
  REQUIRE(r.items.size() == 3);
  CHECK(r.items[0].text == "a");
  REQUIRE(r.items[1].items.size() == 2);
  CHECK(r.items[1].items[0].integer == 1);
  CHECK(r.items[1].items[1].kind == Reply::Kind::Nil);
  CHECK(r.items[2].text == "x");
  for (std::size_t cut = 0; cut < bytes.size(); ++cut)
    CHECK(decode(std::string_view(bytes).substr(0, cut), r, used, err) == Decode::NeedMore);
}

TEST_CASE("resp: what cannot be a reply, and the bounds") {
  Limits small;
  small.max_bulk = 8;
  small.max_line = 16;
  small.max_items = 2;
  small.max_depth = 1;
  const char* bad[] = {
      "?x\r\n",                // unknown type
      ":12a\r\n",              // not a number
      ":\r\n",                 // empty number
      "$-2\r\n",               // negative length
      "$9\r\n",                // longer than max_bulk
      "$2\r\nabc\r\n",         // no CRLF after the bytes
      "*3\r\n",                // more items than max_items
      "*1\r\n*1\r\n:1\r\n",    // deeper than max_depth
      "+0123456789abcdefXYZ",  // a line past max_line without CRLF
      "$99999999999999999999\r\n",
  };
  for (auto* b : bad) {
    CAPTURE(b);
    Reply r;
    std::size_t used = 0;
    std::string err;
    CHECK(decode(b, r, used, err, small) == Decode::Malformed);
    CHECK(!err.empty());
  }
}
