#include "protocols/mysql/binlog.hpp"

#include "protocols/mysql/codec.hpp"

#include <algorithm>
#include <cctype>
#include <string_view>

namespace sluice::my {

namespace {

// A 6-byte table id (little-endian, as every binlog integer).
std::uint64_t u48(Reader& r) {
  std::uint64_t low = r.u32();
  return low | (std::uint64_t(r.u16()) << 32);
}

constexpr std::size_t kHeader = 19;

bool ieq_prefix(std::string_view text, std::string_view word) {
  if (text.size() < word.size()) return false;
  for (std::size_t i = 0; i < word.size(); ++i)
    if (std::toupper(static_cast<unsigned char>(text[i])) != word[i]) return false;
  return text.size() == word.size() || !std::isalnum(static_cast<unsigned char>(text[word.size()]));
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && (std::isspace(static_cast<unsigned char>(s.back())) || s.back() == ';')) s.remove_suffix(1);
  return s;
}

}  // namespace

BinlogDecoder::Result BinlogDecoder::commit(BinlogCommit& out) {
  out = BinlogCommit{};
  out.gtid = current_;
  std::sort(changed_.begin(), changed_.end());
  changed_.erase(std::unique(changed_.begin(), changed_.end()), changed_.end());
  out.tables = std::move(changed_);
  out.all = all_;
  changed_.clear();
  all_ = in_group_ = standalone_ = false;
  if (current_.known) last_ = current_;
  return Result::Committed;
}

BinlogDecoder::Result BinlogDecoder::feed(std::span<const std::uint8_t> packet, BinlogCommit& out) {
  if (packet.empty()) return Result::Malformed;
  if (packet[0] == 0xFF) return Result::Error;
  if (packet[0] == 0xFE && packet.size() < 9) return Result::End;
  if (packet[0] != 0x00 || packet.size() < 1 + kHeader) return Result::Malformed;
  auto ev = packet.subspan(1);
  Reader h(ev);
  h.u32();  // timestamp
  auto type = h.u8();
  h.u32();  // server id
  auto size = h.u32();
  if (size != ev.size()) return Result::Malformed;
  if (type == binlog_event::FormatDescription) {
    // binlog version (2), server version (50), created (4), header length (1), post-header
    // lengths, then the checksum algorithm (1) and a checksum (4).
    if (ev.size() < kHeader + 57 + 5) return Result::Malformed;
    std::uint8_t alg = ev[ev.size() - 5];
    checksum_ = alg == 1 ? 4 : 0;
    return Result::Nothing;
  }
  if (ev.size() < kHeader + checksum_) return Result::Malformed;
  auto body = ev.subspan(kHeader, ev.size() - kHeader - checksum_);
  Reader r(body);
  switch (type) {
    case binlog_event::MariaGtid: {  // sequence number (8), domain (4), flags (1)
      std::uint64_t seq = r.u64();
      auto domain = r.u32();
      auto flags = r.u8();
      if (!r.ok()) return Result::Malformed;
      changed_.clear();
      all_ = false;
      in_group_ = true;
      standalone_ = (flags & 1) != 0;
      current_ = Gtid{domain, seq, true};
      return Result::Nothing;
    }
    case binlog_event::TableMap: {  // table id (6), flags (2), db, table
      std::uint64_t id = u48(r);
      r.u16();
      auto db_len = r.u8();
      auto db = r.str(db_len);
      r.u8();
      auto t_len = r.u8();
      auto table = r.str(t_len);
      if (!r.ok()) return Result::Malformed;
      if (tables_.size() > 65536) tables_.clear();  // ids grow; the next TABLE_MAP names each again
      tables_[id] = std::string(db) + "." + std::string(table);
      return Result::Nothing;
    }
    case binlog_event::Xid:
      return commit(out);
    case binlog_event::Query: {  // thread (4), time (4), db length (1), error (2), status length (2)
      r.u64();
      auto db_len = r.u8();
      r.u16();
      auto status_len = r.u16();
      r.str(status_len);
      r.str(db_len + 1);
      if (!r.ok()) return Result::Malformed;
      std::string_view sql =
          trim(std::string_view(reinterpret_cast<const char*>(body.data() + r.pos()), body.size() - r.pos()));
      if (ieq_prefix(sql, "BEGIN") || ieq_prefix(sql, "XA START")) return Result::Nothing;
      if (ieq_prefix(sql, "COMMIT") || ieq_prefix(sql, "XA COMMIT") || ieq_prefix(sql, "ROLLBACK") ||
          ieq_prefix(sql, "XA END") || ieq_prefix(sql, "XA PREPARE"))
        return ieq_prefix(sql, "XA END") || ieq_prefix(sql, "XA PREPARE") ? Result::Nothing : commit(out);
      if (ieq_prefix(sql, "SAVEPOINT")) return Result::Nothing;
      all_ = true;  // DDL, TRUNCATE, or a statement logged as such: its tables are not named here
      if (standalone_ || !in_group_) return commit(out);
      return Result::Nothing;
    }
    default:
      break;
  }
  bool rows = (type >= binlog_event::WriteRowsV1 && type <= binlog_event::DeleteRowsV1) ||
              (type >= binlog_event::WriteRowsV2 && type <= binlog_event::DeleteRowsV2) ||
              (type >= binlog_event::WriteRowsCompressed && type <= binlog_event::DeleteRowsCompressedV1);
  if (rows) {
    std::uint64_t id = u48(r);
    if (!r.ok()) return Result::Malformed;
    auto it = tables_.find(id);
    if (it == tables_.end()) all_ = true;
    else if (changed_.empty() || changed_.back() != it->second) changed_.push_back(it->second);
    if (changed_.size() >= 1024 && (changed_.size() & (changed_.size() - 1)) == 0) {
      std::sort(changed_.begin(), changed_.end());
      changed_.erase(std::unique(changed_.begin(), changed_.end()), changed_.end());
    }
  }
  return Result::Nothing;  // rotate, heartbeat, annotate, checkpoint, GTID list, others
}

}  // namespace sluice::my
