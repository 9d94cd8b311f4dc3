// Failed logins counted per client address, for both protocols' logins.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>
#include <unordered_map>

#include "src/config/config.hpp"

namespace sluice::state {

// Failed logins per client address (a token bucket: `burst` at once, one more per second).
// Past the bucket, a failure's answer is held, which bounds a password guesser to about one try
// per second per connection; correct logins are never held. At most 65536 addresses are
// remembered (the stalest are forgotten).
class LoginThrottle {
 public:
  // Records a failed login from `addr`: how long to hold the answer (zero = not at all).
  std::chrono::milliseconds failed(const std::string& addr, std::uint32_t burst, config::Duration delay);
  std::uint64_t held() const { return held_.load(std::memory_order_relaxed); }
  std::uint64_t failures() const { return failures_.load(std::memory_order_relaxed); }  // every failed login

 private:
  struct Bucket {
    double tokens = 0;
    std::chrono::steady_clock::time_point last;
  };
  std::mutex mu_;
  std::unordered_map<std::string, Bucket> buckets_;
  std::atomic<std::uint64_t> held_{0}, failures_{0};
};

}  // namespace sluice::state
