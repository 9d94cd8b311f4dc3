// The MySQL response tracker: where a response ends (result sets, multiple results, cursors,
// prepare responses, errors), fed in every split; OK rewriting; long rows pass untouched.
#include <doctest/doctest.h>

#include "protocols/mysql/codec.hpp"
#include "src/frontend/mysql/response.hpp"
#include "tests/frontend/mysql_wire.hpp"

using namespace sluice;
using namespace sluice::my;
using sluice::frontend::mysql::ResponseKind;
using sluice::frontend::mysql::ResponseTracker;

namespace {

using Wire = sluice::test::MysqlWire;

// Feeds `wire` in two pieces cut at `cut`; returns what the client got and the tracker.
std::string run(ResponseTracker& t, const std::string& wire, std::size_t cut, ResponseKind kind, std::uint32_t server_caps,
                std::uint32_t client_caps, std::uint32_t stmt_id = 0) {
  t.start(kind, server_caps, client_caps, stmt_id);
  std::string out, buf = wire.substr(0, cut);
  std::size_t used = t.feed(as_bytes(buf), out);
  buf.erase(0, used);
  buf += wire.substr(cut);
  used = t.feed(as_bytes(buf), out);
  CHECK(used == buf.size());
  return out;
}

constexpr std::uint32_t kModern = cap::PROTOCOL_41 | cap::DEPRECATE_EOF | cap::SESSION_TRACK;
constexpr std::uint32_t kClassic = cap::PROTOCOL_41 | cap::SESSION_TRACK;

}  // namespace

TEST_CASE("text result set with DEPRECATE_EOF, every split") {
  Wire w;
  w.pkt("\x02").coldef("a").coldef("b").row("1").row("2").ok(status::AUTOCOMMIT, 0xFE);
  for (std::size_t cut = 0; cut <= w.bytes.size(); ++cut) {
    ResponseTracker t;
    auto out = run(t, w.bytes, cut, ResponseKind::Query, kModern, kModern);
    CHECK(t.done());
    CHECK_FALSE(t.malformed());
    CHECK(out == w.bytes);
    CHECK(t.summary.status == status::AUTOCOMMIT);
  }
}

TEST_CASE("classic EOFs, multiple results, then an error ends it") {
  Wire w;
  w.pkt("\x01").coldef("a").eof(status::AUTOCOMMIT).row("x").eof(status::AUTOCOMMIT | status::MORE_RESULTS_EXISTS);
  w.ok(status::AUTOCOMMIT | status::MORE_RESULTS_EXISTS, 0x00, 5);
  std::string err;
  build_err(err, 1146, "42S02", "Table 'app.x' doesn't exist");
  w.pkt(err);
  for (std::size_t cut = 0; cut <= w.bytes.size(); ++cut) {
    ResponseTracker t;
    auto out = run(t, w.bytes, cut, ResponseKind::Query, kClassic, kClassic);
    CHECK(t.done());
    CHECK(out == w.bytes);
    CHECK(t.summary.error);
    CHECK(t.summary.err.code == 1146);
  }
}

TEST_CASE("an incomplete response is not done, and nothing past it is consumed") {
  Wire w;
  w.pkt("\x01").coldef("a").row("x").ok(status::AUTOCOMMIT | status::MORE_RESULTS_EXISTS, 0xFE);
  ResponseTracker t;
  t.start(ResponseKind::Query, kModern, kModern);
  std::string out;
  t.feed(as_bytes(w.bytes), out);
  CHECK_FALSE(t.done());  // MORE_RESULTS_EXISTS: another result follows
}

TEST_CASE("OK packets are rewritten for a client without SESSION_TRACK") {
  std::string state, d;
  put_lenenc_str(d, "app2");
  put_u8(state, track::SCHEMA);
  put_lenenc_str(state, d);
  Ok o;
  o.status = status::AUTOCOMMIT | status::SESSION_STATE_CHANGED;
  o.session_state = state;
  std::string p;
  build_ok(p, o, true);
  Wire w;
  w.pkt(p);
  ResponseTracker t;
  auto out = run(t, w.bytes, 0, ResponseKind::Single, kModern, cap::PROTOCOL_41 | cap::DEPRECATE_EOF);
  REQUIRE(t.done());
  REQUIRE(t.summary.changes.schema);
  CHECK(*t.summary.changes.schema == "app2");
  std::string expect_payload;
  Ok plain;
  plain.status = status::AUTOCOMMIT;
  build_ok(expect_payload, plain, false);
  std::string expect;
  append_packets(expect, expect_payload, 1);
  CHECK(out == expect);
}

TEST_CASE("prepare response: id rewritten, parameter and column definitions counted") {
  for (std::uint32_t caps : {kModern, kClassic}) {
    Wire w;
    w.pkt(std::string("\x00\x09\x00\x00\x00\x01\x00\x02\x00\x00\x00\x00", 12));
    w.coldef("?").coldef("?");
    if (!(caps & cap::DEPRECATE_EOF)) w.eof(status::AUTOCOMMIT);
    w.coldef("c");
    if (!(caps & cap::DEPRECATE_EOF)) w.eof(status::AUTOCOMMIT);
    for (std::size_t cut = 0; cut <= w.bytes.size(); ++cut) {
      ResponseTracker t;
      auto out = run(t, w.bytes, cut, ResponseKind::Prepare, caps, caps, 77);
      REQUIRE(t.done());
      REQUIRE(t.summary.prepare);
      CHECK(t.summary.prepare->statement_id == 9);
      CHECK(t.summary.prepare->params == 2);
      CHECK(t.summary.prepare->columns == 1);
      CHECK(static_cast<std::uint8_t>(out[5]) == 77);
      CHECK(out.substr(9) == w.bytes.substr(9));
    }
  }
}

TEST_CASE("binary rows, a cursor opened, and a fetch to the last row") {
  Wire w;
  w.pkt("\x01").coldef("a").eof(status::AUTOCOMMIT | status::CURSOR_EXISTS);
  ResponseTracker t;
  run(t, w.bytes, 3, ResponseKind::Query, kClassic, kClassic);
  CHECK(t.done());
  CHECK(t.summary.cursor_opened);

  Wire f;
  f.pkt(std::string("\x00\x00\x01\x02", 4)).pkt(std::string("\x00\x00\xfe\x01", 4)).eof(status::LAST_ROW_SENT);
  ResponseTracker ft;
  auto out = run(ft, f.bytes, 5, ResponseKind::Fetch, kClassic, kClassic);
  CHECK(ft.done());
  CHECK(ft.summary.last_row_sent);
  CHECK(out == f.bytes);
}

TEST_CASE("a row longer than 16 MiB passes through in pieces, never mistaken for a terminator") {
  std::string value(kMaxPayload + 100, 'z');
  value[kMaxPayload - 4] = '\xfe';  // the continuation packet starts with 0xFE: must not end it
  Wire w;
  w.pkt("\x01").coldef("big");
  std::string row;
  put_lenenc_str(row, value);
  w.pkt(row).ok(status::AUTOCOMMIT, 0xFE);
  ResponseTracker t;
  t.start(ResponseKind::Query, kModern, kModern);
  std::string out;
  std::size_t pos = 0;
  std::string pending;
  while (pos < w.bytes.size()) {  // 1 MiB reads, as a socket would deliver
    pending.append(w.bytes, pos, 1 << 20);
    pos += 1 << 20;
    std::size_t used = t.feed(as_bytes(pending), out);
    pending.erase(0, used);
  }
  CHECK(pending.empty());
  CHECK(t.done());
  CHECK(out.size() == w.bytes.size());
  CHECK(out == w.bytes);
}

TEST_CASE("LOCAL INFILE request waits for the client's data, then the OK") {
  Wire w;
  w.pkt("\xfb/tmp/x.csv");
  ResponseTracker t;
  auto out = run(t, w.bytes, 2, ResponseKind::Query, kModern, kModern);
  CHECK_FALSE(t.done());
  CHECK(t.summary.local_infile);
  CHECK(t.awaiting_infile());  // the session must now send the client's data, not read the server
  Wire ok;
  ok.seq = 3;
  ok.ok(status::AUTOCOMMIT, 0x00, 10);
  t.infile_sent();
  CHECK_FALSE(t.awaiting_infile());
  std::string o2;
  t.feed(as_bytes(ok.bytes), o2);
  CHECK(t.done());
  CHECK(t.summary.affected_rows == 10);
}

TEST_CASE("garbage where a column count belongs is malformed") {
  Wire w;
  w.pkt(std::string("\x01\x02\x03", 3));
  ResponseTracker t;
  run(t, w.bytes, 0, ResponseKind::Query, kModern, kModern);
  CHECK(t.malformed());
}

TEST_CASE("where an ERR may take over a broken response: packet boundaries before rows end, with the next sequence id") {
  Wire w;
  w.pkt("\x01").coldef("a").row("one").row("two").ok(status::AUTOCOMMIT, 0xFE);
  ResponseTracker t;
  t.start(ResponseKind::Query, kModern, kModern);
  CHECK(t.error_seq() == std::optional<std::uint8_t>(1));  // nothing yet: the first answer packet
  std::string out;
  // After the column count, within the definitions: no ERR there.
  std::size_t count_end = 5;
  CHECK(t.feed(as_bytes(w.bytes.substr(0, count_end)), out) == count_end);
  CHECK_FALSE(t.error_seq());
  // Through the definition and the first row: between rows an ERR is allowed, as the next packet.
  Wire head;
  head.pkt("\x01").coldef("a").row("one");
  std::string rest = w.bytes.substr(count_end, head.bytes.size() - count_end);
  CHECK(t.feed(as_bytes(rest), out) == rest.size());
  CHECK(t.error_seq() == std::optional<std::uint8_t>(head.seq));
  // Half of the next row: small packets are passed on only whole, so the client is still at a
  // packet boundary and nothing of it was consumed.
  std::string half = w.bytes.substr(head.bytes.size(), 6);
  CHECK(t.feed(as_bytes(half), out) == 0);
  CHECK(t.error_seq() == std::optional<std::uint8_t>(head.seq));
  CHECK(out == head.bytes);
}

TEST_CASE("a large row streams in pieces; mid-packet there is no place for an ERR") {
  Wire w;
  w.pkt("\x01").coldef("a").row(std::string(100 * 1024, 'x')).ok(status::AUTOCOMMIT, 0xFE);
  Wire head;
  head.pkt("\x01").coldef("a");
  ResponseTracker t;
  t.start(ResponseKind::Query, kModern, kModern);
  std::string out, part = w.bytes.substr(0, head.bytes.size() + 1000);
  CHECK(t.feed(as_bytes(part), out) == part.size());
  CHECK(out == part);
  CHECK_FALSE(t.error_seq());
}

TEST_CASE("an ERR that ends the connection is told apart, with its size to take it back") {
  CHECK(ResponseTracker::ends_connection(1927));  // ER_CONNECTION_KILLED
  CHECK(ResponseTracker::ends_connection(1053));  // ER_SERVER_SHUTDOWN
  CHECK_FALSE(ResponseTracker::ends_connection(1317));  // KILL QUERY: the statement only
  CHECK_FALSE(ResponseTracker::ends_connection(1146));
  Wire w;
  std::string err;
  build_err(err, 1927, "70100", "Connection was killed");
  w.pkt(err);
  ResponseTracker t;
  t.start(ResponseKind::Query, kModern, kModern);
  std::string out;
  CHECK(t.feed(as_bytes(w.bytes), out) == w.bytes.size());
  CHECK(t.done());
  CHECK(t.err_packet_size() == w.bytes.size());
}

TEST_CASE("one tracker, response after response: each summary starts as new, written where start() says") {
  std::string err;
  build_err(err, 1146, "42S02", "Table 'app.x' doesn't exist");
  Wire failed;
  failed.pkt(err);
  Wire rows;
  rows.pkt("\x01").coldef("a").row("x").ok(status::AUTOCOMMIT, 0xFE);
  Wire ok;
  ok.ok(status::AUTOCOMMIT, 0x00, 3);
  ResponseTracker t;
  run(t, failed.bytes, 0, ResponseKind::Query, kModern, kModern);
  REQUIRE(t.summary.error);
  run(t, rows.bytes, 0, ResponseKind::Query, kModern, kModern);
  CHECK_FALSE(t.summary.error);
  CHECK(t.summary.err.code == 0);
  CHECK(t.summary.err.sqlstate == "HY000");
  CHECK(t.summary.err.message.empty());
  CHECK(t.summary.result_set);
  CHECK(t.summary.rows == 1);
  // Into a summary of the caller's (the session's last_): the tracker's own is left alone.
  sluice::frontend::mysql::ResponseSummary mine;
  mine.error = true;
  mine.err.code = 1;
  mine.err.message = "old";
  mine.rows = 9;
  t.start(ResponseKind::Query, kModern, kModern, 0, &mine);
  std::string out;
  CHECK(t.feed(as_bytes(failed.bytes), out) == failed.bytes.size());
  CHECK(&t.result() == &mine);
  CHECK(mine.error);
  CHECK(mine.err.code == 1146);
  CHECK(mine.err.message == "Table 'app.x' doesn't exist");
  CHECK(mine.rows == 0);
  CHECK_FALSE(t.summary.error);  // still the rows response's
  t.start(ResponseKind::Query, kModern, kModern, 0, &mine);
  out.clear();
  CHECK(t.feed(as_bytes(ok.bytes), out) == ok.bytes.size());
  CHECK_FALSE(mine.error);
  CHECK(mine.err.code == 0);
  CHECK(mine.err.sqlstate == "HY000");
  CHECK(mine.err.message.empty());
  CHECK(mine.affected_rows == 3);
}
