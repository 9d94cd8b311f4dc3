// A pooled client's notifications: held until its LISTEN commits, dropped when that rolls back or
// when they were committed before the client's COMMIT went out, given with the client's own pid.
#include <doctest/doctest.h>

#include "protocols/postgres/codec.hpp"
#include "src/pool/notify_hub.hpp"

using sluice::pool::NotifyMailbox;
namespace wire = sluice::pg;

namespace {
std::string note(std::uint32_t pid, const std::string& channel, const std::string& payload) {
  std::string out;
  wire::Builder(out).begin('A').i32(static_cast<std::int32_t>(pid)).str(channel).str(payload).end();
  return out;
}
}  // namespace

TEST_CASE("mailbox: pending channels hold, settle keeps the committed, take renames the client's own pid") {
  boost::asio::io_context io;
  int wakes = 0;
  auto box = std::make_shared<NotifyMailbox>(io.get_executor(), [&] { ++wakes; });

  box->deliver("a", 1, note(1, "a", "not listening"));  // no such channel: ignored
  box->expect("a");
  box->deliver("a", 1, note(1, "a", "before the client's request"));
  box->mark();  // the request that commits the LISTEN goes out
  box->deliver("a", 1, note(1, "a", "after"));
  CHECK_FALSE(box->ready());  // held while the LISTEN has not committed
  io.restart();
  io.poll();
  CHECK(wakes == 0);

  box->expect("b");
  box->deliver("b", 1, note(1, "b", "rolled back"));
  CHECK(box->settle({"a"}) == std::vector<std::string>{"b"});
  CHECK(box->ready());
  io.restart();
  io.poll();
  CHECK(wakes == 1);
  CHECK(box->take(0, 0) == note(1, "a", "after"));
  CHECK_FALSE(box->ready());

  // Active channel: ready at once; one wake per batch; the client's own NOTIFY shows its pid.
  box->deliver("a", 7, note(7, "a", "own"));
  box->deliver("a", 8, note(8, "a", "other"));
  io.restart();
  io.poll();
  CHECK(wakes == 2);
  CHECK(box->take(7, 99) == note(99, "a", "own") + note(8, "a", "other"));

  // UNLISTEN committed: what was queued for the channel goes too.
  box->deliver("a", 8, note(8, "a", "queued"));
  CHECK(box->settle({}) == std::vector<std::string>{"a"});
  CHECK(box->take(0, 0).empty());

  box->close("fatal");
  CHECK(box->ready());
  CHECK(box->closed() == std::optional<std::string>("fatal"));
}
