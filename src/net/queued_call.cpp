// Calls queued on an io_context's scheduler (queued_call.hpp).
#include "src/net/queued_call.hpp"

#include <boost/asio/detail/call_stack.hpp>
#include <boost/asio/detail/scheduler.hpp>

namespace sluice::net {

namespace asio = boost::asio;

#if defined(BOOST_ASIO_HAS_IOCP)
#error "net::QueuedCall expects io_context's scheduler (not Windows' I/O completion ports)"
#endif

namespace {
// The io_context this thread runs, and its scheduler: a worker asks for its own, per wait.
thread_local asio::io_context* t_io = nullptr;
thread_local asio::detail::scheduler* t_scheduler = nullptr;

bool running_here(asio::detail::scheduler* s) {
  using Stack = asio::detail::call_stack<asio::detail::thread_context, asio::detail::thread_info_base>;
  return Stack::contains(s) != nullptr;  // as Asio asks it (thread_context::thread_call_stack)
}
}  // namespace

CallTarget CallTarget::of(asio::io_context& io) {
  CallTarget t;
  // The cache is used only while the scheduler it names runs on this thread: then it is alive,
  // and (one io_context per thread, as net::Runtime runs them) it is io's. An io_context
  // destroyed and another made at its address find it stale, not dangling.
  if (t_io == &io && running_here(t_scheduler)) {
    t.scheduler_ = t_scheduler;
    return t;
  }
  t.scheduler_ = &asio::use_service<asio::detail::scheduler>(io);  // the service registry's lock
  if (running_here(t.scheduler_)) t_io = &io, t_scheduler = t.scheduler_;
  return t;
}

void CallTarget::post(QueuedCall* call) const {
  // "A continuation": from the scheduler's own thread, its private queue (whatever the
  // io_context's concurrency hint); from another thread, the scheduler's queue and a wake-up.
  scheduler_->post_immediate_completion(call, true);
}

}  // namespace sluice::net
