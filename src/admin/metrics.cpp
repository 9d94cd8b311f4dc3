// /metrics: names follow Prometheus conventions (sluice_..._total counters, _seconds, _bytes).
#include "src/admin/metrics.hpp"

#include "src/admin/queries.hpp"

#include <fmt/format.h>

#include <map>

#include "sluice/version.hpp"
#include "src/state/context.hpp"

namespace sluice::admin {

namespace {

std::string escape(std::string_view v) {
  std::string o;
  for (char c : v) {
    if (c == '\\' || c == '"') o.push_back('\\');
    if (c == '\n') {
      o += "\\n";
      continue;
    }
    o.push_back(c);
  }
  return o;
}

class Writer {
 public:
  void family(std::string_view name, std::string_view type, std::string_view help) {
    out_ += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
  }
  void sample(std::string_view name, const std::vector<std::pair<std::string, std::string>>& labels, double v) {
    out_ += name;
    if (!labels.empty()) {
      out_ += '{';
      bool first = true;
      for (auto& [k, val] : labels) {
        if (!first) out_ += ',';
        first = false;
        out_ += fmt::format("{}=\"{}\"", k, escape(val));
      }
      out_ += '}';
    }
    out_ += fmt::format(" {}\n", v);
  }
  void histogram(std::string_view name, const std::vector<std::pair<std::string, std::string>>& labels,
                 const observe::Histogram& h) {
    std::uint64_t cum = 0;
    auto with = labels;
    with.emplace_back("le", "");
    for (std::size_t i = 0; i < observe::Histogram::kBounds.size(); ++i) {
      cum += h.buckets[i].load(std::memory_order_relaxed);
      with.back().second = fmt::format("{}", observe::Histogram::kBounds[i]);
      sample(fmt::format("{}_bucket", name), with, static_cast<double>(cum));
    }
    cum += h.buckets.back().load(std::memory_order_relaxed);
    with.back().second = "+Inf";
    sample(fmt::format("{}_bucket", name), with, static_cast<double>(cum));
    sample(fmt::format("{}_sum", name), labels, static_cast<double>(h.sum_us.load()) / 1e6);
    sample(fmt::format("{}_count", name), labels, static_cast<double>(cum));
  }
  std::string take() { return std::move(out_); }

 private:
  std::string out_;
};

}  // namespace

std::string prometheus(state::Context& ctx) {
  Writer w;
  w.family("sluice_info", "gauge", "Sluice version (value is always 1).");
  w.sample("sluice_info", {{"version", SLUICE_VERSION}}, 1);
  w.family("sluice_start_time_seconds", "gauge", "Start time of the process since the Unix epoch.");
  w.sample("sluice_start_time_seconds", {},
           static_cast<double>(std::chrono::duration_cast<std::chrono::seconds>(ctx.started.time_since_epoch()).count()));

  // Clients by protocol, pool and state.
  std::map<std::tuple<std::string, std::string, std::string>, std::uint64_t> clients;
  for (auto& c : ctx.client_table.all()) {
    std::string pool;
    {
      std::lock_guard lock(c->mu);
      pool = c->pool;
    }
    ++clients[{c->protocol, pool, observe::to_string(static_cast<observe::ClientState>(c->state.load()))}];
  }
  w.family("sluice_client_connections", "gauge", "Client connections by protocol, database and state.");
  for (auto& [k, n] : clients) {
    auto& [proto, pool, state] = k;
    w.sample("sluice_client_connections", {{"protocol", proto}, {"database", pool}, {"state", state}}, static_cast<double>(n));
  }

  // Server connections by pool (database, user, server) and state.
  auto pools = ctx.pools.all();
  w.family("sluice_server_connections", "gauge", "Server connections by database, user, server and state.");
  for (auto& p : pools) {
    auto u = p->usage();
    auto s = p->settings();
    std::vector<std::pair<std::string, std::string>> l{{"protocol", config::to_string(s.protocol)},
                                                       {"database", p->config_database()},
                                                       {"user", p->user()},
                                                       {"server", p->endpoint().text()}};
    for (auto [state, n] : {std::pair{"active", u.active}, {"idle", u.idle}, {"login", u.connecting}}) {
      auto ls = l;
      ls.emplace_back("state", state);
      w.sample("sluice_server_connections", ls, static_cast<double>(n));
    }
  }
  w.family("sluice_pool_waiting_clients", "gauge", "Clients waiting for a server connection.");
  for (auto& p : pools)
    w.sample("sluice_pool_waiting_clients",
             {{"database", p->config_database()}, {"user", p->user()}, {"server", p->endpoint().text()}},
             static_cast<double>(p->usage().waiting));
  w.family("sluice_server_connect_failures_total", "counter",
           "New server connections that failed (refused, timed out, login rejected).");
  for (auto& p : pools)
    w.sample("sluice_server_connect_failures_total",
             {{"database", p->config_database()}, {"user", p->user()}, {"server", p->endpoint().text()}},
             static_cast<double>(p->usage().connect_failures));
  w.family("sluice_server_moves_total", "counter",
           "Leases that moved a server connection to the client's worker thread.");
  for (auto& p : pools)
    w.sample("sluice_server_moves_total",
             {{"database", p->config_database()}, {"user", p->user()}, {"server", p->endpoint().text()}},
             static_cast<double>(p->usage().moves));
  w.family("sluice_login_failures_total", "counter",
           "Client logins refused: wrong password, unknown user, certificate.");
  w.sample("sluice_login_failures_total", {}, static_cast<double>(ctx.login_throttle.failures()));
  w.family("sluice_pool_size", "gauge", "Configured pool_size.");
  for (auto& p : pools)
    w.sample("sluice_pool_size",
             {{"database", p->config_database()}, {"user", p->user()}, {"server", p->endpoint().text()}},
             static_cast<double>(p->settings().pool_size));

  // Traffic per database.
  auto stats = ctx.stats.all();
  auto counter = [&](const char* name, const char* help, auto get) {
    w.family(name, "counter", help);
    for (auto& s : stats) w.sample(name, {{"protocol", s->protocol}, {"database", s->database}}, static_cast<double>(get(*s)));
  };
  counter("sluice_queries_total", "Queries (statements or extended-protocol batches) completed.",
          [](auto& s) { return s.queries.load(); });
  counter("sluice_transactions_total", "Transactions completed (autocommit statements count as one).",
          [](auto& s) { return s.xacts.load(); });
  counter("sluice_received_bytes_total", "Bytes received from clients.", [](auto& s) { return s.bytes_in.load(); });
  counter("sluice_sent_bytes_total", "Bytes sent to clients.", [](auto& s) { return s.bytes_out.load(); });
  w.family("sluice_query_duration_seconds", "histogram", "Query time, first byte in to last byte out.");
  for (auto& s : stats) w.histogram("sluice_query_duration_seconds", {{"protocol", s->protocol}, {"database", s->database}}, s->query_seconds);
  w.family("sluice_transaction_duration_seconds", "histogram", "Transaction time.");
  for (auto& s : stats)
    w.histogram("sluice_transaction_duration_seconds", {{"protocol", s->protocol}, {"database", s->database}}, s->xact_seconds);
  w.family("sluice_wait_duration_seconds", "histogram", "Time clients waited for a server connection.");
  for (auto& s : stats) w.histogram("sluice_wait_duration_seconds", {{"protocol", s->protocol}, {"database", s->database}}, s->wait_seconds);

  // Cache.
  if (ctx.cache) {
    auto c = ctx.cache->stats();
    w.family("sluice_cache_enabled", "gauge", "Whether the result cache is on.");
    w.sample("sluice_cache_enabled", {}, ctx.cache_enabled() ? 1 : 0);
    w.family("sluice_cache_max_bytes", "gauge", "Cache memory budget.");
    w.sample("sluice_cache_max_bytes", {}, static_cast<double>(ctx.cache->max_bytes()));
    w.family("sluice_cache_bytes", "gauge", "Memory held by cached answers.");
    w.sample("sluice_cache_bytes", {}, static_cast<double>(c.bytes));
    w.family("sluice_cache_entries", "gauge", "Cached answers.");
    w.sample("sluice_cache_entries", {}, static_cast<double>(c.entries));
    w.family("sluice_cache_hits_total", "counter", "Reads answered from the cache, by where the answer came from.");
    w.sample("sluice_cache_hits_total", {{"source", "primary"}}, static_cast<double>(c.hits - c.replica_hits));
    w.sample("sluice_cache_hits_total", {{"source", "replica"}}, static_cast<double>(c.replica_hits));
    for (auto [name, v, help] :
         {std::tuple{"sluice_cache_misses_total", c.misses, "Cacheable reads sent to a server."},
          {"sluice_cache_behind_client_total", c.behind_client,
           "Misses on a replica's answer older than the asking client's own write."},
          {"sluice_cache_refused_fills_total", c.refused_fills,
           "Replica answers not kept: older than a write through Sluice to what they read."},
          {"sluice_cache_evictions_total", c.evictions, "Answers evicted for room."},
          {"sluice_cache_invalidations_total", c.invalidations, "Answers dropped by writes or purges."},
          {"sluice_cache_expirations_total", c.expirations, "Answers past their TTL."}}) {
      w.family(name, "counter", help);
      w.sample(name, {}, static_cast<double>(v));
    }
    // [cache] invalidation = "stream": each follower of a primary's change stream.
    auto streams = ctx.cache_streams.status();
    if (!streams.empty()) {
      auto labels = [](const state::StreamStatus& st) {
        return std::vector<std::pair<std::string, std::string>>{{"cluster", st.cluster}, {"database", st.database}};
      };
      w.family("sluice_cache_stream_up", "gauge", "Whether the change stream of a cluster (and database) is followed.");
      for (auto& st : streams) w.sample("sluice_cache_stream_up", labels(st), st.up ? 1 : 0);
      w.family("sluice_cache_stream_lag_bytes", "gauge", "WAL the server has that the stream has not confirmed.");
      for (auto& st : streams)
        if (st.lag_bytes >= 0) w.sample("sluice_cache_stream_lag_bytes", labels(st), static_cast<double>(st.lag_bytes));
      w.family("sluice_cache_stream_commits_total", "counter", "Committed transactions the stream delivered.");
      for (auto& st : streams)
        w.sample("sluice_cache_stream_commits_total", labels(st), static_cast<double>(st.commits));
      w.family("sluice_cache_stream_losses_total", "counter", "Times the stream was lost (each emptied the cache).");
      for (auto& st : streams) w.sample("sluice_cache_stream_losses_total", labels(st), static_cast<double>(st.losses));
    }
    // [cache] shared: the second-level store.
    if (auto sh = ctx.shared_cache.status(); !sh.address.empty()) {
      w.family("sluice_cache_shared_up", "gauge", "Whether the shared store answered its last command.");
      w.sample("sluice_cache_shared_up", {}, sh.up ? 1 : 0);
      w.family("sluice_cache_shared_lookups_total", "counter",
               "Local misses looked up in the shared store, by result (stale: older than a write the streams read).");
      for (auto [result, v] : {std::pair<const char*, std::uint64_t>{"hit", sh.hits},
                               {"miss", sh.misses},
                               {"stale", sh.stale},
                               {"error", sh.errors}})
        w.sample("sluice_cache_shared_lookups_total", {{"result", result}}, static_cast<double>(v));
      w.family("sluice_cache_shared_stores_total", "counter", "Answers offered to the shared store, by result.");
      w.sample("sluice_cache_shared_stores_total", {{"result", "ok"}}, static_cast<double>(sh.sets));
      w.sample("sluice_cache_shared_stores_total", {{"result", "error"}}, static_cast<double>(sh.set_errors));
    }
  }

  // Backends.
  struct B {
    std::vector<std::pair<std::string, std::string>> labels;
    bool up, primary, drained;
    double lag;
    std::uint64_t reads, writes;
    std::int64_t in_flight;
  };
  std::vector<B> backends;
  for (auto& rt : ctx.router.all()) {
    if (!rt) continue;
    auto v = rt->view();
    for (std::size_t i = 0; i < v->members.size(); ++i) {
      auto& m = v->members[i];
      auto& cnt = rt->counters(static_cast<int>(i));
      backends.push_back({{{"cluster", rt->config().name}, {"member", m.endpoint.text()}},
                          m.up,
                          static_cast<int>(i) == v->primary,
                          ctx.router.drains().drained(m.endpoint),
                          static_cast<double>(m.lag.count()) / 1000.0,
                          cnt.reads.load(),
                          cnt.writes.load(),
                          cnt.outstanding.load()});
    }
  }
  w.family("sluice_backend_up", "gauge", "1 when the member passed its last health check.");
  for (auto& b : backends) w.sample("sluice_backend_up", b.labels, b.up ? 1 : 0);
  w.family("sluice_backend_primary", "gauge", "1 for the member currently acting as primary.");
  for (auto& b : backends) w.sample("sluice_backend_primary", b.labels, b.primary ? 1 : 0);
  w.family("sluice_backend_drained", "gauge", "1 when an operator drained the member.");
  for (auto& b : backends) w.sample("sluice_backend_drained", b.labels, b.drained ? 1 : 0);
  w.family("sluice_backend_lag_seconds", "gauge", "Replication lag of the member.");
  for (auto& b : backends) w.sample("sluice_backend_lag_seconds", b.labels, b.lag);
  w.family("sluice_backend_in_flight", "gauge", "Statement batches running on the member now.");
  for (auto& b : backends) w.sample("sluice_backend_in_flight", b.labels, static_cast<double>(b.in_flight));
  w.family("sluice_routed_reads_total", "counter", "Reads routed to the member.");
  for (auto& b : backends) w.sample("sluice_routed_reads_total", b.labels, static_cast<double>(b.reads));
  w.family("sluice_routed_writes_total", "counter", "Writes routed to the member.");
  for (auto& b : backends) w.sample("sluice_routed_writes_total", b.labels, static_cast<double>(b.writes));

  // [limits]
  w.family("sluice_limit_refusals_total", "counter",
           "Connections or requests a [limits] limit refused (limit: its key in [limits]).");
  for (std::size_t i = 0; i < access::kLimits; ++i)
    w.sample("sluice_limit_refusals_total", {{"limit", access::to_string(static_cast<access::Limit>(i))}},
             static_cast<double>(ctx.limits.refused[i].load()));
  w.family("sluice_limit_queued_total", "counter",
           "Requests a [limits] rate held back (rate_limit_action = \"queue\") before letting them go.");
  for (auto l : {access::Limit::QueryRateUser, access::Limit::QueryRateAddress})
    w.sample("sluice_limit_queued_total", {{"limit", access::to_string(l)}},
             static_cast<double>(ctx.limits.queued[static_cast<std::size_t>(l)].load()));

  auto snap = ctx.snapshot();
  // [firewall]
  w.family("sluice_firewall_denied_total", "counter", "Statements the firewall refused (rules or the allow-list).");
  w.sample("sluice_firewall_denied_total", {}, static_cast<double>(ctx.firewall_list.denied()));
  if (!snap->firewall->empty()) {
    w.family("sluice_firewall_rule_hits_total", "counter", "Statements a [[firewall.rules]] rule decided.");
    for (auto& r : snap->firewall->rows())
      w.sample("sluice_firewall_rule_hits_total",
               {{"rule", std::to_string(r.number)}, {"name", r.name}, {"action", r.action}},
               static_cast<double>(r.hits));
  }

  // [[pools]] splits: clients per arm.
  if (auto splits = ctx.splits.rows(); !splits.empty()) {
    w.family("sluice_split_clients", "gauge", "Clients on each arm (cluster) of a [[pools]] split.");
    for (auto& s : splits)
      w.sample("sluice_split_clients", {{"protocol", s.protocol}, {"database", s.database}, {"cluster", s.cluster}},
               static_cast<double>(s.current));
    w.family("sluice_split_placed_total", "counter", "Clients placed on each arm of a [[pools]] split since start.");
    for (auto& s : splits)
      w.sample("sluice_split_placed_total",
               {{"protocol", s.protocol}, {"database", s.database}, {"cluster", s.cluster}},
               static_cast<double>(s.placed));
  }

  // [digests]: the most costly statement shapes.
  if (auto n = snap->config->digests.metrics_top; ctx.digests_on() && n > 0) {
    auto top = top_digests(ctx, n);
    w.family(
        "sluice_query_calls_total", "counter",
        "Statements of one shape (fingerprint) run on a server, for the [digests] metrics_top with the most time.");
    for (auto& d : top)
      w.sample(
          "sluice_query_calls_total",
          {{"protocol", d->protocol}, {"database", d->database}, {"user", d->user}, {"fingerprint", d->fingerprint}},
          static_cast<double>(d->calls.load()));
    w.family("sluice_query_seconds_total", "counter", "Time on the server of the statements of one shape.");
    for (auto& d : top)
      w.sample(
          "sluice_query_seconds_total",
          {{"protocol", d->protocol}, {"database", d->database}, {"user", d->user}, {"fingerprint", d->fingerprint}},
          static_cast<double>(d->total_us.load()) / 1e6);
  }

  // [[rules]] mirrors: copies and how they compared, per mirror cluster.
  if (auto mirrors = ctx.mirrors.all(); !mirrors.empty()) {
    w.family("sluice_mirror_copies_total", "counter",
             "Statement copies a [[rules]] mirror got, by outcome: matched, mismatched, failed, dropped.");
    for (auto& m : mirrors) {
      std::uint64_t matched = 0, mismatched = 0, failed = 0, dropped = 0;
      for (auto& r : m->rows())
        matched += r.matched, mismatched += r.mismatched, failed += r.failed, dropped += r.dropped;
      for (auto [outcome, n] : {std::pair{"matched", matched}, std::pair{"mismatched", mismatched},
                                std::pair{"failed", failed}, std::pair{"dropped", dropped}})
        w.sample("sluice_mirror_copies_total", {{"cluster", m->cluster()}, {"outcome", outcome}},
                 static_cast<double>(n));
    }
  }

  // [[rules]]: statements each rule matched, labelled with its tag.
  if (!snap->rules->empty()) {
    w.family("sluice_rule_hits_total", "counter",
             "Statements a [[rules]] rule matched, by rule and its tag. Kept across reloads for rules that did not "
             "change.");
    for (auto& r : snap->rules->rows())
      w.sample("sluice_rule_hits_total", {{"rule", std::to_string(r.number)}, {"name", r.name}, {"tag", r.tag}},
               static_cast<double>(r.hits));
  }

  // [[access]]: logins each rule decided (rule "0": none matched, so refused).
  if (!snap->access->empty()) {
    w.family("sluice_access_rule_matches_total", "counter",
             "Logins an [[access]] rule decided (rule 0: no rule matched, refused). Kept across reloads for rules "
             "that did not change.");
    for (auto& r : snap->access->rows())
      w.sample("sluice_access_rule_matches_total",
               {{"rule", std::to_string(r.number)}, {"name", r.name}, {"action", r.action}},
               static_cast<double>(r.matches));
    w.sample("sluice_access_rule_matches_total", {{"rule", "0"}, {"name", "(no rule matched)"}, {"action", "reject"}},
             static_cast<double>(snap->access->unmatched()));
  }
  return w.take();
}

}  // namespace sluice::admin
