// The change stream of a PostgreSQL cluster: logical decoding on a temporary slot (see
// change_stream.hpp for the whole story).
#include <fmt/format.h>
#include <unistd.h>

#include <random>

#include "protocols/postgres/codec.hpp"
#include "src/observe/log.hpp"
#include "src/pool/pg_exchange.hpp"
#include "protocols/postgres/logical_stream.hpp"
#include "src/cache/store.hpp"
#include "src/state/change_stream_follower.hpp"

namespace sluice::state {

namespace asio = boost::asio;
using boost::system::error_code;

namespace {

std::string lsn_text(std::uint64_t lsn) { return fmt::format("{:X}/{:X}", lsn >> 32, lsn & 0xFFFFFFFFu); }

// A string in a replication command (its grammar takes '...' with '' for a quote, not E'...').
std::string replication_string(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("''") : std::string(1, c);
  return out + "'";
}

std::atomic<unsigned> slot_counter{0};

// Sends one simple query; collects the first DataRow's values (and every row's, in `all`) and
// the error, if any.
asio::awaitable<bool> query(pool::ServerConn& conn, const std::string& sql, std::vector<std::string>* row,
                            std::string& error, std::vector<std::vector<std::string>>* all = nullptr) {
  std::string out;
  pg::query(out, sql);
  error_code ec;
  auto io = conn.channel();
  co_await io.write(asio::buffer(out), ec);
  if (ec) {
    error = ec.message();
    co_return false;
  }
  bool got = false;
  auto each = [&](const pg::Frame& f) {
    if (f.type == pg::be::ErrorResponse) {
      pg::ErrorFields e;
      pg::parse_error_fields(f.body, e);
      if (error.empty()) error = e.message.empty() ? std::string("the server refused it") : e.message;
    } else if (f.type == pg::be::DataRow && ((row && !got) || all)) {
      std::vector<std::string> values;
      pg::Reader r(f.body);
      int cols = r.i16();
      for (int i = 0; i < cols && r.ok(); ++i) {
        int len = r.i32();
        values.emplace_back(len < 0 ? std::string() : std::string(pg::as_sv(r.bytes(static_cast<std::size_t>(len)))));
      }
      if (row && !got) *row = values;
      got = true;
      if (all) all->push_back(std::move(values));
    }
    return true;
  };
  bool read = co_await pool::read_until_ready(io, 1, each);
  if (!read && error.empty()) error = "the connection was lost";
  co_return read&& error.empty();
}

// Views and materialized views by the relations their rules read: a read through a view is
// tagged with the view's name, so a write to a base table must reach it (transitively).
const char* kViewDependencies =
    "SELECT DISTINCT t.relname, v.relname FROM pg_rewrite r JOIN pg_class v ON v.oid = r.ev_class "
    "JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = r.oid "
    "AND d.refclassid = 'pg_class'::regclass JOIN pg_class t ON t.oid = d.refobjid "
    "WHERE v.relkind IN ('v', 'm') AND t.oid <> v.oid";

std::unordered_map<std::string, std::vector<std::string>> dependents_of(
    const std::vector<std::vector<std::string>>& rows) {
  std::unordered_map<std::string, std::vector<std::string>> out;
  for (auto& r : rows)
    if (r.size() == 2) out[r[0]].push_back(r[1]);
  return out;
}

}  // namespace

// Reads the views' dependencies again on a connection of its own (after DDL, and every minute:
// views made without the DDL event trigger are learned within a minute).
asio::awaitable<void> ChangeStreams::Follower::refresh_views_pg() {
  auto self = shared_from_this();
  auto r = co_await pool::connect_server(ex, primary, creds, database, std::chrono::seconds(5), 0, tls, false);
  if (!r.conn) co_return;
  std::string err;
  std::vector<std::vector<std::string>> rows;
  if (auto awaited = co_await query(*r.conn, kViewDependencies, nullptr, err, &rows); awaited)
    dependents = dependents_of(rows);
  boost::system::error_code ignored;
  r.conn->sock.close(ignored);
}

asio::awaitable<std::string> ChangeStreams::Follower::follow_pg() {
  auto r = co_await pool::connect_server(ex, primary, creds, database, std::chrono::seconds(5), 0, tls, true);
  if (!r.conn)
    co_return r.error.fields.message.empty() ? std::string("cannot connect") : std::string(r.error.fields.message);
  conn = r.conn;
  if (stopping) co_return "stopping";
  std::string err;
  std::vector<std::string> row;
  if (pgoutput) {
    auto check = "SELECT 1 FROM pg_publication WHERE pubname = " + pg::quote_literal(publication);
    bool read = co_await query(*conn, check, &row, err);
    if (!read) co_return err;
    if (row.empty())
      co_return fmt::format(
          "publication \"{}\" does not exist in database \"{}\" (stream_plugin = \"pgoutput\" "
          "reads the tables it names; test_decoding needs none)",
          publication, database);
  }
  std::vector<std::vector<std::string>> views;
  if (auto awaited = co_await query(*conn, kViewDependencies, nullptr, err, &views); !awaited)
    co_return "cannot read the views: " + err;
  dependents = dependents_of(views);
  // Unique across instances on other hosts too (a process id alone may repeat there).
  static const std::uint32_t instance = std::random_device{}();
  std::string slot = fmt::format("sluice_{}_{:08x}_{}", ::getpid(), instance, slot_counter.fetch_add(1));
  row.clear();
  auto create = fmt::format("CREATE_REPLICATION_SLOT {} TEMPORARY LOGICAL {} (SNAPSHOT 'nothing')", slot,
                            pgoutput ? "pgoutput" : "test_decoding");
  bool created = co_await query(*conn, create, &row, err);
  if (!created) co_return "cannot create the replication slot: " + err;
  auto consistent = row.size() >= 2 ? replication::parse_pg_lsn(row[1]) : std::nullopt;
  if (!consistent || consistent->parts.size() != 1) co_return "the slot's consistent point is unreadable";
  std::uint64_t confirmed = consistent->parts[0].second;
  mark_all(*consistent);
  std::string out;
  if (pgoutput)
    pg::query(
        out,
        fmt::format("START_REPLICATION SLOT {} LOGICAL {} (proto_version '1', publication_names {}, messages 'true')",
                    slot, lsn_text(confirmed), replication_string(pg::quote_ident(publication))));
  else
    pg::query(out, fmt::format("START_REPLICATION SLOT {} LOGICAL {} (\"skip-empty-xacts\" '0', \"include-xids\" '0', "
                               "\"include-timestamp\" '1')",
                               slot, lsn_text(confirmed)));
  error_code ec;
  auto io = conn->channel();
  co_await io.write(asio::buffer(out), ec);
  if (ec) co_return ec.message();
  {
    std::lock_guard lock(mu);
    st.slot = slot;
    st.confirmed = lsn_text(confirmed);
  }

  std::unique_ptr<pg::ChangeDecoder> decoder;
  if (pgoutput) decoder = std::make_unique<pg::PgOutputDecoder>();
  else decoder = std::make_unique<pg::TestDecodingDecoder>();
  std::vector<std::uint8_t> buf;
  std::array<std::uint8_t, 16384> chunk;
  bool copying = false, mid = false;
  std::uint64_t server = 0;
  // The server sends keepalives every wal_sender_timeout / 2 (30 s by default).
  asio::steady_timer watchdog(ex);
  auto views_read = std::chrono::steady_clock::now();
  for (;;) {
    watch(watchdog, std::chrono::seconds(120));
    if (std::chrono::steady_clock::now() - views_read > std::chrono::minutes(1)) {
      views_read = std::chrono::steady_clock::now();
      asio::co_spawn(ex, refresh_views_pg(), asio::detached);
    }
    std::size_t n = co_await io.read_some(asio::buffer(chunk), ec);
    if (ec) co_return stopping ? std::string("stopping") : "the connection was lost: " + ec.message();
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
        up(lsn_text(confirmed));
        continue;
      }
      if (f.type != pg::be::CopyData || !copying) continue;  // notices, CopyDone
      auto m = pg::parse_stream_message(f.body);
      if (!m) co_return "a malformed replication message";
      bool answer = false;
      server = std::max(server, m->wal_end);
      if (m->kind == pg::StreamMessage::Kind::Keepalive) {
        answer = m->reply_requested;
        // Everything before it was sent: with no transaction half read, nothing before it is owed.
        if (!mid) {
          confirmed = std::max(confirmed, m->wal_end);
          store->stream_marks().read_to(cluster, database, replication::Position{{{0u, confirmed}}});
        }
      } else {
        mid = true;
        pg::CommittedChange change;
        auto res = decoder->feed(m->data, m->wal_start, change);
        if (res == pg::ChangeDecoder::Result::Malformed) co_return "a malformed change message";
        if (res == pg::ChangeDecoder::Result::Committed) {
          if (change.all) asio::co_spawn(ex, refresh_views_pg(), asio::detached);  // DDL: views may have changed
          // pgoutput: from the commit; test_decoding has no commit time: from when it was sent.
          std::int64_t lag = pg::pg_now_us() - (change.commit_time ? change.commit_time : m->send_time);
          apply(change.tables, change.all, replication::Position{{{0u, change.end_lsn}}}, lag);
          confirmed = std::max(confirmed, change.end_lsn);
          answer = true;
          mid = false;
        }
      }
      {
        std::lock_guard lock(mu);
        st.server = lsn_text(server);
        st.lag_bytes = server > confirmed ? static_cast<std::int64_t>(server - confirmed) : 0;
      }
      if (answer) {
        auto status = pg::standby_status(confirmed, pg::pg_now_us());
        reply += pg::fe::CopyData;
        auto len = static_cast<std::uint32_t>(status.size() + 4);
        for (int i = 3; i >= 0; --i) reply += static_cast<char>((len >> (8 * i)) & 0xFF);
        reply.append(status.begin(), status.end());
        std::lock_guard lock(mu);
        st.confirmed = lsn_text(confirmed);
      }
    }
    buf.erase(buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(pos));
    if (!reply.empty()) {
      co_await io.write(asio::buffer(reply), ec);
      if (ec) co_return "the connection was lost: " + ec.message();
    }
  }
}

}  // namespace sluice::state
