// The cache's change streams (see header): the followers' common part and their set.
#include "src/state/change_stream.hpp"

#include <algorithm>
#include <set>

#include "src/cache/store.hpp"
#include "src/observe/log.hpp"
#include "src/state/change_stream_follower.hpp"

namespace sluice::state {

namespace asio = boost::asio;
using boost::system::error_code;

void ChangeStreams::Follower::mark_all(const replication::Position& at) {
  store->write_marks().begin(cluster, {}, true, marks_horizon());
  store->write_marks().settle(cluster, {}, true, at, marks_horizon());
  store->stream_marks().start(cluster, database, at);
}

void ChangeStreams::Follower::up(const std::string& from) {
  {
    std::lock_guard lock(mu);
    st.up = true;
    st.last_error.clear();
  }
  store->stream_up(cluster);
  if (mysql) log::info("cache: following the changes of cluster {} (binlog) from {}", cluster, from);
  else log::info("cache: following the changes of cluster {} database \"{}\" from {}", cluster, database, from);
}

void ChangeStreams::Follower::apply(const std::vector<std::string>& changed, bool all, const replication::Position& at,
                                    std::int64_t lag_us) {
  std::vector<std::string> tables;
  for (auto& t : changed) tables.push_back(cache::table_key(t));
  // And the views that read them, and the views that read those.
  for (std::size_t i = 0; i < tables.size() && !dependents.empty() && tables.size() < 4096; ++i)
    if (auto it = dependents.find(tables[i]); it != dependents.end())
      for (auto& v : it->second)
        if (std::find(tables.begin(), tables.end(), v) == tables.end()) tables.push_back(v);
  if (all || !tables.empty()) {
    store->write_marks().begin(cluster, tables, all, marks_horizon());
    store->write_marks().settle(cluster, tables, all, at, marks_horizon());
    store->stream_marks().commit(cluster, tables, all, at);
    if (all) store->invalidate_all();
    else
      for (auto& t : tables) store->invalidate_table(t);
  }
  store->stream_marks().read_to(cluster, database, at);  // after the drops
  std::lock_guard lock(mu);
  ++st.commits;
  st.tables_invalidated += tables.size();
  if (lag_us >= 0) st.last_lag_us = lag_us;
}

void ChangeStreams::Follower::watch(asio::steady_timer& watchdog, std::chrono::seconds silence) {
  watchdog.expires_after(silence);
  watchdog.async_wait([c = conn](error_code e) {
    if (!e && c) c->sock.close(e);
  });
}

asio::awaitable<void> ChangeStreams::Follower::run() {
  auto self = shared_from_this();
  asio::steady_timer wait(ex);
  if (stopping) store->stream_release(cluster);
  std::chrono::steady_clock::duration retry = std::chrono::seconds(1);
  std::string said;
  std::chrono::steady_clock::time_point said_at;
  std::string name = mysql ? fmt::format("cluster {} (binlog)", cluster)
                           : fmt::format("cluster {} database \"{}\"", cluster, database);
  while (!stopping) {
    std::string why = mysql ? co_await follow_mysql() : co_await follow_pg();
    bool was_up;
    {
      std::lock_guard lock(mu);
      was_up = st.up;
      st.up = false;
      st.slot.clear();
      if (was_up) ++st.losses;
      st.last_error = why;
    }
    store->stream_marks().stop(cluster, database);
    if (conn) {
      error_code ignored;
      conn->sock.close(ignored);
      conn.reset();
    }
    if (stopping) {
      if (!was_up) store->stream_release(cluster);  // it counted as down
      break;
    }
    if (was_up) store->stream_down(cluster);
    // Retried after 1 s, then less often while it keeps failing (up to 16 s); said once per
    // reason, and again every minute while it lasts.
    auto now = std::chrono::steady_clock::now();
    if (was_up) {
      retry = std::chrono::seconds(1);
      log::warn(
          "cache: the change stream of {} was lost ({}); its cached answers were dropped and none are kept "
          "until it is back",
          name, why);
    } else if (why != said || now - said_at > std::chrono::minutes(1)) {
      log::warn("cache: cannot follow the changes of {}: {}; no answer of it is kept until it can", name, why);
      said = why, said_at = now;
    }
    wait.expires_after(retry);
    retry = std::min<std::chrono::steady_clock::duration>(retry * 2, std::chrono::seconds(16));
    error_code ec;
    co_await wait.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }
}

void ChangeStreams::Follower::stop() {
  stopping = true;
  asio::post(ex, [self = shared_from_this()] {
    if (self->conn) {
      error_code ignored;
      self->conn->sock.close(ignored);
    }
  });
}

ChangeStreams::~ChangeStreams() { stop(); }

void ChangeStreams::reconfigure(const Snapshot& s, cache::Store& store, asio::any_io_executor ex) {
  const auto& cfg = *s.config;
  std::map<std::string, std::shared_ptr<Follower>> next;
  if (cfg.cache.enabled && cfg.cache.stream) {
    for (auto& p : cfg.pools) {
      std::vector<const config::Pool*> arms{&p};
      for (auto& a : p.arms) arms.push_back(&a);
      for (auto* a : arms) {
        auto c = cfg.clusters.find(a->cluster);
        if (c == cfg.clusters.end()) continue;
        const auto& cl = c->second;
        bool mysql = cl.protocol == config::Protocol::Mysql;
        // PostgreSQL decodes per database; a MariaDB binlog holds every schema.
        std::string db = mysql ? std::string() : a->server_database.empty() ? a->database : a->server_database;
        if (db == "*") continue;
        std::string key = a->cluster + "/" + db;
        if (next.count(key)) continue;
        auto user = cl.stream_user.empty() ? cl.health_user : cl.stream_user;
        auto creds = s.credentials.find(user);
        if (creds == s.credentials.end()) continue;  // the loader refuses this
        auto f = std::make_shared<Follower>();
        f->cluster = a->cluster;
        f->database = db;
        f->mysql = mysql;
        f->publication = cfg.cache.stream_publication;
        f->pgoutput = cfg.cache.stream_pgoutput;
        f->primary = cl.primary;
        f->creds = creds->second;
        if (auto t = s.server_tls.find(a->cluster); t != s.server_tls.end()) f->tls = t->second;
        f->horizon = cl.max_replica_lag + 2 * cl.health_check_period;
        f->store = &store;
        f->ex = ex;
        f->st.cluster = f->cluster;
        f->st.database = mysql ? "*" : db;
        next[key] = std::move(f);
      }
    }
  }
  std::lock_guard lock(mu_);
  // Unchanged followers keep running; the others stop, and new ones start.
  for (auto& [key, f] : next) {
    auto it = followers_.find(key);
    if (it != followers_.end() && it->second->publication == f->publication && it->second->pgoutput == f->pgoutput &&
        it->second->creds->user == f->creds->user && it->second->creds->plaintext == f->creds->plaintext &&
        it->second->primary.text() == f->primary.text()) {
      it->second->horizon = f->horizon;
      f = it->second;
    }
  }
  for (auto& [key, f] : followers_) {
    auto it = next.find(key);
    if (it == next.end() || it->second != f) f->stop();
  }
  std::set<std::string> clusters_before, clusters_after;
  for (auto& [key, f] : followers_) clusters_before.insert(f->cluster);
  for (auto& [key, f] : next) clusters_after.insert(f->cluster);
  for (auto& c : clusters_before)
    if (!clusters_after.count(c)) store.stream_unfollow(c);
  for (auto& [key, f] : next) {
    auto it = followers_.find(key);
    if (it != followers_.end() && it->second == f) continue;
    store.stream_down(f->cluster);  // not up yet: nothing of the cluster is kept
    asio::co_spawn(ex, f->run(), asio::detached);
  }
  followers_ = std::move(next);
}

void ChangeStreams::stop() {
  std::lock_guard lock(mu_);
  for (auto& [key, f] : followers_) f->stop();
  followers_.clear();
}

std::vector<StreamStatus> ChangeStreams::status() const {
  std::vector<StreamStatus> out;
  std::lock_guard lock(mu_);
  for (auto& [key, f] : followers_) {
    std::lock_guard l(f->mu);
    out.push_back(f->st);
  }
  return out;
}

}  // namespace sluice::state
