// The part of a client session that only a working session needs (both front ends' `Work`):
// made on first use, dropped when the session parks unless something in it is still pending, so
// an idle client holds none of it (docs/design-decisions.md, "A parked session keeps only what it
// owes its client"). T says `disposable()`; `make` (given to get()) returns a new one.
#pragma once

#include <memory>

namespace sluice::frontend {

template <class T>
class OnDemand {
 public:
  template <class Make>
  T& get(Make&& make) {
    if (!part_) [[unlikely]]
      create(make);  // out of line: the hot paths that reach it stay small
    return *part_;
  }
  // Without making it (destructors, checks for work in progress).
  T* peek() { return part_.get(); }
  const T* peek() const { return part_.get(); }
  // About to park: it goes, unless it holds something not yet done.
  void drop_if_disposable() {
    if (part_ && part_->disposable()) part_.reset();
  }

 private:
  template <class Make>
  [[gnu::noinline]] void create(Make& make) {
    part_ = make();
  }
  std::unique_ptr<T> part_;
};

}  // namespace sluice::frontend
