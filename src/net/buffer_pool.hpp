// Per-worker free lists of I/O buffers (PgBouncer's shape): a client holds a read buffer only
// while bytes of a request are in it, and a server read buffer only while attached, so an idle
// client holds none. Thread-local, so taking and giving back is a few instructions and no lock.
#pragma once

#include <cstddef>
#include <algorithm>
#include <cstdint>
#include <vector>

namespace sluice::net {

class BufferPool {
 public:
  BufferPool(std::size_t size, std::size_t keep) : size_(size), keep_(keep) {}

  std::size_t buffer_size() const { return size_; }

  // A buffer of buffer_size() bytes (contents unspecified).
  std::vector<std::uint8_t> take() {
    if (free_.empty()) return std::vector<std::uint8_t>(size_);
    auto b = std::move(free_.back());
    free_.pop_back();
    if (free_.size() < low_) low_ = free_.size();
    return b;
  }

  // Gives `b` back (left empty). One that grew for a large message, or beyond the number kept,
  // goes back to the allocator instead.
  void give(std::vector<std::uint8_t>& b) {
    if (b.size() == size_ && b.capacity() == size_ && free_.size() < keep_) free_.push_back(std::move(b));
    b = std::vector<std::uint8_t>();
  }

  std::size_t kept() const { return free_.size(); }

  // Frees the buffers that no one needed since the last trim (the fewest kept at any moment of
  // the period): after a burst the pool shrinks back within two periods, while the buffers a
  // steady load cycles through stay.
  void trim() {
    free_.resize(free_.size() - std::min(low_, free_.size()));
    if (free_.empty()) free_.shrink_to_fit();
    low_ = free_.size();
  }

 private:
  std::size_t size_, keep_;
  std::size_t low_ = 0;  // the fewest buffers kept since the last trim
  std::vector<std::vector<std::uint8_t>> free_;
};

// This worker thread's pools: client reads (16 KiB) and server reads (64 KiB).
BufferPool& client_buffers();
BufferPool& server_buffers();
// Trims both pools of the calling worker (every 10 s, on each worker: src/app/application.cpp).
void trim_buffers();

}  // namespace sluice::net
