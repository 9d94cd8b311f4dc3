// The admin console's SHOW commands: their columns and their rows, read from the running state.
#include "src/admin/show.hpp"

#include "src/admin/heap_stats.hpp"
#include "src/admin/queries.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cctype>
#include <cstdio>

#include "sluice/version.hpp"
#include "src/cache/store.hpp"
#include "src/config/settings.hpp"
#include "src/state/context.hpp"

namespace sluice::admin {

using state::Context;
using SysClock = std::chrono::system_clock;

namespace {

// ---- column sets ---------------------------------------------------------------------------

using Cols = std::vector<Column>;
constexpr Type T = Type::Text, I = Type::Int, F = Type::Float, B = Type::Bool, TS = Type::Timestamp;

const Cols& cols_help() {
  static const Cols c{{"command", T}, {"description", T}};
  return c;
}
const Cols& cols_pools() {
  static const Cols c{{"database", T},  {"user", T},     {"cl_active", I}, {"cl_waiting", I},    {"sv_active", I},
                      {"sv_idle", I},   {"sv_used", I},  {"sv_login", I},  {"maxwait", I},       {"maxwait_us", I},
                      {"pool_mode", T}, {"protocol", T}, {"pool_size", I}, {"min_pool_size", I}, {"paused", B},
                      {"disabled", B},  {"sv_moved", I}};
  return c;
}
const Cols& cols_clients() {
  static const Cols c{
      {"type", T},   {"user", T},       {"database", T},   {"state", T},         {"addr", T},
      {"port", I},   {"local_addr", T}, {"local_port", I}, {"connect_time", TS}, {"request_time", TS},
      {"wait", I},   {"wait_us", I},    {"id", I},         {"protocol", T},      {"application_name", T},
      {"link", I},   {"queries", I},    {"pool", T},       {"tls", B},           {"pinned", T},
      {"parked", B}, {"asleep", B}};
  return c;
}
const Cols& cols_servers() {
  static const Cols c{{"type", T}, {"user", T},       {"database", T},   {"state", T},         {"addr", T},
                      {"port", I}, {"local_addr", T}, {"local_port", I}, {"connect_time", TS}, {"request_time", TS},
                      {"id", I},   {"remote_pid", I}, {"link", I},       {"protocol", T},      {"pool_mode", T}};
  return c;
}
const Cols& cols_backends() {
  static const Cols c{{"cluster", T},  {"member", T},    {"protocol", T},     {"configured_role", T},
                      {"role", T},     {"healthy", B},   {"drained", B},      {"lag_ms", I},
                      {"position", T}, {"in_flight", I}, {"routed_reads", I}, {"routed_writes", I},
                      {"weight", I},   {"tags", T}};
  return c;
}
const Cols& cols_stats() {
  static const Cols c{{"database", T},        {"protocol", T},       {"total_xact_count", I}, {"total_query_count", I},
                      {"total_received", I},  {"total_sent", I},     {"total_xact_time", I},  {"total_query_time", I},
                      {"total_wait_time", I}, {"avg_xact_count", F}, {"avg_query_count", F},  {"avg_recv", F},
                      {"avg_sent", F},        {"avg_xact_time", F},  {"avg_query_time", F},   {"avg_wait_time", F}};
  return c;
}
const Cols& cols_cache() {
  static const Cols c{{"pool", T},          {"enabled", B},       {"entries", I},      {"bytes", I},
                      {"max_bytes", I},     {"hits", I},          {"misses", I},       {"hit_ratio", F},
                      {"evictions", I},     {"invalidations", I}, {"expirations", I},  {"replica_hits", I},
                      {"behind_client", I}, {"refused_fills", I}, {"stream_lag_ms", F}};
  return c;
}
const Cols& cols_cache_streams() {
  static const Cols c{{"cluster", T},   {"database", T},           {"up", B},        {"slot", T},
                      {"confirmed", T}, {"server_position", T},    {"lag_bytes", I}, {"last_lag_ms", F},
                      {"commits", I},   {"tables_invalidated", I}, {"losses", I},    {"last_error", T}};
  return c;
}
const Cols& cols_cache_shared() {
  static const Cols c{{"address", T}, {"up", B},     {"gets", I}, {"hits", I},       {"misses", I},
                      {"stale", I},   {"errors", I}, {"sets", I}, {"set_errors", I}, {"last_error", T}};
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
  static const Cols c{{"name", T},
                      {"protocol", T},
                      {"cluster", T},
                      {"server_database", T},
                      {"pool_mode", T},
                      {"pool_size", I},
                      {"min_pool_size", I},
                      {"routing", T},
                      {"paused", B},
                      {"disabled", B},
                      {"current_connections", I}};
  return c;
}

const Cols& cols_access() {
  static const Cols c{{"rule", I},    {"name", T}, {"protocol", T}, {"database", T}, {"user", T},
                      {"address", T}, {"tls", T},  {"action", T},   {"auth", T},     {"matches", I}};
  return c;
}

const Cols& cols_limits() {
  static const Cols c{{"limit", T}, {"name", T}, {"value", I}, {"current", I}, {"refused", I}, {"queued", I}};
  return c;
}

const Cols& cols_firewall() {
  static const Cols c{{"user", T}, {"fingerprint", T}, {"seen", I}};
  return c;
}
const Cols& cols_firewall_rules() {
  static const Cols c{{"rule", I}, {"name", T}, {"action", T}, {"matches", T}, {"hits", I}};
  return c;
}
const Cols& cols_rules() {
  static const Cols c{{"rule", I}, {"name", T},     {"matches", T}, {"actions", T},
                      {"tag", T},  {"continue", B}, {"hits", I}};
  return c;
}
const Cols& cols_splits() {
  static const Cols c{{"database", T}, {"protocol", T}, {"cluster", T}, {"weight", I}, {"clients", I}, {"placed", I}};
  return c;
}
const Cols& cols_zones() {
  static const Cols c{{"zone", T}, {"addresses", T}, {"members", T}};
  return c;
}

const ShowSpec kShows[] = {
    {"HELP", cols_help, 0},
    {"POOLS", cols_pools, 0},
    {"CLIENTS", cols_clients, 1},
    {"SERVERS", cols_servers, 2},
    {"BACKENDS", cols_backends, 1},
    {"STATS", cols_stats, 0},
    {"CACHE", cols_cache, 0},
    {"CONFIG", cols_config, 0},
    {"VERSION", cols_version, 0},
    {"DATABASES", cols_databases, 0},
    {"MEMORY", cols_memory, 0},
    {"ACCESS", cols_access, 1},
    {"LIMITS", cols_limits, 1},
    {"FIREWALL", cols_firewall, 1},
    {"FIREWALL_RULES", cols_firewall_rules, 1},
    {"RULES", cols_rules, 1},
    {"ZONES", cols_zones, 0},
    {"SPLITS", cols_splits, 0},
    {"QUERIES", cols_queries, 3},
    {"MIRRORS", cols_mirrors, 1},
    {"CACHE_STREAMS", cols_cache_streams, 0},
    {"CACHE_SHARED", cols_cache_shared, 0},
};
}  // namespace

const ShowSpec* find_show(std::string_view word) {
  auto same = [](std::string_view a, std::string_view b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
             return std::toupper(static_cast<unsigned char>(x)) == std::toupper(static_cast<unsigned char>(y));
           });
  };
  for (auto& s : kShows)
    if (same(word, s.name)) return &s;
  return nullptr;
}

namespace {

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
     "(replica answers older than a write to what they read), stream_lag_ms (invalidation = \"stream\": the largest "
     "lag of the change streams' last commits)"},
    {"SHOW CACHE_STREAMS",
     "[cache] invalidation = \"stream\": per cluster and database, whether its change stream is up, its slot, the "
     "position confirmed and the server's, the lag of the last commit, commits seen, tables invalidated, losses"},
    {"SHOW CACHE_SHARED",
     "[cache] shared: the shared store's address, whether it answers, lookups (hits, misses, stale: entries older "
     "than a write this instance's streams read), errors, answers stored and failed stores"},
    {"SHOW CONFIG", "settings: value, default, and whether SET may change it"},
    {"SHOW DATABASES", "configured databases: cluster, pool mode and size, paused, disabled"},
    {"SHOW MEMORY", "resident memory, the allocator's heap in use and free, and the result cache's share"},
    {"SHOW ACCESS",
     "[[access]] rules in order (the first that matches decides): what each matches, its action and auth, and "
     "how many logins it decided; a last row (rule 0) counts logins no rule matched"},
    {"SHOW LIMITS",
     "[limits]: each limit's value and how many connections or requests it refused or queued (name \"*\"), then "
     "every user, database and address holding connections, with the limit that applies and how many it holds"},
    {"SHOW FIREWALL",
     "the firewall's allow-list: each user's statement fingerprints and how often each was seen (learning mode "
     "adds to it; enforcing mode refuses what is not on it)"},
    {"SHOW FIREWALL_RULES",
     "[[firewall.rules]] in order: action, what each matches, and how many statements it decided"},
    {"SHOW RULES",
     "[[rules]] in order (the first match ends the search unless it says continue): what each matches, its "
     "actions, its tag and how many statements it matched"},
    {"SHOW ZONES", "[[zones]]: the client networks of each zone, and the cluster members tagged with it"},
    {"SHOW SPLITS",
     "[[pools]] split between clusters: per database and arm, its weight, the clients on it now and how many it "
     "was given since start"},
    {"SHOW QUERIES [LIKE 'p'] [ORDER BY col [ASC|DESC]] [LIMIT n]",
     "[digests]: per statement fingerprint, database and user: calls run on a server, errors, rows, time on the "
     "server (total, mean, p50, p99, ms), cache hits, where they ran, first and last seen (by total_time)"},
    {"RESET QUERIES", "forget the query digests"},
    {"SHOW MIRRORS",
     "[[rules]] mirror clusters: per fingerprint, copies sent, answers that matched the client's (row count and "
     "a digest of the rows), mismatched, failed on the mirror, dropped (queue full, answer not whole), and the "
     "copies waiting"},
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
    {"SET RULES_CLOCK = 'YYYY-MM-DD HH:MM:SS'",
     "pin the clock the [[rules]] time windows read (UTC; for testing a window); 'system' unpins it"},
    {"SHUTDOWN [WAIT]", "stop Sluice now, or after open transactions finish (as SIGTERM)"},
};

std::string num(std::uint64_t v) { return std::to_string(v); }
std::string num(std::int64_t v) { return std::to_string(v); }
std::string flt(double v) { return fmt::format("{:.6g}", v); }
std::string boolean(bool b) { return b ? "t" : "f"; }
// "tier=analytics,zone=eu-1"
std::string tag_text(const std::map<std::string, std::string>& tags) {
  std::string out;
  for (auto& [k, v] : tags) out += (out.empty() ? "" : ",") + k + "=" + v;
  return out;
}

SysClock::time_point to_system(std::chrono::steady_clock::time_point t) {
  return SysClock::now() - std::chrono::duration_cast<SysClock::duration>(std::chrono::steady_clock::now() - t);
}

// ---- SHOW rows -----------------------------------------------------------------------------

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
    std::uint64_t size = 0, min_size = 0, moved = 0;
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
    a.moved += u.moves;
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
                 num(a.min_size), boolean(ctx.controls.paused(db)), boolean(ctx.controls.disabled(db)), num(a.moved)});
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
      if (c->pinned) pinned = *c->pinned;
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
                 c->local_addr.str(),
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
                 pinned.empty() ? Cell(std::nullopt) : Cell(pinned),
                 boolean(c->parked.load()),
                 boolean(c->asleep.load())});
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
    case router::Role::Primary:
      return "primary";
    case router::Role::Replica:
      return "replica";
    default:
      return "unknown";
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
                   num(weight), tag_text(rt->tags(static_cast<int>(i)))});
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
  // invalidation = "stream": on the "*" row, the largest commit-to-arrival lag of the streams'
  // last commits (SHOW CACHE_STREAMS has each).
  std::int64_t lag_us = -1;
  for (auto& st : ctx.cache_streams.status()) lag_us = std::max(lag_us, st.last_lag_us);
  auto row = [&](const std::string& name, const cache::Stats& s, bool total) {
    double lookups = static_cast<double>(s.hits + s.misses);
    r.push_back({name, boolean(ctx.cache_enabled()), num(s.entries), num(s.bytes),
                 total ? Cell(num(std::uint64_t{ctx.cache->max_bytes()})) : std::nullopt, num(s.hits), num(s.misses),
                 flt(lookups > 0 ? static_cast<double>(s.hits) / lookups : 0), num(s.evictions), num(s.invalidations),
                 num(s.expirations), num(s.replica_hits), num(s.behind_client), num(s.refused_fills),
                 total && lag_us >= 0 ? Cell(flt(static_cast<double>(lag_us) / 1000.0)) : std::nullopt});
  };
  row("*", ctx.cache->stats(), true);
  for (auto& scope : ctx.cache->scopes())
    if (!scope.empty()) row(scope, ctx.cache->stats(scope), false);
  return r;
}

Rows rows_cache_streams(Context& ctx) {
  Rows r;
  auto text = [](const std::string& v) { return v.empty() ? Cell(std::nullopt) : Cell(v); };
  for (auto& s : ctx.cache_streams.status())
    r.push_back({s.cluster, s.database, boolean(s.up), text(s.slot), text(s.confirmed), text(s.server),
                 s.lag_bytes >= 0 ? Cell(num(static_cast<std::uint64_t>(s.lag_bytes))) : Cell(std::nullopt),
                 s.last_lag_us >= 0 ? Cell(flt(static_cast<double>(s.last_lag_us) / 1000.0)) : Cell(std::nullopt),
                 num(s.commits), num(s.tables_invalidated), num(s.losses), text(s.last_error)});
  return r;
}

Rows rows_cache_shared(Context& ctx) {
  auto s = ctx.shared_cache.status();
  if (s.address.empty()) return {};
  auto text = [](const std::string& v) { return v.empty() ? Cell(std::nullopt) : Cell(v); };
  return {{s.address, boolean(s.up), num(s.gets), num(s.hits), num(s.misses), num(s.stale), num(s.errors), num(s.sets),
           num(s.set_errors), text(s.last_error)}};
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
  auto listen = [](const config::Endpoint& first, const std::vector<config::Endpoint>& more) {
    std::string out = first.text();
    for (auto& e : more) out += "," + e.text();
    return out;
  };
  auto cidrs = [](const std::vector<config::Cidr>& v) {
    std::string out;
    for (auto& c : v) out += (out.empty() ? "" : ",") + c.text;
    return out;
  };
  fixed("postgres.listen", listen(cfg->postgres.listen, cfg->postgres.listen_more), defaults.postgres.listen.text());
  fixed("postgres.proxy_protocol_trusted", cidrs(cfg->postgres.proxy.trusted), "");
  fixed("postgres.proxy_protocol_only", cfg->postgres.proxy.only ? "true" : "false", "false");
  fixed("postgres.server_reset_query", cfg->postgres.server_reset_query, defaults.postgres.server_reset_query);
  fixed("postgres.max_prepared_statements", std::to_string(cfg->postgres.max_prepared_statements), "256");
  fixed("mysql.enabled", cfg->mysql.enabled ? "true" : "false", "false");
  fixed("mysql.listen", listen(cfg->mysql.listen, cfg->mysql.listen_more), defaults.mysql.listen.text());
  fixed("mysql.proxy_protocol_trusted", cidrs(cfg->mysql.proxy.trusted), "");
  fixed("mysql.proxy_protocol_only", cfg->mysql.proxy.only ? "true" : "false", "false");
  fixed("mysql.default_auth_plugin", cfg->mysql.default_auth_plugin, defaults.mysql.default_auth_plugin);
  fixed("http.enabled", cfg->http.enabled ? "true" : "false", "false");
  fixed("http.listen", cfg->http.listen.text(), defaults.http.listen.text());
  fixed("cache.mode", cfg->cache.all ? "all" : "rules", "rules");
  fixed("cache.max_entry_bytes", std::to_string(cfg->cache.max_entry_bytes),
        std::to_string(defaults.cache.max_entry_bytes));
  return r;
}

Rows rows_databases(Context& ctx) {
  Rows r;
  auto cfg = ctx.snapshot()->config;
  std::map<std::string, std::uint64_t> conns;
  for (auto& c : ctx.client_table.all()) {
    std::lock_guard lock(c->mu);
    ++conns[std::string(c->protocol) + "/" + c->pool.str()];
  }
  for (auto& p : cfg->pools) {
    auto& cl = cfg->clusters.at(p.cluster);
    auto routing = p.routing ? *p.routing : cl.routing;
    std::string cluster = p.cluster;
    if (!p.split.empty()) {
      cluster = "split:";
      for (auto& [arm, w] : p.split) cluster += fmt::format("{}{}={}", cluster.size() > 6 ? "," : "", arm, w);
    }
    r.push_back({p.database, config::to_string(p.protocol), cluster,
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
  for (const auto& m : process_memory()) row(m.name, m.bytes, m.what);
  if (ctx.cache) row("cache", ctx.cache->stats().bytes, "result cache entries as accounted against cache.max_bytes");
  return r;
}

Rows rows_access(Context& ctx) {
  Rows r;
  auto snap = ctx.snapshot();
  for (auto& row : snap->access->rows())
    r.push_back({std::to_string(row.number), row.name, row.protocol, row.database, row.user, row.address, row.tls,
                 row.action, row.auth.empty() ? Cell() : Cell(row.auth), std::to_string(row.matches)});
  if (!snap->access->empty())
    r.push_back({"0", "(no rule matched)", "*", "*", "*", "*", "any", "reject", Cell(),
                 std::to_string(snap->access->unmatched())});
  return r;
}

Rows rows_limits(Context& ctx) {
  Rows r;
  auto snap = ctx.snapshot();
  const auto& l = snap->config->limits;
  const std::uint32_t values[access::kLimits] = {l.max_connections_per_user,    l.max_connections_per_database,
                                                 l.max_connections_per_address, l.connections_per_second_per_address,
                                                 l.queries_per_second_per_user, l.queries_per_second_per_address};
  for (std::size_t i = 0; i < access::kLimits; ++i) {
    auto lim = static_cast<access::Limit>(i);
    bool rate = lim == access::Limit::QueryRateUser || lim == access::Limit::QueryRateAddress;
    r.push_back({access::to_string(lim), "*", std::to_string(values[i]), Cell(),
                 std::to_string(ctx.limits.refused[i].load()),
                 rate ? Cell(std::to_string(ctx.limits.queued[i].load())) : Cell()});
  }
  for (auto& row : ctx.limits.connections.rows()) {
    std::uint32_t limit = row.scope == access::Scope::User       ? l.max_connections_per_user
                          : row.scope == access::Scope::Database ? l.max_connections_per_database
                                                                 : l.max_connections_per_address;
    access::Limit which = row.scope == access::Scope::User       ? access::Limit::ConnectionsPerUser
                          : row.scope == access::Scope::Database ? access::Limit::ConnectionsPerDatabase
                                                                 : access::Limit::ConnectionsPerAddress;
    if (row.scope == access::Scope::User)
      if (auto* u = snap->config->find_user(row.key); u && u->max_connections) limit = *u->max_connections;
    r.push_back(
        {access::to_string(which), row.key, std::to_string(limit), std::to_string(row.connections), Cell(), Cell()});
  }
  return r;
}

Rows rows_rules(Context& ctx) {
  Rows r;
  for (auto& row : ctx.snapshot()->rules->rows())
    r.push_back({std::to_string(row.number), row.name, row.what, row.actions, row.tag.empty() ? Cell() : Cell(row.tag),
                 boolean(row.next), std::to_string(row.hits)});
  return r;
}

Rows rows_splits(Context& ctx) {
  Rows r;
  auto cfg = ctx.snapshot()->config;
  for (auto& row : ctx.splits.rows()) {
    std::uint64_t weight = 0;
    for (auto& p : cfg->pools)
      if (p.database == row.database && config::to_string(p.protocol) == row.protocol)
        for (auto& [arm, w] : p.split)
          if (arm == row.cluster) weight = w;
    r.push_back({row.database, row.protocol, row.cluster, num(weight), num(row.current), num(row.placed)});
  }
  return r;
}

Rows rows_zones(Context& ctx) {
  Rows r;
  for (auto& z : ctx.snapshot()->config->zones) {
    std::string addrs, members;
    for (auto& c : z.addresses) addrs += (addrs.empty() ? "" : ",") + c.text;
    for (auto& [name, c] : ctx.snapshot()->config->clusters)
      for (std::size_t i = 0; i < c.member_tags.size(); ++i)
        if (auto it = c.member_tags[i].find("zone"); it != c.member_tags[i].end() && it->second == z.name)
          members += (members.empty() ? "" : ",") + name + "/" + (i == 0 ? c.primary : c.replicas[i - 1]).text();
    r.push_back({z.name, addrs, members});
  }
  return r;
}

Rows rows_firewall(Context& ctx) {
  Rows r;
  for (auto& row : ctx.firewall_list.rows()) r.push_back({row.user, row.fingerprint, std::to_string(row.seen)});
  return r;
}

Rows rows_firewall_rules(Context& ctx) {
  Rows r;
  for (auto& row : ctx.snapshot()->firewall->rows())
    r.push_back({std::to_string(row.number), row.name, row.action, row.what, std::to_string(row.hits)});
  return r;
}

}  // namespace

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
  if (n == "ACCESS") return rows_access(ctx);
  if (n == "LIMITS") return rows_limits(ctx);
  if (n == "FIREWALL") return rows_firewall(ctx);
  if (n == "FIREWALL_RULES") return rows_firewall_rules(ctx);
  if (n == "RULES") return rows_rules(ctx);
  if (n == "ZONES") return rows_zones(ctx);
  if (n == "SPLITS") return rows_splits(ctx);
  if (n == "QUERIES") return rows_queries(ctx, {}, std::nullopt);
  if (n == "MIRRORS") return rows_mirrors(ctx);
  if (n == "CACHE_STREAMS") return rows_cache_streams(ctx);
  if (n == "CACHE_SHARED") return rows_cache_shared(ctx);
  return {{fmt::format("Sluice {}", SLUICE_VERSION)}};
}

}  // namespace sluice::admin
