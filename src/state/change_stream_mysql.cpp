// The change stream of a MariaDB cluster: the primary's binlog, read as a replica reads it
// (COM_BINLOG_DUMP from the current GTID position, binlog_format = ROW; see change_stream.hpp).
#include <fmt/format.h>
#include <unistd.h>

#include <cctype>

#include "protocols/mysql/codec.hpp"
#include "src/pool/mysql_io.hpp"
#include "protocols/mysql/binlog.hpp"
#include "src/state/change_stream_follower.hpp"

namespace sluice::state {

namespace asio = boost::asio;

namespace {

std::atomic<unsigned> dump_counter{0};

void le(std::string& out, std::uint64_t v, int n) {
  for (int i = 0; i < n; ++i) out += static_cast<char>((v >> (8 * i)) & 0xFF);
}

std::string err_text(const std::string& payload) {
  my::Err e;
  if (my::parse_err(my::as_bytes(payload), e)) return fmt::format("{} ({})", e.message, e.code);
  return "an error from the server";
}

// A statement answered with OK; "" or why not.
asio::awaitable<std::string> statement(pool::MysqlIo& io, const std::string& sql) {
  std::string cmd;
  my::build_command(cmd, my::com::QUERY, sql);
  if (auto awaited = co_await io.write(cmd, 0); !awaited) co_return "the connection was lost: " + io.error();
  if (auto awaited = co_await io.read(); !awaited) co_return "the connection was lost: " + io.error();
  if (!io.payload().empty() && static_cast<std::uint8_t>(io.payload()[0]) == 0xFF) co_return err_text(io.payload());
  co_return std::string();
}

}  // namespace

asio::awaitable<std::string> ChangeStreams::Follower::follow_mysql() {
  auto r = co_await pool::connect_mysql(ex, primary, creds, "", std::chrono::seconds(5), 0, 0, 0, tls);
  if (!r.conn)
    co_return r.error.fields.message.empty() ? std::string("cannot connect") : std::string(r.error.fields.message);
  conn = r.conn;
  if (stopping) co_return "stopping";
  pool::MysqlIo io(conn->sock, 1u << 30);
  io.set_tls(conn->tls.get());
  std::string cmd;
  my::build_command(cmd, my::com::QUERY, "SELECT @@global.gtid_binlog_pos, @@global.binlog_format");
  if (auto awaited = co_await io.write(cmd, 0); !awaited) co_return "the connection was lost: " + io.error();
  auto row = co_await pool::read_one_row(io, (conn->capabilities & my::cap::DEPRECATE_EOF) != 0);
  // MySQL has no gtid_binlog_pos: its replication protocol (COM_BINLOG_DUMP_GTID, its GTID
  // events) is not spoken yet, so its clusters keep nothing while the stream cannot start.
  if (!row || row->size() < 2)
    co_return "cannot read @@gtid_binlog_pos (the binlog follower speaks MariaDB's replication protocol; MySQL "
              "servers are not followed yet)";
  std::string format = (*row)[1];
  for (auto& c : format) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  if (format != "ROW")
    co_return fmt::format("binlog_format is {}: the change stream reads the tables of row events (ROW)", (*row)[1]);
  auto start = replication::parse_gtid_pos((*row)[0]);
  if (!start) co_return "the primary's GTID position is unreadable: " + (*row)[0];
  for (std::string sql :
       {std::string("SET @master_binlog_checksum = @@global.binlog_checksum"),
        std::string("SET @mariadb_slave_capability = 4"), std::string("SET @master_heartbeat_period = 30000000000"),
        "SET @slave_connect_state = '" + (*row)[0] + "'", std::string("SET @slave_gtid_strict_mode = 0"),
        std::string("SET @slave_gtid_ignore_duplicates = 0")}) {
    auto err = co_await statement(io, sql);
    if (!err.empty()) co_return sql + ": " + err;
  }
  mark_all(*start);
  // A replica's server id of its own (a second connection with the same id would end the first).
  std::uint32_t server_id =
      0x5C000000u | ((static_cast<std::uint32_t>(::getpid()) & 0xFFFF) << 8) | (dump_counter.fetch_add(1) & 0xFF);
  std::string dump;
  dump += static_cast<char>(my::com::BINLOG_DUMP);
  le(dump, 4, 4);  // position: the GTID connect state decides
  le(dump, 0, 2);  // flags: block for more
  le(dump, server_id, 4);
  if (auto awaited = co_await io.write(dump, 0); !awaited) co_return "the connection was lost: " + io.error();
  {
    std::lock_guard lock(mu);
    st.slot = fmt::format("server_id {}", server_id);
    st.confirmed = start->text();
  }
  my::BinlogDecoder decoder;
  asio::steady_timer watchdog(ex);
  bool is_up = false;
  for (;;) {
    watch(watchdog, std::chrono::seconds(120));  // heartbeats every 30 s
    if (auto awaited = co_await io.read(); !awaited)
      co_return stopping ? std::string("stopping") : "the connection was lost: " + io.error();
    my::BinlogCommit commit;
    auto res = decoder.feed(io.bytes(), commit);
    if (res == my::BinlogDecoder::Result::Error) co_return "the server ended it: " + err_text(io.payload());
    if (res == my::BinlogDecoder::Result::End) co_return "the server ended the binlog dump";
    if (res == my::BinlogDecoder::Result::Malformed) co_return "a malformed binlog event";
    if (!is_up) {  // the first event: the server accepted the position
      is_up = true;
      up(start->text());
    }
    if (res == my::BinlogDecoder::Result::Committed) {
      auto at = commit.gtid.known ? replication::Position{{{commit.gtid.domain, commit.gtid.seq}}}
                                  : replication::Position::unreachable();  // no GTID: no replica is known to have it
      apply(commit.tables, commit.all, at, -1);
      std::lock_guard lock(mu);
      st.confirmed = at.text();
    }
  }
}

}  // namespace sluice::state
