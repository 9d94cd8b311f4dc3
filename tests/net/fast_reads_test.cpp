// Reads woken without a reactor operation (net/fast_reads.hpp), over loopback TCP: they end as
// Asio's async_read_some would (bytes, the end of the stream, cancellation), and hand the
// socket back to Asio's own reads with nothing lost.
#include "src/net/fast_reads.hpp"
#include "src/net/read_wait.hpp"
#include "tests/net/loopback_pair.hpp"

#include <doctest/doctest.h>
#include <poll.h>
#include <sys/ioctl.h>

#include <boost/asio.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>

#include <array>
#include <memory>
#include <optional>
#include <string>
#include <utility>

namespace {

namespace asio = boost::asio;
using asio::ip::tcp;
using boost::system::error_code;
using sluice::net::async_read_fast;

// Waits (a second at most) until the kernel reports `events` on `s`: a condition, not a pause.
// poll() leaves the epoll set's edge-triggered state as it was.
bool arrived(tcp::socket& s, short events) {
  pollfd pfd{s.native_handle(), events, 0};
  return ::poll(&pfd, 1, 1000) == 1 && (pfd.revents & events) == events;
}

struct Result {
  error_code ec;
  std::string bytes;
};

struct Pair : sluice::testing::LoopbackPair {
  std::array<char, 64> buf{};
  Pair() { server.non_blocking(true); }
  void send(const std::string& s) { asio::write(client, asio::buffer(s)); }
  // A fast read on `server` into `buf` (at most `n` bytes), its result into `out`.
  // Started from a handler of the io_context, as a session's reads are (one started outside it
  // is Asio's own).
  void read_fast(std::optional<Result>& out, std::size_t n = 64) {
    asio::post(io, [this, &out, n] {
      async_read_fast(server, asio::buffer(buf.data(), n), [this, &out](error_code ec, std::size_t got) {
        out = Result{ec, std::string(buf.data(), got)};
      });
    });
  }
  void read_asio(std::optional<Result>& out) {
    server.async_read_some(asio::buffer(buf), [this, &out](error_code ec, std::size_t got) {
      out = Result{ec, std::string(buf.data(), got)};
    });
  }
  // Runs what is ready now (the reads posted so far start), and the reactor's epoll_wait once,
  // without waiting.
  void poll() {
    io.restart();
    io.poll();
  }
  // A second connected pair on the same io_context: {the side read, its peer}.
  std::pair<tcp::socket, tcp::socket> another() {
    std::pair<tcp::socket, tcp::socket> two{tcp::socket(io), tcp::socket(io)};
    tcp::acceptor acc(io, {asio::ip::make_address("127.0.0.1"), 0});
    two.second.connect(acc.local_endpoint());
    acc.accept(two.first);
    return two;
  }
  // Runs the io_context for about `ms` or until `done` holds.
  template <typename F>
  void run_until(F done, int ms = 1000) {
    io.restart();
    for (int i = 0; i < ms / 5 && !done(); ++i) io.run_one_for(std::chrono::milliseconds(5));
  }
};

}  // namespace

TEST_CASE("fast_reads: a read waits for the peer's bytes and gets them") {
  REQUIRE(sluice::net::kFastReadsWork);
  auto before = sluice::net::fast_reads::completed();
  Pair p;
  std::optional<Result> r;
  p.read_fast(r);
  p.run_until([&] { return r.has_value(); }, 40);
  REQUIRE(!r);  // nothing sent yet
  p.send("hello");
  p.run_until([&] { return r.has_value(); });
  REQUIRE(r);
  CHECK(!r->ec);
  CHECK(r->bytes == "hello");
  CHECK(sluice::net::fast_reads::completed() == before + 1);  // through the table, not Asio's read
}

TEST_CASE("fast_reads: bytes already there are read at once, and a read that fills its buffer leaves the rest") {
  Pair p;
  std::optional<Result> r;
  p.read_asio(r);  // the reactor learns the socket is readable once the bytes come
  p.send("abcdef");
  p.run_until([&] { return r.has_value(); });
  REQUIRE(r);
  CHECK(r->bytes == "abcdef");
  p.send("xyz");
  REQUIRE(arrived(p.server, POLLIN));
  p.poll();  // the reactor sees "xyz" arrive with no read waiting
  r.reset();
  p.read_fast(r, 1);
  p.run_until([&] { return r.has_value(); });
  REQUIRE(r);
  CHECK(r->bytes == "x");
  // The fast read filled its buffer: the next read (Asio's) tries at once and gets the rest,
  // though no new byte arrives to wake it.
  r.reset();
  p.read_asio(r);
  p.run_until([&] { return r.has_value(); }, 300);
  REQUIRE(r);
  CHECK(r->bytes == "yz");
}

TEST_CASE("fast_reads: a woken read that takes part of the bytes leaves the rest to Asio's next read") {
  Pair p;
  std::optional<Result> r;
  p.read_fast(r, 2);
  p.run_until([&] { return r.has_value(); }, 30);
  REQUIRE(!r);
  p.send("12345");
  p.run_until([&] { return r.has_value(); });
  REQUIRE(r);
  CHECK(r->bytes == "12");
  r.reset();
  p.read_asio(r);
  p.run_until([&] { return r.has_value(); }, 300);
  REQUIRE(r);
  CHECK(r->bytes == "345");
}

TEST_CASE("fast_reads: the peer's end of the stream ends the read with eof") {
  Pair p;
  std::optional<Result> r;
  p.read_fast(r);
  p.run_until([&] { return r.has_value(); }, 30);
  p.client.shutdown(tcp::socket::shutdown_send);
  p.run_until([&] { return r.has_value(); });
  REQUIRE(r);
  CHECK(r->ec == asio::error::eof);
}

TEST_CASE("fast_reads: bytes and the peer's end that arrive together: the read after the bytes sees the end") {
  // One readiness event for both (a server's FATAL, then its close): the first read takes the
  // bytes without filling its buffer, and no event comes for the end still to read.
  Pair p;
  std::optional<Result> r;
  p.read_fast(r);
  p.run_until([&] { return r.has_value(); }, 30);
  REQUIRE(!r);
  p.send("bye");
  p.client.shutdown(tcp::socket::shutdown_send);
  REQUIRE(arrived(p.server, POLLIN | POLLRDHUP));  // the bytes and the end, before the reactor looks
  p.run_until([&] { return r.has_value(); });
  REQUIRE(r);
  CHECK(r->bytes == "bye");
  r.reset();
  p.read_fast(r);
  p.run_until([&] { return r.has_value(); }, 500);
  REQUIRE(r);
  CHECK(r->ec == asio::error::eof);
}

TEST_CASE("fast_reads: a read that emptied the socket leaves the next one waiting for an event, no failed recv") {
  Pair p;
  std::optional<Result> r;
  p.read_fast(r);
  p.run_until([&] { return r.has_value(); }, 30);
  REQUIRE(!r);
  p.send("abc");
  p.run_until([&] { return r.has_value(); });
  REQUIRE(r);
  CHECK(r->bytes == "abc");  // short of the buffer, and the event said nothing of the peer's end
  auto failed = sluice::net::fast_reads::failed_tries();
  r.reset();
  p.read_fast(r);
  p.poll();  // it starts: with the socket known to be empty it does not try
  CHECK(!r);
  CHECK(sluice::net::fast_reads::failed_tries() == failed);
  int fd = p.server.native_handle();
  int pending = -1;
  REQUIRE(::ioctl(fd, FIONREAD, &pending) == 0);
  CHECK(pending == 0);
  p.send("def");  // a new edge wakes it
  p.run_until([&] { return r.has_value(); });
  REQUIRE(r);
  CHECK(r->bytes == "def");
  // Then the peer's end alone: a new edge too, the read ends with eof.
  r.reset();
  p.read_fast(r);
  p.poll();
  CHECK(!r);
  CHECK(sluice::net::fast_reads::failed_tries() == failed);
  p.client.shutdown(tcp::socket::shutdown_send);
  p.run_until([&] { return r.has_value(); });
  REQUIRE(r);
  CHECK(r->ec == asio::error::eof);
}

TEST_CASE("fast_reads: bytes then the peer's end, each its own event: the end wakes the next read") {
  Pair p;
  std::optional<Result> r;
  p.read_fast(r);
  p.run_until([&] { return r.has_value(); }, 30);
  p.send("one");
  p.run_until([&] { return r.has_value(); });
  REQUIRE(r);
  CHECK(r->bytes == "one");
  // The end comes while no read waits (the session is busy): the reactor notes it, and the next
  // read must see it.
  p.client.shutdown(tcp::socket::shutdown_send);
  REQUIRE(arrived(p.server, POLLIN | POLLRDHUP));
  p.poll();  // the reactor looks: the event goes to Asio's state (no read waits)
  r.reset();
  p.read_fast(r);
  p.run_until([&] { return r.has_value(); }, 500);
  REQUIRE(r);
  CHECK(r->ec == asio::error::eof);
}

TEST_CASE("fast_reads: a read that already took its bytes is not undone by a cancel before it completes") {
  // As Asio's: a read that found bytes at once completes through a posted call, and a cancel
  // meanwhile (a kick, parking) leaves it alone; the bytes are read and must be delivered.
  Pair p;
  p.send("req");
  REQUIRE(arrived(p.server, POLLIN));
  std::optional<Result> r;
  asio::post(p.io, [&] {
    async_read_fast(p.server, asio::buffer(p.buf), [&](error_code ec, std::size_t n) {
      r = Result{ec, std::string(p.buf.data(), n)};
    });
    error_code ec;
    sluice::net::cancel_reads(p.server, ec);
  });
  p.run_until([&] { return r.has_value(); });
  REQUIRE(r);
  CHECK(!r->ec);
  CHECK(r->bytes == "req");
}

TEST_CASE("fast_reads: cancel_reads and close_socket end a waiting read with operation_aborted") {
  Pair p;
  std::optional<Result> r;
  p.read_fast(r);
  p.run_until([&] { return r.has_value(); }, 30);
  error_code ec;
  sluice::net::cancel_reads(p.server, ec);
  p.run_until([&] { return r.has_value(); });
  REQUIRE(r);
  CHECK(r->ec == asio::error::operation_aborted);
  // The socket reads on afterwards, fast or not.
  r.reset();
  p.read_fast(r);
  p.send("again");
  p.run_until([&] { return r.has_value(); });
  REQUIRE(r);
  CHECK(r->bytes == "again");
  r.reset();
  p.read_fast(r);
  p.run_until([&] { return r.has_value(); }, 30);
  sluice::net::close_socket(p.server, ec);
  p.run_until([&] { return r.has_value(); });
  REQUIRE(r);
  CHECK(r->ec == asio::error::operation_aborted);
}

TEST_CASE("fast_reads: cancelled through its slot (operator||), and the next read still sees bytes sent meanwhile") {
  using namespace asio::experimental::awaitable_operators;
  Pair p;
  std::optional<std::string> outcome;
  asio::co_spawn(
      p.io,
      [&]() -> asio::awaitable<void> {
        asio::steady_timer t(p.io, std::chrono::milliseconds(30));
        auto which = co_await (async_read_fast(p.server, asio::buffer(p.buf), asio::as_tuple(asio::use_awaitable)) ||
                               t.async_wait(asio::as_tuple(asio::use_awaitable)));
        outcome = which.index() == 0 ? "read" : "timer";
      },
      asio::detached);
  p.run_until([&] { return outcome.has_value(); });
  REQUIRE(outcome == std::string("timer"));
  p.send("late");
  std::optional<Result> r;
  p.read_asio(r);
  p.run_until([&] { return r.has_value(); });
  REQUIRE(r);
  CHECK(r->bytes == "late");
}

TEST_CASE("fast_reads: a cancellation that comes after its read ended does not end the next read") {
  Pair p;
  asio::cancellation_signal signal;
  std::optional<Result> first;
  asio::post(p.io, [&] {
    async_read_fast(p.server, asio::buffer(p.buf),
                    asio::bind_cancellation_slot(signal.slot(), [&](error_code ec, std::size_t n) {
                      first = Result{ec, std::string(p.buf.data(), n)};
                    }));
  });
  p.run_until([&] { return first.has_value(); }, 30);
  p.send("one");
  p.run_until([&] { return first.has_value(); });
  REQUIRE(first);
  CHECK(first->bytes == "one");
  std::optional<Result> second;
  p.read_fast(second);
  p.run_until([&] { return second.has_value(); }, 30);
  REQUIRE(!second);
  signal.emit(asio::cancellation_type::terminal);  // the first read's slot, long after it ended
  p.run_until([&] { return second.has_value(); }, 30);
  CHECK(!second);
  p.send("two");
  p.run_until([&] { return second.has_value(); });
  REQUIRE(second);
  CHECK(!second->ec);
  CHECK(second->bytes == "two");
}

TEST_CASE("fast_reads: with Asio's own wait on the socket, the read is Asio's and both end") {
  Pair p;
  bool waited = false;
  p.server.async_wait(tcp::socket::wait_read, [&](error_code) { waited = true; });
  std::optional<Result> r;
  p.read_fast(r);
  auto before = sluice::net::fast_reads::completed();
  p.send("both");
  p.run_until([&] { return r.has_value() && waited; });
  CHECK(sluice::net::fast_reads::completed() == before);  // Asio's read in its place
  CHECK(waited);
  REQUIRE(r);
  CHECK(r->bytes == "both");
}

TEST_CASE("fast_reads: a fast read and an Asio read on two sockets woken together both end") {
  Pair p;
  sluice::testing::LoopbackPair q;  // another io_context: its own table
  Pair& a = p;
  tcp::socket second(p.io);
  {
    tcp::acceptor acc(p.io, {asio::ip::make_address("127.0.0.1"), 0});
    tcp::socket peer(p.io);
    peer.connect(acc.local_endpoint());
    acc.accept(second);
    std::optional<Result> fast;
    std::optional<Result> slow;
    std::array<char, 16> buf2{};
    a.read_fast(fast);
    second.async_read_some(asio::buffer(buf2), [&](error_code ec, std::size_t n) {
      slow = Result{ec, std::string(buf2.data(), n)};
    });
    a.poll();  // both reads start and wait
    a.send("one");
    asio::write(peer, asio::buffer(std::string("two")));
    REQUIRE(arrived(p.server, POLLIN));  // both readable before the reactor looks
    REQUIRE(arrived(second, POLLIN));
    a.run_until([&] { return fast.has_value() && slow.has_value(); });
    REQUIRE(fast);
    REQUIRE(slow);
    CHECK(fast->bytes == "one");
    CHECK(slow->bytes == "two");
  }
  // The other io_context's sockets read fast too, on the same thread.
  std::optional<Result> r;
  std::array<char, 8> b{};
  q.server.non_blocking(true);
  asio::post(q.io, [&] {
    async_read_fast(q.server, asio::buffer(b), [&](error_code ec, std::size_t n) {
      r = Result{ec, std::string(b.data(), n)};
    });
  });
  asio::write(q.client, asio::buffer(std::string("q")));
  for (int i = 0; i < 200 && !r; ++i) q.io.run_one_for(std::chrono::milliseconds(5));
  REQUIRE(r);
  CHECK(r->bytes == "q");
}

TEST_CASE("fast_reads: a read begun in the same turn as an event that went to Asio for its socket reads it") {
  // Sockets a (a fast read waiting) and b (bytes, no read waiting) wake in one epoll_wait: a's
  // event is the table's, b's goes to Asio's reactor, whose descriptor operation for b runs
  // after a's completion. a's handler starts a fast read on b that waits first (as a session
  // does after sending a request): it must still get b's bytes, whose event already came.
  Pair p;
  auto two = p.another();
  tcp::socket &b = two.first, &peer = two.second;
  std::array<char, 16> bbuf{};
  std::optional<Result> on_a, on_b;
  asio::post(p.io, [&] {
    async_read_fast(p.server, asio::buffer(p.buf), [&](error_code ec, std::size_t n) {
      on_a = Result{ec, std::string(p.buf.data(), n)};
      sluice::net::wait_first(b);
      async_read_fast(b, asio::buffer(bbuf), [&](error_code ec2, std::size_t m) {
        on_b = Result{ec2, std::string(bbuf.data(), m)};
      });
    });
  });
  p.poll();  // the read on a starts and waits
  REQUIRE(!on_a);
  p.send("a");
  asio::write(peer, asio::buffer(std::string("b")));
  REQUIRE(arrived(p.server, POLLIN));
  REQUIRE(arrived(b, POLLIN));
  p.run_until([&] { return on_b.has_value(); }, 500);
  REQUIRE(on_a);
  CHECK(on_a->bytes == "a");
  REQUIRE(on_b);
  CHECK(on_b->bytes == "b");
}

TEST_CASE("fast_reads: after a turn with no events, an event an earlier turn gave Asio no longer makes a read try") {
  // A session's login reads what is there itself, and only when that found nothing starts a
  // fast read that waits first. The event that announced the bytes it read went to Asio turns
  // ago: a turn that found no events since must not count it as this turn's (a failed recv).
  Pair p;
  auto two = p.another();
  tcp::socket &b = two.first, &peer = two.second;
  b.non_blocking(true);
  std::optional<Result> first;  // the worker's table exists once a fast read was made
  p.send("a");
  p.read_fast(first);
  p.run_until([&] { return first.has_value(); });
  REQUIRE(first);
  auto busy = asio::make_work_guard(p.io);  // as a worker's: its reactor runs at every poll
  asio::write(peer, asio::buffer(std::string("x")));
  REQUIRE(arrived(b, POLLIN));
  p.poll();  // b's event goes to Asio's reactor: no read of any kind waits on b
  std::array<char, 16> bbuf{};
  error_code ec;
  REQUIRE(b.read_some(asio::buffer(bbuf), ec) == 1);
  b.read_some(asio::buffer(bbuf), ec);
  REQUIRE(ec == asio::error::would_block);
  p.poll();  // a turn with no events
  auto failed = sluice::net::fast_reads::failed_tries();
  std::optional<Result> on_b;
  asio::post(p.io, [&] {
    sluice::net::wait_first(b);
    async_read_fast(b, asio::buffer(bbuf), [&](error_code e, std::size_t m) {
      on_b = Result{e, std::string(bbuf.data(), m)};
    });
  });
  p.poll();
  CHECK(!on_b);
  CHECK(sluice::net::fast_reads::failed_tries() == failed);
  asio::write(peer, asio::buffer(std::string("y")));
  p.run_until([&] { return on_b.has_value(); });
  REQUIRE(on_b);
  CHECK(on_b->bytes == "y");
  busy.reset();
}

TEST_CASE("fast_reads: an io_context that goes with a read waiting destroys its handler") {
  auto token = std::make_shared<int>(0);
  std::weak_ptr<int> watch = token;
  {
    Pair p;
    asio::post(p.io, [&p, t = std::move(token)]() mutable {
      async_read_fast(p.server, asio::buffer(p.buf), [t = std::move(t)](error_code, std::size_t) {});
    });
    p.poll();  // the read starts and waits
    CHECK(!watch.expired());
  }
  CHECK(watch.expired());
}
