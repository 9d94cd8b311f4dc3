// Fixed-size blocks in 64 KiB chunks of their own (slab.hpp).
#include "src/memory/slab.hpp"

#include <sys/mman.h>

#include <array>
#include <cstdlib>

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SLUICE_SLAB_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) && !defined(SLUICE_SLAB_ASAN)
#define SLUICE_SLAB_ASAN 1
#endif
#ifdef SLUICE_SLAB_ASAN
#include <sanitizer/asan_interface.h>
#include <sanitizer/lsan_interface.h>
#endif

namespace sluice::memory {

// At the start of each chunk (aligned to kChunk, so a block finds its chunk by masking).
struct Slab::Chunk {
  Chunk *prev = nullptr, *next = nullptr;  // Slab::partial_
  void* free = nullptr;                    // free blocks, linked through their first word
  std::size_t used = 0;
  std::size_t untouched = 0;  // blocks never handed out, after the free list
  bool listed = false;
};

namespace {

constexpr std::size_t kHeader = 64;  // room for Chunk

// Under AddressSanitizer, free blocks are poisoned (a use after free is caught as with malloc)
// and chunks are roots for LeakSanitizer (what a live block points to is not a leak).
void poison([[maybe_unused]] void* p, [[maybe_unused]] std::size_t n) {
#ifdef SLUICE_SLAB_ASAN
  ASAN_POISON_MEMORY_REGION(p, n);
#endif
}
void unpoison([[maybe_unused]] void* p, [[maybe_unused]] std::size_t n) {
#ifdef SLUICE_SLAB_ASAN
  ASAN_UNPOISON_MEMORY_REGION(p, n);
#endif
}

void* map_chunk() {
  // Twice the size, then the unaligned ends are unmapped: a chunk aligned to its size.
  const std::size_t len = 2 * Slab::kChunk;
  void* p = ::mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) throw std::bad_alloc();
  auto a = reinterpret_cast<std::uintptr_t>(p);
  std::uintptr_t aligned = (a + Slab::kChunk - 1) & ~(Slab::kChunk - 1);
  if (aligned > a) ::munmap(p, aligned - a);
  std::uintptr_t end = a + len, chunk_end = aligned + Slab::kChunk;
  if (end > chunk_end) ::munmap(reinterpret_cast<void*>(chunk_end), end - chunk_end);
  void* chunk = reinterpret_cast<void*>(aligned);
#ifdef SLUICE_SLAB_ASAN
  __lsan_register_root_region(chunk, Slab::kChunk);
#endif
  poison(static_cast<char*>(chunk) + kHeader, Slab::kChunk - kHeader);
  return chunk;
}

void unmap_chunk(void* chunk) {
  unpoison(chunk, Slab::kChunk);
#ifdef SLUICE_SLAB_ASAN
  __lsan_unregister_root_region(chunk, Slab::kChunk);
#endif
  ::munmap(chunk, Slab::kChunk);
}

}  // namespace

Slab::Slab(std::size_t block_size)
    : block_((block_size + kGranule - 1) / kGranule * kGranule), per_chunk_((kChunk - kHeader) / block_) {
  static_assert(sizeof(Chunk) <= kHeader);
}

namespace {
// The slabs of_size() made: sizes up to 1 KiB in 8-byte steps; never destroyed (blocks may be
// freed during exit).
struct Sizes {
  std::array<Slab*, Slab::kMaxBlock / Slab::kGranule + 1> slabs{};
  std::mutex mu;
};
Sizes& sizes() {
  static Sizes s;
  return s;
}
}  // namespace

Slab& Slab::of_size(std::size_t size) {
  auto& all = sizes();
  std::size_t i = (size + kGranule - 1) / kGranule;
  if (size == 0 || size > kMaxBlock) std::abort();
  std::lock_guard lock(all.mu);
  if (!all.slabs[i]) all.slabs[i] = new Slab(i * kGranule);
  return *all.slabs[i];
}

void Slab::trim_all() {
  auto& all = sizes();
  std::lock_guard lock(all.mu);
  for (Slab* s : all.slabs)
    if (s) s->trim();
}

void Slab::trim() {
  std::lock_guard lock(mu_);
  if (!spare_ || !spare_resident_) return;
  // Its pages given back; they come back zeroed when touched, so its list starts again.
  ::madvise(reinterpret_cast<char*>(spare_) + 4096, kChunk - 4096, MADV_DONTNEED);
  spare_->free = nullptr;
  spare_->untouched = per_chunk_;
  spare_resident_ = false;
}

Slab::Chunk* Slab::fresh_chunk() {
  if (spare_) {
    spare_resident_ = false;
    return std::exchange(spare_, nullptr);
  }
  auto* c = new (map_chunk()) Chunk;
  c->untouched = per_chunk_;
  ++chunks_;
  return c;
}

void Slab::push(Chunk* c) {
  c->prev = nullptr;
  c->next = partial_;
  if (partial_) partial_->prev = c;
  partial_ = c;
  c->listed = true;
}

void Slab::unlink(Chunk* c) {
  (c->prev ? c->prev->next : partial_) = c->next;
  if (c->next) c->next->prev = c->prev;
  c->prev = c->next = nullptr;
  c->listed = false;
}

void* Slab::allocate() {
  std::lock_guard lock(mu_);
  Chunk* c = partial_;
  if (!c) {
    c = fresh_chunk();
    push(c);
  }
  void* p;
  if (c->free) {
    p = c->free;
    unpoison(p, block_);
    c->free = *static_cast<void**>(p);
  } else {
    std::size_t index = per_chunk_ - c->untouched--;
    p = reinterpret_cast<char*>(c) + kHeader + index * block_;
    unpoison(p, block_);
  }
  ++c->used;
  ++in_use_;
  if (!c->free && c->untouched == 0) unlink(c);  // full
  return p;
}

void Slab::deallocate(void* p) noexcept {
  if (!p) return;
  auto* c = reinterpret_cast<Chunk*>(reinterpret_cast<std::uintptr_t>(p) & ~(kChunk - 1));
  std::lock_guard lock(mu_);
  *static_cast<void**>(p) = c->free;
  poison(p, block_);
  c->free = p;
  --in_use_;
  if (--c->used == 0) {
    if (c->listed) unlink(c);
    if (!spare_) {
      // Kept for the next allocation, its pages too until trim(): a client that logs in and
      // out alone would otherwise give them back and fault them in again at every login.
      spare_ = c;
      spare_resident_ = true;
    } else {
      c->~Chunk();
      unmap_chunk(c);
      --chunks_;
    }
    return;
  }
  if (!c->listed) push(c);
}

Slab::Usage Slab::usage() const {
  std::lock_guard lock(mu_);
  return {chunks_, in_use_};
}

}  // namespace sluice::memory
