// Cache storage: LRU eviction under a byte budget with exact accounting, TTL, the table index.
#include <doctest/doctest.h>

#include "src/cache/store.hpp"

using namespace sluice::cache;
using namespace std::chrono_literals;

TEST_CASE("exact byte accounting and LRU eviction under the budget") {
  auto t0 = Clock::now();
  std::size_t one = entry_cost(2, 100, {"t"});
  Shard s(3 * one);
  CHECK(s.put("k1", std::string(100, 'a'), {"t"}, 60s, t0));
  CHECK(s.put("k2", std::string(100, 'b'), {"t"}, 60s, t0));
  CHECK(s.put("k3", std::string(100, 'c'), {"t"}, 60s, t0));
  CHECK(s.stats().bytes == 3 * one);
  CHECK(s.get("k1", t0));  // k1 now most recent: k2 is the oldest
  CHECK(s.put("k4", std::string(100, 'd'), {"t"}, 60s, t0));
  CHECK_FALSE(s.get("k2", t0));
  CHECK(s.get("k1", t0));
  CHECK(s.get("k3", t0));
  CHECK(s.get("k4", t0));
  auto st = s.stats();
  CHECK(st.entries == 3);
  CHECK(st.bytes == 3 * one);
  CHECK(st.evictions == 1);
  // Replacing a key re-charges it; an entry larger than the budget is refused.
  CHECK(s.put("k1", std::string(10, 'x'), {"t"}, 60s, t0));
  CHECK(s.stats().bytes == 2 * one + entry_cost(2, 10, {"t"}));
  CHECK_FALSE(s.put("huge", std::string(4 * one, 'h'), {}, 60s, t0));
  CHECK(*s.get("k1", t0) == std::string(10, 'x'));
}

TEST_CASE("entries expire after their TTL") {
  auto t0 = Clock::now();
  Shard s(1 << 20);
  s.put("k", "v", {}, 30s, t0);
  CHECK(s.get("k", t0 + 29s));
  CHECK_FALSE(s.get("k", t0 + 31s));
  CHECK(s.stats().entries == 0);
  CHECK(s.stats().bytes == 0);
  CHECK(s.stats().expirations == 1);
}

TEST_CASE("a write to a table drops exactly the entries that read it") {
  auto t0 = Clock::now();
  Store store(1 << 20, 4);
  store.put("a-only", "1", {"a"}, 60s, t0);
  store.put("b-only", "2", {"b"}, 60s, t0);
  store.put("a-and-b", "3", {"a", "b"}, 60s, t0);
  store.put("none", "4", {}, 60s, t0);
  CHECK(store.invalidate_table("a") == 2);
  CHECK_FALSE(store.get("a-only", t0));
  CHECK_FALSE(store.get("a-and-b", t0));
  CHECK(store.get("b-only", t0));
  CHECK(store.get("none", t0));
  CHECK(store.invalidate_table("a") == 0);
  CHECK(store.invalidate_table("b") == 1);  // the index forgot a-and-b when it went
  auto st = store.stats();
  CHECK(st.entries == 1);
  CHECK(st.invalidations == 3);
  CHECK(store.invalidate_all() == 1);
  CHECK(store.stats().bytes == 0);
}

TEST_CASE("the memory cap holds under a flood of distinct entries") {
  Store store(256 * 1024, 8);
  auto t0 = Clock::now();
  for (int i = 0; i < 20000; ++i) store.put("key-" + std::to_string(i), std::string(100 + i % 300, 'x'), {"t"}, 60s, t0);
  auto st = store.stats();
  CHECK(st.bytes <= 256u * 1024);
  CHECK(st.entries > 100);
  CHECK(st.evictions + st.entries == 20000);
  CHECK(store.invalidate_table("t") == st.entries);
  CHECK(store.stats().bytes == 0);
}

TEST_CASE("one fill per key at a time") {
  Store store(1 << 20, 2);
  CHECK(store.begin_fill("k"));
  CHECK_FALSE(store.begin_fill("k"));  // a second miss waits instead of querying
  CHECK(store.filling("k"));
  CHECK(store.begin_fill("other"));
  store.end_fill("k");
  CHECK_FALSE(store.filling("k"));
  CHECK(store.begin_fill("k"));
}

TEST_CASE("an answer read before a concurrent write's invalidation is not kept") {
  Store store(1 << 20, 2);
  auto g = store.fill_ticket({"t"}, "pg");
  store.invalidate_table("t");  // a write committed while the read was in flight
  CHECK_FALSE(store.put_if_current("k", "old", {"t"}, 60s, g));
  CHECK_FALSE(store.get("k"));
  auto g2 = store.fill_ticket({"t"}, "pg");
  CHECK(store.put_if_current("k", "new", {"t"}, 60s, g2));
  store.invalidate_table("other");  // unrelated tables do not matter
  CHECK(store.generation({"t"}) == g2.generation);
  store.invalidate_all();
  CHECK(store.generation({"t"}) != g2.generation);
}

TEST_CASE("counters per pool, for the admin console") {
  Store store(1 << 20, 4);
  auto t0 = Clock::now();
  store.put("a1", "xx", {"t"}, 60s, t0, "pool a");
  store.put("a2", "xx", {"u"}, 60s, t0, "pool a");
  store.put("b1", "xx", {"t"}, 60s, t0, "pool b");
  CHECK(store.get("a1", t0, "pool a"));
  CHECK_FALSE(store.get("zz", t0, "pool a"));
  CHECK(store.get("b1", t0, "pool b"));
  auto a = store.stats("pool a");
  CHECK(a.entries == 2);
  CHECK(a.bytes == 2 * entry_cost(2, 2, {"t"}));
  CHECK(a.hits == 1);
  CHECK(a.misses == 1);
  CHECK(store.invalidate_table("t") == 2);  // purge by table
  CHECK(store.stats("pool a").entries == 1);
  CHECK(store.stats("pool a").invalidations == 1);
  CHECK(store.stats("pool b").entries == 0);
  CHECK(store.stats("pool b").invalidations == 1);
  auto scopes = store.scopes();
  CHECK(scopes.size() == 2);
  CHECK(store.invalidate_all() == 1);  // purge all
  CHECK(store.stats("pool a").bytes == 0);
  CHECK(store.stats().bytes == 0);
}

namespace {
sluice::replication::Position lsn(std::uint64_t v) { return sluice::replication::Position{{{0, v}}}; }
Origin replica_at(std::uint64_t v) { return Origin{true, lsn(v)}; }
}  // namespace

TEST_CASE("a replica's answer is served to clients whose writes its position covers; others miss") {
  Store store(1 << 20, 2);
  auto t0 = Clock::now();
  CHECK(store.put("k", "as of 100", {"t"}, 60s, t0, "p", replica_at(100)));
  auto none = sluice::replication::Position{};
  auto at90 = lsn(90), at150 = lsn(150);
  CHECK(store.get("k", t0, "p", nullptr));  // eventual consistency: no token asked
  CHECK(store.get("k", t0, "p", &none));    // a client that wrote nothing
  CHECK(store.get("k", t0, "p", &at90));    // its write is in the answer
  CHECK_FALSE(store.get("k", t0, "p", &at150));  // its write is not: a miss, it refills
  auto unknown = sluice::replication::Position::unreachable();
  CHECK_FALSE(store.get("k", t0, "p", &unknown));
  auto st = store.stats("p");
  CHECK(st.hits == 3);
  CHECK(st.replica_hits == 3);
  CHECK(st.misses == 2);
  CHECK(st.behind_client == 2);
  // The primary's answer is stamped too (what the primary had before it ran: a health check's
  // position, or the asking client's own write), and counted apart.
  CHECK(store.put("k2", "primary", {"t"}, 60s, t0, "p", Origin{false, lsn(150)}));
  CHECK(store.get("k2", t0, "p", &at150));
  CHECK(store.stats("p").replica_hits == 3);
  CHECK(store.stats("p").hits == 4);
  // Where nothing is known of positions (a cluster without replicas), no token is asked.
  CHECK(store.put("k3", "unstamped", {"t"}, 60s, t0, "p"));
  CHECK(store.get("k3", t0, "p", nullptr));
}

TEST_CASE("a late fill does not replace a fresher answer; a newer one does") {
  Store store(1 << 20, 1);
  auto t0 = Clock::now();
  store.put("k", "as of 200", {"t"}, 60s, t0, "", replica_at(200));
  store.put("k", "as of 100", {"t"}, 60s, t0, "", replica_at(100));
  CHECK(*store.get("k", t0) == "as of 200");
  store.put("k", "as of 300", {"t"}, 60s, t0, "", replica_at(300));
  CHECK(*store.get("k", t0) == "as of 300");
  store.put("k", "primary at 500", {"t"}, 60s, t0, "", Origin{false, lsn(500)});
  store.put("k", "as of 400", {"t"}, 60s, t0, "", replica_at(400));
  CHECK(*store.get("k", t0) == "primary at 500");
  // An expired entry is replaced whatever it was.
  store.put("k", "as of 10", {"t"}, 60s, t0 + 61s, "", replica_at(10));
  CHECK(*store.get("k", t0 + 61s) == "as of 10");
}

TEST_CASE("a replica's answer is kept only if it covers the writes through Sluice to what it read") {
  Store store(1 << 20, 2);
  auto t0 = Clock::now();
  auto& marks = store.write_marks();
  // A write to t committed; its position is being learned: no replica answer about t is kept.
  marks.begin("pg", {"t"}, false, t0 + 30s);
  store.invalidate_table("t");
  auto pending = store.fill_ticket({"t", "u"}, "pg", t0);
  CHECK_FALSE(store.put_if_current("k", "replica", {"t", "u"}, 60s, pending, replica_at(1000), "", t0));
  CHECK(store.stats().refused_fills == 1);
  CHECK(store.put_if_current("k", "primary", {"t", "u"}, 60s, pending, Origin{}, "", t0));  // the primary's is
  store.invalidate_table("t");
  // Settled at 500: replicas at 500 and beyond qualify, those behind do not.
  marks.settle("pg", {"t"}, false, lsn(500), t0 + 30s);
  auto ticket = store.fill_ticket({"t"}, "pg", t0);
  CHECK_FALSE(store.put_if_current("k", "behind", {"t"}, 60s, ticket, replica_at(499), "", t0));
  CHECK(store.put_if_current("k", "caught up", {"t"}, 60s, ticket, replica_at(500), "", t0));
  // Other clusters' and other tables' marks do not matter.
  CHECK(store.fill_ticket({"u"}, "pg", t0).need.empty());
  CHECK(store.fill_ticket({"t"}, "my", t0).need.empty());
  // A write whose tables are not known marks every table of its cluster.
  marks.begin("pg", {}, true, t0 + 30s);
  marks.settle("pg", {}, true, lsn(700), t0 + 30s);
  CHECK(store.fill_ticket({"u"}, "pg", t0).need.covers(lsn(700)));
  // Past the horizon every replica that may serve reads has the write: the marks go.
  CHECK(store.fill_ticket({"t", "u"}, "pg", t0 + 31s).need.empty());
  CHECK(marks.size() == 0);
}

TEST_CASE("write marks: a pending write whose position never comes ends at its horizon; the count is bounded") {
  WriteMarks marks;
  auto t0 = Clock::now();
  marks.begin("pg", {"t"}, false, t0 + 10s);
  CHECK(marks.need("pg", {"t"}, t0 + 9s) == sluice::replication::Position::unreachable());
  CHECK(marks.need("pg", {"t"}, t0 + 10s).empty());
  for (std::size_t i = 0; i <= WriteMarks::kMaxMarks; ++i) {
    marks.begin("pg", {"t" + std::to_string(i)}, false, t0 + 10s);
    marks.settle("pg", {"t" + std::to_string(i)}, false, lsn(i), t0 + 10s);
  }
  CHECK(marks.size() <= WriteMarks::kMaxMarks);
  // Folded into one mark for the cluster: what any of them needed is still needed.
  CHECK(marks.need("pg", {"t5"}, t0).covers(lsn(WriteMarks::kMaxMarks)));
}
