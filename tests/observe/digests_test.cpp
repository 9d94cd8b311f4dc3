// Query digests: the half-octave histogram's buckets and quantiles, the bound on distinct
// digests with "(other)", and RESET's generations.
#include <doctest/doctest.h>

#include "src/observe/digests.hpp"

using namespace sluice::observe;

TEST_CASE("digest buckets: every value falls in a bucket whose upper bound is at least it, within a half octave") {
  for (std::uint64_t us :
       {0ull, 1ull, 2ull, 3ull, 4ull, 5ull, 6ull, 7ull, 8ull, 100ull, 1000ull, 123456ull, 1ull << 40}) {
    auto b = Digest::bucket_of(us);
    CHECK(Digest::bucket_upper(b) >= us);
    if (b > 1) CHECK(Digest::bucket_upper(b - 1) < us);
    if (us >= 4) CHECK(Digest::bucket_upper(b) <= us + us / 2);
  }
  CHECK(Digest::bucket_of(~0ull) == Digest::kBuckets - 1);
  Digest d;
  for (int i = 0; i < 98; ++i) d.record(100, 1, false, DigestRoute::Primary);
  d.record(10'000, 1, true, DigestRoute::Replica);
  d.record(20'000, 1, false, DigestRoute::Replica);
  CHECK(d.calls == 100);
  CHECK(d.errors == 1);
  CHECK(d.on_replica == 2);
  CHECK(d.quantile_us(0.5) >= 100);
  CHECK(d.quantile_us(0.5) < 150);
  CHECK(d.quantile_us(0.99) >= 10'000);
  CHECK(d.quantile_us(1.0) >= 20'000);
}

TEST_CASE("digest store: one digest per (protocol, fingerprint, database, user), a bound, RESET") {
  DigestStore s;
  s.set_limit(2);
  auto a = s.get("postgres", "select ?", "app", "u");
  CHECK(s.get("postgres", "select ?", "app", "u") == a);
  auto b = s.get("postgres", "select ?", "app", "v");  // another user
  CHECK(b != a);
  auto o1 = s.get("postgres", "select ?, ?", "app", "u");  // past the bound
  auto o2 = s.get("postgres", "update t set x = ?", "db", "w");
  CHECK(o1 == o2);
  CHECK(o1->fingerprint == "(other)");
  CHECK(s.get("mysql", "select ?", "app", "u") != o1);  // "(other)" is per protocol
  CHECK(s.size() == 2);
  CHECK(s.current(*a));
  s.reset();
  CHECK_FALSE(s.current(*a));
  CHECK(s.all().empty());
  CHECK(s.get("postgres", "select ?", "app", "u") != a);
}
