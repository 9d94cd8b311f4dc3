// Relay bookkeeping: exact bytes in both directions, statement renaming and re-preparing,
// skip-to-Sync after errors, and server bytes fed split at every boundary.
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


std::string parse_body(std::string_view name, std::string_view q) {
  std::string b(name);
  b.push_back('\0');
  b.append(q);
  b.push_back('\0');
  b.append(std::string("\0\0", 2));
  return b;
}
std::string bind_body(std::string_view stmt) {
  std::string b("\0", 1);
  b.append(stmt);
  b.push_back('\0');
  b.append(std::string("\0\0\0\0\0\0", 6));  // no formats, no params, no result formats
  return b;
}
const std::string kRowDesc = msg('T', std::string("\0\0", 2));
const std::string kParseOk = msg('1', "");
const std::string kBindOk = msg('2', "");
const std::string kSelect1 = msg('C', std::string("SELECT 1\0", 9));
const std::string kIdle = msg('Z', "I");
}  // namespace

TEST_CASE("simple query: bytes pass through unchanged in both directions, at any split") {
  std::string q;
  wire::query(q, "select 1");
  std::string row = msg('D', std::string("\0\x01\0\0\0\x01" "1", 7));
  std::string response = kRowDesc + row + kSelect1 + kIdle;
  for (std::size_t cut = 0; cut <= response.size(); ++cut) {
    Relay r;
    auto s_owner = make_server();
  auto& s = *s_owner;
    std::string server_out, client_out;
    feed_client(r, s, q, server_out);
    CHECK(server_out == q);
    CHECK_FALSE(r.quiescent());
    auto bytes = wire::as_bytes(response);
    REQUIRE(r.server_bytes(bytes.subspan(0, cut), s, client_out) == Relay::Verdict::Ok);
    REQUIRE(r.server_bytes(bytes.subspan(cut), s, client_out) == Relay::Verdict::Ok);
    CHECK(client_out == response);
    CHECK(r.quiescent());
    CHECK(r.tx_status() == 'I');
  }
}

TEST_CASE("whole answers in one chunk: rows pass as a run, and the run stops at each message that needs a look") {
  auto s_owner = make_server();
  auto& s = *s_owner;
  std::string row = msg('D', std::string("\0\x01\0\0\0\x01"
                                         "1",
                                         7));
  SUBCASE("extended protocol: the portal's RowDescription answers its Describe") {
    Relay r;
    std::string req, client_out;
    wire::Builder(req).begin('P').str("").str("select 1").i16(0).end();
    req += msg('B', bind_body(""));
    wire::Builder(req).begin('D').i8('P').str("").end();
    wire::Builder(req).begin('E').str("").i32(0).end();
    req += msg('S', "");
    feed_client(r, s, req);
    std::string answer = kParseOk + kBindOk + kRowDesc + row + row + kSelect1 + kIdle;
    REQUIRE(r.server_bytes(wire::as_bytes(answer), s, client_out) == Relay::Verdict::Ok);
    CHECK(client_out == answer);
    CHECK(r.quiescent());
    CHECK_FALSE(r.has_pending());
  }
  SUBCASE("pooled: a notification among the rows is not relayed") {
    Relay r;
    r.set_pooled(true);
    std::string q, client_out, note;
    wire::query(q, "select 1");
    feed_client(r, s, q);
    wire::Builder(note).begin('A').i32(4242).str("d").str("hi").end();
    REQUIRE(r.server_bytes(wire::as_bytes(kRowDesc + row + note + row + kSelect1 + kIdle), s, client_out) ==
            Relay::Verdict::Ok);
    CHECK(client_out == kRowDesc + row + row + kSelect1 + kIdle);
    CHECK(r.quiescent());
  }
  SUBCASE("two simple queries pipelined: each ReadyForQuery ends its own") {
    Relay r;
    std::string q, client_out;
    wire::query(q, "select 1");
    wire::query(q, "begin");
    feed_client(r, s, q);
    std::string answer = kRowDesc + row + kSelect1 + kIdle + msg('C', std::string("BEGIN\0", 6)) + msg('Z', "T");
    REQUIRE(r.server_bytes(wire::as_bytes(answer), s, client_out) == Relay::Verdict::Ok);
    CHECK(client_out == answer);
    CHECK(r.quiescent());
    CHECK(r.tx_status() == 'T');
  }
}

TEST_CASE("large DataRow streams through in small chunks") {
  Relay r;
  auto s_owner = make_server();
  auto& s = *s_owner;
  std::string q, server_out, client_out;
  wire::query(q, "select big");
  feed_client(r, s, q, server_out);
  std::string big(300000, 'x');
  std::string response = kRowDesc + msg('D', big) + kSelect1 + kIdle;
  for (std::size_t pos = 0; pos < response.size(); pos += 1000)
    REQUIRE(r.server_bytes(wire::as_bytes(response).subspan(pos, std::min<std::size_t>(1000, response.size() - pos)), s,
                           client_out) == Relay::Verdict::Ok);
  CHECK(client_out == response);
  CHECK(r.quiescent());
}

TEST_CASE("named statements are renamed; a second client reuses the server copy") {
  auto s_owner = make_server();
  auto& s = *s_owner;
  Relay a;
  std::string server_out, client_out;
  feed_client(a, s, msg('P', parse_body("s1", "select 101")) + msg('S', ""), server_out);
  auto name_pos = server_out.find("sluice_");
  REQUIRE(name_pos != std::string::npos);
  CHECK(server_out.find("s1") == std::string::npos);
  REQUIRE(a.server_bytes(wire::as_bytes(kParseOk + kIdle), s, client_out) == Relay::Verdict::Ok);
  CHECK(client_out == kParseOk + kIdle);
  CHECK(s.prepared.size() == 1);

  // Another client prepares the same text under another name: the server copy keeps its name,
  // but is prepared again (Close, Parse), since a plan made before this Parse may be stale.
  Relay b;
  server_out.clear();
  client_out.clear();
  feed_client(b, s, msg('P', parse_body("other", "select 101")) + msg('B', bind_body("other")) + msg('S', ""), server_out);
  CHECK(server_out[0] == 'C');
  CHECK(server_out.find(std::string(1, 'P')) != std::string::npos);
  CHECK(server_out.find("other") == std::string::npos);
  REQUIRE(b.server_bytes(wire::as_bytes(msg('3', "") + kParseOk + kBindOk + kIdle), s, client_out) == Relay::Verdict::Ok);
  CHECK(client_out == kParseOk + kBindOk + kIdle);
  CHECK(b.quiescent());
  CHECK(s.prepared.size() == 1);

  // A Bind of it by the first client, whose Parse came earlier: the server copy is fresh enough.
  server_out.clear();
  client_out.clear();
  feed_client(a, s, msg('B', bind_body("s1")) + msg('S', ""), server_out);
  CHECK(server_out[0] == 'B');
}

TEST_CASE("a second Parse of a name the client already prepared fails as on the server (42P05), then skips to Sync") {
  auto s_owner = make_server();
  auto& s = *s_owner;
  Relay r;
  std::string server_out, client_out;
  feed_client(r, s, msg('P', parse_body("dup", "select 1")) + msg('S', ""), server_out);
  REQUIRE(r.server_bytes(wire::as_bytes(kParseOk + kIdle), s, client_out) == Relay::Verdict::Ok);
  server_out.clear();
  client_out.clear();
  feed_client(r, s, msg('P', parse_body("dup", "select 2")) + msg('B', bind_body("dup")) +
                        msg('E', std::string("\0\0\0\0\0", 5)) + msg('S', ""), server_out);
  CHECK(server_out == msg('S', ""));  // the rest is skipped, as the server skips after an error
  REQUIRE(r.server_bytes(wire::as_bytes(kIdle), s, client_out) == Relay::Verdict::Ok);
  std::string err;
  wire::error_response(err, "ERROR", "42P05", "prepared statement \"dup\" already exists");
  CHECK(client_out == err + kIdle);
  CHECK(r.at_boundary());
}

TEST_CASE("Bind on a server connection that lacks the statement re-prepares it, answer swallowed") {
  auto s1_owner = make_server();
  auto& s1 = *s1_owner;
  auto s2_owner = make_server();
  auto& s2 = *s2_owner;
  Relay r;
  std::string server_out, client_out;
  feed_client(r, s1, msg('P', parse_body("q", "select 202")) + msg('S', ""), server_out);
  REQUIRE(r.server_bytes(wire::as_bytes(kParseOk + kIdle), s1, client_out) == Relay::Verdict::Ok);
  // Next transaction lands on s2.
  r.reset_server_side();
  server_out.clear();
  client_out.clear();
  feed_client(r, s2, msg('B', bind_body("q")) + msg('E', std::string("\0\0\0\0\0", 5)) + msg('S', ""), server_out);
  CHECK(server_out[0] == 'P');  // injected Parse first
  CHECK(s2.prepared.size() == 1);
  REQUIRE(r.server_bytes(wire::as_bytes(kParseOk + kBindOk + kSelect1 + kIdle), s2, client_out) == Relay::Verdict::Ok);
  CHECK(client_out == kBindOk + kSelect1 + kIdle);
  CHECK(r.quiescent());
}

TEST_CASE("after an error the server skips to Sync; a failed Parse is forgotten") {
  auto s_owner = make_server();
  auto& s = *s_owner;
  Relay r;
  std::string server_out, client_out;
  feed_client(r, s, msg('P', parse_body("bad", "selec 1")) + msg('B', bind_body("bad")) +
                        msg('E', std::string("\0\0\0\0\0", 5)) + msg('S', ""), server_out);
  CHECK(s.prepared.size() == 1);
  std::string err;
  wire::error_response(err, "ERROR", "42601", "syntax error");
  REQUIRE(r.server_bytes(wire::as_bytes(err + kIdle), s, client_out) == Relay::Verdict::Ok);
  CHECK(client_out == err + kIdle);
  CHECK(s.prepared.size() == 0);
  CHECK(r.quiescent());
}

TEST_CASE("an error answered on Flush: what the client sends before its Sync expects no answer") {
  // 55.2.3: after an error in an extended-protocol batch the server discards every message up
  // to Sync. The client may learn of the error (on Flush) before it sends the rest of the batch.
  auto s_owner = make_server();
  auto& s = *s_owner;
  Relay r;
  std::string server_out, client_out;
  feed_client(r, s, msg('P', parse_body("", "select 1/0")) + msg('B', bind_body("")) +
                        msg('E', std::string("\0\0\0\0\0", 5)) + msg('H', ""), server_out);
  std::string err;
  wire::error_response(err, "ERROR", "22012", "division by zero");
  REQUIRE(r.server_bytes(wire::as_bytes(kParseOk + kBindOk + err), s, client_out) == Relay::Verdict::Ok);
  CHECK(client_out == kParseOk + kBindOk + err);
  server_out.clear();
  feed_client(r, s, msg('P', parse_body("named", "select 2")) + msg('B', bind_body("named")) +
                        msg('E', std::string("\0\0\0\0\0", 5)) + msg('H', ""), server_out);
  CHECK(server_out.empty());        // discarded by the server anyway: not sent
  CHECK_FALSE(r.has_pending());     // and no answer awaited
  CHECK(r.find_statement("named") == nullptr);  // nor prepared: the server would not have it
  feed_client(r, s, msg('S', ""), server_out);
  CHECK(server_out == msg('S', ""));
  client_out.clear();
  REQUIRE(r.server_bytes(wire::as_bytes(kIdle), s, client_out) == Relay::Verdict::Ok);
  CHECK(client_out == kIdle);
  CHECK(r.at_boundary());
  // Past the Sync, messages count again.
  server_out.clear();
  feed_client(r, s, msg('P', parse_body("", "select 3")) + msg('H', ""), server_out);
  CHECK(r.has_pending());
}

TEST_CASE("a batch with neither Sync nor Flush yet: the server may stay silent until the client sends more") {
  // psycopg's pipeline mode writes Parse/Bind/Describe/Execute for each statement, then its
  // Sync in another write: the relay must not wait on the server alone meanwhile.
  auto s_owner = make_server();
  auto& s = *s_owner;
  Relay r;
  std::string server_out;
  CHECK_FALSE(r.server_may_be_silent());
  feed_client(r, s, msg('P', parse_body("", "select 1")) + msg('B', bind_body("")) +
                        msg('E', std::string("\0\0\0\0\0", 5)), server_out);
  CHECK(r.has_pending());
  CHECK(r.server_may_be_silent());
  feed_client(r, s, msg('H', ""), server_out);
  CHECK_FALSE(r.server_may_be_silent());  // a Flush makes the server answer what it has
  feed_client(r, s, msg('P', parse_body("", "select 2")), server_out);
  CHECK(r.server_may_be_silent());
  feed_client(r, s, msg('S', ""), server_out);
  CHECK_FALSE(r.server_may_be_silent());
}

TEST_CASE("ParameterStatus and SET search_path update the client's tracked state") {
  auto s_owner = make_server();
  auto& s = *s_owner;
  Relay r;
  std::string q, server_out, client_out;
  wire::query(q, "SET TimeZone = 'Asia/Tokyo'; SET search_path TO app, public");
  feed_client(r, s, q, server_out);
  std::string ps;
  wire::parameter_status(ps, "TimeZone", "Asia/Tokyo");
  std::string set = msg('C', std::string("SET\0", 4));
  REQUIRE(r.server_bytes(wire::as_bytes(set + ps + set + kIdle), s, client_out) == Relay::Verdict::Ok);
  CHECK(*r.client_params.find("TimeZone") == "Asia/Tokyo");
  CHECK(*r.client_params.find("search_path") == "app, public");
  CHECK(*s.params.find("search_path") == "app, public");
}

TEST_CASE("a response nobody asked for is a protocol error") {
  auto s_owner = make_server();
  auto& s = *s_owner;
  Relay r;
  std::string client_out;
  CHECK(r.server_bytes(wire::as_bytes(kIdle), s, client_out) == Relay::Verdict::ProtocolError);
  CHECK(r.server_broken());
  Relay r2;
  CHECK(r2.server_bytes(wire::as_bytes(std::string("Z\0\0\0\x02", 5)), s, client_out) == Relay::Verdict::ProtocolError);
}

TEST_CASE("unknown client message types are refused") {
  auto s_owner = make_server();
  auto& s = *s_owner;
  Relay r;
  std::string out;
  auto m = msg('!', "x");
  wire::Frame f;
  REQUIRE(wire::next_frame(wire::as_bytes(m), 100, f) == wire::Decode::Ok);
  CHECK(r.client_message(f, s, out) == Relay::Verdict::ProtocolError);
  auto t = msg('X', "");
  REQUIRE(wire::next_frame(wire::as_bytes(t), 100, f) == wire::Decode::Ok);
  CHECK(r.client_message(f, s, out) == Relay::Verdict::Terminate);
}

TEST_CASE("an idle Parse+Sync of a validated statement is answered without a server") {
  auto s_owner = make_server();
  auto& s = *s_owner;
  Relay first;
  std::string server_out, client_out;
  auto prepare = msg('P', parse_body("p1", "select 303")) + msg('S', "");
  // Unknown statement: must go to a server.
  Relay r0;
  CHECK(r0.try_answer_locally(wire::as_bytes(prepare), 1 << 20, client_out) == 0);
  feed_client(first, s, prepare, server_out);
  REQUIRE(first.server_bytes(wire::as_bytes(kParseOk + kIdle), s, client_out) == Relay::Verdict::Ok);
  // Now validated: another client's Parse+Sync is answered locally...
  Relay other;
  client_out.clear();
  auto prepare2 = msg('P', parse_body("mine", "select 303")) + msg('S', "");
  CHECK(other.try_answer_locally(wire::as_bytes(prepare2), 1 << 20, client_out) == prepare2.size());
  CHECK(client_out == kParseOk + kIdle);
  // ...and its later Bind on a fresh server connection re-prepares the statement there.
  auto s2_owner = make_server();
  auto& s2 = *s2_owner;
  server_out.clear();
  feed_client(other, s2, msg('B', bind_body("mine")) + msg('S', ""), server_out);
  CHECK(server_out[0] == 'P');
  // Anything else in the pipeline (here a Describe) needs a server.
  auto with_describe = msg('P', parse_body("x", "select 303")) + msg('D', std::string("Sx\0", 3)) + msg('S', "");
  Relay third;
  CHECK(third.try_answer_locally(wire::as_bytes(with_describe), 1 << 20, client_out) == 0);
}

TEST_CASE("named prepared statements per client are bounded: past the limit a Parse is refused with 54000") {
  auto s = make_server();
  Relay r;
  r.set_statement_limit(2);
  std::string out;
  auto parse = [&](std::string_view name) {
    std::string bytes = msg('P', parse_body(name, "select 1"));
    wire::Frame f;
    REQUIRE(wire::next_frame(wire::as_bytes(bytes), 1 << 20, f) == wire::Decode::Ok);
    return r.client_message(f, *s, out);
  };
  CHECK(parse("s1") == Relay::Verdict::Ok);
  CHECK(parse("s2") == Relay::Verdict::Ok);
  CHECK(parse("") == Relay::Verdict::Ok);  // the unnamed statement is not counted
  CHECK(parse("s3") == Relay::Verdict::ProtocolError);
  CHECK(std::string(r.error_code()) == "54000");
  CHECK(r.error().find("max_client_prepared_statements = 2") != std::string::npos);
}

TEST_CASE("pooled: LISTEN and UNLISTEN count at COMMIT, and the server connection's notifications are not relayed") {
  auto s_owner = make_server();
  auto& s = *s_owner;
  Relay r;
  r.set_pooled(true);
  std::string client_out;
  auto run = [&](const std::string& sql, const std::string& answer) {
    std::string q;
    wire::query(q, sql);
    feed_client(r, s, q);
    client_out.clear();
    REQUIRE(r.server_bytes(wire::as_bytes(answer), s, client_out) == Relay::Verdict::Ok);
  };
  auto cc = [](std::string tag) { return msg('C', tag.append(1, '\0')); };
  const std::string in_tx = msg('Z', "T");
  using Set = std::set<std::string>;

  run("LISTEN a", cc("LISTEN") + kIdle);
  CHECK(r.take_new_listens() == std::vector<std::string>{"a"});
  CHECK(r.listening() == Set{"a"});
  CHECK(r.take_listen_changed());
  CHECK(s.listening);  // UNLISTEN * before the connection goes back

  run("BEGIN; LISTEN \"B\"", cc("BEGIN") + cc("LISTEN") + in_tx);
  CHECK(r.take_new_listens() == std::vector<std::string>{"B"});  // the listening connection listens now
  run("UNLISTEN a", cc("UNLISTEN") + in_tx);
  CHECK(r.listening() == Set{"a"});  // not before COMMIT
  run("COMMIT", cc("COMMIT") + kIdle);
  CHECK(r.listening() == Set{"B"});

  run("BEGIN", cc("BEGIN") + in_tx);
  run("SAVEPOINT s", cc("SAVEPOINT") + in_tx);
  run("LISTEN c", cc("LISTEN") + in_tx);
  run("ROLLBACK TO s", cc("ROLLBACK") + in_tx);
  run("LISTEN d", cc("LISTEN") + in_tx);
  run("COMMIT", cc("COMMIT") + kIdle);
  CHECK(r.listening() == Set{"B", "d"});
  run("BEGIN; UNLISTEN *; ROLLBACK", cc("BEGIN") + cc("UNLISTEN") + cc("ROLLBACK") + kIdle);
  CHECK(r.listening() == Set{"B", "d"});

  // A NotificationResponse on the client's server connection: dropped (it comes by the listening
  // connection), unless the client was pinned for LISTEN instead.
  std::string note;
  wire::Builder(note).begin('A').i32(4242).str("d").str("hi").end();
  run("NOTIFY d, 'hi'", cc("NOTIFY") + note + kIdle);
  CHECK(client_out == cc("NOTIFY") + kIdle);
  CHECK(r.take_notified());
  r.set_pass_notifications(true);
  run("SELECT 1", note + cc("SELECT 1") + kIdle);
  CHECK(client_out == note + cc("SELECT 1") + kIdle);
  run("DISCARD ALL", cc("DISCARD ALL") + kIdle);
  CHECK(r.listening().empty());
  CHECK_FALSE(s.listening);
}
