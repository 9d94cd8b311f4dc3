// The allocator's start-up settings. glibc's per-thread cache (tcache) keeps up to seven freed
// chunks of every small size in each worker thread and counts them as in use, so after a burst
// of logins they pin pages scattered over the heap that malloc_trim cannot give back (bench/
// RESULTS.md: the RSS a minute after 10,000 clients leave was 1.14x the starting figure with
// it, 1.086x without; instructions per transaction the same). glibc reads the setting only
// from the environment when a process starts, so Sluice starts itself again with it.
#pragma once

namespace sluice::app {

// What start-up should do about glibc's per-thread cache, decided from the environment.
enum class AllocatorStart {
  Reexec,  // set GLIBC_TUNABLES and execute /proc/self/exe again
  AsIs,    // the operator set malloc.tcache_count, or the cache is not glibc's to set
};

// `tunables`: GLIBC_TUNABLES or null; `preload`: LD_PRELOAD or null (valgrind's tools preload
// vgpreload_*.so: a new exec would leave the tool); `secure`: the process runs set-id
// (glibc drops the tunable there, and a re-exec would loop).
AllocatorStart allocator_start(const char* tunables, const char* preload, bool secure);

// The GLIBC_TUNABLES value with the per-thread cache off, keeping what `tunables` set.
// Example: "glibc.malloc.arena_max=2" -> "glibc.malloc.arena_max=2:glibc.malloc.tcache_count=0".
const char* tunables_without_tcache(const char* tunables, char* out, unsigned out_size);

// Executes the running binary again with `argv` and the per-thread cache off, when
// allocator_start() says so; returns only when it did not (or the exec failed: a line on
// stderr, and Sluice runs with glibc's defaults).
void restart_with_allocator_settings(char** argv);

}  // namespace sluice::app
