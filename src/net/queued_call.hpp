// A call queued on an io_context without an allocation. asio::post makes, per call, an
// operation object (from the thread's recycling cache), wraps the handler for its executor
// and its work count, and runs it through the executor's type-erased dispatch: some 500
// instructions a call (bench/RESULTS.md, "A turn in line without a coroutine frame"). A
// QueuedCall is itself Asio's intrusive scheduler operation, kept in a record the caller
// already has: queued from the io_context's own thread it goes on the thread's private queue
// (no lock), from another thread on the scheduler's queue (its lock, a wake-up), as post's.
//
//   struct Wake : net::QueuedCall { Wake() : QueuedCall(&Wake::run) {} static void run(QueuedCall*, bool); };
//   auto target = net::CallTarget::of(io);   // on any thread
//   target.post(&wake);                      // run(&wake, true) on io's thread, once
//
// A queued call counts as the io_context's work. If the io_context is destroyed with it still
// queued, it runs as run(call, false): drop what it holds, free nothing the caller still owns.
#pragma once

#include <boost/asio/detail/scheduler_operation.hpp>
#include <boost/asio/io_context.hpp>

namespace sluice::net {

class QueuedCall : public boost::asio::detail::scheduler_operation {
 public:
  QueuedCall(const QueuedCall&) = delete;
  QueuedCall& operator=(const QueuedCall&) = delete;

 protected:
  using Run = void (*)(QueuedCall* self, bool run);
  explicit QueuedCall(Run run) : scheduler_operation(&QueuedCall::complete), run_(run) {}
  ~QueuedCall() = default;

 private:
  static void complete(void* owner, scheduler_operation* base, const boost::system::error_code&, std::size_t) {
    auto* self = static_cast<QueuedCall*>(base);
    self->run_(self, owner != nullptr);
  }
  Run run_;
};

// Where queued calls go: an io_context's scheduler, found once (cheaply when the calling thread
// runs that io_context; else through Asio's service registry and its lock).
class CallTarget {
 public:
  CallTarget() = default;
  static CallTarget of(boost::asio::io_context& io);
  void post(QueuedCall* call) const;
  explicit operator bool() const { return scheduler_ != nullptr; }

 private:
  boost::asio::detail::scheduler* scheduler_ = nullptr;
};

}  // namespace sluice::net
