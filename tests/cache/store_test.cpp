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
  auto g = store.generation({"t"});
  store.invalidate_table("t");  // a write committed while the read was in flight
  CHECK_FALSE(store.put_if_current("k", "old", {"t"}, 60s, g));
  CHECK_FALSE(store.get("k"));
  auto g2 = store.generation({"t"});
  CHECK(store.put_if_current("k", "new", {"t"}, 60s, g2));
  store.invalidate_table("other");  // unrelated tables do not matter
  CHECK(store.generation({"t"}) == g2);
  store.invalidate_all();
  CHECK(store.generation({"t"}) != g2);
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
