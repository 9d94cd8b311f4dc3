// Admin console commands: parsing, permissions, and the rows of every SHOW.
#include "src/admin/console.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <ctime>

#include "sluice/version.hpp"
#include "src/admin/queries.hpp"
#include "src/admin/show.hpp"
#include "src/cache/store.hpp"
#include "src/config/settings.hpp"
#include "src/config/units.hpp"
#include "src/state/context.hpp"
#include "src/observe/log.hpp"
#include "src/sql/lexer.hpp"

namespace sluice::admin {

using state::Context;
using SysClock = std::chrono::system_clock;

Result Result::fail(std::string sqlstate, std::uint16_t mysql_code, std::string message) {
  Result r;
  r.error = true;
  r.sqlstate = std::move(sqlstate);
  r.mysql_code = mysql_code;
  r.message = std::move(message);
  return r;
}

namespace {

// ---- tokens --------------------------------------------------------------------------------

struct Token {
  std::string text;  // identifiers/keywords as written; strings unquoted
  bool quoted = false;
};

std::string upper(std::string_view s) {
  std::string o(s);
  for (auto& c : o) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return o;
}

// A quoted token's contents: the quotes removed, doubled quotes and (in '' strings) backslash
// escapes undone.
std::string unquote(std::string_view q) {
  std::string out;
  char c = q.front();
  for (std::size_t j = 1; j + 1 < q.size(); ++j) {
    if (q[j] == '\\' && c == '\'' && j + 2 < q.size()) {
      out += q[++j];
      continue;
    }
    out += q[j];
    if (q[j] == c && j + 2 < q.size() && q[j + 1] == c) ++j;
  }
  return out;
}

// Words (runs of the shared lexer's tokens with nothing between them: host:port, 250ms,
// general.max_client_conn), '=' and quoted strings; comments, ',' and ';' dropped. Returns
// nullopt on an unterminated quote or comment.
std::optional<std::vector<Token>> tokenize(std::string_view s) {
  std::vector<Token> out;
  sql::Lexer lx(s, sql::Dialect::Mysql);
  std::size_t word_end = std::string_view::npos;  // where the word being built ends
  for (sql::Token t = lx.next(); t.kind != sql::Token::End; t = lx.next()) {
    if (t.kind == sql::Token::String || t.kind == sql::Token::QuotedIdent) {
      out.push_back({unquote(t.text), true});
      word_end = std::string_view::npos;
    } else if (t.sym(';') || t.sym(',')) {
      word_end = std::string_view::npos;
    } else if (t.sym('=')) {
      out.push_back({"=", false});
      word_end = std::string_view::npos;
    } else if (t.pos == word_end) {
      out.back().text += t.text;
      word_end += t.text.size();
    } else {
      out.push_back({std::string(t.text), false});
      word_end = t.pos + t.text.size();
    }
  }
  if (lx.unterminated()) return std::nullopt;
  return out;
}

Result syntax(std::string_view what) {
  return Result::fail("42601", 1064, fmt::format("admin console: {} (SHOW HELP lists the commands)", what));
}

Result ok(std::string tag, std::string info = {}) {
  Result r;
  r.tag = std::move(tag);
  r.info = std::move(info);
  return r;
}

bool database_known(Context& ctx, const std::string& db) {
  auto cfg = ctx.snapshot()->config;
  for (auto& p : cfg->pools)
    if (p.database == db) return true;
  return cfg->find_pool(config::Protocol::Postgres, db) || cfg->find_pool(config::Protocol::Mysql, db);
}

bool member_known(Context& ctx, const std::string& member) {
  for (auto& rt : ctx.router.all())
    if (rt)
      for (auto& m : rt->view()->members)
        if (m.endpoint.text() == member) return true;
  return false;
}

// PAUSE: new queries are held at once; then wait (bounded by shutdown_timeout) for the pools'
// server connections to come back, and close them so the servers may be restarted.
asio::awaitable<Result> pause(Context& ctx, const std::string& db) {
  ctx.controls.pause(db);
  auto ex = co_await asio::this_coro::executor;
  auto deadline = std::chrono::steady_clock::now() + ctx.snapshot()->config->general.shutdown_timeout;
  asio::steady_timer timer(ex);
  for (;;) {
    std::size_t busy = 0;
    for (auto& p : ctx.pools.all())
      if (db.empty() || p->config_database() == db) {
        auto u = p->usage();
        busy += u.active + u.connecting;
      }
    if (busy == 0) break;
    if (std::chrono::steady_clock::now() >= deadline) {
      co_return Result::fail("55000", 1105,
                             fmt::format("PAUSE: {} server connections still busy after shutdown_timeout; new queries "
                                         "stay held (RESUME releases them)",
                                         busy));
    }
    timer.expires_after(std::chrono::milliseconds(10));
    boost::system::error_code ec;
    co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }
  for (auto& p : ctx.pools.all())
    if (db.empty() || p->config_database() == db) p->close_idle();
  log::info("admin: PAUSE {} complete: no server connection in use", db.empty() ? "(all)" : db);
  co_return ok("PAUSE");
}

std::optional<std::string> filter_pattern(const std::vector<Token>& t, std::size_t at, std::string& err) {
  if (t.size() <= at) return std::nullopt;
  if (upper(t[at].text) != "LIKE" || t[at].quoted || t.size() != at + 2 || !t[at + 1].quoted) {
    err = "expected SHOW <what> [LIKE 'pattern']";
    return std::nullopt;
  }
  return t[at + 1].text;
}

// SET RULES_CLOCK's value: Unix seconds, "YYYY-MM-DD HH:MM[:SS]" (UTC; a "T" may separate), or
// "system" (0: the system clock again).
std::optional<std::int64_t> parse_clock(const std::string& v) {
  if (upper(v) == "SYSTEM") return 0;
  if (!v.empty() && std::all_of(v.begin(), v.end(), [](char c) { return c >= '0' && c <= '9'; }) && v.size() < 12)
    return std::stoll(v);
  std::tm tm{};
  int y = 0, mo = 0, d = 0, h = 0, mi = 0, sec = 0;
  char sep = 0;
  int n = std::sscanf(v.c_str(), "%4d-%2d-%2d%c%2d:%2d:%2d", &y, &mo, &d, &sep, &h, &mi, &sec);
  if (n < 6 || (sep != ' ' && sep != 'T') || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60)
    return std::nullopt;
  tm.tm_year = y - 1900, tm.tm_mon = mo - 1, tm.tm_mday = d, tm.tm_hour = h, tm.tm_min = mi, tm.tm_sec = sec;
  auto t = timegm(&tm);
  if (t <= 0) return std::nullopt;
  return static_cast<std::int64_t>(t);
}

}  // namespace

std::vector<std::string> split_statements(std::string_view sql) {
  std::vector<std::string> out;
  auto keep = [&](std::string_view piece) {
    if (piece.find_first_not_of(" \t\r\n") != std::string_view::npos) out.emplace_back(piece);
  };
  std::size_t start = 0;
  sql::Lexer lx(sql, sql::Dialect::Mysql);
  for (sql::Token t = lx.next(); t.kind != sql::Token::End; t = lx.next()) {
    if (!t.sym(';')) continue;
    keep(sql.substr(start, t.pos - start));
    start = t.pos + 1;
  }
  if (start < sql.size()) keep(sql.substr(start));
  return out;
}

bool like(std::string_view text, std::string_view pat) {
  // Iterative matcher with backtracking on the last %.
  std::size_t t = 0, p = 0, star = std::string_view::npos, mark = 0;
  auto lower = [](char c) { return static_cast<char>(std::tolower(static_cast<unsigned char>(c))); };
  while (t < text.size()) {
    if (p < pat.size() && pat[p] == '%') {
      star = p++;
      mark = t;
    } else if (p < pat.size() && (pat[p] == '_' || (pat[p] == '\\' && p + 1 < pat.size() && lower(pat[p + 1]) == lower(text[t])) ||
                                  (pat[p] != '\\' && lower(pat[p]) == lower(text[t])))) {
      p += (pat[p] == '\\') ? 2 : 1;
      ++t;
    } else if (star != std::string_view::npos) {
      p = star + 1;
      t = ++mark;
    } else {
      return false;
    }
  }
  while (p < pat.size() && pat[p] == '%') ++p;
  return p == pat.size();
}

std::string timestamp(SysClock::time_point t) {
  auto us = std::chrono::duration_cast<std::chrono::microseconds>(t.time_since_epoch()).count();
  std::time_t secs = static_cast<std::time_t>(us / 1000000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", &tm);
  return fmt::format("{}.{:06d}", buf, static_cast<int>(us % 1000000));
}

std::optional<std::vector<Column>> describe(std::string_view sql) {
  auto t = tokenize(sql);
  if (!t || t->size() < 2 || upper((*t)[0].text) != "SHOW") {
    if (auto n = driver_noise(sql); n && !n->columns.empty()) return n->columns;
    return std::nullopt;
  }
  auto* s = find_show((*t)[1].text);
  if (!s) return std::nullopt;
  return s->cols();
}

std::optional<Result> driver_noise(std::string_view sql) {
  auto t = tokenize(sql);
  if (!t || t->empty()) return std::nullopt;
  auto w0 = upper((*t)[0].text);
  if (w0 == "SET" && t->size() >= 2) {
    // Session settings drivers send on connect; the console has no session to change.
    auto k = upper((*t)[1].text);
    static const char* session_keys[] = {"NAMES", "CHARACTER", "CHARSET", "AUTOCOMMIT", "SQL_MODE", "TIME_ZONE",
                                         "SESSION", "APPLICATION_NAME", "EXTRA_FLOAT_DIGITS", "CLIENT_ENCODING",
                                         "DATESTYLE", "TIMEZONE", "INTERVALSTYLE", "SEARCH_PATH", "STATEMENT_TIMEOUT",
                                         "TRANSACTION", "LOCAL", "@@SESSION.AUTOCOMMIT", "CHARACTER_SET_RESULTS",
                                         "NET_WRITE_TIMEOUT", "WAIT_TIMEOUT", "SQL_SELECT_LIMIT"};
    for (auto* s : session_keys)
      if (k == s || (k.size() > 2 && k[0] == '@')) return ok("SET");
    return std::nullopt;
  }
  if (w0 == "SELECT" && t->size() >= 2) {
    auto what = upper((*t)[1].text);
    Result r;
    r.tag = "SELECT 1";
    if (what == "1") {
      r.columns = {{"?column?", Type::Int}};
      r.rows = {{"1"}};
      return r;
    }
    if (what == "@@VERSION_COMMENT") {
      r.columns = {{"@@version_comment", Type::Text}};
      r.rows = {{"Sluice admin console"}};
      return r;
    }
    if (what == "VERSION()" || what == "@@VERSION") {
      r.columns = {{"version", Type::Text}};
      r.rows = {{fmt::format("Sluice {}", SLUICE_VERSION)}};
      return r;
    }
    if (what == "DATABASE()" || what == "CURRENT_DATABASE()") {
      r.columns = {{"database", Type::Text}};
      r.rows = {{"sluice"}};
      return r;
    }
  }
  if (w0 == "BEGIN" || w0 == "COMMIT" || w0 == "ROLLBACK" || w0 == "START") return ok(w0);
  return std::nullopt;
}

asio::awaitable<Result> run(Context& ctx, std::string sql, Caller caller) {
  auto toks = tokenize(sql);
  if (!toks) co_return syntax("unterminated quote or comment");
  auto& t = *toks;
  if (t.empty()) co_return Result{};  // empty query
  auto w0 = upper(t[0].text);
  if (w0 == "SHOW") {
    if (t.size() < 2) co_return syntax("SHOW what?");
    auto* s = find_show(t[1].text);
    if (!s) co_return syntax(fmt::format("unknown SHOW {}", t[1].text));
    if (std::string_view(s->name) == "QUERIES") {
      // SHOW QUERIES [LIKE 'p'] [ORDER BY col [ASC|DESC]] [LIMIT n]
      std::optional<std::string> pattern;
      QueriesOrder order;
      std::size_t i = 2;
      if (i + 1 < t.size() && upper(t[i].text) == "LIKE" && t[i + 1].quoted) pattern = t[i + 1].text, i += 2;
      if (i + 2 < t.size() && upper(t[i].text) == "ORDER" && upper(t[i + 1].text) == "BY") {
        order.column = t[i + 2].text;
        for (auto& ch : order.column) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
        if (!queries_column(order.column))
          co_return syntax(fmt::format("SHOW QUERIES has no column {}", t[i + 2].text));
        order.descending = false;
        i += 3;
        if (i < t.size() && (upper(t[i].text) == "ASC" || upper(t[i].text) == "DESC"))
          order.descending = upper(t[i++].text) == "DESC";
      }
      if (i + 1 < t.size() && upper(t[i].text) == "LIMIT") {
        char* end = nullptr;
        auto n = std::strtoull(t[i + 1].text.c_str(), &end, 10);
        if (t[i + 1].text.empty() || *end) co_return syntax("LIMIT takes a number");
        order.limit = n;
        i += 2;
      }
      if (i != t.size())
        co_return syntax("expected SHOW QUERIES [LIKE 'pattern'] [ORDER BY column [ASC|DESC]] [LIMIT n]");
      Result r;
      r.columns = cols_queries();
      r.rows = rows_queries(ctx, order, pattern);
      r.tag = "SHOW";
      co_return r;
    }
    std::string err;
    auto pattern = filter_pattern(t, 2, err);
    if (!err.empty()) co_return syntax(err);
    Result r;
    r.columns = s->cols();
    r.rows = rows_for(ctx, *s);
    if (pattern)
      std::erase_if(r.rows, [&](const std::vector<Cell>& row) {
        const auto& c = row[s->filter_column];
        return !c || !like(*c, *pattern);
      });
    r.tag = "SHOW";
    co_return r;
  }
  if (auto n = driver_noise(sql)) co_return *n;
  if (!caller.admin)
    co_return Result::fail("42501", 1227,
                           fmt::format("permission denied: \"{}\" may run SHOW commands only (general.stats_users)", caller.user));

  auto arg = [&](std::size_t i) -> std::string { return i < t.size() ? t[i].text : std::string(); };
  auto log_cmd = [&](std::string_view what) { log::info("admin: {} by {} (client {})", what, caller.user, caller.client_id); };

  if (w0 == "RELOAD" && t.size() == 1) {
    log_cmd("RELOAD");
    try {
      auto summary = state::reload(ctx, ctx.snapshot()->config->path);
      co_return ok("RELOAD", "configuration reloaded: " + summary);
    } catch (const config::ConfigError& e) {
      co_return Result::fail("F0000", 1105, fmt::format("RELOAD rejected, the running configuration stays: {}", e.what()));
    }
  }
  if ((w0 == "PAUSE" || w0 == "RESUME") && t.size() <= 2) {
    auto db = arg(1);
    if (!db.empty() && !database_known(ctx, db)) co_return Result::fail("3D000", 1049, fmt::format("no such database: {}", db));
    log_cmd(fmt::format("{} {}", w0, db.empty() ? "(all)" : db));
    if (w0 == "PAUSE") co_return co_await pause(ctx, db);
    if (!ctx.controls.resume(db)) co_return Result::fail("55000", 1105, fmt::format("{} is not paused", db.empty() ? "Sluice" : db));
    co_return ok("RESUME");
  }
  if ((w0 == "DISABLE" || w0 == "ENABLE") && t.size() == 2) {
    auto db = arg(1);
    if (!database_known(ctx, db)) co_return Result::fail("3D000", 1049, fmt::format("no such database: {}", db));
    log_cmd(fmt::format("{} {}", w0, db));
    ctx.controls.set_disabled(db, w0 == "DISABLE");
    co_return ok(w0);
  }
  if ((w0 == "DRAIN" || w0 == "UNDRAIN") && t.size() == 2) {
    auto m = arg(1);
    if (!member_known(ctx, m))
      co_return Result::fail("42704", 1105, fmt::format("no cluster member {} (SHOW BACKENDS lists them as host:port)", m));
    log_cmd(fmt::format("{} {}", w0, m));
    ctx.router.drains().set(m, w0 == "DRAIN");
    co_return ok(w0);
  }
  if (w0 == "KILL" && t.size() == 2) {
    char* end = nullptr;
    auto id = std::strtoull(t[1].text.c_str(), &end, 10);
    if (t[1].text.empty() || *end) co_return syntax("KILL takes a client id (SHOW CLIENTS)");
    auto c = ctx.client_table.find(id);
    auto kill = observe::kill_on_worker.load(std::memory_order_relaxed);
    if (!c || !c->worker || !kill) co_return Result::fail("42704", 1094, fmt::format("no client with id {}", id));
    log_cmd(fmt::format("KILL {}", id));
    asio::post(*c->worker, [kill, id] { kill(id); });
    co_return ok("KILL");
  }
  if (w0 == "RESET" && t.size() == 2 && upper(t[1].text) == "QUERIES") {
    log_cmd("RESET QUERIES");
    ctx.digests.reset();
    co_return ok("RESET");
  }
  if (w0 == "CACHE" && t.size() >= 2 && upper(t[1].text) == "PURGE" && t.size() <= 3) {
    std::size_t n = 0;
    if (ctx.cache) n = t.size() == 3 ? ctx.cache->invalidate_table(cache::table_key(t[2].text)) : ctx.cache->invalidate_all();
    log_cmd(fmt::format("CACHE PURGE {}", arg(2)));
    co_return ok("CACHE", fmt::format("purged {} cached answers", n));
  }
  if (w0 == "SET" && t.size() >= 3 && upper(t[1].text) == "RULES_CLOCK") {
    std::size_t vi = t.size() >= 4 && (t[2].text == "=" || upper(t[2].text) == "TO") ? 3 : 2;
    if (t.size() != vi + 1)
      co_return syntax("expected SET RULES_CLOCK = 'YYYY-MM-DD HH:MM:SS' (UTC) | unix seconds | 'system'");
    auto at = parse_clock(t[vi].text);
    if (!at) co_return Result::fail("22023", 1231, fmt::format("SET RULES_CLOCK: cannot read \"{}\"", t[vi].text));
    ctx.pin_rules_clock(*at);
    log_cmd(fmt::format("SET RULES_CLOCK = {}", *at ? t[vi].text : std::string("system")));
    co_return ok("SET");
  }
  if (w0 == "SET" && t.size() >= 3) {
    std::size_t vi = t.size() >= 4 && t[2].text == "=" ? 3 : 2;
    if (upper(t[2].text) == "TO") vi = 3;
    if (t.size() != vi + 1) co_return syntax("expected SET key = value");
    auto* s = config::find_setting(t[1].text);
    if (!s) co_return Result::fail("42704", 1193, fmt::format("unknown or read-only setting \"{}\" (SHOW CONFIG: changeable)", t[1].text));
    std::string problem;
    {
      config::Config probe(*ctx.snapshot()->config);
      problem = s->set_text(probe, t[vi].text);
    }
    if (!problem.empty()) co_return Result::fail("22023", 1231, fmt::format("SET {}: {}", s->key(), problem));
    try {
      const std::string value = t[vi].text;
      state::set_config(ctx, [s, &value](config::Config& c) {
        if (auto p = s->set_text(c, value); !p.empty()) throw config::ConfigError(p);
      });
    } catch (const config::ConfigError& e) {
      co_return Result::fail("F0000", 1105, e.what());
    }
    log_cmd(fmt::format("SET {} = {}", s->key(), t[vi].text));
    co_return ok("SET");
  }
  if (w0 == "SHUTDOWN" && (t.size() == 1 || (t.size() == 2 && upper(t[1].text) == "WAIT"))) {
    bool wait = t.size() == 2;
    log_cmd(wait ? "SHUTDOWN WAIT" : "SHUTDOWN");
    if (ctx.request_shutdown) ctx.request_shutdown(wait);
    co_return ok("SHUTDOWN");
  }
  co_return syntax(fmt::format("cannot run \"{}\"", std::string(sql.substr(0, 80))));
}

}  // namespace sluice::admin
