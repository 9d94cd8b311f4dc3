// Admin console commands: parsing, permissions, and the rows of every SHOW.
#include "src/admin/console.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <ctime>
#if defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define SLUICE_SANITIZER_ALLOCATOR 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SLUICE_SANITIZER_ALLOCATOR 1
#endif
#if defined(SLUICE_SANITIZER_ALLOCATOR)
#include <sanitizer/allocator_interface.h>
#elif defined(__GLIBC__)
#include <malloc.h>
#endif
#include <unistd.h>

#include "sluice/version.hpp"
#include "src/cache/store.hpp"
#include "src/config/settings.hpp"
#include "src/config/units.hpp"
#include "src/state/context.hpp"
#include "src/observe/log.hpp"

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

// Words, numbers, host:port, '=' and quoted strings; comments and a trailing ';' dropped.
// Returns nullopt on an unterminated quote.
std::optional<std::vector<Token>> tokenize(std::string_view s) {
  std::vector<Token> out;
  std::size_t i = 0;
  while (i < s.size()) {
    char c = s[i];
    if (std::isspace(static_cast<unsigned char>(c)) || c == ';' || c == ',') {
      ++i;
    } else if (c == '-' && i + 1 < s.size() && s[i + 1] == '-') {
      while (i < s.size() && s[i] != '\n') ++i;
    } else if (c == '/' && i + 1 < s.size() && s[i + 1] == '*') {
      auto end = s.find("*/", i + 2);
      if (end == std::string_view::npos) return std::nullopt;
      i = end + 2;
    } else if (c == '\'' || c == '"' || c == '`') {
      Token t;
      t.quoted = true;
      std::size_t j = i + 1;
      for (;; ++j) {
        if (j >= s.size()) return std::nullopt;
        if (s[j] == '\\' && c == '\'' && j + 1 < s.size()) {
          t.text += s[++j];
          continue;
        }
        if (s[j] == c) {
          if (j + 1 < s.size() && s[j + 1] == c) {
            t.text += c;
            ++j;
            continue;
          }
          break;
        }
        t.text += s[j];
      }
      out.push_back(std::move(t));
      i = j + 1;
    } else if (c == '=') {
      out.push_back({"=", false});
      ++i;
    } else {
      std::size_t j = i;
      while (j < s.size() && !std::isspace(static_cast<unsigned char>(s[j])) && s[j] != ';' && s[j] != '=' &&
             s[j] != '\'' && s[j] != '"' && s[j] != ',')
        ++j;
      out.push_back({std::string(s.substr(i, j - i)), false});
      i = j;
    }
  }
  return out;
}

// ---- column sets ---------------------------------------------------------------------------

using Cols = std::vector<Column>;
constexpr Type T = Type::Text, I = Type::Int, F = Type::Float, B = Type::Bool, TS = Type::Timestamp;

const Cols& cols_help() {
  static const Cols c{{"command", T}, {"description", T}};
  return c;
}
const Cols& cols_pools() {
  static const Cols c{{"database", T},  {"user", T},       {"cl_active", I},     {"cl_waiting", I},
                      {"sv_active", I}, {"sv_idle", I},    {"sv_used", I},       {"sv_login", I},
                      {"maxwait", I},   {"maxwait_us", I}, {"pool_mode", T},     {"protocol", T},
                      {"pool_size", I}, {"min_pool_size", I}, {"paused", B},     {"disabled", B}};
  return c;
}
const Cols& cols_clients() {
  static const Cols c{{"type", T}, {"user", T},       {"database", T},   {"state", T},         {"addr", T},
                      {"port", I}, {"local_addr", T}, {"local_port", I}, {"connect_time", TS}, {"request_time", TS},
                      {"wait", I}, {"wait_us", I},    {"id", I},         {"protocol", T},      {"application_name", T},
                      {"link", I}, {"queries", I},    {"pool", T},       {"tls", B},           {"pinned", T}};
  return c;
}
const Cols& cols_servers() {
  static const Cols c{{"type", T},         {"user", T},        {"database", T},   {"state", T},
                      {"addr", T},         {"port", I},        {"local_addr", T}, {"local_port", I},
                      {"connect_time", TS}, {"request_time", TS}, {"id", I},      {"remote_pid", I},
                      {"link", I},         {"protocol", T},    {"pool_mode", T}};
  return c;
}
const Cols& cols_backends() {
  static const Cols c{{"cluster", T},  {"member", T},   {"protocol", T},  {"configured_role", T},
                      {"role", T},     {"healthy", B},  {"drained", B},   {"lag_ms", I},
                      {"position", T}, {"in_flight", I}, {"routed_reads", I}, {"routed_writes", I},
                      {"weight", I}};
  return c;
}
const Cols& cols_stats() {
  static const Cols c{{"database", T},          {"protocol", T},         {"total_xact_count", I},
                      {"total_query_count", I}, {"total_received", I},   {"total_sent", I},
                      {"total_xact_time", I},   {"total_query_time", I}, {"total_wait_time", I},
                      {"avg_xact_count", F},    {"avg_query_count", F},  {"avg_recv", F},
                      {"avg_sent", F},          {"avg_xact_time", F},    {"avg_query_time", F},
                      {"avg_wait_time", F}};
  return c;
}
const Cols& cols_cache() {
  static const Cols c{{"pool", T},          {"enabled", B},       {"entries", I},     {"bytes", I},
                      {"max_bytes", I},     {"hits", I},          {"misses", I},      {"hit_ratio", F},
                      {"evictions", I},     {"invalidations", I}, {"expirations", I}, {"replica_hits", I},
                      {"behind_client", I}, {"refused_fills", I}};
  return c;
}
const Cols& cols_config() {
  static const Cols c{{"key", T}, {"value", T}, {"default", T}, {"changeable", B}};
  return c;
}
const Cols& cols_memory() {
  static const Cols c{{"name", T}, {"bytes", I}, {"description", T}};
  return c;
}
const Cols& cols_version() {
  static const Cols c{{"version", T}};
  return c;
}
const Cols& cols_databases() {
  static const Cols c{{"name", T},      {"protocol", T},  {"cluster", T},       {"server_database", T},
                      {"pool_mode", T}, {"pool_size", I}, {"min_pool_size", I}, {"routing", T},
                      {"paused", B},    {"disabled", B},  {"current_connections", I}};
  return c;
}

struct ShowSpec {
  const char* name;
  const Cols& (*cols)();
  std::size_t filter_column;  // LIKE applies to this column
};
const ShowSpec kShows[] = {
    {"HELP", cols_help, 0},       {"POOLS", cols_pools, 0},     {"CLIENTS", cols_clients, 1},
    {"SERVERS", cols_servers, 2}, {"BACKENDS", cols_backends, 1}, {"STATS", cols_stats, 0},
    {"CACHE", cols_cache, 0},     {"CONFIG", cols_config, 0},   {"VERSION", cols_version, 0},
    {"DATABASES", cols_databases, 0}, {"MEMORY", cols_memory, 0},
};
const ShowSpec* find_show(std::string_view word) {
  auto w = upper(word);
  for (auto& s : kShows)
    if (w == s.name) return &s;
  return nullptr;
}

const std::pair<const char*, const char*> kHelp[] = {
    {"SHOW HELP", "this list"},
    {"SHOW POOLS", "per database and user: clients active and waiting, server connections by state"},
    {"SHOW CLIENTS", "every client connection: user, database, state, address, times, id"},
    {"SHOW SERVERS", "every server connection: pool, state, address, times, the client it serves"},
    {"SHOW BACKENDS", "cluster members: role, health, lag, drained, in-flight work, routed reads and writes"},
    {"SHOW STATS", "per database: transactions, queries, bytes, times (totals and last-period averages)"},
    {"SHOW CACHE",
     "result cache per pool: entries, bytes, hits (replica_hits: answers a replica gave), misses "
     "(behind_client: entries older than the client's own write), evictions, invalidations, refused_fills "
     "(replica answers older than a write to what they read)"},
    {"SHOW CONFIG", "settings: value, default, and whether SET may change it"},
    {"SHOW DATABASES", "configured databases: cluster, pool mode and size, paused, disabled"},
    {"SHOW MEMORY", "resident memory, the allocator's heap in use and free, and the result cache's share"},
    {"SHOW VERSION", "the Sluice version"},
    {"SHOW <x> LIKE 'pattern'", "filters the rows of any SHOW (% and _ wildcards)"},
    {"RELOAD", "re-read the configuration file and apply it live (invalid files are rejected)"},
    {"PAUSE [db]", "wait for open transactions, close server connections, hold new queries"},
    {"RESUME [db]", "release held queries"},
    {"DISABLE db / ENABLE db", "refuse / accept new client connections to db"},
    {"DRAIN host:port / UNDRAIN host:port", "send a cluster member no new reads; work there finishes"},
    {"KILL id", "close client connection id (SHOW CLIENTS)"},
    {"CACHE PURGE [table]", "drop cached answers (all, or those that read table)"},
    {"SET key = value", "change a setting at run time (SHOW CONFIG: changeable); RELOAD restores the file's"},
    {"SHUTDOWN [WAIT]", "stop Sluice now, or after open transactions finish (as SIGTERM)"},
};

std::string num(std::uint64_t v) { return std::to_string(v); }
std::string num(std::int64_t v) { return std::to_string(v); }
std::string flt(double v) { return fmt::format("{:.6g}", v); }
std::string boolean(bool b) { return b ? "t" : "f"; }

SysClock::time_point to_system(std::chrono::steady_clock::time_point t) {
  return SysClock::now() - std::chrono::duration_cast<SysClock::duration>(std::chrono::steady_clock::now() - t);
}

// ---- SHOW rows -----------------------------------------------------------------------------

using Rows = std::vector<std::vector<Cell>>;

Rows rows_help() {
  Rows r;
  for (auto& [c, d] : kHelp) r.push_back({c, d});
  return r;
}

Rows rows_pools(Context& ctx) {
  struct Agg {
    std::uint64_t cl_active = 0, cl_waiting = 0, sv_active = 0, sv_idle = 0, sv_login = 0;
    double maxwait = 0;
    std::string mode;
    std::uint64_t size = 0, min_size = 0;
  };
  std::map<std::tuple<std::string, std::string, std::string>, Agg> by;  // protocol, database, user
  for (auto& p : ctx.pools.all()) {
    auto s = p->settings();
    auto u = p->usage();
    auto& a = by[{config::to_string(s.protocol), p->config_database(), p->user()}];
    a.sv_active += u.active;
    a.sv_idle += u.idle;
    a.sv_login += u.connecting;
    a.maxwait = std::max(a.maxwait, u.max_wait_seconds);
    a.mode = config::to_string(s.mode);
    a.size = s.pool_size;
    a.min_size = s.min_pool_size;
  }
  for (auto& c : ctx.client_table.all()) {
    std::string user, pool;
    {
      std::lock_guard lock(c->mu);
      user = c->user;
      pool = c->pool;
    }
    auto it = by.find({c->protocol, pool, user});
    if (it == by.end()) continue;
    auto st = static_cast<observe::ClientState>(c->state.load());
    if (st == observe::ClientState::Waiting) ++it->second.cl_waiting;
    else if (st != observe::ClientState::Login) ++it->second.cl_active;
  }
  Rows r;
  for (auto& [k, a] : by) {
    auto& [proto, db, user] = k;
    auto wait_us = static_cast<std::uint64_t>(a.maxwait * 1e6);
    r.push_back({db, user, num(a.cl_active), num(a.cl_waiting), num(a.sv_active), num(a.sv_idle), num(std::uint64_t{0}),
                 num(a.sv_login), num(wait_us / 1000000), num(wait_us % 1000000), a.mode, proto, num(a.size),
                 num(a.min_size), boolean(ctx.controls.paused(db)), boolean(ctx.controls.disabled(db))});
  }
  return r;
}

Rows rows_clients(Context& ctx) {
  Rows r;
  auto now_us = observe::epoch_us();
  for (auto& c : ctx.client_table.all()) {
    std::string user, db, app, pool, pinned;
    {
      std::lock_guard lock(c->mu);
      user = c->user;
      db = c->database;
      app = c->application_name;
      pool = c->pool;
      pinned = c->pinned;
    }
    auto st = static_cast<observe::ClientState>(c->state.load());
    auto ws = c->wait_since_us.load();
    std::int64_t wait = ws ? now_us - ws : 0;
    auto req = c->request_time_us.load();
    Cell request = req ? Cell(timestamp(SysClock::time_point(std::chrono::microseconds(req)))) : std::nullopt;
    auto link = c->server_id.load();
    r.push_back({"C",
                 user,
                 db,
                 observe::to_string(st),
                 c->addr,
                 num(std::uint64_t{c->port}),
                 c->local_addr,
                 num(std::uint64_t{c->local_port}),
                 timestamp(c->connect_time),
                 request,
                 num(wait / 1000000),
                 num(wait % 1000000),
                 num(c->id),
                 c->protocol,
                 app,
                 link ? Cell(num(link)) : std::nullopt,
                 num(c->queries.load()),
                 pool,
                 boolean(c->tls.load()),
                 pinned.empty() ? Cell(std::nullopt) : Cell(pinned)});
  }
  return r;
}

Rows rows_servers(Context& ctx) {
  Rows r;
  for (auto& p : ctx.pools.all()) {
    auto s = p->settings();
    for (auto& sv : p->servers()) {
      r.push_back({"S", p->user(), p->config_database(), sv.idle ? "idle" : "active", p->endpoint().host,
                   num(std::uint64_t{p->endpoint().port}), sv.local_addr, num(std::uint64_t{sv.local_port}),
                   timestamp(to_system(sv.created)), timestamp(to_system(sv.last_used)), num(sv.id),
                   num(std::uint64_t{sv.backend_pid}), sv.client_id ? Cell(num(sv.client_id)) : std::nullopt,
                   config::to_string(s.protocol), config::to_string(s.mode)});
    }
  }
  return r;
}

const char* role_name(router::Role r) {
  switch (r) {
    case router::Role::Primary: return "primary";
    case router::Role::Replica: return "replica";
    default: return "unknown";
  }
}

Rows rows_backends(Context& ctx) {
  Rows r;
  for (auto& rt : ctx.router.all()) {
    if (!rt) continue;
    auto v = rt->view();
    const auto& cfg = rt->config();
    for (std::size_t i = 0; i < v->members.size(); ++i) {
      const auto& m = v->members[i];
      auto& c = rt->counters(static_cast<int>(i));
      std::uint64_t weight = i < cfg.weights.size() ? cfg.weights[i] : 1;
      r.push_back({cfg.name, m.endpoint.text(), config::to_string(cfg.protocol), i == 0 ? "primary" : "replica",
                   role_name(m.role), boolean(m.up), boolean(ctx.router.drains().drained(m.endpoint)),
                   num(static_cast<std::int64_t>(m.lag.count())), m.position.empty() ? Cell() : Cell(m.position.text()),
                   num(static_cast<std::int64_t>(c.outstanding.load())), num(c.reads.load()), num(c.writes.load()),
                   num(weight)});
    }
  }
  return r;
}

Rows rows_stats(Context& ctx) {
  Rows r;
  for (auto& s : ctx.stats.all()) {
    auto t = observe::totals(*s);
    auto p = ctx.stats.last_period(*s);
    auto d = [](std::uint64_t a, std::uint64_t b) { return static_cast<double>(b >= a ? b - a : 0); };
    double secs = p.seconds > 0 ? p.seconds : 1;
    double dx = d(p.begin.xacts, p.end.xacts), dq = d(p.begin.queries, p.end.queries);
    r.push_back({s->database, s->protocol, num(t.xacts), num(t.queries), num(t.bytes_in), num(t.bytes_out),
                 num(t.xact_us), num(t.query_us), num(t.wait_us), flt(dx / secs), flt(dq / secs),
                 flt(d(p.begin.bytes_in, p.end.bytes_in) / secs), flt(d(p.begin.bytes_out, p.end.bytes_out) / secs),
                 flt(dx > 0 ? d(p.begin.xact_us, p.end.xact_us) / dx : 0),
                 flt(dq > 0 ? d(p.begin.query_us, p.end.query_us) / dq : 0),
                 flt(dx > 0 ? d(p.begin.wait_us, p.end.wait_us) / dx : 0)});
  }
  return r;
}

Rows rows_cache(Context& ctx) {
  Rows r;
  if (!ctx.cache) return r;
  auto row = [&](const std::string& name, const cache::Stats& s, bool total) {
    double lookups = static_cast<double>(s.hits + s.misses);
    r.push_back({name, boolean(ctx.cache_enabled()), num(s.entries), num(s.bytes),
                 total ? Cell(num(std::uint64_t{ctx.cache->max_bytes()})) : std::nullopt, num(s.hits), num(s.misses),
                 flt(lookups > 0 ? static_cast<double>(s.hits) / lookups : 0), num(s.evictions), num(s.invalidations),
                 num(s.expirations), num(s.replica_hits), num(s.behind_client), num(s.refused_fills)});
  };
  row("*", ctx.cache->stats(), true);
  for (auto& scope : ctx.cache->scopes())
    if (!scope.empty()) row(scope, ctx.cache->stats(scope), false);
  return r;
}

Rows rows_config(Context& ctx) {
  Rows r;
  auto cfg = ctx.snapshot()->config;
  static const config::Config defaults{};
  for (auto& s : config::live_settings())
    r.push_back({s.section == "general" ? std::string(s.name) : s.key(), s.text(*cfg), s.text(defaults), "t"});
  auto fixed = [&](std::string key, std::string value, std::string def) {
    r.push_back({std::move(key), std::move(value), std::move(def), "f"});
  };
  fixed("config_file", cfg->path, "");
  fixed("workers", std::to_string(cfg->general.workers), "0");
  fixed("admin_users", fmt::format("{}", fmt::join(cfg->general.admin_users, ",")), "");
  fixed("stats_users", fmt::format("{}", fmt::join(cfg->general.stats_users, ",")), "");
  fixed("postgres.enabled", cfg->postgres.enabled ? "true" : "false", "false");
  fixed("postgres.listen", cfg->postgres.listen.text(), defaults.postgres.listen.text());
  fixed("postgres.server_reset_query", cfg->postgres.server_reset_query, defaults.postgres.server_reset_query);
  fixed("postgres.max_prepared_statements", std::to_string(cfg->postgres.max_prepared_statements), "256");
  fixed("mysql.enabled", cfg->mysql.enabled ? "true" : "false", "false");
  fixed("mysql.listen", cfg->mysql.listen.text(), defaults.mysql.listen.text());
  fixed("mysql.default_auth_plugin", cfg->mysql.default_auth_plugin, defaults.mysql.default_auth_plugin);
  fixed("http.enabled", cfg->http.enabled ? "true" : "false", "false");
  fixed("http.listen", cfg->http.listen.text(), defaults.http.listen.text());
  fixed("cache.mode", cfg->cache.all ? "all" : "rules", "rules");
  fixed("cache.max_entry_bytes", std::to_string(cfg->cache.max_entry_bytes), std::to_string(defaults.cache.max_entry_bytes));
  return r;
}

Rows rows_databases(Context& ctx) {
  Rows r;
  auto cfg = ctx.snapshot()->config;
  std::map<std::string, std::uint64_t> conns;
  for (auto& c : ctx.client_table.all()) {
    std::lock_guard lock(c->mu);
    ++conns[c->protocol + "/" + c->pool];
  }
  for (auto& p : cfg->pools) {
    auto& cl = cfg->clusters.at(p.cluster);
    auto routing = p.routing ? *p.routing : cl.routing;
    r.push_back({p.database, config::to_string(p.protocol), p.cluster,
                 p.server_database.empty() ? Cell() : Cell(p.server_database), config::to_string(p.mode),
                 num(std::uint64_t{p.pool_size}), num(std::uint64_t{p.min_pool_size}), config::to_string(routing),
                 boolean(ctx.controls.paused(p.database)), boolean(ctx.controls.disabled(p.database)),
                 num(conns[std::string(config::to_string(p.protocol)) + "/" + p.database])});
  }
  return r;
}

// Where the process's memory is: what the kernel counts (RSS), what the allocator hands out and
// holds free (glibc's mallinfo2, all arenas), and the result cache's accounted bytes. A heap in
// use that stays level while RSS grows is fragmentation; a heap in use that grows is something
// Sluice keeps.
Rows rows_memory(Context& ctx) {
  Rows r;
  auto row = [&](const char* name, std::uint64_t bytes, const char* what) { r.push_back({name, num(bytes), what}); };
  std::uint64_t rss = 0;
  if (std::FILE* f = std::fopen("/proc/self/statm", "r")) {
    unsigned long long size = 0, resident = 0;
    if (std::fscanf(f, "%llu %llu", &size, &resident) == 2) rss = resident * static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE));
    std::fclose(f);
  }
  row("rss", rss, "resident set size (/proc/self/statm)");
#if defined(SLUICE_SANITIZER_ALLOCATOR)
  // Sanitizer builds replace malloc (mallinfo2 would say 0): their allocator's own counters.
  row("heap_in_use", __sanitizer_get_current_allocated_bytes(), "bytes allocated and not yet freed (sanitizer allocator)");
  row("heap_free", __sanitizer_get_free_bytes(), "bytes freed but kept by the allocator (sanitizer allocator)");
  row("heap_arena", __sanitizer_get_heap_size(), "bytes the allocator mapped (sanitizer allocator)");
  row("heap_mmapped", 0, "not told apart by the sanitizer allocator");
  row("heap_releasable", __sanitizer_get_unmapped_bytes(), "bytes unmapped by the allocator (sanitizer allocator)");
#elif defined(__GLIBC__)
  struct mallinfo2 mi = ::mallinfo2();
  row("heap_in_use", mi.uordblks + mi.hblkhd, "bytes allocated and not yet freed (mallinfo2 uordblks + hblkhd)");
  row("heap_free", mi.fordblks, "bytes freed but kept by the allocator (mallinfo2 fordblks)");
  row("heap_arena", mi.arena, "bytes the allocator took with brk/mmap for its arenas (mallinfo2 arena)");
  row("heap_mmapped", mi.hblkhd, "large allocations served by their own mmap (mallinfo2 hblkhd)");
  row("heap_releasable", mi.keepcost, "free bytes at the top of the main arena (mallinfo2 keepcost)");
#endif
  if (ctx.cache) row("cache", ctx.cache->stats().bytes, "result cache entries as accounted against cache.max_bytes");
  return r;
}

Rows rows_for(Context& ctx, const ShowSpec& s) {
  std::string n = s.name;
  if (n == "HELP") return rows_help();
  if (n == "POOLS") return rows_pools(ctx);
  if (n == "CLIENTS") return rows_clients(ctx);
  if (n == "SERVERS") return rows_servers(ctx);
  if (n == "BACKENDS") return rows_backends(ctx);
  if (n == "STATS") return rows_stats(ctx);
  if (n == "CACHE") return rows_cache(ctx);
  if (n == "CONFIG") return rows_config(ctx);
  if (n == "DATABASES") return rows_databases(ctx);
  if (n == "MEMORY") return rows_memory(ctx);
  return {{fmt::format("Sluice {}", SLUICE_VERSION)}};
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

}  // namespace

std::vector<std::string> split_statements(std::string_view sql) {
  std::vector<std::string> out;
  std::string cur;
  char quote = 0;
  for (std::size_t i = 0; i < sql.size(); ++i) {
    char c = sql[i];
    if (quote) {
      cur += c;
      if (c == '\\' && quote == '\'' && i + 1 < sql.size()) cur += sql[++i];
      else if (c == quote) quote = 0;
    } else if (c == '\'' || c == '"' || c == '`') {
      quote = c;
      cur += c;
    } else if (c == '-' && i + 1 < sql.size() && sql[i + 1] == '-') {
      while (i < sql.size() && sql[i] != '\n') ++i;
    } else if (c == '/' && i + 1 < sql.size() && sql[i + 1] == '*') {
      auto end = sql.find("*/", i + 2);
      i = end == std::string_view::npos ? sql.size() : end + 1;
    } else if (c == ';') {
      if (cur.find_first_not_of(" \t\r\n") != std::string::npos) out.push_back(std::move(cur));
      cur.clear();
    } else {
      cur += c;
    }
  }
  if (cur.find_first_not_of(" \t\r\n") != std::string::npos) out.push_back(std::move(cur));
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
    if (!c || !c->kill) co_return Result::fail("42704", 1094, fmt::format("no client with id {}", id));
    log_cmd(fmt::format("KILL {}", id));
    c->kill();
    co_return ok("KILL");
  }
  if (w0 == "CACHE" && t.size() >= 2 && upper(t[1].text) == "PURGE" && t.size() <= 3) {
    std::size_t n = 0;
    if (ctx.cache) n = t.size() == 3 ? ctx.cache->invalidate_table(cache::table_key(t[2].text)) : ctx.cache->invalidate_all();
    log_cmd(fmt::format("CACHE PURGE {}", arg(2)));
    co_return ok("CACHE", fmt::format("purged {} cached answers", n));
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
