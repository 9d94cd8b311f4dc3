#include "src/net/light_mutex.hpp"

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace sluice::net {

namespace {
std::atomic<unsigned long> g_contended{0};

static_assert(sizeof(std::atomic<int>) == sizeof(int) && std::atomic<int>::is_always_lock_free,
              "the futex word is the atomic itself");

int* word(std::atomic<int>& a) { return reinterpret_cast<int*>(&a); }

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

// Holders keep it for a few hundred instructions (a queue push), or a system call when they post
// a turn to another worker and wake it: about a microsecond, which the spin below covers, so a
// short wait rarely sleeps.
constexpr int kSpins = 100;
}  // namespace

unsigned long LightMutex::contended_count() noexcept { return g_contended.load(std::memory_order_relaxed); }

void LightMutex::lock_contended() noexcept {
  g_contended.fetch_add(1, std::memory_order_relaxed);
  for (int i = 0; i < kSpins; ++i) {
    cpu_relax();
    int c = state_.load(std::memory_order_relaxed);
    if (c == 0 && state_.compare_exchange_weak(c, 1, std::memory_order_acquire, std::memory_order_relaxed)) return;
    if (c == 2) break;  // others sleep already: join them rather than race them
  }
  // Mark it as wanted (2) as we take it, so that our own release wakes whoever sleeps after us.
  while (state_.exchange(2, std::memory_order_acquire) != 0)
    syscall(SYS_futex, word(state_), FUTEX_WAIT_PRIVATE, 2, nullptr, nullptr, 0);
}

void LightMutex::wake_one() noexcept { syscall(SYS_futex, word(state_), FUTEX_WAKE_PRIVATE, 1, nullptr, nullptr, 0); }

}  // namespace sluice::net
