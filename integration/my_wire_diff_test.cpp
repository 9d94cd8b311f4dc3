// Byte-level differential for MySQL / MariaDB: the same packets sent directly to MariaDB and
// through Sluice (session, transaction and statement pools) must bring back the same packets,
// sequence ids included (after myw::normalize). Logins and exchanges are raw bytes, built and
// read from the protocol documentation (my_wire.cpp), never with Sluice's codec. Every scenario
// gets fresh connections on both sides.
#include <doctest/doctest.h>
#include <mysql.h>

#include <string>
#include <vector>

#include "harness.hpp"
#include "wire_modes.hpp"
#include "my_wire.hpp"

using namespace sluice::itest;
using namespace sluice::itest::myw;

namespace {

using namespace sluice::itest::modes;

const std::string kPools = pools("my");

struct Scenario {
  const char* name;
  std::vector<Step> steps;
  unsigned modes = All;
  std::uint32_t capabilities = cap::kDriver;
  std::uint32_t mariadb_capabilities = 0;
};

Step q(const std::string& sql) { return Step{query(sql), Expect::Result, "", ""}; }
Step cmd(std::string payload, Expect e = Expect::Result) { return Step{std::move(payload), e, "", ""}; }
Step prep(const std::string& sql) { return Step{prepare(sql), Expect::Prepare, "", ""}; }

constexpr std::uint32_t kEofless = cap::kDriver | cap::kDeprecateEof;
constexpr std::uint32_t kSingle = cap::kDriver & ~cap::kMultiStatements;
constexpr std::uint32_t kZlib = cap::kDriver | cap::kCompress;
// zstd: Sluice offers it to clients whatever the server does (MariaDB never does). Directly, the
// same scenario runs with zlib; the packets inside the frames must compare the same.
constexpr std::uint32_t kZstd = cap::kDriver | cap::kZstd;

const char* kSetup[] = {
    "DROP TABLE IF EXISTS app.wd_types",
    ("CREATE TABLE app.wd_types (id INT PRIMARY KEY AUTO_INCREMENT, j JSON, d DECIMAL(10,2), f DOUBLE, "
     "dt DATETIME(3), b BLOB, e ENUM('a','b'), s SET('x','y'), bt BIT(5), u INT UNSIGNED, t VARCHAR(20) "
     "CHARACTER SET latin1, g INET6, n TINYINT)"),
    ("INSERT INTO app.wd_types VALUES (1, '{\"a\": [1, 2]}', 12.5, 1.25, '2024-02-29 10:11:12.345', x'00ff10', "
     "'b', 'x,y', b'10101', 4000000000, 'caf\xc3\xa9', '::1', -3), (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, "
     "NULL, NULL, NULL, NULL)"),
    "DROP PROCEDURE IF EXISTS app.wd_two",
    "CREATE PROCEDURE app.wd_two() BEGIN SELECT 1 AS one; SELECT 'two' AS two, 2.5 AS half; END",
    "DROP PROCEDURE IF EXISTS app.wd_out",
    ("CREATE PROCEDURE app.wd_out(IN a INT, OUT b INT, INOUT c VARCHAR(10)) BEGIN SET b = a * 2; SET c = "
     "CONCAT(c, '!'); SELECT a AS a_in; END"),
    "DROP TABLE IF EXISTS app.wd_rows",
    "CREATE TABLE app.wd_rows (k INT PRIMARY KEY, v VARCHAR(10))",
    "INSERT INTO app.wd_rows VALUES (1, 'one'), (2, 'two'), (3, 'three'), (4, 'four'), (5, 'five')",
};

std::vector<Scenario> scenarios() {
  const std::string all_types = "SELECT * FROM wd_types ORDER BY id";
  return {
      // Text protocol: results, metadata, errors.
      {"every column type, text protocol", {q(all_types)}},
      {"every column type, text protocol, without EOF packets", {q(all_types)}, All, kEofless},
      {"casts and expressions", {q("SELECT CAST(1 AS DECIMAL(10,2)), CAST('2020-01-01' AS DATE), CAST(1.5 AS DOUBLE), "
                                   "CONVERT('x' USING latin1), CAST(7 AS UNSIGNED), CAST(-7 AS SIGNED), "
                                   "CAST('12:30' AS TIME), JSON_OBJECT('k', 1), NOW() IS NOT NULL, 1e300, NULL, "
                                   "_binary 'b', b'101', x'41'")}},
      {"JSON column with MariaDB extended metadata",
       {q("SELECT j, g FROM wd_types ORDER BY id")}, All, cap::kDriver, mariadb::kExtendedMetadata},
      {"an empty result keeps its metadata", {q("SELECT k, v FROM wd_rows WHERE k < 0")}},
      {"an unknown table", {q("SELECT * FROM wd_no_such_table")}},
      {"a syntax error", {q("SELEKT 1")}},
      {"an empty query", {q("")}},
      {"a warning, then SHOW WARNINGS", {q("SELECT 1/0"), q("SHOW WARNINGS")}},
      {"an error, then SHOW WARNINGS", {q("SELECT * FROM wd_no_such_table"), q("SHOW WARNINGS")}},
      {"a row of exactly 0xFFFFFF bytes continues in an empty packet", {q("SELECT REPEAT('x', 16777211)")}},
      {"rows across many reads", {q("SELECT seq, REPEAT('r', seq % 300) FROM seq_1_to_3000")}},

      // Multiple results.
      {"several statements", {q("SELECT 1; SELECT 2, 'x'; DO 1; SELECT k FROM wd_rows WHERE k < 3")}},
      {"several statements without EOF packets", {q("SELECT 1; DO 1; SELECT 'z'")}, All, kEofless},
      {"several statements, the second failing", {q("SELECT 1; SELECT * FROM wd_no_such_table; SELECT 3")}},
      {"several statements refused without CLIENT_MULTI_STATEMENTS", {q("SELECT 1; SELECT 2")}, All, kSingle},
      {"CALL with two result sets", {q("CALL wd_two()")}},
      {"CALL with two result sets, without EOF packets", {q("CALL wd_two()")}, All, kEofless},
      {"CALL with OUT parameters, text protocol", {q("SET @c = 'hi'"), q("CALL wd_out(21, @b, @c)"), q("SELECT @b, @c")},
       NoStatement},

      // Simple commands.
      {"COM_PING", {cmd(simple(0x0e))}},
      {"COM_INIT_DB then a query", {cmd(simple(0x02, "app2")), q("SELECT 1")}},
      {"COM_INIT_DB to an unknown database", {cmd(simple(0x02, "wd_no_such_db"))}},
      {"COM_FIELD_LIST", {cmd(simple(0x04, std::string("wd_rows") + '\0'), Expect::Fields)}},
      {"an unknown command", {cmd(simple(0x30))}},
      {"COM_RESET_CONNECTION clears variables", {q("SET @x = 5, SESSION sql_mode = 'ANSI'"), cmd(simple(0x1f)),
                                                 q("SELECT @x, @@sql_mode")}, NoStatement},

      // Transactions and session state.
      {"a transaction's status flags",
       {q("BEGIN"), q("INSERT INTO wd_rows VALUES (100, 'tx')"), q("SELECT v FROM wd_rows WHERE k = 100"),
        q("ROLLBACK"), q("SELECT COUNT(*) FROM wd_rows")},
       NoStatement},
      {"autocommit off, then on", {q("SET autocommit = 0"), q("SELECT 1"), q("ROLLBACK"), q("SET autocommit = 1"), q("SELECT 2")},
       NoStatement},
      {"a session variable kept", {q("SET SESSION sql_mode = 'ANSI_QUOTES'"), q("SELECT @@sql_mode, \"k\" FROM wd_rows LIMIT 1")},
       NoStatement},
      {"affected rows, matched rows without CLIENT_FOUND_ROWS",
       {q("UPDATE wd_rows SET v = v WHERE k < 3"), q("SELECT ROW_COUNT()")}},
      {"affected rows with CLIENT_FOUND_ROWS", {q("UPDATE wd_rows SET v = v WHERE k < 3")}, All,
       cap::kDriver | cap::kFoundRows},
      {"insert ids in a temporary table",
       {q("CREATE TEMPORARY TABLE wd_tmp (id INT PRIMARY KEY AUTO_INCREMENT, v INT)"),
        q("INSERT INTO wd_tmp (v) VALUES (1), (2)"), q("SELECT LAST_INSERT_ID()"), q("DROP TEMPORARY TABLE wd_tmp")},
       NoStatement},

      // Binary protocol.
      {"prepare and execute with parameters of several types",
       {prep("SELECT ?, ?, ?, ?, CONCAT(?, 'z')"),
        cmd(execute(1, {int_param(-42), str_param("text"), double_param(2.5), null_param(), str_param("y")}))}},
      {"every column type, binary protocol", {prep(all_types), cmd(execute(1))}},
      {"every column type, binary protocol, without EOF packets", {prep(all_types), cmd(execute(1))}, All, kEofless},
      {"a prepare that fails", {prep("SELECT * FROM wd_no_such_table"), prep("SELEKT ?")}},
      {"execute of an unknown statement", {cmd(execute(77))}},
      {"execute after close", {prep("SELECT 1"), cmd(close_stmt(1), Expect::None), cmd(execute(1))}},
      {"execute again without types", {prep("SELECT ? + 1"), cmd(execute(1, {int_param(1)})),
                                       cmd(execute(1, {int_param(5)}, 0, false))}},
      {"a read-only cursor fetched in chunks",
       {prep("SELECT k, v FROM wd_rows ORDER BY k"), cmd(execute(1, {}, 1)), cmd(fetch(1, 2), Expect::Rows),
        cmd(fetch(1, 2), Expect::Rows), cmd(fetch(1, 2), Expect::Rows), cmd(fetch(1, 2), Expect::Rows)},
       NoStatement},
      {"long data, then execute",
       {prep("SELECT CONCAT(?, '|', ?)"), cmd(long_data(1, 0, "abc"), Expect::None),
        cmd(long_data(1, 0, "def"), Expect::None), cmd(execute(1, {str_param(""), str_param("x")}))},
       NoStatement},
      {"COM_STMT_RESET", {prep("SELECT ?"), cmd(long_data(1, 0, "zzz"), Expect::None), cmd(reset_stmt(1)),
                          cmd(execute(1, {str_param("fresh")}))}, NoStatement},
      {"CALL with two result sets, binary protocol", {prep("CALL wd_two()"), cmd(execute(1))}},
      {"CALL with OUT parameters, binary protocol",
       {prep("CALL wd_out(?, ?, ?)"), cmd(execute(1, {int_param(4), null_param(), str_param("a")}))}},
      {"a prepared statement with a JSON column and MariaDB extended metadata",
       {prep("SELECT j FROM wd_types WHERE id = ?"), cmd(execute(1, {int_param(1)}))}, All, cap::kDriver,
       mariadb::kExtendedMetadata},
      // The compressed protocol (zlib): the packets inside the frames compare the same.
      {"compressed: every column type, both protocols", {q(all_types), prep(all_types), cmd(execute(1))}, All, kZlib},
      {"compressed: rows across many frames", {q("SELECT seq, REPEAT('r', seq % 300) FROM seq_1_to_3000")}, All, kZlib},
      {"compressed: a row of exactly 0xFFFFFF bytes", {q("SELECT REPEAT('x', 16777211)")}, All, kZlib},
      {"compressed: several statements and an error",
       {q("SELECT 1; SELECT * FROM wd_no_such_table"), q("SELECT REPEAT('ab', 5000)")}, All, kZlib},
      {"compressed: a cursor and long data",
       {prep("SELECT k, v FROM wd_rows WHERE v <> ? ORDER BY k"), cmd(long_data(1, 0, std::string(300, 'z')), Expect::None),
        cmd(execute(1, {str_param("")}, 1)), cmd(fetch(1, 3), Expect::Rows), cmd(fetch(1, 3), Expect::Rows)},
       NoStatement, kZlib},
      {"zstd: every column type, both protocols", {q(all_types), prep(all_types), cmd(execute(1))}, All, kZstd},
      {"zstd: rows across many frames, a row of exactly 0xFFFFFF bytes",
       {q("SELECT seq, REPEAT('r', seq % 300) FROM seq_1_to_3000"), q("SELECT REPEAT('x', 16777211)")}, All, kZstd},
      {"zstd: several statements and an error, a cursor and long data",
       {q("SELECT 1; SELECT * FROM wd_no_such_table"), prep("SELECT k, v FROM wd_rows WHERE v <> ? ORDER BY k"),
        cmd(long_data(1, 0, std::string(300, 'z')), Expect::None), cmd(execute(1, {str_param("")}, 1)),
        cmd(fetch(1, 3), Expect::Rows)},
       NoStatement, kZstd},
      {"statement ids per connection", {prep("SELECT 1"), prep("SELECT 2"), cmd(close_stmt(1), Expect::None),
                                        prep("SELECT 3"), cmd(execute(3)), cmd(execute(2))}},
  };
}

Packets run(int port, const std::string& db, const Scenario& sc, MyConn& helper) {
  Login how;
  how.database = db;
  how.capabilities = sc.capabilities;
  const bool direct = port == my_port();
  if (direct && (how.capabilities & cap::kZstd)) how.capabilities = (how.capabilities & ~cap::kZstd) | cap::kCompress;
  how.mariadb_capabilities = sc.mariadb_capabilities;
  Client c = login(port, how);
  REQUIRE_MESSAGE(c.ok, "login failed: " << describe_difference(c.login, {}));
  if (!direct && (sc.capabilities & cap::kZstd)) REQUIRE((c.capabilities & cap::kZstd) != 0);  // offered, taken
  auto side = [&](const std::string& sql) { CHECK(helper.scalar(sql).rfind("ERR", 0) != 0); };
  Packets p = run_steps(c, sc.steps, side);
  normalize(p);
  if (sc.capabilities & (cap::kCompress | cap::kZstd)) {
    // Inside compressed frames, servers renumber the packets after each internal flush (between
    // the results of several statements) from the compressed sequence; Sluice keeps them
    // consecutive. Clients accept both: Connector/C does not check them, and mysql2 warns
    // "packets out of order" on the server's numbering, not on Sluice's. Not compared.
    for (auto& packet : p)
      if (!packet.empty() && packet[0] != '#') packet[0] = '\0';
    p.push_back(c.inflated_frames > 0 ? "#some frames compressed" : "#all stored");
  }
  return p;
}

void setup(MyConn& root) {
  for (const char* sql : kSetup) REQUIRE_MESSAGE(root.scalar(sql).rfind("ERR", 0) != 0, sql << ": " << mysql_error(root.m));
}

}  // namespace

TEST_CASE("the same packets come back directly and through Sluice, in every pool mode") {
  SluiceProcess s(kPools);
  MyConn root(my_port(), "root", "", "app");
  REQUIRE(root.ok);
  setup(root);
  for (const auto& sc : scenarios()) {
    Packets want;
    bool have_want = false;
    for (unsigned mode : {Session, Transaction, Statement}) {
      if (!(sc.modes & mode)) continue;
      const std::string where = database(mode) + ": " + sc.name;
      INFO(where);
      try {
        if (!have_want) {
          want = run(my_port(), "app", sc, root);
          have_want = true;
        }
        Packets got = run(s.my_port(), database(mode), sc, root);
        CHECK_MESSAGE(got == want, describe_difference(got, want));
      } catch (const doctest::detail::TestFailureException&) {
      }
    }
  }
}

TEST_CASE("the greeting and the login answer are the server's") {
  SluiceProcess s(kPools);
  for (std::uint32_t mariadb : {0u, mariadb::kExtendedMetadata | mariadb::kStmtBulkOperations}) {
    Login how;
    how.mariadb_capabilities = mariadb;
    Client direct = login(my_port(), how);
    REQUIRE(direct.ok);
    for (unsigned mode : {Session, Transaction, Statement}) {
      const std::string where = database(mode) + " mariadb capabilities " + std::to_string(mariadb);
      INFO(where);
      how.database = database(mode);
      Client through = login(s.my_port(), how);
      REQUIRE(through.ok);
      Greeting g = through.greeting, want = direct.greeting;
      // What Sluice deliberately does not relay: TLS and LOCAL INFILE follow its own listener's
      // configuration, zstd compression is Sluice's own (between the client and Sluice), and of
      // MariaDB's extended capabilities only
      // extended metadata passes (progress reports, bulk execution and metadata caching change
      // the shapes of commands and answers). The rest is the server's.
      for (Greeting* x : {&g, &want}) {
        x->capabilities &= ~(cap::kSsl | cap::kLocalFiles | cap::kZstd);
        x->mariadb_capabilities &= mariadb::kExtendedMetadata;
      }
      CHECK_MESSAGE(describe_greeting(g) == describe_greeting(want),
                    "through Sluice " << describe_greeting(g) << "\n  directly " << describe_greeting(want));
      CHECK(through.mariadb_capabilities == (direct.mariadb_capabilities & mariadb::kExtendedMetadata));
      Packets a = through.login, b = direct.login;
      normalize(a);
      normalize(b);
      CHECK_MESSAGE(a == b, describe_difference(a, b));
    }
  }
}
