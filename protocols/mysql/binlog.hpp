// MariaDB's binary log as a replica receives it after COM_BINLOG_DUMP (sans-io): which tables
// each committed event group changed, and its GTID. The result cache's change stream for MySQL
// clusters (src/state/change_stream) follows the primary so; binlog_format = ROW gives a
// TABLE_MAP event naming each table before its row events. Format:
// https://mariadb.com/kb/en/replication-protocol/ (event header, FORMAT_DESCRIPTION, GTID,
// TABLE_MAP, rows, QUERY and XID events). Integers are little-endian.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

namespace sluice::my {

namespace binlog_event {
inline constexpr std::uint8_t Query = 2, Rotate = 4, FormatDescription = 15, Xid = 16, TableMap = 19, WriteRowsV1 = 23,
                              UpdateRowsV1 = 24, DeleteRowsV1 = 25, Heartbeat = 27, WriteRowsV2 = 30, UpdateRowsV2 = 31,
                              DeleteRowsV2 = 32, Annotate = 160, Checkpoint = 161, MariaGtid = 162, GtidList = 163,
                              StartEncryption = 164, WriteRowsCompressed = 166, DeleteRowsCompressedV1 = 171;
}

// A MariaDB GTID without its server id (domain, sequence number), as positions compare them.
struct Gtid {
  std::uint32_t domain = 0;
  std::uint64_t seq = 0;
  bool known = false;
};

// One committed event group of the binlog.
struct BinlogCommit {
  Gtid gtid;                        // where it committed
  std::vector<std::string> tables;  // "db.table"
  bool all = false;                 // DDL, TRUNCATE, a statement, or an unknown table id
};

class BinlogDecoder {
 public:
  enum class Result { Nothing, Committed, End, Error, Malformed };
  // Feeds one packet of the dump (its first byte: 0x00 an event, 0xFE the end, 0xFF an error).
  // Committed: `out` holds the group that just committed.
  Result feed(std::span<const std::uint8_t> packet, BinlogCommit& out);
  // The last GTID seen (for the position a lost stream reached).
  const Gtid& last() const { return last_; }

 private:
  Result commit(BinlogCommit& out);
  std::size_t checksum_ = 0;                               // bytes of checksum at the end of each event (CRC32: 4)
  std::unordered_map<std::uint64_t, std::string> tables_;  // table id -> "db.table"
  std::vector<std::string> changed_;
  bool all_ = false, in_group_ = false, standalone_ = false;
  Gtid current_, last_;
};

}  // namespace sluice::my
