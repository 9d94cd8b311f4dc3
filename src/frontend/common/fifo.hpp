// A first-in first-out queue that holds no memory while it has never been used (std::deque
// allocates about 600 bytes when constructed, and a client session holds several): a vector and
// the index of its head, compacted as the head moves on. References to elements stay valid until
// the next push_back.
#pragma once

#include <cstddef>
#include <utility>
#include <vector>

namespace sluice::frontend {

template <class T>
class Fifo {
 public:
  bool empty() const { return head_ == items_.size(); }
  std::size_t size() const { return items_.size() - head_; }
  std::size_t slots() const { return items_.size(); }  // elements held, popped ones included (tests)
  std::size_t capacity() const { return items_.capacity(); }  // storage held (tests)
  T& front() { return items_[head_]; }
  const T& front() const { return items_[head_]; }
  T& operator[](std::size_t i) { return items_[head_ + i]; }
  const T& operator[](std::size_t i) const { return items_[head_ + i]; }
  auto begin() { return items_.begin() + static_cast<std::ptrdiff_t>(head_); }
  auto end() { return items_.end(); }
  auto begin() const { return items_.begin() + static_cast<std::ptrdiff_t>(head_); }
  auto end() const { return items_.end(); }

  void push_back(T v) {
    if (head_ > 0 && head_ >= items_.size() / 2) compact();  // before the vector grows
    items_.push_back(std::move(v));
  }
  void pop_front() {
    if (++head_ == items_.size()) return clear();  // the common case: the last one out
    items_[head_ - 1] = T();                       // what it held (strings, statements) goes now
  }
  // Removes the element `i` places behind the front.
  void erase(std::size_t i) { items_.erase(items_.begin() + static_cast<std::ptrdiff_t>(head_ + i)); }
  void clear() {
    items_.clear();
    head_ = 0;
  }
  // Empty: the storage goes too (an idle owner holds none).
  void release_if_empty() {
    if (empty()) std::vector<T>().swap(items_), head_ = 0;
  }

 private:
  void compact() {
    items_.erase(items_.begin(), items_.begin() + static_cast<std::ptrdiff_t>(head_));
    head_ = 0;
  }

  std::vector<T> items_;
  std::size_t head_ = 0;
};

}  // namespace sluice::frontend
