// Cluster health, roles, positions and member choice (see header).
#include "src/router/cluster.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <random>

#include "protocols/mysql/codec.hpp"
#include "protocols/postgres/codec.hpp"
#include "src/observe/log.hpp"
#include "src/pool/mysql_io.hpp"
#include "src/pool/pg_exchange.hpp"
#include "src/pool/server_conn.hpp"

namespace sluice::router {

namespace asio = boost::asio;
using asio::awaitable;
using asio::use_awaitable;
using boost::system::error_code;

namespace {

// One row of a simple query on a PostgreSQL connection; NULL is "". nullopt on error.
awaitable<std::optional<std::vector<std::string>>> pg_row(pool::ServerConn& c, const std::string& sql) {
  std::string out;
  pg::query(out, sql);
  error_code ec;
  auto io = c.channel();
  co_await io.write(asio::buffer(out), ec);
  std::optional<std::vector<std::string>> row, none;
  if (ec) co_return none;
  bool failed = false;
  auto each = [&](const pg::Frame& f) {
    if (f.type == pg::be::ErrorResponse) failed = true;
    if (f.type == pg::be::DataRow && !row) {
      pg::Reader r(f.body);
      int cols = r.i16();
      std::vector<std::string> values;
      for (int i = 0; i < cols && r.ok(); ++i) {
        int len = r.i32();
        values.emplace_back(len < 0 ? std::string() : std::string(pg::as_sv(r.bytes(static_cast<std::size_t>(len)))));
      }
      if (r.ok()) row = std::move(values);
    }
    return true;
  };
  bool read = co_await pool::read_until_ready(io, 1, each);
  if (!read || failed) co_return none;
  co_return row;
}

awaitable<std::optional<std::vector<std::string>>> my_row(pool::ServerConn& c, const std::string& sql) {
  pool::MysqlIo io(c.sock, 1 << 20);
  io.set_tls(c.tls.get());
  std::string cmd;
  my::build_command(cmd, my::com::QUERY, sql);
  std::optional<std::vector<std::string>> none;
  if (auto awaited = co_await io.write(cmd, 0); !awaited) co_return none;
  co_return co_await pool::read_one_row(io, (c.capabilities & my::cap::DEPRECATE_EOF) != 0);
}

struct Probe {
  bool ok = false;
  Role role = Role::Unknown;
  Position position;
  std::string error;  // why the check failed
};

}  // namespace

bool DrainSet::drained(const config::Endpoint& e) const {
  if (!any()) return false;
  auto text = e.text();
  std::lock_guard lock(mu_);
  return std::find(members_.begin(), members_.end(), text) != members_.end();
}

void DrainSet::set(const std::string& member, bool drained) {
  std::lock_guard lock(mu_);
  std::erase(members_, member);
  if (drained) members_.push_back(member);
  any_.store(!members_.empty());
}

std::vector<std::string> DrainSet::list() const {
  std::lock_guard lock(mu_);
  return members_;
}

ClusterRuntime::ClusterRuntime(const config::Cluster& cfg, std::shared_ptr<const pool::Credentials> creds,
                               std::string database, std::shared_ptr<const DrainSet> drains)
    : cfg_(cfg), creds_(std::move(creds)), database_(std::move(database)), drains_(std::move(drains)) {
  auto v = std::make_shared<ClusterView>();
  std::vector<config::Endpoint> eps{cfg.primary};
  eps.insert(eps.end(), cfg.replicas.begin(), cfg.replicas.end());
  for (std::size_t i = 0; i < eps.size(); ++i) {
    MemberView m;
    m.endpoint = eps[i];
    // Until the first check: the configured primary takes everything.
    m.up = i == 0;
    m.role = i == 0 ? Role::Primary : Role::Replica;
    v->members.push_back(m);
    counters_.push_back(std::make_unique<MemberCounters>());
  }
  v->primary = 0;
  good_.assign(eps.size(), 0);
  forced_down_.assign(eps.size(), false);
  view_ = v;
}

void ClusterRuntime::publish(std::shared_ptr<ClusterView> v) { std::atomic_store(&view_, std::shared_ptr<const ClusterView>(std::move(v))); }

int ClusterRuntime::pick_write() const { return view()->primary; }

const std::map<std::string, std::string>& ClusterRuntime::tags(int member) const {
  static const std::map<std::string, std::string> none;
  auto i = static_cast<std::size_t>(member);
  return i < cfg_.member_tags.size() ? cfg_.member_tags[i] : none;
}

int ClusterRuntime::pick_read(const Position& token, const ReadPreference& pref) {
  auto v = view();
  auto weight = [&](int i) { return static_cast<std::size_t>(i) < cfg_.weights.size() ? cfg_.weights[static_cast<std::size_t>(i)] : 1u; };
  std::vector<int> candidates;
  for (int i = 0; i < static_cast<int>(v->members.size()); ++i) {
    const auto& m = v->members[static_cast<std::size_t>(i)];
    if (!m.up || weight(i) == 0) continue;
    if (drains_ && drains_->drained(m.endpoint)) continue;
    if (m.role == Role::Replica) {
      if (m.lag > cfg_.max_replica_lag) continue;
      if (!token.empty() && !m.position.covers(token)) continue;
      candidates.push_back(i);
    } else if (m.role == Role::Primary && i == v->primary && cfg_.reads_on_primary == config::ReadsOnPrimary::Always) {
      candidates.push_back(i);
    }
  }
  if (candidates.empty()) {
    if (cfg_.reads_on_primary == config::ReadsOnPrimary::Never) return -1;
    return v->primary;
  }
  if (pref.any() && candidates.size() > 1) [[unlikely]] {
    auto keep_if = [&](auto&& has) {  // narrows to the members that have it, if any do
      std::vector<int> kept;
      for (int c : candidates)
        if (has(tags(c))) kept.push_back(c);
      if (!kept.empty()) candidates = std::move(kept);
    };
    if (pref.tags)
      keep_if([&](const std::map<std::string, std::string>& t) {
        for (auto& [k, want] : *pref.tags)
          if (auto it = t.find(k); it == t.end() || it->second != want) return false;
        return true;
      });
    if (!pref.zone.empty())
      keep_if([&](const std::map<std::string, std::string>& t) {
        auto it = t.find("zone");
        return it != t.end() && it->second == pref.zone;
      });
  }
  if (candidates.size() == 1) return candidates[0];
  switch (cfg_.balance) {
    case config::Balance::LeastOutstanding: {
      int best = candidates[0];
      double best_load = 1e300;
      for (int c : candidates) {
        double load = (static_cast<double>(counters_[static_cast<std::size_t>(c)]->outstanding.load()) + 1) /
                      weight(c);
        if (load < best_load) best = c, best_load = load;
      }
      return best;
    }
    case config::Balance::RoundRobin:
    case config::Balance::Random: {
      std::uint64_t total = 0;
      for (int c : candidates) total += weight(c);
      std::uint64_t k;
      if (cfg_.balance == config::Balance::RoundRobin) {
        k = rr_.fetch_add(1) % total;
      } else {
        thread_local std::minstd_rand rng{std::random_device{}()};
        k = rng() % total;
      }
      for (int c : candidates) {
        auto w = weight(c);
        if (k < w) return c;
        k -= w;
      }
      return candidates.back();
    }
  }
  return candidates[0];
}

ClusterRuntime::Decision ClusterRuntime::route(bool read, const Position& token, bool may_verify,
                                               const ReadPreference& pref) {
  Decision d;
  int target = pick_write();
  int primary = view()->primary;
  if (read) {
    static const Position none;
    bool ryw = cfg_.consistency == config::Consistency::ReadYourWrites;
    int r = pick_read(ryw ? token : none, pref);
    // No replica is known to have the client's last write: ask one that may have caught up
    // since the last check, unless the write's position is unknown (no replica can show it).
    if (ryw && !token.empty() && !token.marker() && (r < 0 || r == primary) && may_verify) {
      int any = pick_read(none, pref);  // a healthy replica that may have caught up since the last check
      if (any >= 0 && any != primary) {
        r = any;
        d.verify = true;
      }
    }
    if (r >= 0) target = r;
  }
  if (target < 0) target = 0;
  d.member = target;
  d.replica = read && target != primary;
  auto& c = counters(target);
  (read ? c.reads : c.writes).fetch_add(1, std::memory_order_relaxed);
  return d;
}

void ClusterRuntime::report_failure(int member) {
  if (member < 0) return;
  std::lock_guard lock(mu_);
  auto i = static_cast<std::size_t>(member);
  if (i >= good_.size()) return;
  good_[i] = 0;
  forced_down_[i] = true;
  auto v = std::make_shared<ClusterView>(*view());
  if (v->members[i].up) log::warn("cluster {}: {} unreachable; no reads go there until it passes {} checks", cfg_.name,
                                  v->members[i].endpoint.text(), cfg_.rise);
  v->members[i].up = false;
  publish(std::move(v));
}

void ClusterRuntime::start(asio::any_io_executor ex, std::shared_ptr<std::atomic<bool>> stop) {
  // The loop keeps its runtime alive (a reload may drop the router's reference first).
  asio::co_spawn(ex, [self = shared_from_this(), ex, stop]() { return self->health_loop(ex, stop); }, asio::detached);
}

awaitable<void> ClusterRuntime::health_loop(asio::any_io_executor ex, std::shared_ptr<std::atomic<bool>> stop) {
  const bool pg = cfg_.protocol == config::Protocol::Postgres;
  std::vector<std::shared_ptr<pool::ServerConn>> conns(view()->members.size());
  LagClock lag_clock(std::max<std::chrono::milliseconds>(2 * cfg_.max_replica_lag, std::chrono::minutes(1)));
  asio::steady_timer timer(ex);
  bool mysql_positions = true;  // MariaDB GTID variables; MySQL 8 has other ones (roles only)
  for (;;) {
    if (stop->load()) co_return;
    auto started = std::chrono::steady_clock::now();
    auto cur = view();
    std::vector<Probe> probes(cur->members.size());
    for (std::size_t i = 0; i < cur->members.size(); ++i) {
      auto ep = cur->members[i].endpoint;
      if (!conns[i]) {
        pool::ConnectResult r;
        if (pg)
          r = co_await pool::connect_server(ex, ep, creds_, database_, cfg_.health_check_period * 2, 0, server_tls());
        else
          r = co_await pool::connect_mysql(ex, ep, creds_, "", cfg_.health_check_period * 2, 0, 0, 0, server_tls());
        if (!r.conn) {
          probes[i].error = r.error.fields.message;
          log::debug("cluster {}: health check cannot connect to {}: {}", cfg_.name, ep.text(), r.error.fields.message);
          continue;
        }
        conns[i] = std::move(r.conn);
      }
      auto& c = *conns[i];
      std::optional<std::vector<std::string>> row;
      {
        pool::Deadline deadline(c.sock, cfg_.health_check_period * 2);
        if (pg) {
          row = co_await pg_row(c, "SELECT pg_is_in_recovery(), CASE WHEN pg_is_in_recovery() THEN "
                                   "pg_last_wal_replay_lsn() ELSE pg_current_wal_insert_lsn() END");
        } else if (mysql_positions) {
          row = co_await my_row(c, "SELECT @@read_only, @@gtid_binlog_pos, @@gtid_slave_pos");
          if (!row && c.sock.is_open()) {
            mysql_positions = false;
            row = co_await my_row(c, "SELECT @@read_only, '', ''");
          }
        } else {
          row = co_await my_row(c, "SELECT @@read_only, '', ''");
        }
      }
      if (!row || row->size() < (pg ? 2u : 3u)) {
        probes[i].error = "the check query failed";
        conns[i]->close_quietly();
        conns[i].reset();
        continue;
      }
      Probe& p = probes[i];
      p.ok = true;
      if (pg) {
        p.role = (*row)[0] == "t" ? Role::Replica : Role::Primary;
        if (auto pos = parse_pg_lsn((*row)[1])) p.position = *pos;
      } else {
        p.role = ((*row)[0] == "1" || (*row)[0] == "ON") ? Role::Replica : Role::Primary;
        auto pos = parse_gtid_pos(p.role == Role::Primary ? (*row)[1] : (*row)[2]);
        if (pos) p.position = *pos;
      }
    }

    auto now = std::chrono::steady_clock::now();
    {
      std::lock_guard lock(mu_);
      auto v = std::make_shared<ClusterView>(*view());
      int primary = -1;
      for (std::size_t i = 0; i < probes.size(); ++i) {
        auto& m = v->members[i];
        const auto& p = probes[i];
        if (!p.ok) {
          if (m.up)
            log::warn("cluster {}: {} failed its health check; taken out: {}", cfg_.name, m.endpoint.text(), p.error);
          m.up = false;
          good_[i] = 0;
          forced_down_[i] = true;
          continue;
        }
        good_[i] = std::min<std::uint32_t>(good_[i] + 1, 1000);
        if (forced_down_[i] && good_[i] >= cfg_.rise) {
          forced_down_[i] = false;
          log::info("cluster {}: {} is back ({} good checks)", cfg_.name, m.endpoint.text(), good_[i]);
        }
        if (m.role != p.role && m.role != Role::Unknown && view()->primary >= 0)
          log::warn("cluster {}: {} is now a {}", cfg_.name, m.endpoint.text(), p.role == Role::Primary ? "primary" : "replica");
        m.up = !forced_down_[i];
        m.role = p.role;
        m.position = p.position;
        if (p.role == Role::Primary && m.up && (primary < 0 || i == 0)) primary = static_cast<int>(i);
      }
      if (primary >= 0) lag_clock.observe_primary(v->members[static_cast<std::size_t>(primary)].position, now);
      for (auto& m : v->members)
        m.lag = m.role == Role::Replica ? lag_clock.lag(m.position, now) : std::chrono::milliseconds(0);
      if (primary < 0) primary = view()->primary;  // keep sending writes where they went (errors say why)
      if (primary != view()->primary && primary >= 0)
        log::warn("cluster {}: writes now go to {}", cfg_.name, v->members[static_cast<std::size_t>(primary)].endpoint.text());
      v->primary = primary;
      publish(std::move(v));
    }
    auto elapsed = std::chrono::steady_clock::now() - started;
    auto wait = cfg_.health_check_period - std::chrono::duration_cast<std::chrono::milliseconds>(elapsed);
    timer.expires_after(std::max(wait, std::chrono::milliseconds(10)));
    error_code ec;
    co_await timer.async_wait(asio::redirect_error(use_awaitable, ec));
  }
}

awaitable<std::optional<Position>> fetch_pg_lsn(pool::ServerConn& conn) {
  auto row = co_await pg_row(conn, "SELECT pg_current_wal_insert_lsn()");
  std::optional<Position> none;
  if (!row || row->empty()) co_return none;
  co_return parse_pg_lsn((*row)[0]);
}

awaitable<std::optional<Position>> fetch_primary_position(pool::ServerConn& conn, config::Protocol proto) {
  if (proto == config::Protocol::Postgres) co_return co_await fetch_pg_lsn(conn);
  std::optional<Position> none;
  auto row = co_await my_row(conn, "SELECT @@gtid_binlog_pos");
  if (!row || row->empty()) co_return none;
  co_return parse_gtid_pos((*row)[0]);
}

awaitable<std::optional<Position>> fetch_replica_position(pool::ServerConn& conn, config::Protocol proto) {
  std::optional<Position> none;
  if (proto == config::Protocol::Postgres) {
    auto row = co_await pg_row(conn, "SELECT pg_last_wal_replay_lsn()");
    if (!row || row->empty()) co_return none;
    co_return parse_pg_lsn((*row)[0]);
  }
  auto row = co_await my_row(conn, "SELECT @@gtid_slave_pos");
  if (!row || row->empty()) co_return none;
  co_return parse_gtid_pos((*row)[0]);
}

void ClusterRuntime::note_position(int member, const Position& p) {
  std::lock_guard lock(mu_);
  auto cur = view();
  auto i = static_cast<std::size_t>(member);
  if (i >= cur->members.size() || cur->members[i].position.covers(p)) return;
  auto v = std::make_shared<ClusterView>(*cur);
  v->members[i].position = p;
  publish(std::move(v));
}

Position ClusterRuntime::applied(int member, bool primary, const Position& token) const {
  auto v = view();
  Position p;
  if (member >= 0 && static_cast<std::size_t>(member) < v->members.size())
    p = v->members[static_cast<std::size_t>(member)].position;
  if (primary && !token.marker()) p.merge(token);
  return p;
}

bool same_cluster(const config::Cluster& a, const config::Cluster& b) {
  return a.protocol == b.protocol && a.primary == b.primary && a.replicas == b.replicas && a.weights == b.weights &&
         a.routing == b.routing && a.consistency == b.consistency &&
         a.read_your_writes_from_login == b.read_your_writes_from_login && a.max_replica_lag == b.max_replica_lag &&
         a.balance == b.balance && a.health_check_period == b.health_check_period &&
         a.reads_on_primary == b.reads_on_primary && a.write_functions == b.write_functions &&
         a.health_user == b.health_user && a.rise == b.rise && a.server_tls == b.server_tls &&
         a.server_tls_ca == b.server_tls_ca && a.server_tls_cert == b.server_tls_cert &&
         a.server_tls_key == b.server_tls_key && a.member_tags == b.member_tags;
}

std::shared_ptr<ClusterRuntime> Router::make(const std::string& name, const config::Cluster& c,
                                             const config::Config& cfg, const CredentialMap& credentials,
                                             const pool::ServerTlsMap& tls) const {
  std::shared_ptr<const pool::Credentials> creds;
  if (!c.health_user.empty()) {
    auto it = credentials.find(c.health_user);
    if (it != credentials.end()) creds = it->second;
  }
  for (auto& u : cfg.users)
    if (!creds && !u.password.empty()) creds = credentials.find(u.name)->second;
  if (!creds) {
    log::warn("cluster {}: no user with a password for health checks; routing sends everything to the primary", name);
    return nullptr;
  }
  std::string db = c.protocol == config::Protocol::Postgres ? "postgres" : "";
  for (auto& p : cfg.pools)
    if (p.cluster == name && p.database != "*" && c.protocol == config::Protocol::Postgres) {
      db = p.server_database.empty() ? p.database : p.server_database;
      break;
    }
  auto rt = std::make_shared<ClusterRuntime>(c, creds, db, drains_);
  if (auto t = tls.find(name); t != tls.end()) rt->set_server_tls(t->second);
  return rt;
}

void Router::build(const config::Config& cfg, const CredentialMap& credentials, const pool::ServerTlsMap& tls) {
  std::lock_guard lock(mu_);
  for (auto& [name, c] : cfg.clusters)
    if (auto rt = make(name, c, cfg, credentials, tls)) clusters_[name].runtime = std::move(rt);
}

std::shared_ptr<ClusterRuntime> Router::find(const std::string& name) const {
  std::lock_guard lock(mu_);
  auto it = clusters_.find(name);
  return it == clusters_.end() ? nullptr : it->second.runtime;
}

std::vector<std::shared_ptr<ClusterRuntime>> Router::all() const {
  std::lock_guard lock(mu_);
  std::vector<std::shared_ptr<ClusterRuntime>> v;
  for (auto& [n, e] : clusters_) v.push_back(e.runtime);
  return v;
}

void Router::start(asio::any_io_executor ex) {
  std::lock_guard lock(mu_);
  started_ = true;
  // A cluster without replicas has nothing to route or fail over to: no health connections.
  for (auto& [name, e] : clusters_)
    if (!e.runtime->config().replicas.empty()) e.runtime->start(ex, e.stop);
}

std::vector<std::string> Router::reconfigure(const config::Config& cfg, const CredentialMap& credentials,
                                             const pool::ServerTlsMap& tls, asio::any_io_executor ex) {
  std::vector<std::string> changed;
  std::lock_guard lock(mu_);
  for (auto it = clusters_.begin(); it != clusters_.end();) {
    if (!cfg.clusters.count(it->first)) {
      it->second.stop->store(true);
      changed.push_back(it->first);
      it = clusters_.erase(it);
    } else {
      ++it;
    }
  }
  for (auto& [name, c] : cfg.clusters) {
    auto it = clusters_.find(name);
    if (it != clusters_.end() && same_cluster(it->second.runtime->config(), c)) {
      if (auto t = tls.find(name); t != tls.end()) it->second.runtime->set_server_tls(t->second);  // new files
      continue;
    }
    auto rt = make(name, c, cfg, credentials, tls);
    if (it != clusters_.end()) {
      it->second.stop->store(true);
      clusters_.erase(it);
    }
    changed.push_back(name);
    if (!rt) continue;
    Entry e;
    e.runtime = std::move(rt);
    if (started_ && !c.replicas.empty()) e.runtime->start(ex, e.stop);
    clusters_[name] = std::move(e);
  }
  return changed;
}

void Router::stop() {
  std::lock_guard lock(mu_);
  for (auto& [n, e] : clusters_) e.stop->store(true);
}

}  // namespace sluice::router
