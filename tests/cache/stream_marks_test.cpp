// StreamMarks: what an answer from another instance must cover to be used here.
#include <doctest/doctest.h>

#include "src/cache/stream_marks.hpp"

using sluice::cache::StreamMarks;
using sluice::replication::Position;

namespace {
Position lsn(std::uint64_t v) { return Position{{{0u, v}}}; }
}  // namespace

TEST_CASE("stream marks: nothing is covered before the stream starts, then the start and each table's last write") {
  StreamMarks m;
  CHECK_FALSE(m.covers("c", {"t"}, lsn(1000)));
  CHECK(m.read_position("c").empty());
  m.start("c", "db", lsn(100));
  CHECK(m.read_position("c") == lsn(100));
  CHECK_FALSE(m.covers("c", {"t"}, lsn(99)));  // older than the stream's start: unknown
  CHECK(m.covers("c", {"t"}, lsn(100)));
  m.commit("c", {"t"}, false, lsn(150));
  CHECK(m.read_position("c") == lsn(100));  // not before its entries are dropped
  m.read_to("c", "db", lsn(150));
  CHECK(m.read_position("c") == lsn(150));
  CHECK_FALSE(m.covers("c", {"t"}, lsn(149)));
  CHECK(m.covers("c", {"u"}, lsn(149)));  // another table
  CHECK_FALSE(m.covers("c", {"u", "t"}, lsn(149)));
  CHECK(m.covers("c", {"t"}, lsn(150)));
  m.commit("c", {}, true, lsn(200));  // every table (DDL)
  CHECK_FALSE(m.covers("c", {"u"}, lsn(199)));
  m.read_to("c", "db", lsn(300));
  CHECK(m.read_position("c") == lsn(300));
  CHECK_FALSE(m.covers("other", {"t"}, lsn(1000)));  // a cluster nobody follows
}

TEST_CASE("stream marks: the read position is the least of the followers', and none while one is down") {
  StreamMarks m;
  m.start("c", "a", lsn(100));
  m.start("c", "b", lsn(120));
  m.commit("c", {"t"}, false, lsn(500));
  m.read_to("c", "a", lsn(500));
  CHECK(m.read_position("c") == lsn(120));
  m.stop("c", "b");
  CHECK(m.read_position("c").empty());
  m.read_to("c", "b", lsn(900));  // a stopped follower reads nothing
  CHECK(m.read_position("c").empty());
  m.start("c", "b", lsn(600));
  CHECK(m.read_position("c") == lsn(500));
  CHECK_FALSE(m.covers("c", {"t"}, lsn(550)));  // the restart moved the floor to 600
  CHECK(m.covers("c", {"t"}, lsn(600)));
  m.forget("c");
  CHECK_FALSE(m.covers("c", {"t"}, lsn(600)));
}

TEST_CASE("stream marks: GTID domains, and a commit at an unknown position") {
  StreamMarks m;
  Position start{{{0u, 10}, {1u, 5}}};
  m.start("c", "", start);
  m.commit("c", {"t"}, false, Position{{{1u, 7}}});
  m.read_to("c", "", Position{{{1u, 7}}});
  CHECK(m.read_position("c") == Position{{{0u, 10}, {1u, 7}}});
  CHECK_FALSE(m.covers("c", {"t"}, Position{{{0u, 10}, {1u, 6}}}));
  CHECK_FALSE(m.covers("c", {"t"}, Position{{{1u, 9}}}));  // domain 0 unknown
  CHECK(m.covers("c", {"t"}, Position{{{0u, 10}, {1u, 7}}}));
  m.commit("c", {"u"}, false, Position::unreachable());
  m.read_to("c", "", Position::unreachable());
  CHECK_FALSE(m.covers("c", {"u"}, Position{{{0u, 99}, {1u, 99}}}));
  // The follower's read position does not jump to the unreachable one.
  CHECK(m.read_position("c") == Position{{{0u, 10}, {1u, 7}}});
}

TEST_CASE("stream marks: past kMaxTables, tables fold into the floor") {
  StreamMarks m;
  m.start("c", "db", lsn(1));
  for (std::size_t i = 0; i < StreamMarks::kMaxTables; ++i) m.commit("c", {"t" + std::to_string(i)}, false, lsn(10));
  CHECK(m.covers("c", {"never_written"}, lsn(1)));
  m.commit("c", {"one_more"}, false, lsn(20));
  CHECK_FALSE(m.covers("c", {"never_written"}, lsn(9)));  // folded: every table at 10
  CHECK(m.covers("c", {"never_written"}, lsn(10)));
  CHECK_FALSE(m.covers("c", {"one_more"}, lsn(19)));
}
