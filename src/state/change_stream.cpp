// The cache's change streams (see header).
#include "src/state/change_stream.hpp"

#include <fmt/format.h>
#include <set>
#include <unistd.h>

#include "protocols/postgres/codec.hpp"
#include "src/cache/store.hpp"
#include "src/observe/log.hpp"
#include "src/pool/pg_exchange.hpp"
#include "src/pool/server_conn.hpp"
#include "src/replication/logical_stream.hpp"
#include "src/replication/position.hpp"

namespace sluice::state {

namespace asio = boost::asio;
using boost::system::error_code;

namespace {

std::string lsn_text(std::uint64_t lsn) { return fmt::format("{:X}/{:X}", lsn >> 32, lsn & 0xFFFFFFFFu); }

replication::Position lsn_position(std::uint64_t lsn) { return replication::Position{{{0u, lsn}}}; }

std::string quote_ident(const std::string& s) {
  std::string out = "\"";
  for (char c : s) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

std::string quote_literal(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("''") : std::string(1, c);
  return out + "'";
}

std::atomic<unsigned> slot_counter{0};

}  // namespace

struct ChangeStreams::Follower : std::enable_shared_from_this<ChangeStreams::Follower> {
  std::string cluster, database, publication;
  bool pgoutput = false;
  config::Endpoint primary;
  std::shared_ptr<const pool::Credentials> creds;
  pool::ServerTls tls;
  config::Duration horizon;  // max_replica_lag + 2 health-check periods
  cache::Store* store = nullptr;
  asio::any_io_executor ex;
  std::atomic<bool> stopping{false};
  std::shared_ptr<pool::ServerConn> conn;  // on ex only
  mutable std::mutex mu;
  StreamStatus st;

  std::chrono::steady_clock::time_point marks_horizon() const { return std::chrono::steady_clock::now() + horizon; }

  void set_error(const std::string& why) {
    std::lock_guard lock(mu);
    st.last_error = why;
  }

  // Sends one simple query; collects the first DataRow's values and the error, if any.
  asio::awaitable<bool> query(const std::string& sql, std::vector<std::string>* row, std::string& error) {
    std::string out;
    pg::query(out, sql);
    error_code ec;
    auto io = conn->channel();
    co_await io.write(asio::buffer(out), ec);
    if (ec) {
      error = ec.message();
      co_return false;
    }
    bool got = false;
    bool read = co_await pool::read_until_ready(io, 1, [&](const pg::Frame& f) {
      if (f.type == pg::be::ErrorResponse) {
        pg::ErrorFields e;
        pg::parse_error_fields(f.body, e);
        if (error.empty()) error = e.message.empty() ? std::string("the server refused it") : e.message;
      } else if (f.type == pg::be::DataRow && row && !got) {
        got = true;
        pg::Reader r(f.body);
        int cols = r.i16();
        for (int i = 0; i < cols && r.ok(); ++i) {
          int len = r.i32();
          row->emplace_back(len < 0 ? std::string() : std::string(pg::as_sv(r.bytes(static_cast<std::size_t>(len)))));
        }
      }
      return true;
    });
    if (!read && error.empty()) error = "the connection was lost";
    co_return read&& error.empty();
  }

  // One connection's life: set up, then follow until it fails. Returns why it ended.
  asio::awaitable<std::string> follow_once() {
    auto r = co_await pool::connect_server(ex, primary, creds, database, std::chrono::seconds(5), 0, tls, true);
    if (!r.conn)
      co_return r.error.fields.message.empty() ? std::string("cannot connect") : std::string(r.error.fields.message);
    conn = r.conn;
    if (stopping) co_return "stopping";
    std::string err;
    std::vector<std::string> row;
    if (pgoutput) {
      if (!co_await query("SELECT 1 FROM pg_publication WHERE pubname = " + quote_literal(publication), &row, err))
        co_return err;
      if (row.empty())
        co_return fmt::format(
            "publication \"{}\" does not exist in database \"{}\" (stream_plugin = \"pgoutput\" "
            "reads the tables it names; test_decoding needs none)",
            publication, database);
    }
    std::string slot = fmt::format("sluice_{}_{}", ::getpid(), slot_counter.fetch_add(1));
    row.clear();
    if (!co_await query(fmt::format("CREATE_REPLICATION_SLOT {} TEMPORARY LOGICAL {} (SNAPSHOT 'nothing')", slot,
                                    pgoutput ? "pgoutput" : "test_decoding"),
                        &row, err))
      co_return "cannot create the replication slot: " + err;
    auto consistent = row.size() >= 2 ? replication::parse_pg_lsn(row[1]) : std::nullopt;
    if (!consistent || consistent->parts.size() != 1) co_return "the slot's consistent point is unreadable";
    std::uint64_t start = consistent->parts[0].second;
    // What committed before `start` was not seen: a replica's answer must cover it.
    store->write_marks().begin(cluster, {}, true, marks_horizon());
    store->write_marks().settle(cluster, {}, true, *consistent, marks_horizon());
    std::string out;
    if (pgoutput)
      pg::query(
          out,
          fmt::format("START_REPLICATION SLOT {} LOGICAL {} (proto_version '1', publication_names {}, messages 'true')",
                      slot, lsn_text(start), quote_literal(quote_ident(publication))));
    else
      pg::query(out,
                fmt::format("START_REPLICATION SLOT {} LOGICAL {} (\"skip-empty-xacts\" '0', \"include-xids\" '0')",
                            slot, lsn_text(start)));
    error_code ec;
    auto io = conn->channel();
    co_await io.write(asio::buffer(out), ec);
    if (ec) co_return ec.message();
    {
      std::lock_guard lock(mu);
      st.slot = slot;
      st.confirmed_lsn = start;
      st.last_error.clear();
    }
    co_return co_await stream(start);
  }

  // Reads the replication stream until it ends.
  asio::awaitable<std::string> stream(std::uint64_t confirmed) {
    auto io = conn->channel();
    std::unique_ptr<replication::ChangeDecoder> decoder;
    if (pgoutput) decoder = std::make_unique<replication::PgOutputDecoder>();
    else decoder = std::make_unique<replication::TestDecodingDecoder>();
    std::vector<std::uint8_t> buf;
    std::array<std::uint8_t, 16384> chunk;
    bool copying = false;
    error_code ec;
    // Silence for this long means a dead connection (the server sends keepalives every
    // wal_sender_timeout / 2, 30 s by default).
    asio::steady_timer watchdog(ex);
    auto self = shared_from_this();
    auto arm = [&] {
      watchdog.expires_after(std::chrono::seconds(120));
      watchdog.async_wait([c = conn](error_code e) {
        if (!e) c->sock.close(e);
      });
    };
    arm();
    for (;;) {
      std::size_t n = co_await io.read_some(asio::buffer(chunk), ec);
      if (ec) co_return stopping ? std::string("stopping") : "the connection was lost: " + ec.message();
      arm();
      buf.insert(buf.end(), chunk.begin(), chunk.begin() + static_cast<std::ptrdiff_t>(n));
      std::size_t pos = 0;
      std::string reply;
      for (;;) {
        pg::Frame f;
        auto d = pg::next_frame(pg::Bytes(buf).subspan(pos), 64u << 20, f);
        if (d == pg::Decode::Malformed) co_return "a malformed message from the server";
        if (d == pg::Decode::NeedMore) break;
        pos += f.size();
        if (f.type == pg::be::ErrorResponse) {
          pg::ErrorFields e;
          pg::parse_error_fields(f.body, e);
          co_return "the server ended it: " + e.message;
        }
        if (f.type == pg::be::CopyBothResponse) {
          copying = true;
          std::lock_guard lock(mu);
          st.up = true;
          store->stream_up(cluster);
          log::info("cache: following the changes of cluster {} database \"{}\" from {}", cluster, database,
                    lsn_text(confirmed));
          continue;
        }
        if (f.type != pg::be::CopyData || !copying) continue;  // notices, CopyDone
        auto m = replication::parse_stream_message(f.body);
        if (!m) co_return "a malformed replication message";
        bool answer = false;
        if (m->kind == replication::StreamMessage::Kind::Keepalive) {
          answer = m->reply_requested;
          std::lock_guard lock(mu);
          st.server_lsn = m->wal_end;
        } else {
          replication::CommittedChange change;
          auto res = decoder->feed(m->data, m->wal_start, change);
          if (res == replication::ChangeDecoder::Result::Malformed) co_return "a malformed change message";
          if (res == replication::ChangeDecoder::Result::Committed) {
            if (change.commit_time == 0) change.commit_time = m->send_time;  // test_decoding: when it was sent
            apply(change);
            confirmed = std::max(confirmed, change.end_lsn);
            answer = true;
          }
          std::lock_guard lock(mu);
          st.server_lsn = std::max(st.server_lsn, m->wal_end);
        }
        if (answer) {
          auto status = replication::standby_status(confirmed, replication::pg_now_us());
          reply += pg::fe::CopyData;
          std::uint32_t len = static_cast<std::uint32_t>(status.size() + 4);
          for (int i = 3; i >= 0; --i) reply += static_cast<char>((len >> (8 * i)) & 0xFF);
          reply.append(status.begin(), status.end());
          std::lock_guard lock(mu);
          st.confirmed_lsn = confirmed;
        }
      }
      buf.erase(buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(pos));
      if (!reply.empty()) {
        co_await io.write(asio::buffer(reply), ec);
        if (ec) co_return "the connection was lost: " + ec.message();
      }
    }
  }

  void apply(const replication::CommittedChange& c) {
    std::vector<std::string> tables;
    for (auto& t : c.tables) tables.push_back(cache::table_key(t));
    if (c.all || !tables.empty()) {
      store->write_marks().begin(cluster, tables, c.all, marks_horizon());
      store->write_marks().settle(cluster, tables, c.all, lsn_position(c.end_lsn), marks_horizon());
      if (c.all) store->invalidate_all();
      else
        for (auto& t : tables) store->invalidate_table(t);
    }
    std::lock_guard lock(mu);
    ++st.commits;
    st.tables_invalidated += tables.size();
    if (c.commit_time) st.last_lag_us = replication::pg_now_us() - c.commit_time;
  }

  asio::awaitable<void> run() {
    auto self = shared_from_this();
    asio::steady_timer wait(ex);
    if (stopping) store->stream_release(cluster);
    std::chrono::steady_clock::duration retry = std::chrono::seconds(1);
    std::string said;
    std::chrono::steady_clock::time_point said_at;
    while (!stopping) {
      std::string why = co_await follow_once();
      bool was_up;
      {
        std::lock_guard lock(mu);
        was_up = st.up;
        st.up = false;
        st.slot.clear();
        if (was_up) ++st.losses;
        st.last_error = why;
      }
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
            "cache: the change stream of cluster {} database \"{}\" was lost ({}); its cached answers were "
            "dropped and none are kept until it is back",
            cluster, database, why);
      } else if (why != said || now - said_at > std::chrono::minutes(1)) {
        log::warn(
            "cache: cannot follow the changes of cluster {} database \"{}\": {}; no answer of it is kept "
            "until it can",
            cluster, database, why);
        said = why, said_at = now;
      }
      wait.expires_after(retry);
      retry = std::min<std::chrono::steady_clock::duration>(retry * 2, std::chrono::seconds(16));
      error_code ec;
      co_await wait.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    }
  }

  void stop() {
    stopping = true;
    asio::post(ex, [self = shared_from_this()] {
      if (self->conn) {
        error_code ignored;
        self->conn->sock.close(ignored);
      }
    });
  }
};

ChangeStreams::~ChangeStreams() { stop(); }

void ChangeStreams::reconfigure(const Snapshot& s, cache::Store& store, asio::any_io_executor ex) {
  const auto& cfg = *s.config;
  std::map<std::string, std::shared_ptr<Follower>> next;
  if (cfg.cache.enabled && cfg.cache.stream) {
    for (auto& p : cfg.pools) {
      if (p.protocol != config::Protocol::Postgres) continue;
      std::vector<const config::Pool*> arms{&p};
      for (auto& a : p.arms) arms.push_back(&a);
      for (auto* a : arms) {
        auto c = cfg.clusters.find(a->cluster);
        if (c == cfg.clusters.end() || c->second.protocol != config::Protocol::Postgres) continue;
        std::string db = a->server_database.empty() ? a->database : a->server_database;
        if (db == "*") continue;
        std::string key = a->cluster + "/" + db;
        if (next.count(key)) continue;
        const auto& cl = c->second;
        auto user = cl.stream_user.empty() ? cl.health_user : cl.stream_user;
        auto creds = s.credentials.find(user);
        if (creds == s.credentials.end()) continue;  // the loader refuses this
        auto f = std::make_shared<Follower>();
        f->cluster = a->cluster;
        f->database = db;
        f->publication = cfg.cache.stream_publication;
        f->pgoutput = cfg.cache.stream_pgoutput;
        f->primary = cl.primary;
        f->creds = creds->second;
        if (auto t = s.server_tls.find(a->cluster); t != s.server_tls.end()) f->tls = t->second;
        f->horizon = cl.max_replica_lag + 2 * cl.health_check_period;
        f->store = &store;
        f->ex = ex;
        f->st.cluster = f->cluster;
        f->st.database = db;
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
