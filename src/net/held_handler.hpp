// A completion handler kept while its operation waits outside Asio (a fast read, a turn in a
// pool's line), stored in place when it fits: called or dropped once, leaving its storage
// before it runs (so that it may start the next operation, reusing the record, at once).
//
//   net::HeldHandler<error_code, std::size_t> h;
//   h.hold(std::move(handler));  // in the operation's initiation
//   h.call(ec, n);               // later, on the handler's own thread
#pragma once

#include <cstddef>
#include <memory>
#include <new>
#include <type_traits>
#include <utility>

namespace sluice::net {

template <typename... Args>
class HeldHandler {
 public:
  HeldHandler() = default;
  HeldHandler(const HeldHandler&) = delete;
  HeldHandler& operator=(const HeldHandler&) = delete;
  ~HeldHandler() { drop(); }

  template <typename H>
  void hold(H&& h) {
    using T = std::decay_t<H>;
    if constexpr (sizeof(T) <= kSize && alignof(T) <= kAlign) {
      new (buf_) T(std::forward<H>(h));
      run_ = [](void* p, bool call, Args... args) {
        T* stored = std::launder(static_cast<T*>(p));
        T handler(std::move(*stored));
        stored->~T();
        if (call) std::move(handler)(std::forward<Args>(args)...);
      };
    } else {
      *reinterpret_cast<T**>(buf_) = new T(std::forward<H>(h));
      run_ = [](void* p, bool call, Args... args) {
        std::unique_ptr<T> stored(*static_cast<T**>(p));
        T handler(std::move(*stored));
        stored.reset();
        if (call) std::move(handler)(std::forward<Args>(args)...);
      };
    }
  }
  bool held() const { return run_ != nullptr; }
  void call(Args... args) { std::exchange(run_, nullptr)(buf_, true, std::forward<Args>(args)...); }
  // Destroys it uncalled (its io_context is going away).
  void drop() {
    if (run_) std::exchange(run_, nullptr)(buf_, false, Args{}...);
  }

 private:
  static constexpr std::size_t kSize = 32;               // an awaitable's handler is 16 bytes
  static constexpr std::size_t kAlign = alignof(void*);  // records come from 8-byte slabs
  alignas(kAlign) unsigned char buf_[kSize];
  void (*run_)(void*, bool, Args...) = nullptr;
};

}  // namespace sluice::net
