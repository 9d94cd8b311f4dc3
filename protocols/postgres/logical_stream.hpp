// PostgreSQL's logical replication stream, as the result cache follows it (sans-io): the CopyData
// payloads of START_REPLICATION (XLogData 'w', primary keepalive 'k') and, inside XLogData, the
// output plugin's messages: pgoutput (protocol version 1) or test_decoding (text lines). What the cache needs of a
// transaction is which tables it changed and where it committed, so the decoder keeps the relation map (relation id ->
// schema.table, from 'R' messages) and collects the relation ids of the rows inserted, updated
// and deleted and of the tables truncated between Begin and Commit. Rows changed by triggers and
// by ON DELETE CASCADE are decoded like any other row, so they are collected too.
// Format: https://www.postgresql.org/docs/15/protocol-replication.html and
// protocol-logicalrep-message-formats.html.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace sluice::pg {

// One CopyData payload from the server during START_REPLICATION.
struct StreamMessage {
  enum class Kind { XLogData, Keepalive } kind = Kind::Keepalive;
  std::uint64_t wal_start = 0;         // XLogData: where its data starts
  std::uint64_t wal_end = 0;           // the server's current end of WAL
  std::int64_t send_time = 0;          // microseconds since 2000-01-01 (the server's clock)
  bool reply_requested = false;        // Keepalive: answer at once, or be timed out
  std::span<const std::uint8_t> data;  // XLogData: one pgoutput message
};
// nullopt: malformed (too short, or an unknown kind).
std::optional<StreamMessage> parse_stream_message(std::span<const std::uint8_t> payload);

// The standby status update ('r') that confirms `flushed` (the slot may then free the WAL before
// it), as a CopyData payload.
std::vector<std::uint8_t> standby_status(std::uint64_t flushed, std::int64_t now_since_2000_us, bool reply = false);

// Microseconds since 2000-01-01 UTC now (PostgreSQL's epoch).
std::int64_t pg_now_us();

// One committed transaction: the tables it changed ("schema.table"), and where it ended.
struct CommittedChange {
  std::uint64_t end_lsn = 0;     // a member that replayed this far has the transaction
  std::int64_t commit_time = 0;  // microseconds since 2000-01-01 (the server's clock)
  std::vector<std::string> tables;
  bool all = false;  // a change to a relation the stream never described: every table
};

// A logical decoding message with this prefix (pg_logical_emit_message(true, 'sluice_ddl', ...),
// e.g. from an event trigger on ddl_command_end) makes its transaction invalidate every table:
// DDL changes no row, so the stream says nothing of it otherwise.
inline constexpr std::string_view kDdlMessagePrefix = "sluice_ddl";

// One output plugin's messages -> committed transactions.
class ChangeDecoder {
 public:
  enum class Result { Nothing, Committed, Malformed };
  virtual ~ChangeDecoder() = default;
  // Feeds one message (the data of one XLogData, which started at `wal_start`). Committed:
  // `out` holds the transaction that just committed (no tables when it changed none it sees).
  virtual Result feed(std::span<const std::uint8_t> msg, std::uint64_t wal_start, CommittedChange& out) = 0;
};

// test_decoding without xids: "BEGIN", "table public.t: INSERT: ...", "table public.t:
// TRUNCATE: ...", "message: transactional: 1 prefix: ...", "COMMIT". Empty transactions are not
// skipped: with skip-empty-xacts a transaction of DDL alone shows its message without BEGIN and
// COMMIT. It needs no publication, and decodes every table,
// with or without a replica identity. The COMMIT line is written at the transaction's end
// position (its XLogData's start), with the commit time when include-timestamp is on.
class TestDecodingDecoder final : public ChangeDecoder {
 public:
  Result feed(std::span<const std::uint8_t> msg, std::uint64_t wal_start, CommittedChange& out) override;

 private:
  std::vector<std::string> changed_;
  bool all_ = false;
};

// pgoutput, protocol version 1 (a publication names the tables it decodes).
class PgOutputDecoder final : public ChangeDecoder {
 public:
  Result feed(std::span<const std::uint8_t> msg, std::uint64_t wal_start, CommittedChange& out) override;
  Result feed(std::span<const std::uint8_t> msg, CommittedChange& out) { return feed(msg, 0, out); }
  // The relation map is per stream: a new connection starts a new decoder.
  std::size_t relations() const { return relations_.size(); }

 private:
  void changed(std::uint32_t id);
  std::unordered_map<std::uint32_t, std::string> relations_;
  std::vector<std::uint32_t> changed_;
  bool in_transaction_ = false;
  bool all_ = false;
};

}  // namespace sluice::pg
