#include "src/memory/slab.hpp"

#include <doctest/doctest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <map>
#include <set>
#include <vector>

using sluice::memory::Slab;

TEST_CASE("slab: blocks are distinct, aligned, reused after free, and chunks go back when empty") {
  Slab slab(44);  // rounded up to 48
  CHECK(slab.block_size() == 48);
  const std::size_t per_chunk = (Slab::kChunk - 64) / 48;
  std::vector<void*> blocks;
  for (std::size_t i = 0; i < 3 * per_chunk + 5; ++i) {
    void* p = slab.allocate();
    CHECK(reinterpret_cast<std::uintptr_t>(p) % 8 == 0);
    std::memset(p, static_cast<int>(i), 48);
    blocks.push_back(p);
  }
  CHECK(std::set<void*>(blocks.begin(), blocks.end()).size() == blocks.size());
  CHECK(slab.usage().chunks == 4);
  CHECK(slab.usage().blocks_in_use == blocks.size());
  // Nothing overlaps: each block still holds what was written into it.
  for (std::size_t i = 0; i < blocks.size(); ++i)
    CHECK(static_cast<unsigned char*>(blocks[i])[47] == static_cast<unsigned char>(i));

  // A freed block is the next one handed out.
  void* freed = blocks[7];
  slab.deallocate(freed);
  CHECK(slab.allocate() == freed);

  // Free everything: one empty chunk is kept, the others are unmapped.
  for (void* p : blocks) slab.deallocate(p);
  CHECK(slab.usage().blocks_in_use == 0);
  CHECK(slab.usage().chunks == 1);
  // The spare chunk serves again.
  void* again = slab.allocate();
  CHECK(slab.usage().chunks == 1);
  slab.deallocate(again);
}

TEST_CASE("slab: a chunk emptied in the middle of others is given back") {
  Slab slab(512);
  const std::size_t per_chunk = (Slab::kChunk - 64) / 512;
  std::map<std::uintptr_t, std::vector<void*>> by_chunk;
  for (std::size_t i = 0; i < 4 * per_chunk; ++i) {
    void* p = slab.allocate();
    by_chunk[reinterpret_cast<std::uintptr_t>(p) & ~(Slab::kChunk - 1)].push_back(p);
  }
  REQUIRE(by_chunk.size() == 4);
  CHECK(slab.usage().chunks == 4);
  // Empty two chunks entirely: the first becomes the spare, the second is unmapped.
  auto it = by_chunk.begin();
  for (int k = 0; k < 2; ++k, ++it)
    for (void* p : it->second) slab.deallocate(p);
  CHECK(slab.usage().chunks == 3);
  CHECK(slab.usage().blocks_in_use == 2 * per_chunk);
  // One block freed in each remaining chunk: they take allocations before any new chunk.
  for (; it != by_chunk.end(); ++it) slab.deallocate(it->second.back());
  slab.allocate();
  slab.allocate();
  CHECK(slab.usage().chunks == 3);
}

namespace {
// Whether the page holding `p` is in memory.
bool resident(const void* p) {
  const auto page = static_cast<std::uintptr_t>(::sysconf(_SC_PAGESIZE));
  unsigned char v = 0;
  REQUIRE(::mincore(reinterpret_cast<void*>(reinterpret_cast<std::uintptr_t>(p) & ~(page - 1)), 1, &v) == 0);
  return (v & 1) != 0;
}
}  // namespace

TEST_CASE("slab: the kept empty chunk keeps its pages until trim(), and serves again either way") {
  Slab slab(64);
  const std::size_t per_chunk = (Slab::kChunk - 64) / 64;
  std::vector<void*> blocks;
  for (std::size_t i = 0; i < per_chunk / 2; ++i) {
    blocks.push_back(slab.allocate());
    std::memset(blocks.back(), 0x5a, 64);
  }
  void* first = blocks.front();
  void* probe = blocks.back();  // a page past the chunk's first (which holds its header and stays)
  for (void* p : blocks) slab.deallocate(p);
  CHECK(slab.usage().chunks == 1);
  CHECK(resident(probe));  // emptied: kept whole for the next login
  // Served again from its free list: the same blocks, nothing handed out twice.
  std::vector<void*> again;
  for (std::size_t i = 0; i < per_chunk / 2; ++i) again.push_back(slab.allocate());
  CHECK(std::set<void*>(again.begin(), again.end()) == std::set<void*>(blocks.begin(), blocks.end()));
  CHECK(slab.usage().chunks == 1);
  slab.trim();  // in use: nothing to give back
  CHECK(resident(probe));
  for (void* p : again) slab.deallocate(p);
  slab.trim();
  CHECK_FALSE(resident(probe));  // given back
  slab.trim();                   // twice is harmless
  // Served again from the start, every block of the chunk distinct.
  std::vector<void*> third;
  for (std::size_t i = 0; i < per_chunk; ++i) third.push_back(slab.allocate());
  CHECK(std::set<void*>(third.begin(), third.end()).size() == per_chunk);
  CHECK(slab.usage().chunks == 1);
  CHECK(third.front() == first);
  for (void* p : third) slab.deallocate(p);
  Slab::trim_all();  // the slabs of_size() made; this one is not among them
  CHECK(resident(probe));
}

namespace {
struct Counted : sluice::memory::InSlab<Counted> {
  std::uint64_t a = 1, b = 2, c = 3;
};
}  // namespace

TEST_CASE("slab: InSlab objects, allocate_shared and container nodes come from the slab of their size") {
  auto& slab = sluice::memory::SlabAllocator<Counted>::slab();
  std::size_t before = slab.usage().blocks_in_use;
  auto* x = new Counted;
  CHECK(slab.usage().blocks_in_use == before + 1);
  CHECK(x->c == 3);
  delete x;
  CHECK(slab.usage().blocks_in_use == before);

  struct Big {
    char bytes[200];
  };
  auto sp = sluice::memory::make_shared_in_slab<Big>();
  std::size_t in_use = 0;
  for (std::size_t size = 200; size <= 240; size += 8) in_use += Slab::of_size(size).usage().blocks_in_use;
  CHECK(in_use >= 1);  // the object and its control block, one block
  sp.reset();

  std::set<int, std::less<>, sluice::memory::SlabAllocator<int>> s;
  for (int i = 0; i < 1000; ++i) s.insert(i);
  CHECK(s.size() == 1000);
  CHECK(*s.rbegin() == 999);
}
