// MySQL front end against the sandbox MariaDB, driven with MariaDB Connector/C (libmariadb):
// everything a client sees through Sluice is compared with what a direct connection gives.
#include <doctest/doctest.h>
#include <mysql.h>

#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include <poll.h>
#include <sys/socket.h>

#include "harness.hpp"

using namespace sluice::itest;

namespace {

const char* kPools = R"(
[[pools]]
database = "app"
cluster = "my"
pool_mode = "transaction"
pool_size = 5

[[pools]]
database = "app2"
cluster = "my"
pool_mode = "transaction"
pool_size = 5
)";

std::string pools_with(int size, const std::string& mode = "transaction") {
  return "[[pools]]\ndatabase = \"app\"\ncluster = \"my\"\npool_mode = \"" + mode + "\"\npool_size = " + std::to_string(size) +
         "\n\n[[pools]]\ndatabase = \"app2\"\ncluster = \"my\"\npool_mode = \"" + mode + "\"\npool_size = " +
         std::to_string(size) + "\n";
}

struct My {
  MYSQL* m = nullptr;
  bool ok = false;
  My(int port, const std::string& user = "app", const std::string& pw = "app", const std::string& db = "app",
     unsigned long flags = CLIENT_MULTI_STATEMENTS | CLIENT_FOUND_ROWS, const char* plugin = nullptr) {
    m = mysql_init(nullptr);
    unsigned int timeout = 20;
    mysql_optionsv(m, MYSQL_OPT_CONNECT_TIMEOUT, &timeout);
    unsigned long max_packet = 64ul << 20;
    mysql_optionsv(m, MYSQL_OPT_MAX_ALLOWED_PACKET, &max_packet);
    my_bool no_tls = 0;
    mysql_optionsv(m, MYSQL_OPT_SSL_ENFORCE, &no_tls);
    if (plugin) mysql_optionsv(m, MYSQL_DEFAULT_AUTH, plugin);
    ok = mysql_real_connect(m, "127.0.0.1", user.c_str(), pw.c_str(), db.empty() ? nullptr : db.c_str(),
                            static_cast<unsigned>(port), nullptr, flags) != nullptr;
  }
  ~My() { mysql_close(m); }
  My(const My&) = delete;
  My& operator=(const My&) = delete;
  unsigned err() const { return mysql_errno(m); }
  std::string error() const { return std::string(mysql_sqlstate(m)) + " " + mysql_error(m); }
  // First column of the first row, "NULL", or "ERR:<errno>".
  std::string scalar(const std::string& sql) {
    if (mysql_real_query(m, sql.data(), sql.size()) != 0) return "ERR:" + std::to_string(mysql_errno(m));
    MYSQL_RES* r = mysql_store_result(m);
    std::string out;
    if (r) {
      MYSQL_ROW row = mysql_fetch_row(r);
      if (row) out = row[0] ? row[0] : "NULL";
      mysql_free_result(r);
    } else if (mysql_errno(m)) {
      return "ERR:" + std::to_string(mysql_errno(m));
    }
    while (mysql_next_result(m) == 0) {
      if (MYSQL_RES* more = mysql_store_result(m)) mysql_free_result(more);
    }
    return out;
  }
  bool exec(const std::string& sql) { return scalar(sql).rfind("ERR:", 0) != 0; }
};

// Everything a client can observe about a text-protocol run of `sql`: every result set's column
// metadata and rows, affected rows, insert id, warnings, info, and errors.
std::string dump_text(MYSQL* m, const std::string& sql) {
  std::string d;
  if (mysql_real_query(m, sql.data(), sql.size()) != 0) {
    return "ERR " + std::to_string(mysql_errno(m)) + " " + mysql_sqlstate(m) + " " + mysql_error(m);
  }
  for (;;) {
    MYSQL_RES* r = mysql_store_result(m);
    if (r) {
      unsigned n = mysql_num_fields(r);
      MYSQL_FIELD* f = mysql_fetch_fields(r);
      for (unsigned i = 0; i < n; ++i)
        d += std::string("F ") + f[i].name + "|" + f[i].org_name + "|" + f[i].table + "|" + f[i].org_table + "|" +
             f[i].db + "|" + std::to_string(f[i].type) + "|" + std::to_string(f[i].length) + "|" +
             std::to_string(f[i].max_length) + "|" + std::to_string(f[i].flags) + "|" + std::to_string(f[i].decimals) +
             "|" + std::to_string(f[i].charsetnr) + "\n";
      while (MYSQL_ROW row = mysql_fetch_row(r)) {
        unsigned long* len = mysql_fetch_lengths(r);
        d += "R";
        for (unsigned i = 0; i < n; ++i) d += row[i] ? " [" + std::string(row[i], len[i]) + "]" : " NULL";
        d += "\n";
      }
      mysql_free_result(r);
    } else if (mysql_errno(m)) {
      d += "ERR " + std::to_string(mysql_errno(m)) + " " + mysql_sqlstate(m) + " " + mysql_error(m) + "\n";
    }
    d += "A " + std::to_string(mysql_affected_rows(m)) + " I " + std::to_string(mysql_insert_id(m)) + " W " +
         std::to_string(mysql_warning_count(m)) + " info " + (mysql_info(m) ? mysql_info(m) : "") + "\n";
    int next = mysql_next_result(m);
    if (next > 0) {
      d += "ERR " + std::to_string(mysql_errno(m)) + " " + mysql_sqlstate(m) + " " + mysql_error(m) + "\n";
      break;
    }
    if (next < 0) break;
  }
  return d;
}

// The same through the binary protocol: prepare, execute (with string parameters), fetch every
// column as text (the conversion is the client's, from the binary row Sluice relayed).
std::string dump_binary(MYSQL* m, const std::string& sql, const std::vector<const char*>& params = {}) {
  MYSQL_STMT* st = mysql_stmt_init(m);
  std::string d;
  auto fail = [&](const char* where) {
    d += std::string(where) + " ERR " + std::to_string(mysql_stmt_errno(st)) + " " + mysql_stmt_sqlstate(st) + " " +
         mysql_stmt_error(st) + "\n";
    mysql_stmt_close(st);
    return d;
  };
  if (mysql_stmt_prepare(st, sql.data(), sql.size())) return fail("prepare");
  d += "P " + std::to_string(mysql_stmt_param_count(st)) + " C " + std::to_string(mysql_stmt_field_count(st)) + "\n";
  std::vector<MYSQL_BIND> pb(params.size());
  std::vector<unsigned long> plen(params.size());
  std::vector<my_bool> pnull(params.size());
  for (std::size_t i = 0; i < params.size(); ++i) {
    std::memset(&pb[i], 0, sizeof pb[i]);
    pnull[i] = params[i] == nullptr;
    plen[i] = params[i] ? std::strlen(params[i]) : 0;
    pb[i].buffer_type = params[i] ? MYSQL_TYPE_STRING : MYSQL_TYPE_NULL;
    pb[i].buffer = const_cast<char*>(params[i]);
    pb[i].buffer_length = plen[i];
    pb[i].length = &plen[i];
    pb[i].is_null = &pnull[i];
  }
  if (!params.empty() && mysql_stmt_bind_param(st, pb.data())) return fail("bind");
  if (mysql_stmt_execute(st)) return fail("execute");
  if (MYSQL_RES* meta = mysql_stmt_result_metadata(st)) {
    unsigned n = mysql_num_fields(meta);
    MYSQL_FIELD* f = mysql_fetch_fields(meta);
    for (unsigned i = 0; i < n; ++i)
      d += std::string("F ") + f[i].name + "|" + f[i].org_name + "|" + std::to_string(f[i].type) + "|" +
           std::to_string(f[i].length) + "|" + std::to_string(f[i].flags) + "|" + std::to_string(f[i].decimals) + "|" +
           std::to_string(f[i].charsetnr) + "\n";
    std::vector<MYSQL_BIND> rb(n);
    std::vector<std::string> bufs(n, std::string(1 << 17, '\0'));
    std::vector<unsigned long> lens(n);
    std::vector<my_bool> nulls(n), errs(n);
    for (unsigned i = 0; i < n; ++i) {
      std::memset(&rb[i], 0, sizeof rb[i]);
      rb[i].buffer_type = MYSQL_TYPE_STRING;
      rb[i].buffer = bufs[i].data();
      rb[i].buffer_length = bufs[i].size();
      rb[i].length = &lens[i];
      rb[i].is_null = &nulls[i];
      rb[i].error = &errs[i];
    }
    mysql_stmt_bind_result(st, rb.data());
    int rc;
    while ((rc = mysql_stmt_fetch(st)) == 0 || rc == MYSQL_DATA_TRUNCATED) {
      d += "R";
      for (unsigned i = 0; i < n; ++i) d += nulls[i] ? " NULL" : " [" + bufs[i].substr(0, lens[i]) + "]";
      d += "\n";
    }
    if (rc == 1) d += "fetch ERR " + std::to_string(mysql_stmt_errno(st)) + "\n";
    mysql_free_result(meta);
  }
  d += "A " + std::to_string(mysql_stmt_affected_rows(st)) + " I " + std::to_string(mysql_stmt_insert_id(st)) + " W " +
       std::to_string(mysql_warning_count(m)) + "\n";
  mysql_stmt_close(st);
  return d;
}


int server_connections(const std::string& user = "app") {
  My root(my_port(), "root", "", "");
  return std::stoi(root.scalar("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = '" + user + "'"));
}

const char* kTypesTable = R"(
CREATE TABLE IF NOT EXISTS types_t (
  id INT AUTO_INCREMENT PRIMARY KEY,
  ti TINYINT, si SMALLINT UNSIGNED, mi MEDIUMINT, i INT, bi BIGINT UNSIGNED,
  dec_ DECIMAL(20,6), f FLOAT, dbl DOUBLE,
  d DATE, t TIME(3), dt DATETIME(6), ts TIMESTAMP NULL,
  c CHAR(5), vc VARCHAR(100), tx MEDIUMTEXT, bl BLOB, js JSON, bitv BIT(5), en ENUM('a','b'), yr YEAR
))";

}  // namespace

TEST_CASE("text and binary protocol over every common column type match a direct connection") {
  SluiceProcess s(kPools);
  My setup(my_port());
  REQUIRE_MESSAGE(setup.ok, setup.error());
  REQUIRE(setup.exec("DROP TABLE IF EXISTS types_t"));
  REQUIRE(setup.exec(kTypesTable));
  REQUIRE(setup.exec(
      "INSERT INTO types_t (ti, si, mi, i, bi, dec_, f, dbl, d, t, dt, ts, c, vc, tx, bl, js, bitv, en, yr) VALUES "
      "(-128, 65535, -8388608, 2147483647, 18446744073709551615, -12345678901234.123456, 1.5, -2.25e300, "
      " '2024-02-29', '-838:59:59.123', '2024-12-31 23:59:59.999999', '2038-01-19 03:14:07', 'ab', 'héllo wörld', "
      " REPEAT('t', 70000), UNHEX('00FF10'), '{\"a\": [1, 2, {\"b\": null}]}', b'10101', 'b', 2155),"
      "(NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)"));
  My direct(my_port()), via(s.my_port());  // both fresh: same session history
  REQUIRE_MESSAGE(via.ok, via.error());
  // Also in session mode; and rows small and large cut across reads (small packets are passed on
  // whole, large ones stream).
  SluiceProcess session(pools_with(5, "session"));
  My via_session(session.my_port());
  REQUIRE_MESSAGE(via_session.ok, via_session.error());
  for (My* v : {&via, &via_session})
    for (const char* q : {"SELECT * FROM types_t ORDER BY id", "SELECT 1, 'x', NULL, 1.5, NOW() > '2000-01-01'",
                          "SELECT id, CAST(dec_ AS CHAR), LENGTH(tx) FROM types_t WHERE id < 0",
                          "SELECT seq, REPEAT('r', seq % 700) FROM seq_1_to_3000"}) {
      CHECK(dump_text(v->m, q) == dump_text(direct.m, q));
      CHECK(dump_binary(v->m, q) == dump_binary(direct.m, q));
    }
  // Parameters of every kind, sent as strings and NULL.
  const char* q = "SELECT ? + 1, CONCAT(?, '!'), ? IS NULL, CAST(? AS DATETIME)";
  std::vector<const char*> params = {"41", "héllo", nullptr, "2024-01-02 03:04:05"};
  CHECK(dump_binary(via.m, q, params) == dump_binary(direct.m, q, params));
  // Writes: affected rows, insert ids and warnings are the server's.
  std::string ins = "INSERT IGNORE INTO types_t (ti, vc) VALUES (300, 'overflow warns'), (1, 'ok')";
  std::string a = dump_text(via.m, ins), b = dump_text(direct.m, ins);
  CHECK(a.rfind("A 2 I ", 0) == 0);
  CHECK(a.find(" W 1 ") != std::string::npos);  // out of range for TINYINT: one warning
  CHECK(a.substr(a.find(" W ")) == b.substr(b.find(" W ")));  // insert ids differ (one table), the rest not
  // The warnings are read on the server connection that produced them.
  My other(s.my_port());
  CHECK(other.scalar("SELECT 1") == "1");
  auto warnings = dump_text(via.m, "SHOW WARNINGS");
  CHECK(warnings.find("R [Warning] [1264] [Out of range value for column 'ti' at row 1]") != std::string::npos);
  CHECK(dump_binary(via.m, "UPDATE types_t SET vc = 'u' WHERE id > ?", {"2"}) ==
        dump_binary(direct.m, "UPDATE types_t SET vc = 'u' WHERE id > ?", {"2"}));
  // Errors: errno, SQLSTATE and message.
  for (const char* bad : {"SELECT * FROM no_such_table", "SELEC 1", "INSERT INTO types_t (id) VALUES (1)",
                          "SELECT 1; SELECT * FROM nope; SELECT 3"}) {
    CHECK(dump_text(via.m, bad) == dump_text(direct.m, bad));
  }
  CHECK(dump_binary(via.m, "SELECT * FROM no_such_table") == dump_binary(direct.m, "SELECT * FROM no_such_table"));
  CHECK(setup.exec("DROP TABLE types_t"));
}

TEST_CASE("binary protocol parameters of every type round-trip as on a direct connection") {
  SluiceProcess s(kPools);
  My setup(my_port());
  REQUIRE(setup.exec("DROP TABLE IF EXISTS bind_t"));
  REQUIRE(setup.exec("CREATE TABLE bind_t (k INT, ti TINYINT, si SMALLINT, i INT, bi BIGINT, f FLOAT, d DOUBLE, "
                     "dec_ DECIMAL(12,4), dt DATE, tm TIME(6), dtm DATETIME(6), s VARCHAR(50), b BLOB, n INT)"));
  auto insert = [](MYSQL* m, int key) {
    MYSQL_STMT* st = mysql_stmt_init(m);
    const char* sql = "INSERT INTO bind_t VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
    if (mysql_stmt_prepare(st, sql, std::strlen(sql))) return std::string(mysql_stmt_error(st));
    signed char ti = -7;
    short si = -30000;
    int k = key, i = 2000000000;
    long long bi = -9000000000000000000ll;
    float f = 1.25f;
    double d = -3.5e100;
    char dec[] = "-12345678.1234";
    unsigned long dec_len = std::strlen(dec);
    MYSQL_TIME date{}, time{}, datetime{};
    date.year = 2024, date.month = 2, date.day = 29, date.time_type = MYSQL_TIMESTAMP_DATE;
    time.hour = 838, time.minute = 59, time.second = 58, time.second_part = 999999, time.neg = 1;
    time.time_type = MYSQL_TIMESTAMP_TIME;
    datetime.year = 1999, datetime.month = 12, datetime.day = 31, datetime.hour = 23, datetime.minute = 59;
    datetime.second = 59, datetime.second_part = 123456, datetime.time_type = MYSQL_TIMESTAMP_DATETIME;
    char str[] = "grüße";
    unsigned long str_len = std::strlen(str);
    char blob[] = {0, 1, 2, '\xff', 0};
    unsigned long blob_len = sizeof blob;
    my_bool is_null = 1;
    MYSQL_BIND b[14];
    std::memset(b, 0, sizeof b);
    b[0].buffer_type = MYSQL_TYPE_LONG, b[0].buffer = &k;
    b[1].buffer_type = MYSQL_TYPE_TINY, b[1].buffer = &ti;
    b[2].buffer_type = MYSQL_TYPE_SHORT, b[2].buffer = &si;
    b[3].buffer_type = MYSQL_TYPE_LONG, b[3].buffer = &i;
    b[4].buffer_type = MYSQL_TYPE_LONGLONG, b[4].buffer = &bi;
    b[5].buffer_type = MYSQL_TYPE_FLOAT, b[5].buffer = &f;
    b[6].buffer_type = MYSQL_TYPE_DOUBLE, b[6].buffer = &d;
    b[7].buffer_type = MYSQL_TYPE_NEWDECIMAL, b[7].buffer = dec, b[7].buffer_length = dec_len, b[7].length = &dec_len;
    b[8].buffer_type = MYSQL_TYPE_DATE, b[8].buffer = &date;
    b[9].buffer_type = MYSQL_TYPE_TIME, b[9].buffer = &time;
    b[10].buffer_type = MYSQL_TYPE_DATETIME, b[10].buffer = &datetime;
    b[11].buffer_type = MYSQL_TYPE_STRING, b[11].buffer = str, b[11].buffer_length = str_len, b[11].length = &str_len;
    b[12].buffer_type = MYSQL_TYPE_BLOB, b[12].buffer = blob, b[12].buffer_length = blob_len, b[12].length = &blob_len;
    b[13].buffer_type = MYSQL_TYPE_LONG, b[13].is_null = &is_null;
    std::string result;
    if (mysql_stmt_bind_param(st, b) || mysql_stmt_execute(st)) result = mysql_stmt_error(st);
    // Again without re-binding: the types are not sent a second time.
    k = key + 1;
    if (result.empty() && mysql_stmt_execute(st)) result = mysql_stmt_error(st);
    mysql_stmt_close(st);
    return result;
  };
  My direct(my_port()), via(s.my_port());
  REQUIRE(via.ok);
  CHECK(insert(direct.m, 1) == "");
  CHECK(insert(via.m, 10) == "");
  auto row = [&](int key) {
    return dump_text(setup.m, "SELECT ti, si, i, bi, f, d, dec_, dt, tm, dtm, HEX(s), HEX(b), n FROM bind_t WHERE k = " +
                                  std::to_string(key));
  };
  CHECK(row(10) == row(1));
  CHECK(row(11) == row(2));
  CHECK(row(10).find("R [-7] [-30000]") != std::string::npos);
  std::string sel = "SELECT * FROM bind_t WHERE k IN (?, ?) ORDER BY k";
  CHECK(dump_binary(via.m, sel, {"1", "2"}) == dump_binary(direct.m, sel, {"1", "2"}));
  CHECK(setup.exec("DROP TABLE bind_t"));
}

TEST_CASE("multi-statements and multiple result sets") {
  SluiceProcess s(kPools);
  My direct(my_port()), via(s.my_port());
  REQUIRE_MESSAGE(via.ok, via.error());
  std::string q = "SELECT 1 AS a; SELECT 'two' AS b, 2; DO 1; SELECT 3";
  CHECK(dump_text(via.m, q) == dump_text(direct.m, q));
  CHECK(dump_text(via.m, q).find("R [two] [2]") != std::string::npos);
  // Without MULTI_STATEMENTS the server refuses, through Sluice as directly.
  My single(s.my_port(), "app", "app", "app", 0), single_direct(my_port(), "app", "app", "app", 0);
  REQUIRE(single.ok);
  CHECK(dump_text(single.m, "SELECT 1; SELECT 2") == dump_text(single_direct.m, "SELECT 1; SELECT 2"));
  // COM_SET_OPTION turns it on for this client only.
  CHECK(mysql_set_server_option(single.m, MYSQL_OPTION_MULTI_STATEMENTS_ON) == 0);
  CHECK(dump_text(single.m, "SELECT 1; SELECT 2").find("R [2]") != std::string::npos);
}

TEST_CASE("rows and queries larger than 16 MiB cross in split packets") {
  SluiceProcess s(kPools);
  My via(s.my_port());
  REQUIRE(via.ok);
  const std::size_t big = (16u << 20) + 12345;
  std::string q = "SELECT REPEAT('x', " + std::to_string(big) + ") AS big, 7";
  REQUIRE(mysql_query(via.m, q.c_str()) == 0);
  MYSQL_RES* r = mysql_store_result(via.m);
  REQUIRE(r);
  MYSQL_ROW row = mysql_fetch_row(r);
  unsigned long* len = mysql_fetch_lengths(r);
  CHECK(len[0] == big);
  CHECK(std::string(row[0], 16) == std::string(16, 'x'));
  CHECK(std::string(row[1]) == "7");
  mysql_free_result(r);
  // A query text over 16 MiB (client -> server split), and the same through the binary protocol.
  std::string payload(big, 'y');
  std::string ins = "SELECT LENGTH('" + payload + "')";
  CHECK(via.scalar(ins) == std::to_string(big));
  CHECK(dump_binary(via.m, "SELECT LENGTH(?)", {payload.c_str()}).find("[" + std::to_string(big) + "]") != std::string::npos);
  CHECK(via.scalar("SELECT 'still in sync'") == "still in sync");
}

TEST_CASE("50 clients with prepared statements over 5 server connections") {
  SluiceProcess s(pools_with(5));
  std::atomic<int> failures{0}, done{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 50; ++t) {
    threads.emplace_back([&, t] {
      My c(s.my_port());
      if (!c.ok) {
        ++failures;
        return;
      }
      MYSQL_STMT* st = mysql_stmt_init(c.m);
      const char* sql = "SELECT ? * 2, CONCAT('client-', ?)";
      if (mysql_stmt_prepare(st, sql, std::strlen(sql))) {
        ++failures;
        mysql_stmt_close(st);
        return;
      }
      for (int i = 0; i < 20; ++i) {
        long long in = t * 1000 + i;
        std::string tag = std::to_string(t);
        unsigned long tag_len = tag.size();
        MYSQL_BIND pb[2];
        std::memset(pb, 0, sizeof pb);
        pb[0].buffer_type = MYSQL_TYPE_LONGLONG;
        pb[0].buffer = &in;
        pb[1].buffer_type = MYSQL_TYPE_STRING;
        pb[1].buffer = tag.data();
        pb[1].buffer_length = tag_len;
        pb[1].length = &tag_len;
        long long out = 0;
        char buf[64];
        unsigned long out_len = 0;
        MYSQL_BIND rb[2];
        std::memset(rb, 0, sizeof rb);
        rb[0].buffer_type = MYSQL_TYPE_LONGLONG;
        rb[0].buffer = &out;
        rb[1].buffer_type = MYSQL_TYPE_STRING;
        rb[1].buffer = buf;
        rb[1].buffer_length = sizeof buf;
        rb[1].length = &out_len;
        // Types are bound on the first execute only; later executes rely on the server
        // remembering them, whichever server connection runs them.
        if ((i == 0 && mysql_stmt_bind_param(st, pb)) || mysql_stmt_execute(st) || mysql_stmt_bind_result(st, rb) ||
            mysql_stmt_fetch(st) != 0 || out != in * 2 || std::string(buf, out_len) != "client-" + tag) {
          ++failures;
          break;
        }
        mysql_stmt_free_result(st);
        if (i % 5 == 0) c.scalar("SELECT 1");  // interleave text queries
      }
      mysql_stmt_close(st);
      ++done;
    });
  }
  for (auto& th : threads) th.join();
  CHECK(failures == 0);
  CHECK(done == 50);
  CHECK(server_connections() <= 5);
}

TEST_CASE("prepared statement commands: long data, reset, cursors, close") {
  SluiceProcess s(pools_with(2));
  My direct(my_port());
  REQUIRE(direct.exec("DROP TABLE IF EXISTS ps_t"));
  REQUIRE(direct.exec("CREATE TABLE ps_t (id INT PRIMARY KEY, b LONGBLOB)"));
  REQUIRE(direct.exec("INSERT INTO ps_t VALUES (1, 'a'), (2, 'b'), (3, 'c')"));
  My via(s.my_port());
  REQUIRE(via.ok);
  // COM_STMT_SEND_LONG_DATA in three pieces, then execute.
  MYSQL_STMT* st = mysql_stmt_init(via.m);
  const char* upd = "UPDATE ps_t SET b = ? WHERE id = 2";
  REQUIRE(mysql_stmt_prepare(st, upd, std::strlen(upd)) == 0);
  MYSQL_BIND pb;
  std::memset(&pb, 0, sizeof pb);
  pb.buffer_type = MYSQL_TYPE_LONG_BLOB;
  REQUIRE(mysql_stmt_bind_param(st, &pb) == 0);
  std::string piece(100000, 'L');
  for (int i = 0; i < 3; ++i) REQUIRE(mysql_stmt_send_long_data(st, 0, piece.data(), piece.size()) == 0);
  REQUIRE_MESSAGE(mysql_stmt_execute(st) == 0, mysql_stmt_error(st));
  CHECK(mysql_stmt_affected_rows(st) == 1);
  CHECK(mysql_stmt_reset(st) == 0);
  mysql_stmt_close(st);
  CHECK(direct.scalar("SELECT LENGTH(b) FROM ps_t WHERE id = 2") == "300000");

  // A read-only cursor fetching one row at a time.
  st = mysql_stmt_init(via.m);
  unsigned long cursor = CURSOR_TYPE_READ_ONLY, prefetch = 1;
  mysql_stmt_attr_set(st, STMT_ATTR_CURSOR_TYPE, &cursor);
  mysql_stmt_attr_set(st, STMT_ATTR_PREFETCH_ROWS, &prefetch);
  const char* sel = "SELECT id FROM ps_t ORDER BY id";
  REQUIRE(mysql_stmt_prepare(st, sel, std::strlen(sel)) == 0);
  REQUIRE_MESSAGE(mysql_stmt_execute(st) == 0, mysql_stmt_error(st));
  int id = 0;
  MYSQL_BIND rb;
  std::memset(&rb, 0, sizeof rb);
  rb.buffer_type = MYSQL_TYPE_LONG;
  rb.buffer = &id;
  REQUIRE(mysql_stmt_bind_result(st, &rb) == 0);
  std::vector<int> ids;
  while (mysql_stmt_fetch(st) == 0) {
    ids.push_back(id);
    My other(s.my_port());  // other clients keep working meanwhile
    CHECK(other.scalar("SELECT 5") == "5");
  }
  CHECK(ids == std::vector<int>{1, 2, 3});
  CHECK(mysql_stmt_reset(st) == 0);
  mysql_stmt_close(st);
  // A closed statement id is unknown afterwards (the server would say the same).
  CHECK(via.scalar("SELECT 'after close'") == "after close");
  CHECK(direct.exec("DROP TABLE ps_t"));
}

TEST_CASE("transactions are isolated between clients sharing server connections") {
  SluiceProcess s(pools_with(2));
  My setup(my_port());
  REQUIRE(setup.exec("DROP TABLE IF EXISTS tx_t"));
  REQUIRE(setup.exec("CREATE TABLE tx_t (id INT PRIMARY KEY) ENGINE=InnoDB"));
  My a(s.my_port()), b(s.my_port());
  REQUIRE(a.ok);
  REQUIRE(b.ok);
  REQUIRE(a.exec("START TRANSACTION"));
  REQUIRE(a.exec("INSERT INTO tx_t VALUES (1)"));
  CHECK(a.scalar("SELECT COUNT(*) FROM tx_t") == "1");
  CHECK(b.scalar("SELECT COUNT(*) FROM tx_t") == "0");  // not committed
  for (int i = 0; i < 5; ++i) CHECK(b.scalar("SELECT 1") == "1");  // B runs on the other connection
  REQUIRE(a.exec("ROLLBACK"));
  CHECK(a.scalar("SELECT COUNT(*) FROM tx_t") == "0");
  REQUIRE(a.exec("BEGIN"));
  REQUIRE(a.exec("INSERT INTO tx_t VALUES (2)"));
  REQUIRE(a.exec("COMMIT"));
  CHECK(b.scalar("SELECT COUNT(*) FROM tx_t") == "1");
  // LAST_INSERT_ID() right after an INSERT reads the id on the connection that generated it.
  REQUIRE(a.exec("CREATE TABLE IF NOT EXISTS ai_t (id INT AUTO_INCREMENT PRIMARY KEY, v INT)"));
  for (int i = 0; i < 5; ++i) {
    REQUIRE(a.exec("INSERT INTO ai_t (v) VALUES (1)"));
    auto ida = mysql_insert_id(a.m);
    REQUIRE(b.exec("INSERT INTO ai_t (v) VALUES (2)"));
    auto idb = mysql_insert_id(b.m);
    CHECK(ida != idb);
    CHECK(a.scalar("SELECT LAST_INSERT_ID()") == std::to_string(ida));
    CHECK(b.scalar("SELECT LAST_INSERT_ID()") == std::to_string(idb));
  }
  REQUIRE(a.exec("DROP TABLE ai_t"));
  // autocommit = 0: the implicit transaction holds the connection until COMMIT.
  REQUIRE(a.exec("SET autocommit = 0"));
  REQUIRE(a.exec("INSERT INTO tx_t VALUES (3)"));
  CHECK(b.scalar("SELECT COUNT(*) FROM tx_t") == "1");
  REQUIRE(a.exec("COMMIT"));
  CHECK(b.scalar("SELECT COUNT(*) FROM tx_t") == "2");
  CHECK(a.scalar("SELECT @@autocommit") == "0");
  CHECK(b.scalar("SELECT @@autocommit") == "1");
  REQUIRE(a.exec("SET autocommit = 1"));
  CHECK(setup.exec("DROP TABLE tx_t"));
}

TEST_CASE("session variables stay with each client over one shared server connection") {
  SluiceProcess s(pools_with(1));
  My a(s.my_port()), b(s.my_port());
  REQUIRE(a.ok);
  REQUIRE(b.ok);
  REQUIRE(a.exec("SET SESSION sql_mode = 'ANSI_QUOTES', time_zone = '+05:00'"));
  REQUIRE(a.exec("SET NAMES latin1"));
  REQUIRE(a.exec("SET SESSION TRANSACTION ISOLATION LEVEL SERIALIZABLE"));
  REQUIRE(a.exec("USE app2"));
  REQUIRE(b.exec("SET SESSION sql_mode = 'NO_ZERO_DATE', time_zone = '-03:00'"));
  for (int i = 0; i < 3; ++i) {
    CHECK(a.scalar("SELECT @@sql_mode") == "ANSI_QUOTES");
    CHECK(b.scalar("SELECT @@sql_mode") == "NO_ZERO_DATE");
    CHECK(a.scalar("SELECT @@time_zone") == "+05:00");
    CHECK(b.scalar("SELECT @@time_zone") == "-03:00");
    CHECK(a.scalar("SELECT @@character_set_client") == "latin1");
    CHECK(b.scalar("SELECT @@character_set_client") == "utf8mb4");
    CHECK(a.scalar("SELECT @@tx_isolation") == "SERIALIZABLE");
    CHECK(b.scalar("SELECT @@tx_isolation") == "REPEATABLE-READ");
    CHECK(a.scalar("SELECT DATABASE()") == "app2");
    CHECK(b.scalar("SELECT DATABASE()") == "app");
  }
  // COM_INIT_DB and COM_RESET_CONNECTION.
  CHECK(mysql_select_db(b.m, "app2") == 0);
  CHECK(b.scalar("SELECT DATABASE()") == "app2");
  CHECK_MESSAGE(mysql_reset_connection(a.m) == 0, a.error());
  CHECK(a.scalar("SELECT @@sql_mode") != "ANSI_QUOTES");
  CHECK(a.scalar("SELECT @@time_zone") == "SYSTEM");
  CHECK(server_connections() == 1);
}

TEST_CASE("a user variable pins the client to its server connection") {
  SluiceProcess s(pools_with(2), "query_wait_timeout = \"2s\"");
  My a(s.my_port()), b(s.my_port()), c(s.my_port());
  REQUIRE(a.exec("SET @mine = 42"));
  std::string cid = a.scalar("SELECT CONNECTION_ID()");
  for (int i = 0; i < 5; ++i) {
    CHECK(b.scalar("SELECT @mine") == "NULL");
    CHECK(c.scalar("SELECT COALESCE(@mine, 'none')") == "none");
    CHECK(a.scalar("SELECT @mine") == "42");
    CHECK(a.scalar("SELECT CONNECTION_ID()") == cid);
  }
  // Temporary tables pin too.
  REQUIRE(b.exec("CREATE TEMPORARY TABLE tmp_b (x INT)"));
  REQUIRE(b.exec("INSERT INTO tmp_b VALUES (7)"));
  CHECK(b.scalar("SELECT x FROM tmp_b") == "7");
  CHECK(c.scalar("SELECT 1") == "ERR:1040");  // both connections pinned: C waits, then errs
}

TEST_CASE("KILL QUERY reaches the right server thread, and nothing else") {
  SluiceProcess s(pools_with(4), "query_wait_timeout = \"20s\"");
  My victim(s.my_port()), bystander(s.my_port()), killer(s.my_port());
  REQUIRE(victim.ok);
  unsigned long victim_id = mysql_thread_id(victim.m);
  std::string result, bystander_result;
  auto start = std::chrono::steady_clock::now();
  std::thread t([&] { result = victim.scalar("SELECT SLEEP(30)"); });
  std::thread t2([&] { bystander_result = bystander.scalar("SELECT SLEEP(3)"); });
  My root(my_port(), "root", "", "");
  REQUIRE(eventually([&] {  // the victim's query is running on its server thread
    return root.scalar("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE INFO = 'SELECT SLEEP(30)'") == "1";
  }));
  CHECK(killer.scalar("KILL QUERY " + std::to_string(victim_id)) == "");
  CHECK(killer.err() == 0);
  t.join();
  auto took = std::chrono::steady_clock::now() - start;
  CHECK(took < std::chrono::seconds(10));
  CHECK_MESSAGE((result == "1" || result == "ERR:1317"), result);  // SLEEP returns 1, or the query errs  // interrupted
  t2.join();
  CHECK(bystander_result == "0");  // slept its full time
  CHECK(victim.scalar("SELECT 'alive'") == "alive");
  CHECK(killer.scalar("KILL QUERY 999999") == "ERR:1094");
  // KILL n closes that client.
  CHECK(killer.scalar("KILL " + std::to_string(victim_id)) == "");
  CHECK(eventually([&] { return victim.scalar("SELECT 1").rfind("ERR:", 0) == 0; }, 2000));
}

TEST_CASE("KILL takes what CONNECTION_ID() returns, in every mode, and Sluice's ids never collide with the server's") {
  for (const char* mode : {"session", "transaction", "statement"}) {
    INFO(mode);
    SluiceProcess s(pools_with(4, mode), "query_wait_timeout = \"20s\"");
    My victim(s.my_port()), killer(s.my_port());
    REQUIRE(victim.ok);
    REQUIRE(killer.ok);
    // The connection id of the handshake is Sluice's own, out of the server's range.
    CHECK(mysql_thread_id(victim.m) >= (1ul << 30));
    std::string thread = victim.scalar("SELECT CONNECTION_ID()");
    REQUIRE(thread.rfind("ERR", 0) != 0);
    CHECK(std::stoul(thread) < (1ul << 30));
    // KILL QUERY <CONNECTION_ID()> interrupts the statement that runs for that client.
    std::string result;
    std::thread t([&] { result = victim.scalar("SELECT SLEEP(30)"); });
    My root(my_port(), "root", "", "");
    REQUIRE(eventually([&] {
      return root.scalar("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE INFO = 'SELECT SLEEP(30)'") == "1";
    }));
    std::string running = root.scalar("SELECT ID FROM information_schema.PROCESSLIST WHERE INFO = 'SELECT SLEEP(30)'");
    CHECK(killer.scalar("KILL QUERY " + running) == "");
    t.join();
    CHECK_MESSAGE((result == "1" || result == "ERR:1317"), result);
    CHECK(victim.scalar("SELECT 'alive'") == "alive");
    // KILL <CONNECTION_ID()> ends the client that learned that id.
    thread = victim.scalar("SELECT CONNECTION_ID()");
    CHECK(killer.scalar("KILL " + thread) == "");
    CHECK(eventually([&] { return victim.scalar("SELECT 1").rfind("ERR:", 0) == 0; }, 2000));
    CHECK(killer.scalar("SELECT 'killer lives'") == "killer lives");
  }
}

TEST_CASE("a prepare/close loop stays within the server's max_prepared_stmt_count, as directly") {
  My root(my_port(), "root", "", "");
  REQUIRE(root.ok);
  std::string before = root.scalar("SELECT @@GLOBAL.max_prepared_stmt_count");
  REQUIRE(root.exec("SET GLOBAL max_prepared_stmt_count = 8"));
  struct Restore {
    My& root;
    std::string value;
    ~Restore() { root.exec("SET GLOBAL max_prepared_stmt_count = " + value); }
  } restore{root, before};
  // Distinct statements, each closed after use: the server never holds more than one for the client.
  auto loop = [](My& c) -> std::string {
    for (int i = 0; i < 30; ++i) {
      MYSQL_STMT* st = mysql_stmt_init(c.m);
      std::string sql = "SELECT " + std::to_string(i) + " + ?";
      if (mysql_stmt_prepare(st, sql.data(), sql.size()) != 0) {
        std::string e = std::to_string(i) + ": " + std::to_string(mysql_stmt_errno(st)) + " " + mysql_stmt_error(st);
        mysql_stmt_close(st);
        return e;
      }
      mysql_stmt_close(st);
    }
    return "ok";
  };
  // Another session holds most of the server's allowance: Sluice's cached statements must
  // make room (close and retry on 1461) where a direct client simply fits.
  for (int i = 1; i <= 5; ++i) REQUIRE(root.exec("PREPARE held" + std::to_string(i) + " FROM 'SELECT 1'"));
  My direct(my_port());
  REQUIRE(direct.ok);
  REQUIRE(loop(direct) == "ok");
  for (const char* mode : {"session", "transaction", "statement"}) {
    INFO(mode);
    SluiceProcess s(pools_with(2, mode));
    My c(s.my_port());
    REQUIRE(c.ok);
    CHECK(loop(c) == "ok");
    // A statement the client still holds keeps working once others were evicted for room.
    MYSQL_STMT* keep = mysql_stmt_init(c.m);
    REQUIRE(mysql_stmt_prepare(keep, "SELECT 'kept'", 13) == 0);
    CHECK(loop(c) == "ok");
    CHECK(mysql_stmt_execute(keep) == 0);
    mysql_stmt_close(keep);
  }
}

TEST_CASE("a user the server authenticates with client_ed25519 logs in and changes user through Sluice, in every mode") {
  My root(my_port(), "root", "", "");
  REQUIRE(root.ok);
  // Not replicated: the replica has no ed25519 plugin, and its SQL thread would stop on the user.
  REQUIRE(root.exec("SET SESSION sql_log_bin = 0"));
  if (root.scalar("SELECT COUNT(*) FROM information_schema.PLUGINS WHERE PLUGIN_NAME = 'ed25519'") == "0")
    REQUIRE(root.exec("INSTALL SONAME 'auth_ed25519'"));
  REQUIRE(root.exec("CREATE OR REPLACE USER 'edu'@'%' IDENTIFIED VIA ed25519 USING PASSWORD('ed pw \xe2\x85\xa8')"));
  REQUIRE(root.exec("GRANT ALL ON app.* TO 'edu'@'%'"));
  // Directly (Connector/C's client_ed25519 plugin) and through Sluice: the same user.
  My direct(my_port(), "edu", "ed pw \xe2\x85\xa8");
  REQUIRE_MESSAGE(direct.ok, direct.error());
  CHECK(direct.scalar("SELECT CURRENT_USER()") == "edu@%");
  for (const char* mode : {"session", "transaction", "statement"}) {
    INFO(mode);
    SluiceProcess s(pools_with(2, mode) + "\n[[users]]\nname = \"edu\"\npassword = \"ed pw \xe2\x85\xa8\"\n");
    My c(s.my_port(), "edu", "ed pw \xe2\x85\xa8");
    REQUIRE_MESSAGE(c.ok, c.error());
    CHECK(c.scalar("SELECT CURRENT_USER()") == "edu@%");
    My a(s.my_port());
    REQUIRE(a.ok);
    CHECK(mysql_change_user(a.m, "edu", "ed pw \xe2\x85\xa8", "app") == 0);
    CHECK(a.scalar("SELECT CURRENT_USER()") == "edu@%");
  }
  root.exec("DROP USER 'edu'@'%'");
}

TEST_CASE("a server Sluice cannot reach is reported with a server-range error code, not one client libraries reject") {
  // Connector/C turns an error packet carrying one of its own codes (2000-2999: 2003, 2013)
  // into 2027 "Received malformed packet", at login and after it alike.
  SluiceProcess s(pools_with(2, "session") + R"(
[clusters.down]
protocol = "mysql"
primary = "127.0.0.1:1"

[[pools]]
database = "downdb"
cluster = "down"
pool_mode = "transaction"
pool_size = 2
)");
  for (const char* db : {"app", "downdb"}) {
    INFO(db);
    My c(s.my_port(), "app", "app", db);
    if (std::string(db) == "app") {
      REQUIRE(c.ok);  // the greeting came from the reachable primary
      continue;
    }
    std::string result = c.ok ? c.scalar("SELECT 1") : "ERR:" + std::to_string(c.err());
    CHECK(result == "ERR:9001");
    CHECK_MESSAGE(std::string(mysql_error(c.m)).find("cannot connect to server 127.0.0.1:1") != std::string::npos,
                  mysql_error(c.m));
    CHECK(std::string(mysql_sqlstate(c.m)) == "08S01");
  }
}

TEST_CASE("users absent from Sluice's file, looked up on the server (auth_user): login and COM_CHANGE_USER, pooled") {
  My root(my_port(), "root", "", "");
  REQUIRE(root.ok);
  REQUIRE(root.exec("SET SESSION sql_log_bin = 0"));  // the lookup reads the primary only
  REQUIRE(root.exec("CREATE OR REPLACE USER 'learned'@'%' IDENTIFIED BY 'l pass'"));
  REQUIRE(root.exec("GRANT ALL ON app.* TO 'learned'@'%'"));
  REQUIRE(root.exec("CREATE OR REPLACE USER 'learned_old'@'%' IDENTIFIED BY 'o pass' PASSWORD EXPIRE"));
  if (root.scalar("SELECT COUNT(*) FROM information_schema.PLUGINS WHERE PLUGIN_NAME = 'ed25519'") == "0")
    REQUIRE(root.exec("INSTALL SONAME 'auth_ed25519'"));
  REQUIRE(root.exec("CREATE OR REPLACE USER 'learned_ed'@'%' IDENTIFIED VIA ed25519 USING PASSWORD('ed learn pw')"));
  REQUIRE(root.exec("GRANT ALL ON app.* TO 'learned_ed'@'%'"));
  REQUIRE(root.exec("CREATE OR REPLACE USER 'sluice_auth'@'%' IDENTIFIED BY 'authpw'"));
  REQUIRE(root.exec("GRANT SELECT ON mysql.* TO 'sluice_auth'@'%'"));
  std::string want;
  {
    My direct(my_port(), "learned", "l pass");
    REQUIRE_MESSAGE(direct.ok, direct.error());
    want = direct.scalar("SELECT CURRENT_USER()");
  }
  CHECK(want == "learned@%");
  const std::string users = "\n[[users]]\nname = \"sluice_auth\"\npassword = \"authpw\"\n"
                            "\n[[users]]\nname = \"admin\"\npassword = \"adminpw\"\n";
  {  // Without auth_user: unknown, as before.
    SluiceProcess s(pools_with(2) + users);
    My c(s.my_port(), "learned", "l pass");
    CHECK_FALSE(c.ok);
    CHECK(c.err() == 1045);
  }
  SluiceProcess::mysql_extra = "auth_user = \"sluice_auth\"";
  for (const char* mode : {"session", "transaction"}) {
    INFO(mode);
    SluiceProcess s(pools_with(2, mode) + users, "admin_users = [\"admin\"]");
    {  // these clients leave before the next ones: a session-mode pool of 2
      My c(s.my_port(), "learned", "l pass");
      REQUIRE_MESSAGE(c.ok, c.error());
      CHECK(c.scalar("SELECT CURRENT_USER()") == want);
      CHECK(c.scalar("SELECT COUNT(*) FROM information_schema.USER_PRIVILEGES") != "");
      My bad(s.my_port(), "learned", "wrong");
      CHECK_FALSE(bad.ok);
      CHECK(bad.err() == 1045);
      My nobody(s.my_port(), "no_such_user_anywhere", "x");
      CHECK_FALSE(nobody.ok);
      CHECK(nobody.err() == 1045);
      // An ed25519 account: its clients are switched to caching_sha2_password's full path, the
      // password is checked against the account's public key and signs Sluice's server logins.
      {
        My ed(s.my_port(), "learned_ed", "ed learn pw");
        REQUIRE_MESSAGE(ed.ok, ed.error());
        CHECK(ed.scalar("SELECT CURRENT_USER()") == "learned_ed@%");
        My ed_bad(s.my_port(), "learned_ed", "wrong");
        CHECK_FALSE(ed_bad.ok);
        CHECK(ed_bad.err() == 1045);
      }
      // An account whose password expired is refused like an unknown one.
      My old(s.my_port(), "learned_old", "o pass");
      CHECK_FALSE(old.ok);
      CHECK(old.err() == 1045);
      // COM_CHANGE_USER to it from a configured user, and back.
      My a(s.my_port());
      REQUIRE(a.ok);
      REQUIRE_MESSAGE(mysql_change_user(a.m, "learned", "l pass", "app") == 0, a.error());
      CHECK(a.scalar("SELECT CURRENT_USER()") == want);
      CHECK(mysql_change_user(a.m, "learned", "wrong", "app") != 0);
      My b(s.my_port());
      REQUIRE(b.ok);
      REQUIRE_MESSAGE(mysql_change_user(b.m, "learned", "l pass", "app") == 0, b.error());
      CHECK(b.scalar("SELECT CURRENT_USER()") == want);
      REQUIRE(mysql_change_user(b.m, "app", "app", "app") == 0);
      CHECK(b.scalar("SELECT CURRENT_USER()") == "app@%");
    }
    // The password changes on the server: the new one works at once (the learned hash is
    // looked up again), the old one no more, and new server connections log in with the new.
    REQUIRE(root.exec("ALTER USER 'learned'@'%' IDENTIFIED BY 'new pass'"));
    {
      My renewed(s.my_port(), "learned", "new pass");
      REQUIRE_MESSAGE(renewed.ok, renewed.error());
      CHECK(renewed.scalar("SELECT CURRENT_USER()") == want);
      My stale(s.my_port(), "learned", "l pass");
      CHECK_FALSE(stale.ok);
    }
    {  // Sluice's idle server connections go (PAUSE closes them): the next ones are new logins.
      My console(s.my_port(), "admin", "adminpw", "sluice");
      REQUIRE_MESSAGE(console.ok, console.error());
      REQUIRE(console.exec("PAUSE app"));
      REQUIRE(console.exec("RESUME app"));
    }
    CHECK(eventually(  // the closes are posted to each connection's worker, and the server sees them after
        [&] { return root.scalar("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = 'learned'") == "0"; }));
    My second(s.my_port(), "learned", "new pass"), third(s.my_port(), "learned", "new pass");
    REQUIRE(second.ok);
    REQUIRE(third.ok);
    REQUIRE_MESSAGE(second.exec("BEGIN"), second.error());  // holds one server connection: third needs another
    CHECK(third.scalar("SELECT CURRENT_USER()") == want);
    REQUIRE(second.exec("COMMIT"));
    REQUIRE(root.exec("ALTER USER 'learned'@'%' IDENTIFIED BY 'l pass'"));
  }
  SluiceProcess::mysql_extra.clear();
  root.exec("DROP USER 'learned'@'%', 'sluice_auth'@'%'");
}

TEST_CASE("authentication: native and caching_sha2 plugins, wrong password, unknown database") {
  SluiceProcess::mysql_extra = "default_auth_plugin = \"caching_sha2_password\"";
  SluiceProcess s(kPools);
  SluiceProcess::mysql_extra.clear();
  {
    My full(s.my_port(), "app", "app", "app", 0, "caching_sha2_password");  // full path: RSA key exchange
    CHECK_MESSAGE(full.ok, full.error());
    My fast(s.my_port(), "app", "app", "app", 0, "caching_sha2_password");  // then the fast path
    CHECK_MESSAGE(fast.ok, fast.error());
    CHECK(fast.scalar("SELECT CURRENT_USER()") == "app@%");
    My native(s.my_port(), "app", "app", "app", 0, "mysql_native_password");  // auth switch
    CHECK_MESSAGE(native.ok, native.error());
  }
  // A user configured with only MariaDB's stored hash (PASSWORD('hashpw')): the client's native
  // scramble is checked against it, and Sluice logs in to the server with what it recovers.
  My root(my_port(), "root", "", "");
  std::string hash = root.scalar("SELECT PASSWORD('hashpw')");
  REQUIRE(hash.size() == 41);
  SluiceProcess h(std::string(kPools) + "\n[[users]]\nname = \"hashuser\"\npassword = \"" + hash + "\"\n");
  My hashed(h.my_port(), "hashuser", "hashpw");
  CHECK_MESSAGE(hashed.ok, hashed.error());
  CHECK(hashed.scalar("SELECT CURRENT_USER()") == "hashuser@%");
  My hashed_wrong(h.my_port(), "hashuser", "hashpx");
  CHECK(hashed_wrong.err() == 1045);

  SluiceProcess n(kPools);
  My wrong(n.my_port(), "app", "nope");
  CHECK_FALSE(wrong.ok);
  CHECK(wrong.err() == 1045);
  CHECK(std::string(mysql_sqlstate(wrong.m)) == "28000");
  My direct_wrong(my_port(), "app", "nope");
  CHECK(std::string(mysql_error(wrong.m)) == std::string(mysql_error(direct_wrong.m)));
  My nobody(n.my_port(), "nobody", "x");
  CHECK(nobody.err() == 1045);
  My nodb(n.my_port(), "app", "app", "no_such_db");
  CHECK_FALSE(nodb.ok);
  CHECK(nodb.err() == 1049);
  CHECK(std::string(mysql_sqlstate(nodb.m)) == "42000");
  // COM_CHANGE_USER to the same user, COM_PING, COM_STATISTICS, COM_FIELD_LIST.
  My c(n.my_port());
  REQUIRE(c.ok);
  CHECK(mysql_change_user(c.m, "app", "app", "app2") == 0);
  CHECK(c.scalar("SELECT DATABASE()") == "app2");
  CHECK(mysql_change_user(c.m, "app", "bad", "app") != 0);
  My d(n.my_port());
  CHECK(mysql_ping(d.m) == 0);
  const char* stat = mysql_stat(d.m);
  REQUIRE(stat);
  CHECK(std::string(stat).find("Uptime") != std::string::npos);
  My setup(my_port());
  REQUIRE(setup.exec("CREATE TABLE IF NOT EXISTS fl_t (a INT, b VARCHAR(3))"));
  MYSQL_RES* fl = mysql_list_fields(d.m, "fl_t", nullptr);
  REQUIRE(fl);
  CHECK(mysql_num_fields(fl) == 2);
  mysql_free_result(fl);
  CHECK(d.scalar("SELECT 'after field list'") == "after field list");
  CHECK(setup.exec("DROP TABLE fl_t"));
}

TEST_CASE("bad input gets an error and a close; nothing leaks into the next client") {
  SluiceProcess s(pools_with(1), "max_packet_size = \"1MiB\"");
  // A client that leaves during the handshake.
  int fd = loopback_connect(s.my_port());
  REQUIRE(fd >= 0);
  char buf[4096];
  ::recv(fd, buf, sizeof buf, 0);  // handshake
  ::close(fd);
  // A client that vanishes mid-transaction: its transaction is rolled back, the connection reset.
  {
    My a(s.my_port());
    REQUIRE(a.exec("SET @leak = 1"));
    REQUIRE(a.exec("SET SESSION sql_mode = 'ANSI'"));
    REQUIRE(a.exec("CREATE TABLE IF NOT EXISTS vanish_t (id INT) ENGINE=InnoDB"));
    REQUIRE(a.exec("BEGIN"));
    REQUIRE(a.exec("INSERT INTO vanish_t VALUES (1)"));
    ::shutdown(mysql_get_socket(a.m), SHUT_RDWR);
  }
  // pool_size = 1: B's first statement waits until Sluice has rolled A's connection back and reset it.
  My b(s.my_port());
  REQUIRE(b.ok);
  CHECK(b.scalar("SELECT @leak") == "NULL");
  CHECK(b.scalar("SELECT @@sql_mode") != "ANSI");
  CHECK(b.scalar("SELECT COUNT(*) FROM vanish_t") == "0");
  CHECK(b.exec("DROP TABLE vanish_t"));
  // Garbage after the handshake: an ERR packet, then the close.
  fd = loopback_connect(s.my_port());
  REQUIRE(fd >= 0);
  ::recv(fd, buf, sizeof buf, 0);
  const char junk[] = "\x05\x00\x00\x01garba";
  ::send(fd, junk, 9, 0);
  ssize_t n = ::recv(fd, buf, sizeof buf, 0);
  REQUIRE(n > 4);
  CHECK(static_cast<unsigned char>(buf[4]) == 0xFF);
  ::close(fd);
  // A command larger than max_packet_size after login: ERR 1153, then the close.
  My c(s.my_port());
  REQUIRE(c.ok);
  int cfd = mysql_get_socket(c.m);
  const unsigned char huge[] = {0x00, 0x00, 0x20, 0x00, 0x03};  // 2 MiB announced
  ::send(cfd, huge, sizeof huge, 0);
  n = ::recv(cfd, buf, sizeof buf, 0);
  REQUIRE(n > 7);
  CHECK(static_cast<unsigned char>(buf[4]) == 0xFF);
  CHECK((static_cast<unsigned char>(buf[5]) | (static_cast<unsigned char>(buf[6]) << 8)) == 1153);
  My d(s.my_port());
  CHECK(d.scalar("SELECT 'sluice is fine'") == "sluice is fine");
}

TEST_CASE("a backend restart is survived") {
  SluiceProcess s(pools_with(2));
  My a(s.my_port());
  REQUIRE(a.ok);
  CHECK(a.scalar("SELECT 1") == "1");
  std::string script = env_or("SLUICE_SANDBOX_SCRIPT", "");
  REQUIRE_FALSE(script.empty());
  REQUIRE(std::system((script + " restart-mysql-primary >/dev/null").c_str()) == 0);
  // The pooled connection sat idle through the restart: Sluice's probe finds it dead.
  CHECK(a.scalar("SELECT 2") == "2");
  My b(s.my_port());
  CHECK(b.scalar("SELECT 3") == "3");
}

TEST_CASE("prepared statements per client are bounded by max_client_prepared_statements (error 1461)") {
  SluiceProcess s(kPools, "max_client_prepared_statements = 3\n");
  My c(s.my_port());
  REQUIRE(c.ok);
  std::vector<MYSQL_STMT*> stmts;
  for (int i = 0; i < 3; ++i) {
    MYSQL_STMT* st = mysql_stmt_init(c.m);
    std::string q = "SELECT " + std::to_string(i);
    REQUIRE(mysql_stmt_prepare(st, q.c_str(), q.size()) == 0);
    stmts.push_back(st);
  }
  MYSQL_STMT* over = mysql_stmt_init(c.m);
  CHECK(mysql_stmt_prepare(over, "SELECT 99", 9) != 0);
  CHECK(mysql_stmt_errno(over) == 1461);
  CHECK(std::string(mysql_stmt_error(over)).find("max_client_prepared_statements") != std::string::npos);
  mysql_stmt_close(stmts.back());  // room again
  stmts.pop_back();
  CHECK(mysql_stmt_prepare(over, "SELECT 99", 9) == 0);
  CHECK(mysql_stmt_execute(over) == 0);
  mysql_stmt_close(over);
  for (auto* st : stmts) mysql_stmt_close(st);
  CHECK(mysql_query(c.m, "SELECT 1") == 0);  // the connection is fine
  mysql_free_result(mysql_store_result(c.m));
}

TEST_CASE("session mode: a server that ends an idle client's session (KILL): the client learns at once, as directly") {
  // Directly, the killed client's socket turns readable (the server's error packet, if any, and
  // EOF) while it idles. Through Sluice in session mode the same must happen, not only at the
  // client's next command. (In transaction mode the server connection is Sluice's: the
  // server-loss tests cover what the client gets there.)
  SluiceProcess s(pools_with(2, "session"));
  auto closed_soon = [](MYSQL* m) {
    int fd = mysql_get_socket(m);
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 3000) != 1) return std::string("still open");
    char buf[512];
    std::string got;
    for (int i = 0; i < 20; ++i) {
      ssize_t n = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
      if (n == 0) return got + "closed";
      if (n > 0) got += "data,";
      else if (errno == EAGAIN) ::poll(&p, 1, 200);
      else return got + "closed";
    }
    return got + "no close";
  };
  MyConn root(my_port(), "root", "", "app");
  REQUIRE(root.ok);
  struct Target {
    const char* name;
    int port;
    const char* db;
    bool in_tx;
  };
  std::vector<std::string> seen;
  for (Target t : {Target{"direct", my_port(), "app", false}, Target{"session", s.my_port(), "app", false}}) {
    INFO(t.name);
    My c(t.port, "app", "app", t.db);
    REQUIRE(c.ok);
    if (t.in_tx) REQUIRE(c.exec("BEGIN"));
    std::string id = c.scalar("SELECT CONNECTION_ID()");
    REQUIRE(root.scalar("KILL " + id) == "");
    seen.push_back(closed_soon(c.m));
    CHECK(seen.back().find("closed") != std::string::npos);
  }
  CHECK(seen[1] == seen[0]);
}
