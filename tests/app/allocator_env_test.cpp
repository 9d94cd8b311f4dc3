#include "src/app/allocator_env.hpp"

#include <doctest/doctest.h>

#include <string>

using sluice::app::allocator_start;
using sluice::app::AllocatorStart;
using sluice::app::tunables_without_tcache;

TEST_CASE("allocator start: Sluice starts again with glibc's per-thread cache off unless told otherwise") {
  CHECK(allocator_start(nullptr, nullptr, false) == AllocatorStart::Reexec);
  CHECK(allocator_start("glibc.malloc.arena_max=2", "/usr/lib/libjemalloc.so.2", false) == AllocatorStart::Reexec);
  // Already set, by the first start or by the operator (who may want glibc's 7 back): no loop.
  CHECK(allocator_start("glibc.malloc.tcache_count=0", nullptr, false) == AllocatorStart::AsIs);
  CHECK(allocator_start("glibc.malloc.arena_max=2:glibc.malloc.tcache_count=7", nullptr, false) ==
        AllocatorStart::AsIs);
  // Under valgrind a new exec would leave the tool; set-id processes lose the tunable.
  CHECK(allocator_start(nullptr, "/usr/libexec/valgrind/vgpreload_core-amd64-linux.so", false) == AllocatorStart::AsIs);
  CHECK(allocator_start(nullptr, nullptr, true) == AllocatorStart::AsIs);
}

TEST_CASE("allocator start: the tunable keeps what the operator set") {
  char out[128];
  CHECK(std::string(tunables_without_tcache(nullptr, out, sizeof out)) == "glibc.malloc.tcache_count=0");
  CHECK(std::string(tunables_without_tcache("", out, sizeof out)) == "glibc.malloc.tcache_count=0");
  CHECK(std::string(tunables_without_tcache("glibc.malloc.arena_max=2", out, sizeof out)) ==
        "glibc.malloc.arena_max=2:glibc.malloc.tcache_count=0");
  char small[16];
  CHECK(tunables_without_tcache("glibc.malloc.arena_max=2", small, sizeof small) == nullptr);
}
