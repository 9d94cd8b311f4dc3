// [limits] at run time: connection places per key, the GCRA rate (burst, waits, refusals,
// undo), and a client's share of both (overrides, the console's exemption, change of user).
#include <doctest/doctest.h>

#include "src/access/limits.hpp"
#include "src/config/config.hpp"
#include "src/frontend/common/client_limits.hpp"

using namespace sluice;
using namespace std::chrono_literals;
using access::Limit;
using access::Scope;

TEST_CASE("connection places: up to the limit, given back with the ticket, 0 = counted but unlimited") {
  access::ConnectionCounts c;
  {
    auto a = c.take(Scope::User, "app", 2);
    auto b = c.take(Scope::User, "app", 2);
    CHECK(a);
    CHECK(b);
    CHECK_FALSE(c.take(Scope::User, "app", 2));
    CHECK(c.take(Scope::User, "other", 2));    // per key
    CHECK(c.take(Scope::Database, "app", 2));  // per scope
    auto rows = c.rows();
    bool found = false;
    for (auto& r : rows) found = found || (r.scope == Scope::User && r.key == "app" && r.connections == 2);
    CHECK(found);
    b.reset();
    auto again = c.take(Scope::User, "app", 2);
    CHECK(again);
    access::Ticket moved = std::move(again);
    CHECK(moved);
    CHECK_FALSE(again);
    CHECK_FALSE(c.take(Scope::User, "app", 2));
  }
  CHECK(c.rows().empty());  // every ticket gone: no entries left
  std::vector<access::Ticket> many;
  for (int i = 0; i < 100; ++i) many.push_back(c.take(Scope::Address, "10.0.0.1", 0));
  CHECK(c.rows().front().connections == 100);
  // A limit set later sees the clients already in.
  CHECK_FALSE(c.take(Scope::Address, "10.0.0.1", 100));
}

TEST_CASE("GCRA: a burst of one second's worth, then the rate; waits within max_wait, refusals past it") {
  access::Gcra g;
  auto t0 = std::chrono::steady_clock::time_point(1000s);
  for (int i = 0; i < 10; ++i) {
    auto w = g.admit(10, 0ns, t0);
    REQUIRE(w);
    CHECK(w->count() == 0);
  }
  CHECK_FALSE(g.admit(10, 0ns, t0));  // the 11th at once: refused when nothing may wait
  auto w = g.admit(10, 1s, t0);       // queued: one interval later
  REQUIRE(w);
  CHECK(*w == 100ms);
  w = g.admit(10, 1s, t0);
  REQUIRE(w);
  CHECK(*w == 200ms);
  CHECK_FALSE(g.admit(10, 150ms, t0));  // would wait 300 ms
  g.undo(10);                           // the last reservation given back
  w = g.admit(10, 1s, t0);
  REQUIRE(w);
  CHECK(*w == 200ms);
  // A second later, one interval's worth per 100 ms again.
  auto t1 = t0 + 1300ms;
  w = g.admit(10, 0ns, t1);
  REQUIRE(w);
  CHECK(w->count() == 0);
  // Idle for long: the burst is back, not more.
  auto t2 = t0 + 60s;
  for (int i = 0; i < 10; ++i) CHECK(g.admit(10, 0ns, t2));
  CHECK_FALSE(g.admit(10, 0ns, t2));
}

TEST_CASE("GCRA: would_refuse() answers as admit() would, and reserves nothing") {
  access::Gcra g;
  auto t0 = std::chrono::steady_clock::time_point(1000s);
  for (int i = 0; i < 10; ++i) {
    CHECK_FALSE(g.would_refuse(10, 0ns, t0));
    CHECK_FALSE(g.would_refuse(10, 0ns, t0));  // asking twice takes nothing
    REQUIRE(g.admit(10, 0ns, t0));
  }
  CHECK(g.would_refuse(10, 0ns, t0));
  CHECK_FALSE(g.admit(10, 0ns, t0));
  CHECK_FALSE(g.would_refuse(10, 100ms, t0));  // a wait of one interval is allowed there
  CHECK(g.would_refuse(10, 99ms, t0));
  CHECK_FALSE(g.would_refuse(10, 0ns, t0 + 100ms));  // one interval later, one more
  REQUIRE(g.admit(10, 0ns, t0 + 100ms));
  CHECK(g.would_refuse(10, 0ns, t0 + 100ms));
}

TEST_CASE("a client's limits: [limits], [[users]] overrides, the console, change of user") {
  auto cfg = config::load_string(R"(
[general]
admin_users = ["admin"]
[limits]
max_connections_per_user = 1
max_connections_per_database = 3
queries_per_second_per_user = 2
rate_limit_action = "refuse"
[[users]]
name = "app"
password = "x"
[[users]]
name = "batch"
password = "x"
max_connections = 2
queries_per_second = 0
[[users]]
name = "admin"
password = "x"
)",
                                 "t.toml");
  access::LimitState st;
  frontend::ClientLimits a, b, c, d, e, f;
  CHECK_FALSE(a.login(st, *cfg, "app", "db", false));
  CHECK(b.login(st, *cfg, "app", "db", false) == Limit::ConnectionsPerUser);
  CHECK(st.refused[static_cast<int>(Limit::ConnectionsPerUser)] == 1);
  CHECK_FALSE(c.login(st, *cfg, "batch", "db", false));  // its own max_connections = 2
  CHECK_FALSE(d.login(st, *cfg, "batch", "db", false));
  CHECK(e.login(st, *cfg, "batch", "other", false) == Limit::ConnectionsPerUser);
  // The database is full now (app + batch + batch): not for the admin on the console.
  CHECK_FALSE(f.login(st, *cfg, "admin", "sluice", true));
  frontend::ClientLimits g;
  CHECK(g.login(st, *cfg, "admin", "db", false) == Limit::ConnectionsPerDatabase);
  // COM_CHANGE_USER: the old places go first.
  CHECK_FALSE(a.login(st, *cfg, "app", "db", false));

  // Rates: app at 2/s refuses the third at once; batch's override 0 means none for it.
  auto now_rate = [&](frontend::ClientLimits& l, const char* user) {
    return l.request(st, cfg->limits, user, "10.0.0.1");
  };
  CHECK_FALSE(now_rate(a, "app").refused);
  CHECK_FALSE(now_rate(a, "app").refused);
  auto r = now_rate(a, "app");
  REQUIRE(r.refused);
  CHECK(*r.refused == Limit::QueryRateUser);
  CHECK(r.limit == 2);
  CHECK_FALSE(c.limited(cfg->limits));
  for (int i = 0; i < 50; ++i) CHECK_FALSE(now_rate(c, "batch").refused);
  // Queue: the third waits instead (the bucket is the user's, shared by the user's clients).
  auto q = std::make_shared<config::Config>(*cfg);
  q->limits.rate_limit_action = "queue";
  q->limits.queries_per_second_per_user = 2;
  frontend::ClientLimits h;
  CHECK_FALSE(h.login(st, *q, "admin", "sluice", true));
  CHECK_FALSE(h.request(st, q->limits, "admin", "::1").refused);
  CHECK_FALSE(h.request(st, q->limits, "admin", "::1").refused);
  auto waited = h.request(st, q->limits, "admin", "::1");
  CHECK_FALSE(waited.refused);
  CHECK(waited.wait > 400ms);
  CHECK(st.queued[static_cast<int>(Limit::QueryRateUser)] == 1);
  // Off: nothing limited, no bucket touched.
  config::Limits off;
  CHECK_FALSE(h.limited(off));
}
