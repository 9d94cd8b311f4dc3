// Admin console: statement parsing, LIKE, describe, permissions, and both result-set writers
// byte for byte.
#include <doctest/doctest.h>

#include <boost/asio.hpp>

#include "protocols/mysql/codec.hpp"
#include "protocols/postgres/codec.hpp"
#include "src/admin/console.hpp"
#include "src/admin/render.hpp"
#include "src/state/context.hpp"
#include "src/observe/log.hpp"

using namespace sluice;

namespace {

admin::Result run_sync(state::Context& ctx, std::string_view sql, bool is_admin = true) {
  boost::asio::io_context io;
  admin::Result out;
  admin::Caller caller;
  caller.user = "tester";
  caller.admin = is_admin;
  boost::asio::co_spawn(io, admin::run(ctx, std::string(sql), caller),
                        [&](std::exception_ptr e, admin::Result r) {
                          if (e) std::rethrow_exception(e);
                          out = std::move(r);
                        });
  io.run();
  return out;
}

std::unique_ptr<state::Context> make_ctx() {
  log::set_level("error");
  auto ctx = std::make_unique<state::Context>();
  auto cfg = config::load_string(R"(
[general]
admin_users = ["app"]
log_level = "error"
[postgres]
listen = "127.0.0.1:6432"
[[users]]
name = "app"
password = "app"
[clusters.pg]
protocol = "postgres"
primary = "127.0.0.1:5432"
[[pools]]
database = "app"
cluster = "pg"
pool_size = 7
)", "test.toml");
  ctx->set_snapshot(state::build_snapshot(cfg, nullptr, state::FileReads::Reread));
  ctx->set_cache(cfg->cache);
  return ctx;
}

}  // namespace

TEST_CASE("LIKE: wildcards, escapes, case-insensitive") {
  CHECK(admin::like("app", "app"));
  CHECK(admin::like("APP", "app"));
  CHECK(admin::like("app2", "app_"));
  CHECK(!admin::like("app", "app_"));
  CHECK(admin::like("query_wait_timeout", "%timeout"));
  CHECK(admin::like("query_wait_timeout", "%wait%"));
  CHECK(admin::like("", "%"));
  CHECK(!admin::like("abc", "a%d"));
  CHECK(admin::like("a%c", "a\\%c"));
  CHECK(!admin::like("abc", "a\\%c"));
  CHECK(admin::like("aXbXc", "a%b%c"));
  CHECK(admin::like("abcbc", "a%bc"));
}

TEST_CASE("describe: columns of a SHOW without running it; nothing for commands") {
  auto cols = admin::describe("show pools");
  REQUIRE(cols);
  CHECK(cols->at(0).name == "database");
  CHECK(cols->at(2).name == "cl_active");
  CHECK(cols->at(2).type == admin::Type::Int);
  CHECK(admin::describe("SHOW STATS LIKE 'x';")->size() == 16);
  CHECK(!admin::describe("RELOAD"));
  CHECK(!admin::describe("SHOW NOTHING"));
  CHECK(admin::describe("select @@version_comment limit 1")->at(0).name == "@@version_comment");
}

TEST_CASE("commands: permissions, errors, SET, PAUSE/RESUME, DISABLE") {
  auto ctx = make_ctx();
  auto r = run_sync(*ctx, "SHOW DATABASES");
  REQUIRE(!r.error);
  REQUIRE(r.rows.size() == 1);
  CHECK(r.rows[0][0] == "app");
  CHECK(r.rows[0][5] == "7");
  CHECK(run_sync(*ctx, "show databases like 'nope'").rows.empty());
  CHECK(run_sync(*ctx, "SHOW CONFIG LIKE 'log_level'").rows.at(0)[1] == "error");
  // Stats users: SHOW only.
  r = run_sync(*ctx, "RELOAD", false);
  CHECK(r.error);
  CHECK(r.sqlstate == "42501");
  CHECK(r.mysql_code == 1227);
  CHECK(!run_sync(*ctx, "SHOW VERSION", false).error);
  // Syntax.
  CHECK(run_sync(*ctx, "SHOW").sqlstate == "42601");
  CHECK(run_sync(*ctx, "SHOW POOLS LIKE").sqlstate == "42601");
  CHECK(run_sync(*ctx, "SHOW 'unterminated").sqlstate == "42601");
  CHECK(run_sync(*ctx, "FROB").sqlstate == "42601");
  // SET changes the running config (a new snapshot) and validates values.
  auto gen = ctx->generation();
  CHECK(!run_sync(*ctx, "SET query_wait_timeout = '15s'").error);
  CHECK(ctx->generation() == gen + 1);
  CHECK(ctx->snapshot()->config->general.query_wait_timeout == std::chrono::seconds(15));
  CHECK(!run_sync(*ctx, "set general.max_client_conn to 50").error);
  CHECK(ctx->snapshot()->config->general.max_client_conn == 50);
  CHECK(run_sync(*ctx, "SET max_client_conn = 0").sqlstate == "22023");
  CHECK(run_sync(*ctx, "SET workers = 3").sqlstate == "42704");
  CHECK(!run_sync(*ctx, "SET cache.enabled = on").error);
  CHECK(ctx->cache_enabled());
  // Driver noise is accepted, not treated as settings.
  CHECK(!run_sync(*ctx, "SET NAMES utf8mb4").error);
  CHECK(!run_sync(*ctx, "SET application_name = 'x'").error);
  // PAUSE with nothing busy completes at once; RESUME of an unpaused database is an error.
  CHECK(!run_sync(*ctx, "PAUSE app").error);
  CHECK(ctx->controls.paused("app"));
  CHECK(!ctx->controls.paused("other"));
  CHECK(!run_sync(*ctx, "RESUME app").error);
  CHECK(!ctx->controls.any_paused());
  CHECK(run_sync(*ctx, "RESUME app").sqlstate == "55000");
  CHECK(run_sync(*ctx, "PAUSE nosuch").sqlstate == "3D000");
  CHECK(!run_sync(*ctx, "PAUSE").error);
  CHECK(ctx->controls.paused("anything"));
  CHECK(!run_sync(*ctx, "RESUME").error);
  CHECK(!run_sync(*ctx, "DISABLE app").error);
  CHECK(ctx->controls.disabled("app"));
  CHECK(!run_sync(*ctx, "ENABLE app").error);
  CHECK(!ctx->controls.disabled("app"));
  CHECK(run_sync(*ctx, "KILL x").sqlstate == "42601");
  CHECK(run_sync(*ctx, "KILL 42").sqlstate == "42704");
}

TEST_CASE("PostgreSQL writer: RowDescription types, DataRow text and binary, NULL, tag") {
  admin::Result r;
  r.columns = {{"name", admin::Type::Text}, {"n", admin::Type::Int}, {"ok", admin::Type::Bool}, {"f", admin::Type::Float}};
  r.rows = {{"a", "42", "t", "0.5"}, {std::nullopt, "-1", "f", "2"}};
  r.tag = "SHOW";
  std::string out;
  admin::pg_row_description(out, r.columns, {1});
  admin::pg_result(out, r, {1});
  pg::Bytes all(reinterpret_cast<const std::uint8_t*>(out.data()), out.size());
  pg::Frame f;
  REQUIRE(pg::next_frame(all, 1 << 20, f) == pg::Decode::Ok);
  CHECK(f.type == 'T');
  pg::Reader rd(f.body);
  CHECK(rd.i16() == 4);
  CHECK(rd.cstr() == "name");
  rd.i32();
  rd.i16();
  CHECK(rd.i32() == 25);
  CHECK(rd.i16() == -1);
  rd.i32();
  CHECK(rd.i16() == 1);  // binary
  CHECK(rd.cstr() == "n");
  rd.i32();
  rd.i16();
  CHECK(rd.i32() == 20);
  all = all.subspan(f.size());
  REQUIRE(pg::next_frame(all, 1 << 20, f) == pg::Decode::Ok);
  CHECK(f.type == 'D');
  pg::Reader d(f.body);
  CHECK(d.i16() == 4);
  CHECK(d.i32() == 1);
  CHECK(d.u8() == 'a');
  CHECK(d.i32() == 8);
  for (int i = 0; i < 7; ++i) CHECK(d.u8() == 0);
  CHECK(d.u8() == 42);
  CHECK(d.i32() == 1);
  CHECK(d.u8() == 1);
  CHECK(d.i32() == 8);
  CHECK(d.u8() == 0x3F);  // 0.5 = 0x3FE0000000000000
  CHECK(d.u8() == 0xE0);
  all = all.subspan(f.size());
  REQUIRE(pg::next_frame(all, 1 << 20, f) == pg::Decode::Ok);
  pg::Reader d2(f.body);
  CHECK(d2.i16() == 4);
  CHECK(d2.i32() == -1);  // NULL
  all = all.subspan(f.size());
  REQUIRE(pg::next_frame(all, 1 << 20, f) == pg::Decode::Ok);
  CHECK(f.type == 'C');
  CHECK(std::string(reinterpret_cast<const char*>(f.body.data())) == "SHOW");
  // An error is an ErrorResponse with the SQLSTATE; an empty statement EmptyQueryResponse.
  out.clear();
  admin::pg_result(out, admin::Result::fail("42501", 1227, "no"));
  CHECK(out[0] == 'E');
  CHECK(out.find("C42501") != std::string::npos);
  out.clear();
  admin::pg_result(out, admin::Result{});
  CHECK(out == std::string("I\0\0\0\4", 5));
}

TEST_CASE("MySQL writer: text and binary result sets, with and without DEPRECATE_EOF") {
  admin::Result r;
  r.columns = {{"name", admin::Type::Text}, {"n", admin::Type::Int}};
  r.rows = {{"a", "7"}, {std::nullopt, "300"}};
  r.tag = "SHOW";
  auto packets = [](const std::string& out) {
    std::vector<std::string> v;
    std::size_t pos = 0;
    std::uint8_t seq = 1;
    while (pos + 4 <= out.size()) {
      std::size_t len = static_cast<std::uint8_t>(out[pos]) | static_cast<std::uint8_t>(out[pos + 1]) << 8 |
                        static_cast<std::uint8_t>(out[pos + 2]) << 16;
      CHECK(static_cast<std::uint8_t>(out[pos + 3]) == seq++);
      v.push_back(out.substr(pos + 4, len));
      pos += 4 + len;
    }
    CHECK(pos == out.size());
    return v;
  };
  std::string out;
  admin::mysql_result(out, r, 1, 0, false, 2);
  auto p = packets(out);
  REQUIRE(p.size() == 7);  // count, 2 defs, EOF, 2 rows, EOF
  CHECK(p[0] == std::string("\x02", 1));
  CHECK(p[2].find('n') != std::string::npos);
  CHECK(static_cast<std::uint8_t>(p[3][0]) == 0xFE);
  CHECK(p[4] == std::string("\x01" "a" "\x01" "7", 4));
  CHECK(p[5] == std::string("\xFB\x03" "300", 5));
  CHECK(static_cast<std::uint8_t>(p[6][0]) == 0xFE);

  out.clear();
  admin::mysql_result(out, r, 1, my::cap::DEPRECATE_EOF, true, 2);
  p = packets(out);
  REQUIRE(p.size() == 6);  // count, 2 defs, 2 binary rows, OK(0xFE)
  // Binary row 2: header 0, NULL bitmap (column 0 -> bit 2), then 8-byte LE 300.
  CHECK(p[4].size() == 1 + 1 + 8);
  CHECK(p[4][0] == 0);
  CHECK(p[4][1] == 0x04);
  CHECK(static_cast<std::uint8_t>(p[4][2]) == 0x2C);
  CHECK(static_cast<std::uint8_t>(p[4][3]) == 0x01);
  CHECK(static_cast<std::uint8_t>(p[5][0]) == 0xFE);
  CHECK(p[5].size() < 9);

  out.clear();
  admin::mysql_result(out, admin::Result::fail("42501", 1227, "denied"), 1, 0, false, 2);
  p = packets(out);
  REQUIRE(p.size() == 1);
  CHECK(static_cast<std::uint8_t>(p[0][0]) == 0xFF);
  CHECK(p[0].find("#42501denied") != std::string::npos);
}

TEST_CASE("latency histogram: Prometheus 'le' buckets in microseconds") {
  observe::Histogram h;
  h.observe_us(0);
  h.observe_us(500);      // on the 0.5 ms bound: counts there (le)
  h.observe_us(501);      // next bucket
  h.observe_us(10'000'000);
  h.observe_us(20'000'000);  // +Inf
  CHECK(h.buckets[0].load() == 2);
  CHECK(h.buckets[1].load() == 1);
  CHECK(h.buckets[13].load() == 1);
  CHECK(h.buckets[14].load() == 1);
  CHECK(h.count.load() == 5);
  CHECK(h.sum_us.load() == 30'001'001);
}

TEST_CASE("split_statements: top-level semicolons only") {
  using V = std::vector<std::string>;
  CHECK(admin::split_statements("SHOW POOLS; SHOW STATS;") == V{"SHOW POOLS", " SHOW STATS"});
  CHECK(admin::split_statements("SHOW CONFIG LIKE 'a;b'") == V{"SHOW CONFIG LIKE 'a;b'"});
  CHECK(admin::split_statements("SHOW CONFIG LIKE 'it''s;'; RELOAD") == V{"SHOW CONFIG LIKE 'it''s;'", " RELOAD"});
  CHECK(admin::split_statements("RELOAD -- ; not a split\n").size() == 1);
  CHECK(admin::split_statements("/* ; */ RELOAD").size() == 1);
  CHECK(admin::split_statements(" ; ;").empty());
  CHECK(admin::split_statements("SHOW CONFIG LIKE 'a\\';b'; RELOAD").size() == 2);  // a backslash-escaped quote
  CHECK(admin::split_statements("SHOW CONFIG LIKE `x;y`").size() == 1);
}
