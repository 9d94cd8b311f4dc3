// The relay when a server connection ends under a pooled client: the FATAL (or class 57P notice)
// with which the server says goodbye is not passed on, ordinary notices and errors are (whole, at
// any split), and fail_outstanding() answers what is left the way the server answers a failed
// request: an ErrorResponse per request group and ReadyForQuery at each Sync or Query.
#include <doctest/doctest.h>

#include "src/frontend/postgres/relay.hpp"
#include "tests/frontend/relay_fixtures.hpp"

using namespace sluice;
using frontend::pg::Relay;
namespace wire = sluice::pg;

namespace {
using test::make_server;
using test::feed_client;
using test::msg;

// An ErrorResponse / NoticeResponse body with severity (S and V), code and message.
std::string fields(char type, std::string_view severity, std::string_view code, std::string_view message) {
  std::string b;
  for (auto [f, v] : {std::pair{'S', severity}, std::pair{'V', severity}, std::pair{'C', code}, std::pair{'M', message}}) {
    b.push_back(f);
    b.append(v);
    b.push_back('\0');
  }
  b.push_back('\0');
  return msg(type, b);
}


// Feeds `response` split at `cut`; returns what the client gets.
std::string feed_server(Relay& r, pool::ServerConn& s, const std::string& response, std::size_t cut) {
  std::string client_out;
  auto bytes = wire::as_bytes(response);
  REQUIRE(r.server_bytes(bytes.subspan(0, cut), s, client_out) == Relay::Verdict::Ok);
  REQUIRE(r.server_bytes(bytes.subspan(cut), s, client_out) == Relay::Verdict::Ok);
  return client_out;
}

std::string query(std::string_view sql) {
  std::string q;
  wire::query(q, sql);
  return q;
}

const std::string kRowDesc = msg('T', std::string("\0\0", 2));
const std::string kRow = msg('D', std::string("\0\x01\0\0\0\x01" "1", 7));
const std::string kSelect1 = msg('C', std::string("SELECT 1\0", 9));
const std::string kIdle = msg('Z', "I");
const std::string kSync = msg('S', "");
const std::string kFlush = msg('H', "");

std::string error_then_ready(std::string_view code, std::string_view message, char status) {
  std::string out;
  wire::error_response(out, "ERROR", code, message, {}, "hint");
  wire::ready_for_query(out, status);
  return out;
}
}  // namespace

TEST_CASE("pooled: the server's FATAL and 57P notices are not passed on; other notices and errors are, whole") {
  const std::string fatal = fields('E', "FATAL", "57P01", "terminating connection due to unexpected postmaster exit");
  const std::string shutdown = fields('N', "WARNING", "57P01", "terminating connection due to immediate shutdown command");
  const std::string notice = fields('N', "NOTICE", "00000", "just so you know");
  const std::string error = fields('E', "ERROR", "22012", "division by zero");
  struct Case {
    std::string response, client_sees;
    bool broken;
  };
  const Case cases[] = {
      {kRowDesc + notice + kRow + kSelect1 + kIdle, kRowDesc + notice + kRow + kSelect1 + kIdle, false},
      {error + kIdle, error + kIdle, false},
      {kRowDesc + kRow + fatal, kRowDesc + kRow, true},
      {shutdown, "", true},
      {notice + fatal, notice, true},
  };
  for (const auto& c : cases) {
    for (std::size_t cut = 0; cut <= c.response.size(); ++cut) {
      Relay r;
      r.set_pooled(true);
      auto s = make_server();
      feed_client(r, *s, query("select 1"));
      CAPTURE(cut);
      CHECK(feed_server(r, *s, c.response, cut) == c.client_sees);
      CHECK(r.server_broken() == c.broken);
      if (c.broken) {
        CHECK(r.has_pending());  // what was asked is still to be answered
        CHECK(r.server_end_message().find("57P01") != std::string::npos);
      }
    }
  }
}

TEST_CASE("session mode: the server's FATAL reaches the client as sent") {
  const std::string fatal = fields('E', "FATAL", "57P01", "terminating connection due to administrator command");
  Relay r;
  auto s = make_server();
  feed_client(r, *s, query("select 1"));
  CHECK(feed_server(r, *s, fatal, 3) == fatal);
  CHECK(r.server_broken());
}

TEST_CASE("a small message cut off by a chunk's end is held back whole; a large one streams (mid-message)") {
  for (std::size_t size : {std::size_t(4096), std::size_t(200 * 1024)}) {
    CAPTURE(size);
    Relay r;
    r.set_pooled(true);
    auto s = make_server();
    feed_client(r, *s, query("select big"));
    std::string body("\0\x01", 2);
    for (int shift = 24; shift >= 0; shift -= 8) body.push_back(static_cast<char>((size >> shift) & 0xFF));
    std::string big = msg('D', body + std::string(size, 'x'));
    std::string client_out, response = kRowDesc + big + kSelect1 + kIdle;
    auto bytes = wire::as_bytes(response);
    REQUIRE(r.server_bytes(bytes.subspan(0, kRowDesc.size() + 100), *s, client_out) == Relay::Verdict::Ok);
    if (size < Relay::kWholeBelow) {
      CHECK(client_out == kRowDesc);  // the row's start waits for the rest of it
      CHECK_FALSE(r.mid_message_to_client());
    } else {
      CHECK(client_out.size() == kRowDesc.size() + 100);
      CHECK(r.mid_message_to_client());
    }
    REQUIRE(r.server_bytes(bytes.subspan(kRowDesc.size() + 100), *s, client_out) == Relay::Verdict::Ok);
    CHECK(client_out == response);
    CHECK_FALSE(r.mid_message_to_client());
    CHECK(r.quiescent());
  }
}

TEST_CASE("fail_outstanding: an error and ReadyForQuery per request group, Sync still owed after an open batch") {
  auto parse = msg('P', std::string("\0select 1\0\0\0", 12));
  auto bind = msg('B', std::string("\0\0\0\0\0\0\0\0", 8));
  auto execute = msg('E', std::string("\0\0\0\0\0", 5));
  SUBCASE("one simple query") {
    Relay r;
    auto s = make_server();
    feed_client(r, *s, query("select 1"));
    std::string out;
    CHECK_FALSE(r.fail_outstanding("08006", "lost", "hint", 'I', out));
    CHECK(out == error_then_ready("08006", "lost", 'I'));
    CHECK(r.quiescent());
  }
  SUBCASE("rows already out, then a pipeline of two batches and a third without Sync (Flush-driven)") {
    Relay r;
    auto s = make_server();
    feed_client(r, *s, parse + bind + execute + kSync + bind + execute + kSync + bind + execute + kFlush);
    std::string partial = msg('1', "") + msg('2', "") + kRow;
    CHECK(feed_server(r, *s, partial, 0) == partial);
    CHECK(r.outstanding_groups() == 2);
    std::string out;
    CHECK(r.fail_outstanding("08007", "lost", "hint", 'I', out));  // the third batch owes its Sync
    std::string err;
    wire::error_response(err, "ERROR", "08007", "lost", {}, "hint");
    CHECK(out == error_then_ready("08007", "lost", 'I') + error_then_ready("08007", "lost", 'I') + err);
    CHECK(r.quiescent());
    CHECK(r.tx_status() == 'I');
  }
  SUBCASE("inside a transaction: the client is told its transaction failed") {
    Relay r;
    auto s = make_server();
    feed_client(r, *s, query("begin"));
    CHECK(feed_server(r, *s, msg('C', std::string("BEGIN\0", 6)) + msg('Z', "T"), 0).size() > 0);
    feed_client(r, *s, query("update t set x = 1"));
    std::string out;
    CHECK_FALSE(r.fail_outstanding("40000", "rolled back", "hint", 'E', out));
    CHECK(out == error_then_ready("40000", "rolled back", 'E'));
    CHECK(r.tx_status() == 'E');
  }
}

TEST_CASE("running a read again: the preamble the client has is dropped from the new answer; rows end replayability") {
  auto row_desc = msg('T', std::string("\0\x01" "v\0\0\0\0\0\0\0\0\0\0\x17\0\x04\xff\xff\xff\xff\0\0", 22));
  auto row = msg('D', std::string("\0\x01\0\0\0\x01" "7", 7));
  std::string answer = row_desc + row + kSelect1 + kIdle;
  SUBCASE("the server died after RowDescription: the retry's RowDescription is not sent twice") {
    Relay r;
    r.set_pooled(true);
    auto s = make_server();
    r.begin_request(true);
    feed_client(r, *s, query("select v"));
    CHECK(feed_server(r, *s, row_desc, 0) == row_desc);
    CHECK(r.replayable());
    r.reset_server_side();  // the connection is gone; the session attaches another
    r.begin_retry();
    auto s2 = make_server();
    feed_client(r, *s2, query("select v"));
    for (std::size_t cut = 0; cut <= answer.size(); cut += 5) {
      Relay copy = r;
      CHECK(feed_server(copy, *s2, answer, cut) == row + kSelect1 + kIdle);
    }
  }
  SUBCASE("a row reached the client: no longer replayable") {
    Relay r;
    auto s = make_server();
    r.begin_request(true);
    feed_client(r, *s, query("select v"));
    feed_server(r, *s, row_desc + row, 0);
    CHECK_FALSE(r.replayable());
  }
  SUBCASE("rows and the server's goodbye in one chunk: the rows never reach the client; the read runs again") {
    // PostgreSQL's immediate shutdown flushes what a backend had buffered (rows of an answer
    // not yet finished) together with its 57P01 warning, then exits.
    const std::string shutdown =
        fields('N', "WARNING", "57P01", "terminating connection due to immediate shutdown command");
    for (bool preamble_first : {false, true}) {
      CAPTURE(preamble_first);
      Relay r;
      r.set_pooled(true);
      auto s = make_server();
      r.begin_request(true);
      feed_client(r, *s, query("select v"));
      std::string out;
      if (preamble_first) {  // RowDescription went out alone, earlier
        REQUIRE(r.server_bytes(wire::as_bytes(row_desc), *s, out) == Relay::Verdict::Ok);
        CHECK(out == row_desc);
      }
      std::string last = (preamble_first ? "" : row_desc) + row + shutdown;
      std::size_t before = out.size();
      REQUIRE(r.server_bytes(wire::as_bytes(last), *s, out) == Relay::Verdict::Ok);
      CHECK(out.size() == before);  // none of that chunk is the client's
      CHECK(r.server_broken());
      CHECK(r.replayable());
      CHECK(r.server_bytes(wire::as_bytes(kSelect1), *s, out) ==
            Relay::Verdict::ProtocolError);  // nothing after goodbye
      r.reset_server_side();
      r.begin_retry();
      auto s2 = make_server();
      feed_client(r, *s2, query("select v"));
      CHECK(feed_server(r, *s2, answer, 3) == (preamble_first ? "" : row_desc) + row + kSelect1 + kIdle);
    }
  }
  SUBCASE("a row that reached the client in an earlier chunk is not taken back") {
    const std::string fatal = fields('E', "FATAL", "57P01", "terminating connection due to administrator command");
    Relay r;
    r.set_pooled(true);
    auto s = make_server();
    r.begin_request(true);
    feed_client(r, *s, query("select v"));
    CHECK(feed_server(r, *s, row_desc + row, 0) == row_desc + row);
    CHECK(feed_server(r, *s, fatal, 0).empty());
    CHECK(r.server_broken());
    CHECK_FALSE(r.replayable());
  }
  SUBCASE("a retry answering differently is a protocol error, not a silent mix") {
    Relay r;
    auto s = make_server();
    r.begin_request(true);
    feed_client(r, *s, query("select v"));
    feed_server(r, *s, row_desc, 0);
    r.reset_server_side();
    r.begin_retry();
    feed_client(r, *s, query("select v"));
    std::string out;
    auto other = msg('T', std::string("\0\0", 2));
    CHECK(r.server_bytes(wire::as_bytes(other), *s, out) == Relay::Verdict::ProtocolError);
  }
  SUBCASE("a preamble of 64 KiB or more is not kept: such a read is not run again") {
    Relay r;
    auto s = make_server();
    r.begin_request(true);
    feed_client(r, *s, query("select wide"));
    std::string huge = msg('T', std::string("\0\x01", 2) + std::string(70 * 1024, 'c') + std::string(19, '\0'));
    std::string out;
    REQUIRE(r.server_bytes(wire::as_bytes(huge), *s, out) == Relay::Verdict::Ok);
    CHECK_FALSE(r.replayable());
  }
}
