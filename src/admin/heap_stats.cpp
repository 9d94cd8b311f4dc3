// Process memory from /proc and from whichever allocator this build runs on.
#include "src/admin/heap_stats.hpp"

#include <unistd.h>

#include <cstdio>
#if defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define SLUICE_SANITIZER_ALLOCATOR 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SLUICE_SANITIZER_ALLOCATOR 1
#endif
#if defined(SLUICE_SANITIZER_ALLOCATOR) && __has_include(<sanitizer/allocator_interface.h>)
#include <sanitizer/allocator_interface.h>
#elif defined(SLUICE_SANITIZER_ALLOCATOR)
// GCC ships the sanitizer runtimes without this header; the functions are the same.
extern "C" {
std::size_t __sanitizer_get_current_allocated_bytes();
std::size_t __sanitizer_get_free_bytes();
std::size_t __sanitizer_get_heap_size();
std::size_t __sanitizer_get_unmapped_bytes();
}
#elif defined(__GLIBC__)
#include <malloc.h>
#endif

namespace sluice::admin {

std::vector<MemoryFigure> process_memory() {
  std::vector<MemoryFigure> out;
  std::uint64_t rss = 0;
  if (std::FILE* f = std::fopen("/proc/self/statm", "r")) {
    unsigned long long size = 0, resident = 0;
    if (std::fscanf(f, "%llu %llu", &size, &resident) == 2)
      rss = resident * static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE));
    std::fclose(f);
  }
  out.push_back({"rss", rss, "resident set size (/proc/self/statm)"});
#if defined(SLUICE_SANITIZER_ALLOCATOR)
  // Sanitizer builds replace malloc (mallinfo2 would say 0): their allocator's own counters.
  out.push_back({"heap_in_use", __sanitizer_get_current_allocated_bytes(),
                 "bytes allocated and not yet freed (sanitizer allocator)"});
  out.push_back(
      {"heap_free", __sanitizer_get_free_bytes(), "bytes freed but kept by the allocator (sanitizer allocator)"});
  out.push_back({"heap_arena", __sanitizer_get_heap_size(), "bytes the allocator mapped (sanitizer allocator)"});
  out.push_back({"heap_mmapped", 0, "not told apart by the sanitizer allocator"});
  out.push_back(
      {"heap_releasable", __sanitizer_get_unmapped_bytes(), "bytes unmapped by the allocator (sanitizer allocator)"});
#elif defined(__GLIBC__)
  struct mallinfo2 mi = ::mallinfo2();
  out.push_back(
      {"heap_in_use", mi.uordblks + mi.hblkhd, "bytes allocated and not yet freed (mallinfo2 uordblks + hblkhd)"});
  out.push_back({"heap_free", mi.fordblks, "bytes freed but kept by the allocator (mallinfo2 fordblks)"});
  out.push_back({"heap_arena", mi.arena, "bytes the allocator took with brk/mmap for its arenas (mallinfo2 arena)"});
  out.push_back({"heap_mmapped", mi.hblkhd, "large allocations served by their own mmap (mallinfo2 hblkhd)"});
  out.push_back({"heap_releasable", mi.keepcost, "free bytes at the top of the main arena (mallinfo2 keepcost)"});
#endif
  return out;
}

}  // namespace sluice::admin
