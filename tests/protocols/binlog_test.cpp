#include "protocols/mysql/binlog.hpp"

#include <doctest/doctest.h>

#include <string>
#include <vector>

using namespace sluice::my;

namespace {

// One dump packet: 0x00, the 19-byte header, `body`, and `checksum` bytes of (unchecked) CRC.
std::vector<std::uint8_t> event(std::uint8_t type, const std::vector<std::uint8_t>& body, std::size_t checksum = 4) {
  std::vector<std::uint8_t> ev;
  auto le = [&](std::uint64_t v, int n) {
    for (int i = 0; i < n; ++i) ev.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
  };
  le(0, 4);
  ev.push_back(type);
  le(1, 4);
  le(19 + body.size() + checksum, 4);
  le(0, 4);
  le(0, 2);
  ev.insert(ev.end(), body.begin(), body.end());
  for (std::size_t i = 0; i < checksum; ++i) ev.push_back(0xAB);
  ev.insert(ev.begin(), 0x00);
  return ev;
}

struct B {
  std::vector<std::uint8_t> b;
  B& le(std::uint64_t v, int n) {
    for (int i = 0; i < n; ++i) b.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
    return *this;
  }
  B& str(const std::string& s) {
    b.insert(b.end(), s.begin(), s.end());
    return *this;
  }
};

std::vector<std::uint8_t> fde(std::uint8_t alg) {
  B b;
  b.le(4, 2).str(std::string(50, '\0')).le(0, 4).le(19, 1).str(std::string(40, '\x08'));
  b.le(alg, 1);
  return event(binlog_event::FormatDescription, b.b, 4);
}
std::vector<std::uint8_t> gtid(std::uint32_t domain, std::uint64_t seq, std::uint8_t flags = 0) {
  return event(binlog_event::MariaGtid, B().le(seq, 8).le(domain, 4).le(flags, 1).b);
}
std::vector<std::uint8_t> table_map(std::uint64_t id, const std::string& db, const std::string& t) {
  B b;
  b.le(id, 6).le(1, 2).le(db.size(), 1).str(db).le(0, 1).le(t.size(), 1).str(t).le(0, 1).le(1, 1).le(3, 1);
  return event(binlog_event::TableMap, b.b);
}
std::vector<std::uint8_t> rows(std::uint8_t type, std::uint64_t id) {
  return event(type, B().le(id, 6).le(0, 2).le(1, 1).le(1, 1).le(0, 1).b);
}
std::vector<std::uint8_t> query(const std::string& sql, const std::string& db = "app") {
  B b;
  b.le(7, 4).le(0, 4).le(db.size(), 1).le(0, 2).le(0, 2).str(db).le(0, 1).str(sql);
  return event(binlog_event::Query, b.b);
}
std::vector<std::uint8_t> xid() { return event(binlog_event::Xid, B().le(99, 8).b); }

}  // namespace

TEST_CASE("binlog: a transaction's row events name its tables; XID commits it at its GTID") {
  BinlogDecoder d;
  BinlogCommit out;
  CHECK(d.feed(fde(1), out) == BinlogDecoder::Result::Nothing);
  CHECK(d.feed(gtid(0, 41), out) == BinlogDecoder::Result::Nothing);
  CHECK(d.feed(query("BEGIN"), out) == BinlogDecoder::Result::Nothing);
  CHECK(d.feed(table_map(70, "app", "items"), out) == BinlogDecoder::Result::Nothing);
  CHECK(d.feed(rows(binlog_event::WriteRowsV1, 70), out) == BinlogDecoder::Result::Nothing);
  CHECK(d.feed(table_map(71, "app", "log"), out) == BinlogDecoder::Result::Nothing);
  CHECK(d.feed(rows(binlog_event::UpdateRowsV1, 71), out) == BinlogDecoder::Result::Nothing);
  CHECK(d.feed(rows(binlog_event::DeleteRowsV1, 70), out) == BinlogDecoder::Result::Nothing);
  REQUIRE(d.feed(xid(), out) == BinlogDecoder::Result::Committed);
  CHECK(out.tables == std::vector<std::string>{"app.items", "app.log"});
  CHECK_FALSE(out.all);
  CHECK((out.gtid.known && out.gtid.domain == 0 && out.gtid.seq == 41));
  CHECK(d.last().seq == 41);
}

TEST_CASE("binlog: DDL, TRUNCATE and unknown table ids invalidate everything; checksums off too") {
  BinlogDecoder d;
  BinlogCommit out;
  CHECK(d.feed(fde(0), out) == BinlogDecoder::Result::Nothing);
  auto no_sum = [](std::uint8_t type, std::vector<std::uint8_t> body) { return event(type, body, 0); };
  CHECK(d.feed(no_sum(binlog_event::MariaGtid, B().le(5, 8).le(1, 4).le(1, 1).b), out) ==
        BinlogDecoder::Result::Nothing);
  B q;
  q.le(7, 4).le(0, 4).le(3, 1).le(0, 2).le(0, 2).str("app").le(0, 1).str("ALTER TABLE items ADD COLUMN w int");
  REQUIRE(d.feed(no_sum(binlog_event::Query, q.b), out) == BinlogDecoder::Result::Committed);
  CHECK(out.all);
  CHECK((out.gtid.domain == 1 && out.gtid.seq == 5));
  CHECK(d.feed(no_sum(binlog_event::MariaGtid, B().le(6, 8).le(1, 4).le(0, 1).b), out) ==
        BinlogDecoder::Result::Nothing);
  CHECK(d.feed(no_sum(binlog_event::WriteRowsV1, B().le(12345, 6).le(0, 2).b), out) == BinlogDecoder::Result::Nothing);
  REQUIRE(d.feed(no_sum(binlog_event::Xid, B().le(1, 8).b), out) == BinlogDecoder::Result::Committed);
  CHECK(out.all);
}

TEST_CASE("binlog: the end, an error, and malformed packets") {
  BinlogDecoder d;
  BinlogCommit out;
  CHECK(d.feed(std::vector<std::uint8_t>{0xFE, 0, 0, 0, 0}, out) == BinlogDecoder::Result::End);
  CHECK(d.feed(std::vector<std::uint8_t>{0xFF, 0x10, 0x04}, out) == BinlogDecoder::Result::Error);
  CHECK(d.feed(std::vector<std::uint8_t>{}, out) == BinlogDecoder::Result::Malformed);
  CHECK(d.feed(std::vector<std::uint8_t>{0x00, 1, 2, 3}, out) == BinlogDecoder::Result::Malformed);
  auto ev = gtid(0, 1);
  ev[10] = 0xFF;  // the size disagrees with the packet
  CHECK(d.feed(ev, out) == BinlogDecoder::Result::Malformed);
  CHECK(d.feed(event(binlog_event::TableMap, B().le(1, 6).le(0, 2).le(200, 1).str("ab").b), out) ==
        BinlogDecoder::Result::Malformed);
}
