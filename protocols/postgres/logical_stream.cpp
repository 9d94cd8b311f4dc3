#include "protocols/postgres/logical_stream.hpp"

#include "protocols/postgres/codec.hpp"

#include <algorithm>
#include <chrono>
#include <string_view>

namespace sluice::pg {

namespace {

void put64(std::vector<std::uint8_t>& out, std::uint64_t v) {
  for (int i = 7; i >= 0; --i) out.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
}

// PostgreSQL's epoch (2000-01-01) in Unix seconds.
constexpr std::int64_t kPgEpochUnix = 946684800;

}  // namespace

std::optional<StreamMessage> parse_stream_message(std::span<const std::uint8_t> payload) {
  Reader r(payload);
  StreamMessage m;
  switch (r.u8()) {
    case 'w':
      m.kind = StreamMessage::Kind::XLogData;
      m.wal_start = r.u64();
      m.wal_end = r.u64();
      m.send_time = static_cast<std::int64_t>(r.u64());
      if (!r.ok()) return std::nullopt;
      m.data = r.rest();
      return m;
    case 'k':
      m.kind = StreamMessage::Kind::Keepalive;
      m.wal_end = r.u64();
      m.send_time = static_cast<std::int64_t>(r.u64());
      m.reply_requested = r.u8() != 0;
      if (!r.ok()) return std::nullopt;
      return m;
    default:
      return std::nullopt;
  }
}

std::vector<std::uint8_t> standby_status(std::uint64_t flushed, std::int64_t now, bool reply) {
  std::vector<std::uint8_t> out;
  out.reserve(34);
  out.push_back('r');
  put64(out, flushed);  // written
  put64(out, flushed);  // flushed
  put64(out, flushed);  // applied
  put64(out, static_cast<std::uint64_t>(now));
  out.push_back(reply ? 1 : 0);
  return out;
}

std::int64_t pg_now_us() {
  auto us = std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch());
  return us.count() - kPgEpochUnix * 1'000'000;
}

// A transaction of a million rows is a million ids: kept distinct as they come (rows of one
// table usually come together), so what is held stays the number of tables.
void PgOutputDecoder::changed(std::uint32_t id) {
  if (!changed_.empty() && changed_.back() == id) return;
  changed_.push_back(id);
  if (changed_.size() >= 1024 && (changed_.size() & (changed_.size() - 1)) == 0) {
    std::sort(changed_.begin(), changed_.end());
    changed_.erase(std::unique(changed_.begin(), changed_.end()), changed_.end());
  }
}

PgOutputDecoder::Result PgOutputDecoder::feed(std::span<const std::uint8_t> msg, std::uint64_t, CommittedChange& out) {
  Reader r(msg);
  char kind = static_cast<char>(r.u8());
  switch (kind) {
    case 'B':  // Begin: final LSN, commit time, xid
      r.u64(), r.u64(), r.u32();
      if (!r.ok()) return Result::Malformed;
      changed_.clear();
      in_transaction_ = true;
      all_ = false;
      return Result::Nothing;
    case 'C': {  // Commit: flags, commit LSN, end LSN, commit time
      r.u8();
      r.u64();
      std::uint64_t end = r.u64();
      std::int64_t when = static_cast<std::int64_t>(r.u64());
      if (!r.ok()) return Result::Malformed;
      out = CommittedChange{};
      out.end_lsn = end;
      out.commit_time = when;
      out.all = all_;
      all_ = false;
      std::sort(changed_.begin(), changed_.end());
      changed_.erase(std::unique(changed_.begin(), changed_.end()), changed_.end());
      for (auto id : changed_) {
        auto it = relations_.find(id);
        if (it == relations_.end()) out.all = true;
        else out.tables.push_back(it->second);
      }
      changed_.clear();
      in_transaction_ = false;
      return Result::Committed;
    }
    case 'R': {  // Relation: id, namespace, name, replica identity, columns (not needed)
      std::uint32_t id = r.u32();
      std::string ns = std::string(r.cstr());
      std::string name = std::string(r.cstr());
      if (!r.ok()) return Result::Malformed;
      relations_[id] = ns.empty() ? name : ns + "." + name;
      return Result::Nothing;
    }
    case 'I':
    case 'U':
    case 'D': {  // the relation id comes first; the tuples are not needed
      std::uint32_t id = r.u32();
      if (!r.ok()) return Result::Malformed;
      changed(id);
      return Result::Nothing;
    }
    case 'T': {  // Truncate: number of relations, options, ids
      std::uint32_t n = r.u32();
      r.u8();
      if (!r.ok() || n > r.remaining() / 4) return Result::Malformed;
      for (std::uint32_t i = 0; i < n; ++i) changed(r.u32());
      return Result::Nothing;
    }
    case 'M': {  // logical decoding message: flags, LSN, prefix, length, content
      r.u8();
      r.u64();
      std::string prefix = std::string(r.cstr());
      if (!r.ok()) return Result::Malformed;
      if (prefix == kDdlMessagePrefix && in_transaction_) all_ = true;
      return Result::Nothing;
    }
    case 'O':  // Origin, Type: nothing to invalidate
    case 'Y':
      return Result::Nothing;
    default:
      return Result::Malformed;
  }
}

namespace {

// One identifier as test_decoding prints it (quote_identifier: "..." with "" for a quote, or
// bare); advances `at`. False when malformed.
bool read_ident(std::string_view line, std::size_t& at, std::string& out) {
  out.clear();
  if (at < line.size() && line[at] == '"') {
    for (++at; at < line.size(); ++at) {
      if (line[at] == '"') {
        if (at + 1 < line.size() && line[at + 1] == '"') {
          out += '"';
          ++at;
          continue;
        }
        ++at;
        return true;
      }
      out += line[at];
    }
    return false;
  }
  while (at < line.size() && line[at] != '.' && line[at] != ':' && line[at] != ',') out += line[at++];
  return !out.empty();
}

// "(at 2026-12-06 12:00:00.123456+00)" at the end of a COMMIT line (include-timestamp; the
// stream's session runs with DateStyle ISO and TimeZone UTC): microseconds since 2000-01-01.
std::int64_t commit_time(std::string_view line) {
  auto at = line.find(" (at ");
  if (at == std::string_view::npos) return 0;
  std::string_view t = line.substr(at + 5);
  auto num = [&](std::size_t pos, std::size_t len, int& out) {
    if (pos + len > t.size()) return false;
    out = 0;
    for (std::size_t i = pos; i < pos + len; ++i) {
      if (t[i] < '0' || t[i] > '9') return false;
      out = out * 10 + (t[i] - '0');
    }
    return true;
  };
  int y, mo, d, h, mi, sec;
  if (!num(0, 4, y) || !num(5, 2, mo) || !num(8, 2, d) || !num(11, 2, h) || !num(14, 2, mi) || !num(17, 2, sec))
    return 0;
  std::int64_t micros = 0;
  std::size_t pos = 19;
  if (pos < t.size() && t[pos] == '.') {
    int digits = 0;
    for (++pos; pos < t.size() && t[pos] >= '0' && t[pos] <= '9'; ++pos, ++digits)
      if (digits < 6) micros = micros * 10 + (t[pos] - '0');
    for (; digits < 6; ++digits) micros *= 10;
  }
  if (t.substr(pos, 3) != "+00") return 0;  // UTC, as the session asked
  // Days from 1970-01-01 (Howard Hinnant's days_from_civil), then from 2000-01-01.
  y -= mo <= 2;
  const int era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * static_cast<unsigned>(mo + (mo > 2 ? -3 : 9)) + 2) / 5 + static_cast<unsigned>(d) - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  std::int64_t days = std::int64_t(era) * 146097 + std::int64_t(doe) - 719468 - 10957;
  return ((days * 24 + h) * 60 + mi) * 60'000'000LL + std::int64_t(sec) * 1'000'000 + micros;
}

}  // namespace

TestDecodingDecoder::Result TestDecodingDecoder::feed(std::span<const std::uint8_t> msg, std::uint64_t wal_start,
                                                      CommittedChange& out) {
  std::string_view line(reinterpret_cast<const char*>(msg.data()), msg.size());
  if (line.starts_with("BEGIN")) {
    changed_.clear();
    all_ = false;
    return Result::Nothing;
  }
  if (line.starts_with("COMMIT")) {
    out = CommittedChange{};
    out.end_lsn = wal_start;
    out.commit_time = commit_time(line);
    std::sort(changed_.begin(), changed_.end());
    changed_.erase(std::unique(changed_.begin(), changed_.end()), changed_.end());
    out.tables = std::move(changed_);
    out.all = all_;
    changed_.clear();
    all_ = false;
    return Result::Committed;
  }
  if (line.starts_with("table ")) {  // table <schema>.<name>[, <schema>.<name>...]: <ACTION>: ...
    std::size_t at = 6;
    for (;;) {  // TRUNCATE of several tables names them all, separated by ", "
      std::string schema, name;
      if (!read_ident(line, at, schema) || at >= line.size() || line[at] != '.') return Result::Malformed;
      ++at;
      if (!read_ident(line, at, name) || at >= line.size()) return Result::Malformed;
      std::string table = schema + "." + name;
      if (changed_.empty() || changed_.back() != table) changed_.push_back(std::move(table));
      if (line[at] == ':') break;
      if (line.substr(at, 2) != ", ") return Result::Malformed;
      at += 2;
    }
    if (changed_.size() >= 1024 && (changed_.size() & (changed_.size() - 1)) == 0) {
      std::sort(changed_.begin(), changed_.end());
      changed_.erase(std::unique(changed_.begin(), changed_.end()), changed_.end());
    }
    return Result::Nothing;
  }
  if (line.starts_with("message:")) {  // message: transactional: 1 prefix: <p>, sz: <n> content:<bytes>
    auto p = line.find(" prefix: ");
    if (p != std::string_view::npos && line.substr(p + 9).starts_with(kDdlMessagePrefix) &&
        line.substr(p + 9 + kDdlMessagePrefix.size()).starts_with(","))
      all_ = true;
    return Result::Nothing;
  }
  return Result::Malformed;
}

}  // namespace sluice::pg
