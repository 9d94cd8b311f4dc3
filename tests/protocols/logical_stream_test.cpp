#include "protocols/postgres/logical_stream.hpp"

#include <doctest/doctest.h>

#include <string>
#include <vector>

using namespace sluice::pg;

namespace {

struct Bytes {
  std::vector<std::uint8_t> b;
  Bytes& c(char v) {
    b.push_back(static_cast<std::uint8_t>(v));
    return *this;
  }
  Bytes& u32(std::uint32_t v) {
    for (int i = 3; i >= 0; --i) b.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
    return *this;
  }
  Bytes& u64(std::uint64_t v) {
    for (int i = 7; i >= 0; --i) b.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
    return *this;
  }
  Bytes& s(const std::string& v) {
    b.insert(b.end(), v.begin(), v.end());
    b.push_back(0);
    return *this;
  }
};

Bytes relation(std::uint32_t id, const std::string& ns, const std::string& name) {
  Bytes m;
  m.c('R').u32(id).s(ns).s(name).c('d');
  m.b.push_back(0), m.b.push_back(1);  // one column
  m.c(1).s("id").u32(23).u32(0xFFFFFFFF);
  return m;
}
Bytes begin() { return Bytes().c('B').u64(0x1000).u64(42).u32(700); }
Bytes commit(std::uint64_t end) { return Bytes().c('C').c(0).u64(end - 8).u64(end).u64(43); }
Bytes insert(std::uint32_t id) { return Bytes().c('I').u32(id).c('N').c(0).c(1); }

}  // namespace

TEST_CASE("pgoutput: a commit names the tables its rows changed, once each, with its end position") {
  PgOutputDecoder d;
  CommittedChange out;
  CHECK(d.feed(relation(16384, "public", "items").b, out) == PgOutputDecoder::Result::Nothing);
  CHECK(d.feed(relation(16390, "sales", "orders").b, out) == PgOutputDecoder::Result::Nothing);
  CHECK(d.feed(begin().b, out) == PgOutputDecoder::Result::Nothing);
  CHECK(d.feed(insert(16384).b, out) == PgOutputDecoder::Result::Nothing);
  CHECK(d.feed(insert(16390).b, out) == PgOutputDecoder::Result::Nothing);
  CHECK(d.feed(insert(16384).b, out) == PgOutputDecoder::Result::Nothing);
  // An update with the old key, and a delete: the relation id comes first in both.
  CHECK(d.feed(Bytes().c('U').u32(16390).c('K').c(0).c(1).c('N').c(0).c(1).b, out) == PgOutputDecoder::Result::Nothing);
  CHECK(d.feed(Bytes().c('D').u32(16384).c('K').c(0).c(1).b, out) == PgOutputDecoder::Result::Nothing);
  REQUIRE(d.feed(commit(0x2000).b, out) == PgOutputDecoder::Result::Committed);
  CHECK(out.end_lsn == 0x2000);
  CHECK(out.commit_time == 43);
  CHECK_FALSE(out.all);
  CHECK(out.tables == std::vector<std::string>{"public.items", "sales.orders"});
  // The next transaction starts empty.
  d.feed(begin().b, out);
  REQUIRE(d.feed(commit(0x3000).b, out) == PgOutputDecoder::Result::Committed);
  CHECK(out.tables.empty());
}

TEST_CASE("pgoutput: TRUNCATE names every table it emptied; an undescribed relation means every table") {
  PgOutputDecoder d;
  CommittedChange out;
  d.feed(relation(1, "public", "a").b, out);
  d.feed(relation(2, "public", "b").b, out);
  d.feed(begin().b, out);
  CHECK(d.feed(Bytes().c('T').u32(2).c(1).u32(2).u32(1).b, out) == PgOutputDecoder::Result::Nothing);
  REQUIRE(d.feed(commit(0x10).b, out) == PgOutputDecoder::Result::Committed);
  CHECK(out.tables == std::vector<std::string>{"public.a", "public.b"});
  d.feed(begin().b, out);
  d.feed(insert(99).b, out);
  REQUIRE(d.feed(commit(0x20).b, out) == PgOutputDecoder::Result::Committed);
  CHECK(out.all);
  // A relation described again (renamed: ALTER TABLE ... RENAME) takes its new name.
  d.feed(relation(1, "public", "a2").b, out);
  d.feed(begin().b, out);
  d.feed(insert(1).b, out);
  REQUIRE(d.feed(commit(0x30).b, out) == PgOutputDecoder::Result::Committed);
  CHECK(out.tables == std::vector<std::string>{"public.a2"});
}

TEST_CASE("pgoutput: a big transaction keeps one id per table; malformed messages are refused") {
  PgOutputDecoder d;
  CommittedChange out;
  d.feed(relation(1, "public", "a").b, out);
  d.feed(relation(2, "public", "b").b, out);
  d.feed(begin().b, out);
  for (int i = 0; i < 100000; ++i) d.feed(insert(1 + (i % 2)).b, out);
  REQUIRE(d.feed(commit(0x10).b, out) == PgOutputDecoder::Result::Committed);
  CHECK(out.tables.size() == 2);
  for (auto bad : {Bytes().c('I').c(0), Bytes().c('B').u64(1), Bytes().c('R').u32(1).s("x"), Bytes().c('Z'),
                   Bytes().c('T').u32(1000000).c(0).u32(1), Bytes()})
    CHECK(d.feed(bad.b, out) == PgOutputDecoder::Result::Malformed);
}

TEST_CASE("replication stream: XLogData and keepalives parse; the status update has the documented layout") {
  auto w = Bytes().c('w').u64(0x100).u64(0x200).u64(5).c('B');
  auto m = parse_stream_message(w.b);
  REQUIRE(m);
  CHECK(m->kind == StreamMessage::Kind::XLogData);
  CHECK(m->wal_start == 0x100);
  CHECK(m->wal_end == 0x200);
  CHECK(m->data.size() == 1);
  auto k = Bytes().c('k').u64(0x300).u64(6).c(1);
  m = parse_stream_message(k.b);
  REQUIRE(m);
  CHECK(m->kind == StreamMessage::Kind::Keepalive);
  CHECK(m->wal_end == 0x300);
  CHECK(m->reply_requested);
  CHECK_FALSE(parse_stream_message(Bytes().c('k').u64(1).b));
  CHECK_FALSE(parse_stream_message(Bytes().c('x').u64(1).u64(1).c(0).b));
  auto r = standby_status(0x0102030405060708ull, 9, true);
  REQUIRE(r.size() == 34);
  CHECK(r[0] == 'r');
  CHECK(r[1] == 1);
  CHECK(r[8] == 8);
  CHECK(r[9 + 7] == 8);   // flushed
  CHECK(r[25 + 7] == 9);  // the clock
  CHECK(r[33] == 1);
}

TEST_CASE("test_decoding: a commit names the tables its lines changed, at the position it was written at") {
  TestDecodingDecoder d;
  CommittedChange out;
  auto line = [](const std::string& s) { return std::vector<std::uint8_t>(s.begin(), s.end()); };
  CHECK(d.feed(line("BEGIN"), 0x10, out) == ChangeDecoder::Result::Nothing);
  CHECK(d.feed(line("table public.items: INSERT: id[integer]:1 v[integer]:2"), 0x10, out) ==
        ChangeDecoder::Result::Nothing);
  CHECK(d.feed(line("table public.items: UPDATE: id[integer]:1 v[integer]:3"), 0x18, out) ==
        ChangeDecoder::Result::Nothing);
  CHECK(d.feed(line("table \"My Schema\".\"a \"\"b\"\": c\": DELETE: (no-tuple-data)"), 0x20, out) ==
        ChangeDecoder::Result::Nothing);
  CHECK(d.feed(line("table public.log: TRUNCATE: (no-flags)"), 0x28, out) == ChangeDecoder::Result::Nothing);
  // pgbench -i truncates its four tables in one statement.
  CHECK(d.feed(line("table public.t1, \"S\".\"t 2\", public.t3: TRUNCATE: restart_seqs"), 0x28, out) ==
        ChangeDecoder::Result::Nothing);
  CHECK(d.feed(line("message: transactional: 1 prefix: x, sz: 1 content:y"), 0x28, out) ==
        ChangeDecoder::Result::Nothing);
  REQUIRE(d.feed(line("COMMIT"), 0x30, out) == ChangeDecoder::Result::Committed);
  CHECK(out.end_lsn == 0x30);
  CHECK(out.tables == std::vector<std::string>{"My Schema.a \"b\": c", "S.t 2", "public.items", "public.log",
                                               "public.t1", "public.t3"});
  for (auto bad : {"table nodot: INSERT: x", "table \"open.x: INSERT:", "table a.b INSERT", "WHAT",
                   "table a.b, : TRUNCATE", "table a.b,c.d: TRUNCATE"})
    CHECK(d.feed(line(bad), 0, out) == ChangeDecoder::Result::Malformed);
}

TEST_CASE("logical stream: a sluice_ddl message makes its transaction invalidate every table") {
  auto line = [](const std::string& s) { return std::vector<std::uint8_t>(s.begin(), s.end()); };
  TestDecodingDecoder t;
  CommittedChange out;
  t.feed(line("BEGIN"), 0, out);
  t.feed(line("message: transactional: 1 prefix: sluice_ddlx, sz: 3 content:abc"), 0, out);
  REQUIRE(t.feed(line("COMMIT"), 8, out) == ChangeDecoder::Result::Committed);
  CHECK_FALSE(out.all);
  t.feed(line("BEGIN"), 0, out);
  t.feed(line("message: transactional: 1 prefix: sluice_ddl, sz: 12 content:ALTER TABLE"), 0, out);
  REQUIRE(t.feed(line("COMMIT"), 16, out) == ChangeDecoder::Result::Committed);
  CHECK(out.all);
  t.feed(line("BEGIN"), 0, out);
  REQUIRE(t.feed(line("COMMIT"), 24, out) == ChangeDecoder::Result::Committed);
  CHECK_FALSE(out.all);

  PgOutputDecoder p;
  p.feed(begin().b, out);
  CHECK(p.feed(Bytes().c('M').c(1).u64(5).s("sluice_ddl").u32(1).c('x').b, out) == ChangeDecoder::Result::Nothing);
  REQUIRE(p.feed(commit(0x40).b, out) == ChangeDecoder::Result::Committed);
  CHECK(out.all);
  p.feed(begin().b, out);
  p.feed(Bytes().c('M').c(1).u64(5).s("other").u32(1).c('x').b, out);
  REQUIRE(p.feed(commit(0x50).b, out) == ChangeDecoder::Result::Committed);
  CHECK_FALSE(out.all);
}

TEST_CASE("test_decoding: the commit time of include-timestamp, in microseconds since 2000-01-01 UTC") {
  TestDecodingDecoder d;
  CommittedChange out;
  auto line = [](const std::string& s) { return std::vector<std::uint8_t>(s.begin(), s.end()); };
  d.feed(line("BEGIN"), 0, out);
  REQUIRE(d.feed(line("COMMIT (at 2000-01-01 00:00:01.5+00)"), 8, out) == ChangeDecoder::Result::Committed);
  CHECK(out.commit_time == 1'500'000);
  d.feed(line("BEGIN"), 0, out);
  REQUIRE(d.feed(line("COMMIT (at 2026-12-06 12:00:00.123456+00)"), 8, out) == ChangeDecoder::Result::Committed);
  // 2026-12-06 is 9,836 days after 2000-01-01.
  CHECK(out.commit_time == ((9836LL * 24 + 12) * 3600) * 1'000'000 + 123'456);
  d.feed(line("BEGIN"), 0, out);
  REQUIRE(d.feed(line("COMMIT (at 2026-12-06 12:00:00+01)"), 8, out) == ChangeDecoder::Result::Committed);
  CHECK(out.commit_time == 0);  // not UTC: unknown
  d.feed(line("BEGIN"), 0, out);
  REQUIRE(d.feed(line("COMMIT"), 8, out) == ChangeDecoder::Result::Committed);
  CHECK(out.commit_time == 0);
}
