// What the process holds in memory, as SHOW MEMORY reports it: resident set and the
// allocator's own counters (glibc's mallinfo2, or the sanitizer allocator's in ASan/TSan builds).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace sluice::admin {

struct MemoryFigure {
  const char* name;
  std::uint64_t bytes;
  const char* what;
};

// rss, then heap_in_use, heap_free, heap_arena, heap_mmapped, heap_releasable when the
// allocator tells them.
std::vector<MemoryFigure> process_memory();

}  // namespace sluice::admin
