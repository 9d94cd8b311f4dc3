// The coroutine shapes GCC 12 miscompiles (tests/check_coroutine_shapes.py keeps them out of
// Sluice), next to the shapes Sluice uses instead. Each mode runs one shape many times and exits 0
// when every result is right. Built by every compiler; CTest expects the "old-" modes to crash
// under GCC 12 (so this program still shows the bug the lint guards against) and to pass under
// clang, and every "new-" mode to pass under both.
//
//   old-condition   `if (!co_await f())` in a coroutine with no local variable: GCC 12 gives the
//                   awaiter no room in the frame (SIGILL/SIGSEGV, or ASan's report).
//   old-aggregate   `co_await drive(Parked{std::move(p), ...})`: the aggregate temporary is
//                   destroyed twice (ASan: double free), as serve_admitted() had it.
//   new-condition   the same, awaited in the if-statement's initializer.
//   new-aggregate   the same, the aggregate built in a local first.
#include <boost/asio.hpp>

#include <cstdio>
#include <cstring>
#include <memory>
#include <string>

namespace asio = boost::asio;

namespace {

asio::awaitable<bool> even(int i) {
  co_await asio::post(co_await asio::this_coro::executor, asio::use_awaitable);
  co_return i % 2 == 0;
}

asio::awaitable<int> old_condition(int i) {
  if (!co_await even(i)) co_return 1;
  co_return 2;
}

asio::awaitable<int> new_condition(int i) {
  if (auto awaited = co_await even(i); !awaited) co_return 1;
  co_return 2;
}

struct Session {
  int value = 0;
};
struct Parked {  // an aggregate owning a resource, as parking::Parked is
  std::unique_ptr<Session> session;
  const char* what;
};

asio::awaitable<int> drive(Parked p) {
  co_await asio::post(co_await asio::this_coro::executor, asio::use_awaitable);
  co_return p.session->value;
}

asio::awaitable<int> old_aggregate(int i) {
  auto s = std::make_unique<Session>();
  s->value = i % 2 == 0 ? 2 : 1;
  co_return co_await drive(Parked{std::move(s), "session"});
}

asio::awaitable<int> new_aggregate(int i) {
  auto s = std::make_unique<Session>();
  s->value = i % 2 == 0 ? 2 : 1;
  Parked parked{std::move(s), "session"};
  co_return co_await drive(std::move(parked));
}

}  // namespace

int main(int argc, char** argv) {
  const char* mode = argc > 1 ? argv[1] : "";
  asio::awaitable<int> (*shape)(int) = nullptr;
  if (!std::strcmp(mode, "old-condition")) shape = old_condition;
  if (!std::strcmp(mode, "new-condition")) shape = new_condition;
  if (!std::strcmp(mode, "old-aggregate")) shape = old_aggregate;
  if (!std::strcmp(mode, "new-aggregate")) shape = new_aggregate;
  if (!shape) {
    std::fprintf(stderr, "usage: %s old-condition|new-condition|old-aggregate|new-aggregate\n", argv[0]);
    return 2;
  }
  asio::io_context io;
  int wrong = 0, done = 0;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        for (int i = 0; i < 1000; ++i) {
          int got = co_await shape(i);
          if (got != (i % 2 == 0 ? 2 : 1)) ++wrong;
          ++done;
        }
      },
      asio::detached);
  io.run();
  std::printf("%s: %d of 1000 ran, %d wrong\n", mode, done, wrong);
  return done == 1000 && wrong == 0 ? 0 : 1;
}
