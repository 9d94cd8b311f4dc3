// Fixed-size blocks for the objects an idle client keeps (its sleeping session, its row in the
// client table, its cancel key), apart from the heap that logins and transactions churn.
//
// Why: malloc puts those small, long-lived objects between the short-lived ones of the login
// that made them (the session, its buffers, coroutine frames). When the short-lived ones go,
// the pages stay in use for the few long-lived bytes on each, so 10,000 idle clients kept about
// a quarter more memory than they used, and kept it after they left. Here blocks of one size
// are packed into 64 KiB chunks of their own, without malloc's per-block header; a chunk whose
// last block goes is given back to the system at once, except one empty chunk per size, kept
// for the next allocation with its pages until the next trim() (the janitor's, every 10 s).
//
// Thread-safe (one lock per size; these objects are made and freed once per login or sleep,
// never per transaction).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <new>

namespace sluice::memory {

class Slab {
 public:
  static constexpr std::size_t kChunk = 64 * 1024;
  static constexpr std::size_t kGranule = 8;
  static constexpr std::size_t kMaxBlock = 1024;  // of_size() serves sizes up to this

  explicit Slab(std::size_t block_size);
  ~Slab() = default;  // chunks still in use stay mapped (objects freed after exit)
  Slab(const Slab&) = delete;
  Slab& operator=(const Slab&) = delete;

  void* allocate();
  void deallocate(void* p) noexcept;

  std::size_t block_size() const { return block_; }
  struct Usage {
    std::size_t chunks = 0, blocks_in_use = 0;
  };
  Usage usage() const;

  // The slab for blocks of at least `size` bytes (rounded up to kGranule), made on first use.
  static Slab& of_size(std::size_t size);

  // Gives the kept empty chunk's pages back to the system (a chunk emptied since the last trim).
  void trim();
  // trim() on every slab of_size() made.
  static void trim_all();

 private:
  struct Chunk;
  Chunk* fresh_chunk();   // mu_ held
  void unlink(Chunk* c);  // from the list of chunks with free blocks; mu_ held
  void push(Chunk* c);

  const std::size_t block_;
  const std::size_t per_chunk_;
  mutable std::mutex mu_;
  Chunk* partial_ = nullptr;  // chunks with a free block (newest first)
  Chunk* spare_ = nullptr;    // one empty chunk kept for the next allocation
  bool spare_resident_ = false;  // its pages still in memory (until trim())
  std::size_t chunks_ = 0, in_use_ = 0;
};

// Blocks of sizeof(T) for single objects (containers' nodes, allocate_shared's one block);
// anything larger than one object comes from operator new.
template <typename T>
struct SlabAllocator {
  using value_type = T;
  SlabAllocator() noexcept = default;
  template <typename U>
  SlabAllocator(const SlabAllocator<U>&) noexcept {}

  T* allocate(std::size_t n) {
    if (n == 1) return static_cast<T*>(slab().allocate());
    return static_cast<T*>(::operator new(n * sizeof(T), std::align_val_t(alignof(T))));
  }
  void deallocate(T* p, std::size_t n) noexcept {
    if (n == 1) slab().deallocate(p);
    else ::operator delete(p, std::align_val_t(alignof(T)));
  }
  static Slab& slab() {
    static_assert(alignof(T) <= Slab::kGranule, "slab blocks are aligned to 8 bytes");
    static_assert(sizeof(T) <= Slab::kMaxBlock, "slab blocks are at most 1 KiB");
    static Slab& s = Slab::of_size(sizeof(T));
    return s;
  }
  template <typename U>
  bool operator==(const SlabAllocator<U>&) const noexcept {
    return true;
  }
};

// A class whose objects live in slabs: `struct X : memory::InSlab<X> { ... };`
template <typename T>
struct InSlab {
  static void* operator new(std::size_t n) {
    return n == sizeof(T) ? SlabAllocator<T>::slab().allocate() : ::operator new(n);
  }
  static void operator delete(void* p, std::size_t n) noexcept {
    if (n == sizeof(T)) SlabAllocator<T>::slab().deallocate(p);
    else ::operator delete(p);
  }
};

template <typename T, typename... Args>
std::shared_ptr<T> make_shared_in_slab(Args&&... args) {
  return std::allocate_shared<T>(SlabAllocator<T>{}, std::forward<Args>(args)...);
}

}  // namespace sluice::memory
