// Replication positions, time-based lag, and the choice of a member for reads and writes.
#include <doctest/doctest.h>
#include <fmt/format.h>

#include "src/router/cluster.hpp"
#include "src/router/lag_clock.hpp"

using namespace sluice;
using namespace sluice::router;
using namespace std::chrono_literals;

TEST_CASE("positions: PostgreSQL LSNs and MariaDB GTID positions") {
  auto a = parse_pg_lsn("16/B374D848");
  REQUIRE(a);
  CHECK(a->parts[0].second == ((0x16ull << 32) | 0xB374D848ull));
  auto b = parse_pg_lsn("16/B374D849");
  CHECK(b->covers(*a));
  CHECK_FALSE(a->covers(*b));
  CHECK_FALSE(parse_pg_lsn("nonsense"));
  CHECK_FALSE(parse_pg_lsn("1/XYZ"));

  auto g = parse_gtid_pos("0-1-100,1-2-7");
  REQUIRE(g);
  CHECK(g->parts.size() == 2);
  auto token = parse_gtid_pos("0-1-99");
  CHECK(g->covers(*token));
  CHECK_FALSE(g->covers(*parse_gtid_pos("0-1-101")));
  CHECK_FALSE(g->covers(*parse_gtid_pos("2-1-1")));  // a domain the replica never saw
  CHECK(parse_gtid_pos("")->empty());
  CHECK_FALSE(parse_gtid_pos("0-1"));
  CHECK(g->covers(Position{}));  // no token: anything qualifies
}

TEST_CASE("lag is the time since the primary first had what the replica lacks") {
  LagClock clock;
  auto t0 = std::chrono::steady_clock::now();
  clock.observe_primary(*parse_pg_lsn("0/100"), t0);
  clock.observe_primary(*parse_pg_lsn("0/200"), t0 + 1s);
  clock.observe_primary(*parse_pg_lsn("0/300"), t0 + 2s);
  CHECK(clock.lag(*parse_pg_lsn("0/300"), t0 + 3s) == 0ms);
  CHECK(clock.lag(*parse_pg_lsn("0/250"), t0 + 3s) == 1000ms);  // lacks what the primary had at t0+2s
  CHECK(clock.lag(*parse_pg_lsn("0/150"), t0 + 3s) == 2000ms);
  CHECK(clock.lag(*parse_pg_lsn("0/50"), t0 + 3s) == 3000ms);
}

TEST_CASE("the lag history forgets what is older than its horizon, and still reports a long lag as long") {
  LagClock clock(60s);
  auto t0 = std::chrono::steady_clock::now();
  // Two checks a second for an hour, the primary moving on every one: the history must not grow
  // with the run (it grew to 4096 entries per cluster, about half an hour of checks, before).
  for (int i = 0; i < 7200; ++i)
    clock.observe_primary(*parse_pg_lsn(fmt::format("0/{:X}", 0x100 + i)), t0 + i * 500ms);
  auto end = t0 + 7199 * 500ms;
  CHECK(clock.size() <= 122);
  CHECK(clock.size() >= 120);
  CHECK(clock.lag(*parse_pg_lsn(fmt::format("0/{:X}", 0x100 + 7199)), end) == 0ms);
  CHECK(clock.lag(*parse_pg_lsn(fmt::format("0/{:X}", 0x100 + 7199 - 20)), end) == 9500ms);  // exact within it
  CHECK(clock.lag(*parse_pg_lsn("0/50"), end) >= 60s);  // far behind: at least the horizon
}

namespace {
std::shared_ptr<ClusterRuntime> make_cluster(config::Balance balance, config::ReadsOnPrimary rop,
                                             std::vector<std::uint32_t> weights = {},
                                             std::vector<std::map<std::string, std::string>> tags = {}) {
  config::Cluster c;
  c.name = "t";
  c.primary = {"p", 1};
  c.replicas = {{"r1", 2}, {"r2", 3}};
  c.balance = balance;
  c.reads_on_primary = rop;
  c.weights = weights;
  c.member_tags = std::move(tags);
  c.max_replica_lag = 5000ms;
  return std::make_shared<ClusterRuntime>(c, nullptr, "");
}
std::shared_ptr<ClusterView> scene(const Position& r1, const Position& r2, bool r2_up = true,
                                   std::chrono::milliseconds r1_lag = 0ms) {
  auto v = std::make_shared<ClusterView>();
  v->members.resize(3);
  v->members[0].up = true, v->members[0].role = Role::Primary, v->members[0].position = *parse_pg_lsn("0/500");
  v->members[1].up = true, v->members[1].role = Role::Replica, v->members[1].position = r1, v->members[1].lag = r1_lag;
  v->members[2].up = r2_up, v->members[2].role = Role::Replica, v->members[2].position = r2;
  v->primary = 0;
  return v;
}
}  // namespace

TEST_CASE("reads: healthy replicas that cover the client's token, within max_replica_lag") {
  auto c = make_cluster(config::Balance::RoundRobin, config::ReadsOnPrimary::Fallback);
  c->set_view(scene(*parse_pg_lsn("0/500"), *parse_pg_lsn("0/400")));
  std::map<int, int> hits;
  for (int i = 0; i < 100; ++i) ++hits[c->pick_read({})];
  CHECK(hits[1] == 50);
  CHECK(hits[2] == 50);
  // A token only replica 1 covers.
  for (int i = 0; i < 10; ++i) CHECK(c->pick_read(*parse_pg_lsn("0/450")) == 1);
  // A token nobody covers: the primary (fallback).
  CHECK(c->pick_read(*parse_pg_lsn("0/600")) == 0);
  // Replica 2 down, replica 1 lagging past the limit: the primary.
  c->set_view(scene(*parse_pg_lsn("0/500"), *parse_pg_lsn("0/500"), false, 6000ms));
  CHECK(c->pick_read({}) == 0);
  CHECK(c->pick_write() == 0);
  // A session reports replica 1 unreachable: out at once.
  c->set_view(scene(*parse_pg_lsn("0/500"), *parse_pg_lsn("0/500"), false));
  CHECK(c->pick_read({}) == 1);
  c->report_failure(1);
  CHECK(c->pick_read({}) == 0);
}

TEST_CASE("a token that is a marker (unknown write, login not yet read) sends reads to the primary, unverified") {
  auto c = make_cluster(config::Balance::RoundRobin, config::ReadsOnPrimary::Fallback);
  c->set_view(scene(*parse_pg_lsn("0/500"), *parse_pg_lsn("0/500")));
  for (const auto& token : {Position::unreachable(), Position::login_pending()}) {
    CHECK(token.marker());
    auto d = c->route(true, token, true, {});
    CHECK(d.member == 0);
    CHECK_FALSE(d.replica);
    CHECK_FALSE(d.verify);
    // An answer from the primary is stamped with the member's position, not the marker.
    CHECK(c->applied(0, true, token) == *parse_pg_lsn("0/500"));
  }
  CHECK_FALSE(parse_pg_lsn("0/500")->marker());
  CHECK(Position::unreachable().is_unreachable());
  CHECK_FALSE(Position::unreachable().is_login_pending());
  CHECK(Position::login_pending().is_login_pending());
  CHECK_FALSE(Position::login_pending().is_unreachable());
  // The same domain with a real sequence, or with a second domain, is a position.
  CHECK_FALSE((Position{{{0xFFFFFFFEu, 7}}}.marker()));
  CHECK_FALSE((Position{{{0xFFFFFFFFu, ~std::uint64_t(0)}, {1, 2}}}.marker()));
  CHECK_FALSE(Position{}.marker());
  // A real token nobody is known to cover: one replica is asked (verify).
  auto d = c->route(true, *parse_pg_lsn("0/600"), true, {});
  CHECK(d.verify);
  CHECK(d.replica);
}

TEST_CASE("reads_on_primary and weights") {
  auto never = make_cluster(config::Balance::RoundRobin, config::ReadsOnPrimary::Never);
  never->set_view(scene(*parse_pg_lsn("0/1"), *parse_pg_lsn("0/1")));
  CHECK(never->pick_read(*parse_pg_lsn("0/500")) == -1);
  auto always = make_cluster(config::Balance::RoundRobin, config::ReadsOnPrimary::Always, {2, 1, 1});
  always->set_view(scene(*parse_pg_lsn("0/500"), *parse_pg_lsn("0/500")));
  std::map<int, int> hits;
  for (int i = 0; i < 400; ++i) ++hits[always->pick_read({})];
  CHECK(hits[0] == 200);  // weight 2 of 4
  CHECK(hits[1] == 100);
  CHECK(hits[2] == 100);
  auto weighted = make_cluster(config::Balance::Random, config::ReadsOnPrimary::Fallback, {1, 0, 3});
  weighted->set_view(scene(*parse_pg_lsn("0/500"), *parse_pg_lsn("0/500")));
  for (int i = 0; i < 50; ++i) CHECK(weighted->pick_read({}) == 2);  // weight 0: no reads
}

TEST_CASE("least_outstanding prefers the less busy replica") {
  auto c = make_cluster(config::Balance::LeastOutstanding, config::ReadsOnPrimary::Fallback);
  c->set_view(scene(*parse_pg_lsn("0/500"), *parse_pg_lsn("0/500")));
  c->counters(1).outstanding = 5;
  CHECK(c->pick_read({}) == 2);
  c->counters(2).outstanding = 9;
  CHECK(c->pick_read({}) == 1);
}

TEST_CASE("reads prefer members with a rule's tags, then the client's zone; health and the token come first") {
  auto c = make_cluster(config::Balance::RoundRobin, config::ReadsOnPrimary::Always, {},
                        {{{"zone", "a"}}, {{"zone", "a"}, {"tier", "analytics"}}, {{"zone", "b"}}});
  c->set_view(scene(*parse_pg_lsn("0/500"), *parse_pg_lsn("0/400")));
  std::vector<std::pair<std::string, std::string>> analytics{{"tier", "analytics"}}, nowhere{{"tier", "none"}};
  for (int i = 0; i < 10; ++i) CHECK(c->pick_read({}, {&analytics, ""}) == 1);
  for (int i = 0; i < 10; ++i) CHECK(c->pick_read({}, {nullptr, "b"}) == 2);
  std::map<int, int> hits;
  for (int i = 0; i < 100; ++i) ++hits[c->pick_read({}, {nullptr, "a"})];
  CHECK(hits[0] == 50);  // the primary reads here too (reads_on_primary = always), in zone a
  CHECK(hits[1] == 50);
  hits.clear();
  for (int i = 0; i < 90; ++i) ++hits[c->pick_read({}, {&nowhere, "c"})];  // nobody has them: anyone
  CHECK(hits[0] == 30);
  CHECK(hits[1] == 30);
  CHECK(hits[2] == 30);
  // The replica of the client's zone does not have the client's write: the read goes elsewhere.
  for (int i = 0; i < 10; ++i) CHECK(c->pick_read(*parse_pg_lsn("0/450"), {nullptr, "b"}) != 2);
  // Tags and zone together: the tags narrow first, the zone within them.
  CHECK(c->pick_read({}, {&analytics, "b"}) == 1);
  auto d = c->route(true, {}, true, {nullptr, "b"});
  CHECK(d.member == 2);
  CHECK(d.replica);
  CHECK(c->route(false, {}, true, {&analytics, "b"}).member == 0);  // writes: the primary
  CHECK(c->tags(1).at("tier") == "analytics");
}
