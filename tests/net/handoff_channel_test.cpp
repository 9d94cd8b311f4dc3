// The online upgrade's channel: records read back field by field and refuse what is cut short;
// frames split anywhere reassemble and pair with their descriptors in order; over a real socket
// pair a descriptor arrives with its frame, large frames cross whole, and the peer's end is seen.
#include <doctest/doctest.h>

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <memory>
#include <thread>
#include <vector>

#include "src/net/handoff_channel.hpp"
#include "src/net/record.hpp"

using namespace sluice::net;

TEST_CASE("a record reads back what was written, in order") {
  RecordWriter w;
  w.u8(7);
  w.flag(true);
  w.u32(0xdeadbeef);
  w.u64(0x0123456789abcdefull);
  w.i64(-5);
  w.str("hello");
  w.str(std::string("a\0b", 3));
  RecordReader r(w.bytes());
  CHECK(r.u8() == 7);
  CHECK(r.flag());
  CHECK(r.u32() == 0xdeadbeef);
  CHECK(r.u64() == 0x0123456789abcdefull);
  CHECK(r.i64() == -5);
  CHECK(r.str() == "hello");
  CHECK(r.str() == std::string("a\0b", 3));
  CHECK(r.done());
}

TEST_CASE("a record cut short, or with a length past its end, does not read back") {
  RecordWriter w;
  w.str("some text");
  w.u32(1);
  const std::string whole = w.bytes();
  for (std::size_t cut = 0; cut < whole.size(); ++cut) {
    RecordReader r(std::string_view(whole).substr(0, cut));
    r.str();
    r.u32();
    CHECK_FALSE(r.ok());
  }
  std::string lying = whole;
  lying[3] = 100;  // the string says 100 bytes
  RecordReader r(lying);
  r.str();
  CHECK_FALSE(r.ok());
  const std::string two(1, '\2');  // a reader holds a view: its bytes outlive it
  RecordReader bad_flag(two);
  bad_flag.flag();
  CHECK_FALSE(bad_flag.ok());
  const std::string longer = whole + "x";
  RecordReader extra(longer);
  extra.str();
  extra.u32();
  CHECK(extra.ok());
  CHECK_FALSE(extra.done());
}

TEST_CASE("frames split at every byte reassemble, each with its descriptor") {
  std::string stream;
  HandoffFrames::encode(stream, 5, "first", true);
  HandoffFrames::encode(stream, 6, "", false);
  HandoffFrames::encode(stream, 5, std::string(1000, 'x'), true);
  for (std::size_t step = 1; step <= 7; ++step) {
    HandoffFrames f;
    f.descriptor(100);
    f.descriptor(101);
    std::vector<HandoffMessage> got;
    for (std::size_t i = 0; i < stream.size(); i += step) {
      f.bytes(std::string_view(stream).substr(i, step));
      HandoffMessage m;
      while (f.next(m) == HandoffFrames::Next::Frame) got.push_back(m);
    }
    REQUIRE(got.size() == 3);
    CHECK(got[0].type == 5);
    CHECK(got[0].payload == "first");
    CHECK(got[0].fd == 100);
    CHECK(got[1].type == 6);
    CHECK(got[1].fd == -1);
    CHECK(got[2].payload.size() == 1000);
    CHECK(got[2].fd == 101);
  }
}

TEST_CASE("a frame that says a descriptor came without one, or of a bad length, is malformed") {
  std::string stream;
  HandoffFrames::encode(stream, 5, "x", true);
  HandoffFrames f;
  f.bytes(stream);
  HandoffMessage m;
  CHECK(f.next(m) == HandoffFrames::Next::Malformed);
  HandoffFrames g;
  g.bytes(std::string("\0\0\0\1\5", 5));  // length 1: no room for type and flag
  CHECK(g.next(m) == HandoffFrames::Next::Malformed);
  HandoffFrames h;
  h.bytes(std::string("\x7f\0\0\0", 4));  // past the frame limit
  CHECK(h.next(m) == HandoffFrames::Next::Malformed);
  HandoffFrames k;
  k.bytes(std::string("\0\0\0\2\5\7", 6));  // a flag neither 0 nor 1
  CHECK(k.next(m) == HandoffFrames::Next::Malformed);
}

TEST_CASE("over a socket pair: a descriptor crosses with its frame, large frames whole, the end is seen") {
  int sv[2];
  REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
  HandoffChannel a(sv[0]);
  auto b = std::make_unique<HandoffChannel>(sv[1]);
  int pipe_fds[2];
  REQUIRE(::pipe(pipe_fds) == 0);
  const std::string big(3u << 20, 'q');  // more than a socket buffer: the reader runs meanwhile
  std::thread sender([&] {
    CHECK(b->send(1, "with a pipe", pipe_fds[1]));
    CHECK(b->send(2, big));
    b.reset();  // closes its end
  });
  auto m1 = a.receive(5000);
  REQUIRE(m1);
  CHECK(m1->type == 1);
  CHECK(m1->payload == "with a pipe");
  REQUIRE(m1->fd >= 0);
  CHECK(m1->fd != pipe_fds[1]);
  CHECK((::fcntl(m1->fd, F_GETFD) & FD_CLOEXEC) != 0);
  // The received descriptor is the same pipe: what is written there comes out of the other end.
  CHECK(::write(m1->fd, "z", 1) == 1);
  char c = 0;
  CHECK(::read(pipe_fds[0], &c, 1) == 1);
  CHECK(c == 'z');
  auto m2 = a.receive(5000);
  REQUIRE(m2);
  CHECK(m2->payload == big);
  sender.join();
  CHECK_FALSE(a.receive(5000));
  CHECK_FALSE(a.timed_out());
  ::close(m1->fd);
  ::close(pipe_fds[0]);
  ::close(pipe_fds[1]);
}

TEST_CASE("receive gives up after its timeout while the peer stays silent") {
  int sv[2];
  REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
  HandoffChannel a(sv[0]), b(sv[1]);
  CHECK_FALSE(a.receive(50));
  CHECK(a.timed_out());
}
