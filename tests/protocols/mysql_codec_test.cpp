// MySQL codec: length-encoded values, packet split/join at 0xFFFFFF, byte-exact messages,
// messages fed split at every byte boundary, and the authentication scrambles.
#include <doctest/doctest.h>

#include <string>

#include "protocols/mysql/codec.hpp"
#include "protocols/common/crypto.hpp"

using namespace sluice;
using namespace sluice::my;

namespace {
std::string hex(std::string_view s) {
  static const char* d = "0123456789abcdef";
  std::string o;
  for (unsigned char c : s) o += {d[c >> 4], d[c & 15]};
  return o;
}
std::string unhex(std::string_view h) { return *crypto::hex_decode(h); }
std::string packets(std::string_view payload, std::uint8_t seq = 0) {
  std::string out;
  append_packets(out, payload, seq);
  return out;
}
}  // namespace

TEST_CASE("length-encoded integers at every width boundary") {
  struct Case {
    std::uint64_t v;
    const char* wire;
  } cases[] = {{0, "00"},
               {250, "fa"},
               {251, "fcfb00"},
               {0xFFFF, "fcffff"},
               {0x10000, "fd000001"},
               {0xFFFFFF, "fdffffff"},
               {0x1000000, "fe0000000100000000"},
               {0xFFFFFFFFFFFFFFFFull, "feffffffffffffffff"}};
  for (auto& c : cases) {
    std::string out;
    put_lenenc(out, c.v);
    CHECK(hex(out) == c.wire);
    CHECK(lenenc_size(c.v) == out.size());
    Reader r(out);
    CHECK(r.lenenc() == c.v);
    CHECK(r.ok());
    CHECK(r.at_end());
    for (std::size_t cut = 0; cut < out.size(); ++cut) {  // truncated: never reads past the end
      Reader t(std::string_view(out).substr(0, cut));
      t.lenenc();
      CHECK_FALSE(t.ok());
    }
  }
  std::string fb = unhex("fb"), ff = unhex("ff");
  Reader null_marker(fb);
  bool is_null = false;
  CHECK_FALSE(null_marker.lenenc_nullable(is_null).has_value());
  CHECK(is_null);
  Reader err_marker(ff);
  err_marker.lenenc();
  CHECK_FALSE(err_marker.ok());
}

TEST_CASE("fixed-width integers and packet headers are little-endian") {
  std::string out;
  put_u16(out, 0x0201);
  put_u24(out, 0x050403);
  put_u32(out, 0x09080706);
  put_u64(out, 0x11100f0e0d0c0b0aull);
  put_header(out, 0x141312, 0x15);
  put_header(out, 0, 0xff);
  std::string want;
  for (int i = 1; i <= 0x15; ++i) want.push_back(static_cast<char>(i));
  want += std::string("\0\0\0\xff", 4);
  CHECK(out == want);
}

TEST_CASE("length-encoded strings") {
  std::string out;
  put_lenenc_str(out, "abc");
  put_lenenc_str(out, std::string(300, 'x'));
  CHECK(hex(out.substr(0, 4)) == "03616263");
  CHECK(hex(out.substr(4, 3)) == "fc2c01");
  Reader r(out);
  CHECK(r.lenenc_str() == "abc");
  CHECK(r.lenenc_str().size() == 300);
  CHECK(r.at_end());
  std::string short_str = unhex("05616263");  // claims 5 bytes, has 3
  Reader bad(short_str);
  bad.lenenc_str();
  CHECK_FALSE(bad.ok());
}

TEST_CASE("packets split and join at the 0xFFFFFF boundary") {
  for (std::size_t n : {std::size_t(0), std::size_t(1), kMaxPayload - 1, kMaxPayload, kMaxPayload + 1,
                        2 * kMaxPayload, 2 * kMaxPayload + 7}) {
    std::string payload(n, '\0');
    for (std::size_t i = 0; i < n; i += 4093) payload[i] = static_cast<char>(i * 7);
    std::string wire = packets(payload, 3);
    std::size_t expected_packets = n / kMaxPayload + 1;  // an exact multiple ends with an empty packet
    CHECK(wire.size() == n + 4 * expected_packets);
    // Headers: every full packet is 0xFFFFFF long, sequence ids increase from 3.
    std::size_t pos = 0;
    for (std::size_t k = 0; k < expected_packets; ++k) {
      std::size_t len = payload_length(reinterpret_cast<const std::uint8_t*>(wire.data() + pos));
      CHECK(static_cast<std::uint8_t>(wire[pos + 3]) == 3 + k);
      CHECK(len == (k + 1 < expected_packets ? kMaxPayload : n % kMaxPayload));
      pos += 4 + len;
    }
    std::string joined;
    std::uint8_t last = 0;
    std::size_t consumed = 0;
    REQUIRE(next_message(as_bytes(wire), 1u << 30, joined, last, consumed) == Decode::Ok);
    CHECK(consumed == wire.size());
    CHECK(joined == payload);
    CHECK(last == 3 + expected_packets - 1);
    if (n > 0) {  // one byte short anywhere: need more, never a partial message
      std::size_t cut = wire.size() - 1;
      CHECK(next_message(as_bytes(std::string_view(wire).substr(0, cut)), 1u << 30, joined, last, consumed) ==
            Decode::NeedMore);
    }
    if (n > kMaxPayload) {  // the limit applies to the joined size
      CHECK(next_message(as_bytes(wire), kMaxPayload, joined, last, consumed) == Decode::Malformed);
    }
  }
}

TEST_CASE("small messages fed split at every byte boundary") {
  std::string wire = packets(std::string("\x03SELECT 1", 9), 0) + packets("\x0e", 0);
  for (std::size_t cut = 0; cut <= wire.size(); ++cut) {
    std::string buf = wire.substr(0, cut);
    std::string payload;
    std::uint8_t seq = 0;
    std::size_t consumed = 0;
    auto d = next_message(as_bytes(buf), 1024, payload, seq, consumed);
    if (cut < 13) {
      CHECK(d == Decode::NeedMore);
    } else {
      REQUIRE(d == Decode::Ok);
      CHECK(payload == std::string("\x03SELECT 1", 9));
      CHECK(consumed == 13);
    }
  }
}

TEST_CASE("HandshakeV10 is byte-exact and parses back") {
  Handshake h;
  h.server_version = "8.0.34";
  h.connection_id = 0x01020304;
  h.nonce = "ABCDEFGHIJKLMNOPQRST";
  h.capabilities = cap::PROTOCOL_41 | cap::SECURE_CONNECTION | cap::PLUGIN_AUTH | cap::LONG_PASSWORD;
  h.charset = 45;
  h.status = status::AUTOCOMMIT;
  h.auth_plugin = "mysql_native_password";
  std::string p;
  build_handshake(p, h);
  CHECK(hex(p) ==
        "0a" "382e302e333400" "04030201" "4142434445464748" "00" "0182" "2d" "0200" "0800" "15"
        "000000000000" "00000000" "494a4b4c4d4e4f505152535400" "6d7973716c5f6e61746976655f70617373776f726400");
  Handshake back;
  REQUIRE(parse_handshake(as_bytes(p), back));
  CHECK(back.server_version == h.server_version);
  CHECK(back.connection_id == h.connection_id);
  CHECK(back.nonce == h.nonce);
  CHECK(back.capabilities == h.capabilities);
  CHECK(back.charset == 45);
  CHECK(back.auth_plugin == h.auth_plugin);
}

TEST_CASE("HandshakeResponse41 is byte-exact and parses back, attributes included") {
  HandshakeResponse r;
  r.capabilities = cap::PROTOCOL_41 | cap::SECURE_CONNECTION | cap::PLUGIN_AUTH | cap::CONNECT_WITH_DB |
                   cap::PLUGIN_AUTH_LENENC_CLIENT_DATA | cap::CONNECT_ATTRS;
  r.max_packet = 0x01000000;
  r.charset = 45;
  r.user = "app";
  r.auth_response = std::string("\x01\x02\x03", 3);
  r.database = "db";
  r.auth_plugin = "p";
  r.attributes = {{"k", "v"}};
  std::string p;
  build_handshake_response(p, r);
  CHECK(hex(p) == "08823800" "00000001" "2d" + std::string(46, '0') + "61707000" "03010203" "646200" "7000" "04016b0176");
  HandshakeResponse back;
  REQUIRE(parse_handshake_response(as_bytes(p), back));
  CHECK(back.user == "app");
  CHECK(back.auth_response == r.auth_response);
  CHECK(back.database == "db");
  CHECK(back.auth_plugin == "p");
  REQUIRE(back.attributes.size() == 1);
  CHECK(back.attributes[0].first == "k");
  // Every truncation is rejected or parsed without reading past the end (never a crash).
  for (std::size_t cut = 0; cut < p.size(); ++cut) {
    HandshakeResponse t;
    parse_handshake_response(as_bytes(std::string_view(p).substr(0, cut)), t);
  }
  // An attribute block claiming more bytes than sent is malformed.
  std::string lying = p;
  lying[lying.size() - 5] = 0x40;
  HandshakeResponse t;
  CHECK_FALSE(parse_handshake_response(as_bytes(lying), t));
  // SSLRequest: the 32-byte prefix alone.
  HandshakeResponse ssl;
  REQUIRE(parse_handshake_response(as_bytes(std::string_view(p).substr(0, 32)), ssl));
  CHECK(ssl.ssl_request_only);
}

TEST_CASE("OK, ERR, EOF and AuthSwitch are byte-exact") {
  Ok ok;
  ok.affected_rows = 3;
  ok.last_insert_id = 300;
  ok.status = status::AUTOCOMMIT | status::IN_TRANS;
  ok.warnings = 1;
  std::string p;
  build_ok(p, ok, false);
  CHECK(hex(p) == "0003fc2c01" "0300" "0100");
  Ok back;
  REQUIRE(parse_ok(as_bytes(p), false, back));
  CHECK(back.affected_rows == 3);
  CHECK(back.last_insert_id == 300);
  CHECK(back.status == 3);
  CHECK(back.warnings == 1);

  // With SESSION_TRACK: info and state as length-encoded strings; the flag stays.
  std::string state;
  put_u8(state, track::SCHEMA);
  std::string data;
  put_lenenc_str(data, "app2");
  put_lenenc_str(state, data);
  ok.info = "";
  ok.session_state = state;
  ok.status |= status::SESSION_STATE_CHANGED;
  std::string t;
  build_ok(t, ok, true);
  CHECK(hex(t) == "0003fc2c01" "0340" "0100" "00" "070105" "0461707032");
  REQUIRE(parse_ok(as_bytes(t), true, back));
  SessionChanges ch;
  REQUIRE(parse_session_state(back.session_state, ch));
  REQUIRE(ch.schema);
  CHECK(*ch.schema == "app2");
  // The same OK for a client without SESSION_TRACK: no state, flag cleared.
  std::string plain;
  build_ok(plain, back, false);
  CHECK(hex(plain) == "0003fc2c01" "0300" "0100");

  // Info without SESSION_TRACK is still a length-encoded string, as servers (MariaDB and MySQL)
  // write it and client libraries read it: "Rows matched: ..." after an UPDATE.
  Ok upd;
  upd.status = status::AUTOCOMMIT;
  upd.info = "Rows matched: 2";
  std::string u;
  build_ok(u, upd, false);
  CHECK(hex(u) == "000000" "0200" "0000" "0f" "526f7773206d6174636865643a2032");
  Ok ub;
  REQUIRE(parse_ok(as_bytes(u), false, ub));
  CHECK(ub.info == "Rows matched: 2");
  std::string tracked;
  build_ok(tracked, ub, true);
  REQUIRE(parse_ok(as_bytes(tracked), true, ub));
  CHECK(ub.info == "Rows matched: 2");

  std::string e;
  build_err(e, 1045, "28000", "Access denied");
  CHECK(hex(e) == "ff1504" "23" "3238303030" "4163636573732064656e696564");
  Err eb;
  REQUIRE(parse_err(as_bytes(e), eb));
  CHECK(eb.code == 1045);
  CHECK(eb.sqlstate == "28000");
  CHECK(eb.message == "Access denied");

  std::string eof;
  build_eof(eof, 2, status::MORE_RESULTS_EXISTS);
  CHECK(hex(eof) == "fe02000800");
  CHECK(eof_status(as_bytes(eof), false, false) == status::MORE_RESULTS_EXISTS);

  std::string sw;
  build_auth_switch(sw, "mysql_native_password", std::string("12345678901234567890\0", 21));
  AuthSwitch as;
  REQUIRE(parse_auth_switch(as_bytes(sw), as));
  CHECK(as.plugin == "mysql_native_password");
  CHECK(as.data == "12345678901234567890");

  // MariaDB's ed25519 request carries a bare 32-byte random nonce: one that happens to end in a
  // zero byte (1 login in 256) keeps it. Stripping it failed that login ("only a stored hash").
  std::string nonce(32, 'n');
  nonce.back() = '\0';
  std::string ed;
  build_auth_switch(ed, "client_ed25519", nonce);
  AuthSwitch es;
  REQUIRE(parse_auth_switch(as_bytes(ed), es));
  CHECK(es.plugin == "client_ed25519");
  CHECK(es.data == nonce);
}

TEST_CASE("session state: variables, schema and the generic flag") {
  std::string state, d;
  put_lenenc_str(d, "autocommit");
  put_lenenc_str(d, "OFF");
  put_u8(state, track::SYSTEM_VARIABLES);
  put_lenenc_str(state, d);
  d.clear();
  put_lenenc_str(d, "1");
  put_u8(state, track::STATE_CHANGE);
  put_lenenc_str(state, d);
  SessionChanges ch;
  REQUIRE(parse_session_state(state, ch));
  REQUIRE(ch.variables.size() == 1);
  CHECK(ch.variables[0].first == "autocommit");
  CHECK(ch.variables[0].second == "OFF");
  CHECK(ch.state_changed);
  SessionChanges bad;
  CHECK_FALSE(parse_session_state(state.substr(0, state.size() - 1), bad));
}

TEST_CASE("COM_STMT_EXECUTE: layout, types re-sent, statement id patched") {
  // id 7, no cursor, 2 params, null bitmap 0x02 (second is NULL), new-params-bound 1,
  // types LONG (3) and VAR_STRING (0xfd), value 42.
  std::string p = unhex("17" "07000000" "00" "01000000" "02" "01" "0300" "fd00" "2a000000");
  ExecuteView v;
  REQUIRE(parse_execute(as_bytes(p), 2, v));
  CHECK(v.statement_id == 7);
  CHECK(v.new_params_bound);
  CHECK(v.null_bitmap_offset == 10);
  CHECK(v.types_offset == 12);
  CHECK(v.values_offset == 16);
  std::string types = p.substr(v.types_offset, 4);
  // The same execute without types (flag 0) gets them back.
  std::string bare = unhex("17" "07000000" "00" "01000000" "02" "00" "2a000000");
  ExecuteView bv;
  REQUIRE(parse_execute(as_bytes(bare), 2, bv));
  CHECK_FALSE(bv.new_params_bound);
  std::string rewritten = "left over from an earlier execute, longer than this one";
  execute_with_types(rewritten, as_bytes(bare), bv, types);
  CHECK(hex(rewritten) == hex(p));
  patch_statement_id(reinterpret_cast<std::uint8_t*>(p.data()), 0x0A0B0C0D);
  CHECK(hex(p.substr(0, 5)) == "170d0c0b0a");
  ExecuteView truncated;
  CHECK_FALSE(parse_execute(as_bytes(std::string_view(p).substr(0, 11)), 2, truncated));
}

TEST_CASE("COM_STMT_PREPARE_OK") {
  PrepareOk pok;
  std::string wire = unhex("00" "05000000" "0200" "0100" "00" "0000");
  REQUIRE(parse_prepare_ok(as_bytes(wire), pok));
  CHECK(pok.statement_id == 5);
  CHECK(pok.columns == 2);
  CHECK(pok.params == 1);
}

TEST_CASE("mysql_native_password: stored hash as MariaDB computes it, scramble round trip") {
  // From MariaDB: SELECT PASSWORD('app'), PASSWORD('secret pass').
  CHECK(native_stored_hash("app") == "*5BCB3E6AC345B435C7C2E6B7949A04CE6F6563D3");
  CHECK(native_stored_hash("secret pass") == "*DCFE29B2C2A741398B32F99A37D29015652AD188");
  std::string nonce = "abcdefghij0123456789";
  auto s = native_scramble("app", nonce);
  REQUIRE(s.size() == 20);
  // By definition: SHA1(pw) XOR SHA1(nonce + SHA1(SHA1(pw))).
  auto stage1 = crypto::sha1_raw("app");
  auto mix = crypto::sha1_raw(nonce + crypto::sha1_raw(stage1));
  for (int i = 0; i < 20; ++i) CHECK(static_cast<char>(stage1[i] ^ mix[i]) == s[i]);
  auto stage2 = unhex("5BCB3E6AC345B435C7C2E6B7949A04CE6F6563D3");
  auto recovered = native_verify(s, nonce, stage2);
  REQUIRE(recovered);
  CHECK(*recovered == stage1);  // what lets Sluice log in with only the stored hash
  CHECK_FALSE(native_verify(native_scramble("wrong", nonce), nonce, stage2));
  CHECK(native_scramble("", nonce).empty());
}

TEST_CASE("caching_sha2_password: scramble by definition, verify, RSA full path") {
  std::string nonce = "abcdefghij0123456789";
  auto s = sha2_scramble("app", nonce);
  REQUIRE(s.size() == 32);
  // SHA256('app') as MariaDB computes it: SELECT SHA2('app', 256).
  auto d1 = crypto::sha256_raw("app");
  CHECK(hex(d1) == "a172cedcae47474b615c54d510a5d84a8dea3032e958587430b413538be3f333");
  auto d3 = crypto::sha256_raw(crypto::sha256_raw(d1) + nonce);
  for (int i = 0; i < 32; ++i) CHECK(static_cast<char>(d1[i] ^ d3[i]) == s[i]);
  CHECK(sha2_verify(s, nonce, "app"));
  CHECK_FALSE(sha2_verify(s, nonce, "apq"));
  auto key = crypto::RsaKey::generate();
  std::string pw = std::string("app") + '\0';
  auto enc = crypto::rsa_encrypt_oaep(key->public_pem(), xor_with_nonce(pw, nonce));
  REQUIRE(enc);
  CHECK(enc->size() == 256);
  auto dec = key->decrypt_oaep(*enc);
  REQUIRE(dec);
  CHECK(xor_with_nonce(*dec, nonce) == pw);
}

TEST_CASE("HandshakeResponse41 with zstd compression: its level is the last byte (zlib wins when both are set)") {
  HandshakeResponse r;
  r.capabilities = cap::PROTOCOL_41 | cap::SECURE_CONNECTION | cap::PLUGIN_AUTH | cap::PLUGIN_AUTH_LENENC_CLIENT_DATA |
                   cap::CONNECT_ATTRS | cap::ZSTD_COMPRESSION;
  r.user = "app";
  r.auth_plugin = "p";
  r.attributes = {{"k", "v"}};
  std::string p;
  build_handshake_response(p, r);
  p.push_back('\x07');
  HandshakeResponse back;
  REQUIRE(parse_handshake_response(as_bytes(p), back));
  CHECK(back.zstd_level == 7);
  CHECK(back.attributes.size() == 1);
  p[0] = static_cast<char>(p[0] | cap::COMPRESS);  // both flags: zlib, no level byte read
  HandshakeResponse both;
  CHECK(parse_handshake_response(as_bytes(p), both));
  CHECK(both.zstd_level == 0);
}
