// PostgreSQL codec: byte-exact builders, framing fed split at every byte boundary, bounds.
#include <doctest/doctest.h>

#include <functional>
#include <random>
#include <vector>

#include "protocols/postgres/codec.hpp"

using namespace sluice::pg;

namespace {
std::string hex(std::string_view s) {
  static const char* d = "0123456789abcdef";
  std::string o;
  for (unsigned char c : s) o += {d[c >> 4], d[c & 15]};
  return o;
}
// Feeds `wire` to next_frame in two pieces split at every boundary; checks the same frame results.
void check_all_splits(const std::string& wire, char type, std::string_view body) {
  for (std::size_t cut = 0; cut <= wire.size(); ++cut) {
    std::string buf = wire.substr(0, cut);
    Frame f;
    auto d = next_frame(as_bytes(buf), 1 << 20, f);
    if (cut < wire.size()) {
      CHECK(d == Decode::NeedMore);
      buf = wire;
      d = next_frame(as_bytes(buf), 1 << 20, f);
    }
    REQUIRE(d == Decode::Ok);
    CHECK(f.type == type);
    CHECK(as_sv(f.body) == body);
    CHECK(f.size() == wire.size());
  }
}
}  // namespace

TEST_CASE("backend messages are byte-exact") {
  std::string out;
  auth_ok(out);
  CHECK(hex(out) == "520000000800000000");
  out.clear();
  ready_for_query(out, 'I');
  CHECK(hex(out) == "5a0000000549");
  out.clear();
  parameter_status(out, "TimeZone", "UTC");
  CHECK(out == std::string("S\0\0\0\x11TimeZone\0UTC\0", 18));
  out.clear();
  backend_key_data(out, 0x01020304, 0xa0b0c0d0);
  CHECK(hex(out) == "4b0000000c01020304a0b0c0d0");
  out.clear();
  auth_sasl(out, "SCRAM-SHA-256");
  CHECK(out == std::string("R\0\0\0\x17\0\0\0\x0aSCRAM-SHA-256\0\0", 24));
  out.clear();
  const std::uint8_t salt[4] = {1, 2, 3, 4};
  auth_md5(out, salt);
  CHECK(hex(out) == "520000000c0000000501020304");
  out.clear();
  error_response(out, "FATAL", "28P01", "bad");
  CHECK(out == std::string("E\0\0\0\x1fSFATAL\0VFATAL\0C28P01\0Mbad\0\0", 32));
  out.clear();
  parse_complete(out);
  close_complete(out);
  CHECK(hex(out) == "31000000043300000004");
}

TEST_CASE("frontend messages are byte-exact") {
  std::string out;
  query(out, "select 1");
  CHECK(out == std::string("Q\0\0\0\x0dselect 1\0", 14));
  out.clear();
  startup_message(out, {{"user", "app"}, {"database", "db"}});
  CHECK(out == std::string("\0\0\0\x1e\0\x03\0\0user\0app\0database\0db\0\0", 30));
  out.clear();
  cancel_request(out, 7, 9);
  CHECK(hex(out) == "0000001004d2162e0000000700000009");
  out.clear();
  ssl_request(out);
  CHECK(hex(out) == "0000000804d2162f");
  out.clear();
  sasl_initial_response(out, "SCRAM-SHA-256", "abc");
  CHECK(out == std::string("p\0\0\0\x19SCRAM-SHA-256\0\0\0\0\x03" "abc", 26));
  out.clear();
  close_message(out, 'S', "s1");
  sync_message(out);
  terminate_message(out);
  CHECK(hex(out) == "430000000853733100" "5300000004" "5800000004");
}

TEST_CASE("every builder's message parses back whole, split at every byte boundary") {
  const std::uint8_t salt[4] = {9, 8, 7, 6};
  std::vector<std::function<void(std::string&)>> builders = {
      [](std::string& o) { auth_ok(o); },
      [](std::string& o) { auth_cleartext(o); },
      [&](std::string& o) { auth_md5(o, salt); },
      [](std::string& o) { auth_sasl(o, "SCRAM-SHA-256"); },
      [](std::string& o) { auth_sasl_continue(o, "r=abc,s=xyz,i=4096"); },
      [](std::string& o) { auth_sasl_final(o, "v=xyz"); },
      [](std::string& o) { parameter_status(o, "client_encoding", "UTF8"); },
      [](std::string& o) { backend_key_data(o, 1, 2); },
      [](std::string& o) { ready_for_query(o, 'T'); },
      [](std::string& o) { error_response(o, "FATAL", "08P01", "m", "d", "h"); },
      [](std::string& o) { parse_complete(o); },
      [](std::string& o) { close_complete(o); },
      [](std::string& o) { query(o, "select 1"); },
      [](std::string& o) { password_message(o, "secret"); },
      [](std::string& o) { sasl_initial_response(o, "SCRAM-SHA-256", "n,,n=,r=x"); },
      [](std::string& o) { sasl_response(o, "c=biws,r=x,p=y"); },
      [](std::string& o) { parse_message(o, "s", "select $1", as_bytes(std::string_view("\0\1\0\0\0\x17", 6))); },
      [](std::string& o) { close_message(o, 'P', "portal"); },
      [](std::string& o) { sync_message(o); },
      [](std::string& o) { terminate_message(o); },
  };
  for (auto& build : builders) {
    std::string wire;
    build(wire);
    Frame f;
    REQUIRE(next_frame(as_bytes(wire), 1 << 20, f) == Decode::Ok);
    CHECK(f.size() == wire.size());
    check_all_splits(wire, wire[0], as_sv(f.body));
  }
  ParseView pv;
  std::string p;
  parse_message(p, "s", "select $1", as_bytes(std::string_view("\0\1\0\0\0\x17", 6)));
  Frame f;
  REQUIRE(next_frame(as_bytes(p), 1 << 20, f) == Decode::Ok);
  REQUIRE(parse_parse(f.body, pv));
  CHECK(pv.name == "s");
  CHECK(pv.query == "select $1");
  CHECK(pv.param_types.size() == 6);
}

TEST_CASE("every message parses back split at every byte boundary") {
  std::string out;
  query(out, "select 42");
  check_all_splits(out, 'Q', std::string_view("select 42\0", 10));
  out.clear();
  error_response(out, "ERROR", "42P01", "relation does not exist", "d", "h");
  {
    Frame f;
    REQUIRE(next_frame(as_bytes(out), 1 << 20, f) == Decode::Ok);
    check_all_splits(out, 'E', as_sv(f.body));
    ErrorFields ef;
    REQUIRE(parse_error_fields(f.body, ef));
    CHECK(ef.severity == "ERROR");
    CHECK(ef.code == "42P01");
    CHECK(ef.message == "relation does not exist");
    CHECK(ef.detail == "d");
    CHECK(ef.hint == "h");
  }
  out.clear();
  parameter_status(out, "DateStyle", "ISO, MDY");
  check_all_splits(out, 'S', std::string_view("DateStyle\0ISO, MDY\0", 19));
}

TEST_CASE("startup packets: StartupMessage, SSLRequest, CancelRequest, every split") {
  std::string out;
  startup_message(out, {{"user", "u"}, {"application_name", "t"}});
  for (std::size_t cut = 0; cut < out.size(); ++cut) {
    StartupPacket p;
    std::size_t used = 0;
    CHECK(parse_startup(as_bytes(std::string_view(out).substr(0, cut)), p, used) == Decode::NeedMore);
  }
  StartupPacket p;
  std::size_t used = 0;
  REQUIRE(parse_startup(as_bytes(out), p, used) == Decode::Ok);
  CHECK(used == out.size());
  CHECK(p.code == kProtocolV3);
  REQUIRE(p.find("user"));
  CHECK(*p.find("user") == "u");
  CHECK(*p.find("application_name") == "t");
  out.clear();
  cancel_request(out, 11, 22);
  REQUIRE(parse_startup(as_bytes(out), p, used) == Decode::Ok);
  CHECK(p.code == kCancelRequestCode);
  CHECK(p.cancel_pid == 11);
  CHECK(p.cancel_key == 22);
  out.clear();
  ssl_request(out);
  REQUIRE(parse_startup(as_bytes(out), p, used) == Decode::Ok);
  CHECK(p.code == kSslRequestCode);
}

TEST_CASE("malformed and oversized input is rejected, never overread") {
  StartupPacket p;
  std::size_t used = 0;
  CHECK(parse_startup(as_bytes(std::string("\0\0\0\x03", 4)), p, used) == Decode::Malformed);
  CHECK(parse_startup(as_bytes(std::string("\x7f\0\0\0", 4)), p, used) == Decode::Malformed);  // > 10000
  // Unterminated parameter list.
  CHECK(parse_startup(as_bytes(std::string("\0\0\0\x0d\0\x03\0\0user\0", 13)), p, used) == Decode::Malformed);
  Frame f;
  CHECK(next_frame(as_bytes(std::string("Q\0\0\0\x02", 5)), 100, f) == Decode::Malformed);
  CHECK(next_frame(as_bytes(std::string("Q\0\0\x10\x00", 5)), 100, f) == Decode::Malformed);
  ParseView pv;
  CHECK_FALSE(parse_parse(as_bytes(std::string("s1\0select\0\0\x05", 12)), pv));  // 5 types, no OIDs
  BindHead bh;
  CHECK_FALSE(parse_bind_head(as_bytes(std::string("p\0s", 3)), bh));
  TargetView tv;
  CHECK_FALSE(parse_target(as_bytes(std::string("Xs\0", 3)), tv));
  const std::string target("Ss\0", 3);  // views into it live as long as it does
  CHECK(parse_target(as_bytes(target), tv));
  CHECK(tv.name == "s");
}

TEST_CASE("random bytes never crash the parsers") {
  std::mt19937 rng(42);
  for (int i = 0; i < 10000; ++i) {
    std::string buf(rng() % 64, '\0');
    for (auto& c : buf) c = static_cast<char>(rng());
    if (buf.size() >= 4 && rng() % 2) buf[0] = buf[1] = 0;  // plausible lengths more often
    StartupPacket p;
    std::size_t used = 0;
    (void)parse_startup(as_bytes(buf), p, used);
    Frame f;
    if (next_frame(as_bytes(buf), 1 << 16, f) == Decode::Ok) {
      ErrorFields ef;
      (void)parse_error_fields(f.body, ef);
      ParseView pv;
      (void)parse_parse(f.body, pv);
      BindHead bh;
      (void)parse_bind_head(f.body, bh);
      std::string_view n, v;
      (void)parse_parameter_status(f.body, n, v);
    }
  }
}

TEST_CASE("postgres quoting for Sluice's own SQL: identifiers and literals") {
  CHECK(sluice::pg::quote_ident("plain") == "\"plain\"");
  CHECK(sluice::pg::quote_ident("a\"b") == "\"a\"\"b\"");
  CHECK(sluice::pg::quote_literal("it's") == "E'it''s'");
  CHECK(sluice::pg::quote_literal("back\\slash") == "E'back\\\\slash'");
}
