#include "src/app/allocator_env.hpp"

#include <sys/auxv.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

namespace sluice::app {

namespace {

constexpr const char* kTcacheKey = "glibc.malloc.tcache_count";
constexpr const char* kTcacheOff = "glibc.malloc.tcache_count=0";

}  // namespace

AllocatorStart allocator_start(const char* tunables, const char* preload, bool secure) {
#ifndef __GLIBC__
  (void)tunables, (void)preload, (void)secure;
  return AllocatorStart::AsIs;
#else
  if (secure) return AllocatorStart::AsIs;
  if (tunables != nullptr && std::strstr(tunables, kTcacheKey) != nullptr) return AllocatorStart::AsIs;
  if (preload != nullptr && std::strstr(preload, "vgpreload") != nullptr) return AllocatorStart::AsIs;
  return AllocatorStart::Reexec;
#endif
}

const char* tunables_without_tcache(const char* tunables, char* out, unsigned out_size) {
  int n = (tunables == nullptr || *tunables == '\0') ? std::snprintf(out, out_size, "%s", kTcacheOff)
                                                     : std::snprintf(out, out_size, "%s:%s", tunables, kTcacheOff);
  if (n < 0 || static_cast<unsigned>(n) >= out_size) return nullptr;
  return out;
}

void restart_with_allocator_settings(char** argv) {
  const char* env = std::getenv("GLIBC_TUNABLES");
  if (allocator_start(env, std::getenv("LD_PRELOAD"), getauxval(AT_SECURE) != 0) != AllocatorStart::Reexec) return;
  // A copy: setenv may free the string the environment held.
  std::string before = env == nullptr ? std::string() : std::string(env);
  const char* tunables = env == nullptr ? nullptr : before.c_str();
  char value[4096];
  const char* v = tunables_without_tcache(tunables, value, sizeof value);
  if (v == nullptr || setenv("GLIBC_TUNABLES", v, 1) != 0) return;
  execv("/proc/self/exe", argv);
  int e = errno;
  std::fprintf(stderr, "sluice: could not start again with glibc's per-thread cache off (%s); running with it\n",
               std::strerror(e));
  // Put the environment back as it was, so that nothing this process starts sees a setting
  // that it does not run with.
  if (tunables != nullptr) setenv("GLIBC_TUNABLES", tunables, 1);
  else unsetenv("GLIBC_TUNABLES");
}

}  // namespace sluice::app
