// Result-set writers for the admin console (PostgreSQL 55.7 message formats; MySQL text and
// binary result sets, "Protocol::ColumnDefinition41").
#include "src/admin/render.hpp"

#include <cstring>
#include <ctime>

#include "protocols/mysql/codec.hpp"
#include "protocols/postgres/codec.hpp"

namespace sluice::admin {

namespace {

bool binary_format(const std::vector<std::int16_t>& formats, std::size_t i) {
  if (formats.empty()) return false;
  if (formats.size() == 1) return formats[0] == 1;
  return i < formats.size() && formats[i] == 1;
}

void put_be64(std::string& out, std::uint64_t v) {
  for (int i = 7; i >= 0; --i) out.push_back(static_cast<char>((v >> (i * 8)) & 0xFF));
}

struct Civil {
  int year = 1970, month = 1, day = 1, hour = 0, minute = 0, second = 0, micro = 0;
};
Civil parse_ts(const std::string& s) {
  Civil c;
  std::sscanf(s.c_str(), "%d-%d-%d %d:%d:%d.%d", &c.year, &c.month, &c.day, &c.hour, &c.minute, &c.second, &c.micro);
  return c;
}

// PostgreSQL binary encodings of the canonical text forms.
std::string pg_binary(Type t, const std::string& v) {
  std::string o;
  switch (t) {
    case Type::Int: put_be64(o, static_cast<std::uint64_t>(std::strtoll(v.c_str(), nullptr, 10))); break;
    case Type::Float: {
      double d = std::strtod(v.c_str(), nullptr);
      std::uint64_t bits;
      std::memcpy(&bits, &d, 8);
      put_be64(o, bits);
      break;
    }
    case Type::Bool: o.push_back(v == "t" ? 1 : 0); break;
    case Type::Timestamp: {  // microseconds since 2000-01-01 00:00:00
      auto c = parse_ts(v);
      std::tm tm{};
      tm.tm_year = c.year - 1900;
      tm.tm_mon = c.month - 1;
      tm.tm_mday = c.day;
      tm.tm_hour = c.hour;
      tm.tm_min = c.minute;
      tm.tm_sec = c.second;
      std::int64_t secs = static_cast<std::int64_t>(timegm(&tm)) - 946684800;
      put_be64(o, static_cast<std::uint64_t>(secs * 1000000 + c.micro));
      break;
    }
    case Type::Text: o = v; break;
  }
  return o;
}

}  // namespace

std::uint32_t pg_type_oid(Type t) {
  switch (t) {
    case Type::Int: return 20;        // int8
    case Type::Float: return 701;     // float8
    case Type::Bool: return 16;       // bool
    case Type::Timestamp: return 1114;  // timestamp (UTC)
    case Type::Text: return 25;       // text
  }
  return 25;
}

void pg_row_description(std::string& out, const std::vector<Column>& cols, const std::vector<std::int16_t>& formats) {
  pg::Builder b(out);
  b.begin(pg::be::RowDescription).i16(static_cast<std::int16_t>(cols.size()));
  for (std::size_t i = 0; i < cols.size(); ++i) {
    auto t = cols[i].type;
    std::int16_t size = t == Type::Text ? -1 : t == Type::Bool ? 1 : 8;
    b.str(cols[i].name).i32(0).i16(0).i32(static_cast<std::int32_t>(pg_type_oid(t))).i16(size).i32(-1);
    b.i16(binary_format(formats, i) ? 1 : 0);
  }
  b.end();
}

void pg_result(std::string& out, const Result& r, const std::vector<std::int16_t>& formats) {
  if (r.error) {
    pg::error_response(out, "ERROR", r.sqlstate, r.message);
    return;
  }
  if (r.tag.empty() && r.columns.empty()) {
    pg::Builder(out).begin(pg::be::EmptyQueryResponse).end();
    return;
  }
  for (auto& row : r.rows) {
    pg::Builder b(out);
    b.begin(pg::be::DataRow).i16(static_cast<std::int16_t>(row.size()));
    for (std::size_t i = 0; i < row.size(); ++i) {
      if (!row[i]) {
        b.i32(-1);
        continue;
      }
      std::string v = binary_format(formats, i) ? pg_binary(r.columns[i].type, *row[i]) : *row[i];
      b.i32(static_cast<std::int32_t>(v.size())).raw(v);
    }
    b.end();
  }
  if (!r.info.empty()) {
    pg::Builder b(out);
    b.begin(pg::be::NoticeResponse).i8('S').str("NOTICE").i8('V').str("NOTICE").i8('C').str("00000");
    b.i8('M').str(r.info).i8(0).end();
  }
  std::string tag = r.tag;
  if (tag == "SHOW" && r.columns.empty()) tag = "SHOW";
  else if (tag.rfind("SELECT", 0) == 0) tag = "SELECT " + std::to_string(r.rows.size());
  pg::Builder(out).begin(pg::be::CommandComplete).str(tag).end();
}

// ---- MySQL ---------------------------------------------------------------------------------

namespace {
constexpr std::uint8_t kTiny = 1, kDouble = 5, kLongLong = 8, kDatetime = 12, kVarString = 253;
constexpr std::uint16_t kNotNull = 1, kBinaryFlag = 128, kNum = 32768;

std::uint8_t mysql_type(Type t) {
  switch (t) {
    case Type::Int: return kLongLong;
    case Type::Float: return kDouble;
    case Type::Bool: return kTiny;
    case Type::Timestamp: return kDatetime;
    case Type::Text: return kVarString;
  }
  return kVarString;
}

std::string mysql_text(Type t, const std::string& v) {
  if (t == Type::Bool) return v == "t" ? "1" : "0";
  return v;
}

void put_le(std::string& out, std::uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
}

void terminator(std::string& out, std::uint8_t& seq, std::uint32_t caps, std::uint16_t status) {
  std::string p;
  if (caps & my::cap::DEPRECATE_EOF) {
    my::Ok ok;
    ok.header = 0xFE;
    ok.status = status;
    my::build_ok(p, ok, (caps & my::cap::SESSION_TRACK) != 0);
  } else {
    my::build_eof(p, 0, status);
  }
  seq = my::append_packets(out, p, seq);
}
}  // namespace

void mysql_column_def(std::string& p, const Column& c, std::uint32_t mariadb_caps) {
  my::put_lenenc_str(p, "def");
  my::put_lenenc_str(p, "sluice");
  my::put_lenenc_str(p, "");
  my::put_lenenc_str(p, "");
  my::put_lenenc_str(p, c.name);
  my::put_lenenc_str(p, c.name);
  if (mariadb_caps & my::mariadb_cap::EXTENDED_METADATA) my::put_lenenc_str(p, "");  // no extended type info
  my::put_lenenc(p, 0x0c);
  bool text = c.type == Type::Text;
  my::put_u16(p, text ? 45 : 63);  // utf8mb4_general_ci / binary
  my::put_u32(p, text ? 1024 * 4 : c.type == Type::Timestamp ? 26 : 20);
  p.push_back(static_cast<char>(mysql_type(c.type)));
  std::uint16_t flags = text ? 0 : kBinaryFlag;
  if (c.type == Type::Int || c.type == Type::Float || c.type == Type::Bool) flags |= kNum;
  (void)kNotNull;
  my::put_u16(p, flags);
  p.push_back(static_cast<char>(c.type == Type::Float ? 31 : c.type == Type::Timestamp ? 6 : 0));  // decimals
  my::put_u16(p, 0);
}

void mysql_result(std::string& out, const Result& r, std::uint8_t seq, std::uint32_t caps, bool binary,
                  std::uint16_t status, std::uint32_t mariadb_caps) {
  const bool deprecate_eof = (caps & my::cap::DEPRECATE_EOF) != 0;
  if (r.error) {
    std::string p;
    my::build_err(p, r.mysql_code ? r.mysql_code : 1105, r.sqlstate.empty() ? "HY000" : r.sqlstate, r.message);
    my::append_packets(out, p, seq);
    return;
  }
  if (r.columns.empty()) {
    std::string p;
    my::Ok ok;
    ok.status = status;
    ok.info = r.info;
    my::build_ok(p, ok, (caps & my::cap::SESSION_TRACK) != 0);
    my::append_packets(out, p, seq);
    return;
  }
  std::string p;
  my::put_lenenc(p, r.columns.size());
  seq = my::append_packets(out, p, seq);
  for (auto& c : r.columns) {
    p.clear();
    mysql_column_def(p, c, mariadb_caps);
    seq = my::append_packets(out, p, seq);
  }
  if (!deprecate_eof) {
    p.clear();
    my::build_eof(p, 0, status);
    seq = my::append_packets(out, p, seq);
  }
  for (auto& row : r.rows) {
    p.clear();
    if (!binary) {
      for (std::size_t i = 0; i < row.size(); ++i) {
        if (!row[i]) p.push_back(static_cast<char>(0xFB));
        else my::put_lenenc_str(p, mysql_text(r.columns[i].type, *row[i]));
      }
    } else {
      p.push_back(0);
      std::string bitmap((row.size() + 7 + 2) / 8, '\0');
      std::string values;
      for (std::size_t i = 0; i < row.size(); ++i) {
        if (!row[i]) {
          bitmap[(i + 2) / 8] = static_cast<char>(bitmap[(i + 2) / 8] | (1 << ((i + 2) % 8)));
          continue;
        }
        const auto& v = *row[i];
        switch (r.columns[i].type) {
          case Type::Int: put_le(values, static_cast<std::uint64_t>(std::strtoll(v.c_str(), nullptr, 10)), 8); break;
          case Type::Float: {
            double d = std::strtod(v.c_str(), nullptr);
            std::uint64_t bits;
            std::memcpy(&bits, &d, 8);
            put_le(values, bits, 8);
            break;
          }
          case Type::Bool: values.push_back(v == "t" ? 1 : 0); break;
          case Type::Timestamp: {
            auto c = parse_ts(v);
            values.push_back(11);
            put_le(values, static_cast<std::uint64_t>(c.year), 2);
            values.push_back(static_cast<char>(c.month));
            values.push_back(static_cast<char>(c.day));
            values.push_back(static_cast<char>(c.hour));
            values.push_back(static_cast<char>(c.minute));
            values.push_back(static_cast<char>(c.second));
            put_le(values, static_cast<std::uint64_t>(c.micro), 4);
            break;
          }
          case Type::Text: my::put_lenenc_str(values, v); break;
        }
      }
      p += bitmap;
      p += values;
    }
    seq = my::append_packets(out, p, seq);
  }
  terminator(out, seq, caps, status);
}

}  // namespace sluice::admin
