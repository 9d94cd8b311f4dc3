// net::BufferPool: buffers come back for reuse (the same storage), grown ones and those beyond
// the number kept go to the allocator, and a given-back buffer leaves its holder empty.
#include <doctest/doctest.h>

#include "src/net/buffer_pool.hpp"

using sluice::net::BufferPool;

TEST_CASE("a buffer given back is the next one taken; its holder holds nothing") {
  BufferPool pool(1024, 2);
  auto a = pool.take();
  CHECK(a.size() == 1024);
  const auto* storage = a.data();
  pool.give(a);
  CHECK(a.empty());
  CHECK(a.capacity() == 0);
  CHECK(pool.kept() == 1);
  auto b = pool.take();
  CHECK(b.data() == storage);
  CHECK(pool.kept() == 0);
}

TEST_CASE("grown buffers and those beyond the number kept are freed") {
  BufferPool pool(1024, 2);
  auto grown = pool.take();
  grown.resize(5000);
  pool.give(grown);
  CHECK(pool.kept() == 0);
  std::vector<std::vector<std::uint8_t>> many;
  for (int i = 0; i < 4; ++i) many.push_back(pool.take());
  for (auto& b : many) pool.give(b);
  CHECK(pool.kept() == 2);
  std::vector<std::uint8_t> empty;
  pool.give(empty);  // nothing taken: nothing kept
  CHECK(pool.kept() == 2);
}

TEST_CASE("trim frees the buffers no one took since the last trim, and keeps those in use") {
  BufferPool pool(1024, 8);
  std::vector<std::vector<std::uint8_t>> burst;
  for (int i = 0; i < 6; ++i) burst.push_back(pool.take());
  for (auto& b : burst) pool.give(b);
  CHECK(pool.kept() == 6);
  pool.trim();  // the period of the burst: all six were taken during it
  CHECK(pool.kept() == 6);
  // A quiet period: two at a time in use, never fewer than four kept: those four go.
  for (int i = 0; i < 3; ++i) {
    auto a = pool.take(), b = pool.take();
    pool.give(a);
    pool.give(b);
  }
  pool.trim();
  CHECK(pool.kept() == 2);
  // Nothing taken for a whole period: all go.
  pool.trim();
  CHECK(pool.kept() == 0);
  auto c = pool.take();  // still works from empty
  CHECK(c.size() == 1024);
}
