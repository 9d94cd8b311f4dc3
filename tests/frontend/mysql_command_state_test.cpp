// What a MySQL client's commands leave on its server connection (frontend/mysql/command_state),
// driven by server responses as bytes through the sans-io ResponseTracker: transactions,
// per-statement state for the next command, pins, cursors, long data, and a lost connection.
#include <doctest/doctest.h>

#include "protocols/mysql/codec.hpp"
#include "src/frontend/mysql/command_state.hpp"
#include "src/frontend/mysql/response.hpp"
#include "src/sql/mysql_sql.hpp"
#include "tests/frontend/mysql_wire.hpp"

using namespace sluice;
using namespace sluice::my;
using sluice::frontend::mysql::CommandState;
using sluice::frontend::mysql::ResponseKind;
using sluice::frontend::mysql::ResponseSummary;
using sluice::frontend::mysql::ResponseTracker;

namespace {

constexpr std::uint32_t kCaps = cap::PROTOCOL_41 | cap::SESSION_TRACK;

// A result set of one column and one row, its EOFs with `st` (the last with `warnings`).
struct Wire : sluice::test::MysqlWire {
  Wire& result(std::uint16_t st, std::uint16_t warnings = 0) {
    pkt("\x01").coldef("a").eof(st).row("1").eof(st, warnings);
    return *this;
  }
};

// The summary of `wire` as the answer to a command of `kind`.
ResponseSummary answer(const sluice::test::MysqlWire& wire, ResponseKind kind = ResponseKind::Query) {
  ResponseTracker t;
  t.start(kind, kCaps, kCaps);
  std::string out;
  CHECK(t.feed(as_bytes(wire.bytes), out) == wire.bytes.size());
  REQUIRE(t.done());
  CHECK_FALSE(t.malformed());
  return t.summary;
}

// One COM_QUERY through the rules, as the session runs it.
const char* query(CommandState& s, std::string_view sql, const sluice::test::MysqlWire& wire,
                  bool server_lost = false) {
  auto r = answer(wire);
  s.absorb_status(r);
  return s.after_query(sql::inspect_mysql(sql), r, server_lost);
}

}  // namespace

TEST_CASE("a transaction holds the server connection from BEGIN to COMMIT") {
  CommandState s;
  CHECK_FALSE(s.holds_server());
  CHECK(s.may_use_cache());
  query(s, "BEGIN", Wire().ok(status::AUTOCOMMIT | status::IN_TRANS));
  CHECK(s.in_transaction());
  CHECK(s.holds_server());
  CHECK_FALSE(s.may_use_cache());
  CHECK(s.needs_reset(config::PoolMode::Transaction));
  query(s, "UPDATE t SET a = 1", Wire().ok(status::AUTOCOMMIT | status::IN_TRANS));
  CHECK(s.holds_server());
  query(s, "COMMIT", Wire().ok(status::AUTOCOMMIT));
  CHECK_FALSE(s.holds_server());
  CHECK_FALSE(s.needs_reset(config::PoolMode::Transaction));
  CHECK(s.needs_reset(config::PoolMode::Session));  // a session-mode connection is always reset
}

TEST_CASE("warnings and a generated id hold the connection for the next command only") {
  CommandState s;
  query(s, "SELECT 1/0", Wire().result(status::AUTOCOMMIT, /*warnings=*/1));
  CHECK(s.hold_next);  // SHOW WARNINGS must run where the warning is
  CHECK(s.may_leave_replica());
  query(s, "SHOW WARNINGS", Wire().result(status::AUTOCOMMIT));
  CHECK_FALSE(s.holds_server());
  query(s, "INSERT INTO t VALUES (NULL)", Wire().ok(status::AUTOCOMMIT, 0, 0, 0, /*insert_id=*/42));
  CHECK(s.hold_next);  // LAST_INSERT_ID() reads it
  query(s, "SELECT LAST_INSERT_ID()", Wire().result(status::AUTOCOMMIT));
  CHECK_FALSE(s.holds_server());
}

TEST_CASE("SET TRANSACTION holds the connection for the transaction it applies to, unless it failed") {
  CommandState s;
  query(s, "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE", Wire().ok(status::AUTOCOMMIT));
  CHECK(s.hold_next);
  query(s, "SET TRANSACTION ISOLATION LEVEL NONSENSE", Wire().err(1064));
  CHECK_FALSE(s.hold_next);
  query(s, "SET SESSION TRANSACTION ISOLATION LEVEL SERIALIZABLE", Wire().ok(status::AUTOCOMMIT));
  CHECK_FALSE(s.hold_next);  // a session setting is state Sluice carries, not a hold
}

TEST_CASE("a statement that pins says why, unless it failed or its connection was lost under it") {
  CommandState s;
  const char* why = query(s, "CREATE TEMPORARY TABLE tt (a INT)", Wire().ok(status::AUTOCOMMIT));
  REQUIRE(why);
  CHECK(std::string(why).size() > 0);
  CHECK(query(s, "CREATE TEMPORARY TABLE tt (a INT)", Wire().err(1050)) == nullptr);
  CHECK(query(s, "CREATE TEMPORARY TABLE tt (a INT)", Wire().ok(status::AUTOCOMMIT), /*server_lost=*/true) == nullptr);
  CHECK(query(s, "SELECT 1", Wire().result(status::AUTOCOMMIT)) == nullptr);
  s.pinned = true;  // the session pins on the reason
  CHECK(s.holds_server());
  CHECK_FALSE(s.may_use_cache());
  CHECK_FALSE(s.may_leave_replica());
}

TEST_CASE("a cursor holds the connection until a fetch reaches its last row, or a reset") {
  CommandState s;
  Wire exec;
  exec.pkt("\x01").coldef("a").eof(status::AUTOCOMMIT | status::CURSOR_EXISTS);
  auto r = answer(exec);
  s.absorb_status(r);
  s.after_execute(r, /*cursor_requested=*/true);
  CHECK(s.cursor_open);
  CHECK(s.holds_server());
  CHECK_FALSE(s.may_leave_replica());

  Wire some;
  some.pkt(std::string("\x00\x00\x01\x02", 4)).eof(status::AUTOCOMMIT | status::CURSOR_EXISTS);
  s.after_fetch(answer(some, ResponseKind::Fetch));
  CHECK(s.cursor_open);
  Wire last;
  last.pkt(std::string("\x00\x00\x01\x03", 4)).eof(status::AUTOCOMMIT | status::LAST_ROW_SENT);
  s.after_fetch(answer(last, ResponseKind::Fetch));
  CHECK_FALSE(s.cursor_open);

  s.after_execute(r, true);
  CHECK(s.cursor_open);
  s.after_stmt_reset();
  CHECK_FALSE(s.holds_server());
  s.after_execute(r, /*cursor_requested=*/false);  // the same answer without a cursor asked for
  CHECK_FALSE(s.cursor_open);
}

TEST_CASE("long data holds the statement's connection until its execute") {
  CommandState s;
  s.after_long_data();
  CHECK(s.holds_server());
  CHECK_FALSE(s.may_leave_replica());
  s.after_execute(answer(Wire().ok(status::AUTOCOMMIT)), false);
  CHECK_FALSE(s.holds_server());
}

TEST_CASE("a lost server connection takes what it held; the client is told only of a transaction or pin") {
  CommandState s;
  query(s, "BEGIN", Wire().ok(status::AUTOCOMMIT | status::IN_TRANS));
  s.after_long_data();
  CHECK(s.lose_server());
  CHECK_FALSE(s.holds_server());
  CHECK((s.status & status::AUTOCOMMIT) != 0);
  query(s, "SELECT 1/0", Wire().result(status::AUTOCOMMIT, 1));
  CHECK_FALSE(s.lose_server());  // warnings only: nothing the client loses
  s.pinned = true;
  CHECK(s.lose_server());
  s.status = status::IN_TRANS;
  s.reset();
  CHECK(s.status == status::AUTOCOMMIT);
  CHECK_FALSE(s.holds_server());
}
