// A client's routing (frontend/common/client_routing), once for both protocols: the split
// decision from the user's, the pool's or the cluster's routing (once written in each session),
// member pools made on first use, and routes by the cluster's view.
#include <doctest/doctest.h>

#include "src/config/config.hpp"
#include "src/frontend/common/client_routing.hpp"
#include "src/pool/credentials.hpp"
#include "src/router/cluster.hpp"

using namespace sluice;

namespace {

std::shared_ptr<const config::Config> load(const std::string& pool_extra, const std::string& user_extra = "",
                                           const std::string& cluster_extra = "", bool replicas = true) {
  return config::load_string(std::string(R"(
[[users]]
name = "app"
password = "x"
)") + user_extra + R"(
[clusters.c]
protocol = "postgres"
primary = "127.0.0.1:5432"
)" + (replicas ? "replicas = [\"127.0.0.1:5433\", \"127.0.0.1:5434\"]\n" : "") +
                                 cluster_extra + R"(
[[pools]]
database = "db"
cluster = "c"
)" + pool_extra,
                             "t.toml");
}

struct Bound {
  std::shared_ptr<const config::Config> cfg;
  router::Router router;
  frontend::ClientRouting routing;
  std::vector<config::Endpoint> made;  // the member pools the maker was asked for
};

std::unique_ptr<Bound> bind(std::shared_ptr<const config::Config> cfg) {
  auto b = std::make_unique<Bound>();
  b->cfg = std::move(cfg);
  const config::Pool& pc = b->cfg->pools.at(0);
  auto creds = pool::make_credentials(b->cfg->users.at(0), "t.toml");
  router::CredentialMap users;
  users.emplace("app", creds);
  b->router.build(*b->cfg, users, {});
  auto make = [b = b.get(), creds](const config::Endpoint& ep) {
    b->made.push_back(ep);
    return std::make_shared<pool::Pool>("db", ep, creds, "db", pool::PoolSettings{});
  };
  b->routing.bind(*b->cfg, pc, "app", make(b->cfg->clusters.at("c").primary), b->router, make);
  b->made.clear();
  return b;
}

}  // namespace

TEST_CASE("reads split when the routing says so, the cluster has replicas, and the pool is not in session mode") {
  CHECK(bind(load("", "", "routing = \"read_write_split\"\n"))->routing.split());
  CHECK_FALSE(bind(load("", "", "routing = \"primary_only\"\n"))->routing.split());
  // The pool's routing over the cluster's, the user's over both.
  CHECK(bind(load("routing = \"read_write_split\"\n", "", "routing = \"primary_only\"\n"))->routing.split());
  CHECK_FALSE(bind(load("routing = \"read_write_split\"\n", "routing = \"primary_only\"\n"))->routing.split());
  CHECK(bind(load("routing = \"primary_only\"\n", "routing = \"read_write_split\"\n"))->routing.split());
  // Session mode never splits; nor does a cluster without replicas.
  CHECK_FALSE(bind(load("pool_mode = \"session\"\nrouting = \"read_write_split\"\n"))->routing.split());
  CHECK_FALSE(bind(load("routing = \"read_write_split\"\n", "", "", /*replicas=*/false))->routing.split());
}

TEST_CASE("member pools are made on first use, with the member's endpoint; routes follow the cluster's view") {
  auto b = bind(load("routing = \"read_write_split\"\n"));
  REQUIRE(b->routing.split());
  CHECK(b->routing.primary()->endpoint().port == 5432);
  // No health check has run: no replica is known healthy, so a read goes to the primary.
  auto p = b->routing.choose(true);
  CHECK(b->routing.route.member == 0);
  CHECK_FALSE(b->routing.route.replica);
  CHECK(p == b->routing.primary());
  CHECK(b->made.empty());

  auto view = std::make_shared<router::ClusterView>();
  view->members.resize(3);
  for (int m = 0; m < 3; ++m) {
    view->members[m].endpoint = m == 0 ? b->cfg->clusters.at("c").primary : b->cfg->clusters.at("c").replicas.at(m - 1);
    view->members[m].up = true;
    view->members[m].role = m == 0 ? router::Role::Primary : router::Role::Replica;
    view->members[m].position = *router::parse_pg_lsn("0/500");
  }
  view->primary = 0;
  b->routing.cluster().set_view(view);
  p = b->routing.choose(true);
  CHECK(b->routing.route.replica);
  CHECK(b->routing.route.member >= 1);
  REQUIRE(b->made.size() == 1);
  CHECK(b->made[0].port == 5432 + b->routing.route.member);
  CHECK(b->routing.pool(b->routing.route.member) == p);  // made once
  CHECK(b->made.size() == 1);
  // A write goes to the primary; the client's token then keeps reads there.
  b->routing.choose(false);
  CHECK(b->routing.route.member == 0);
  b->routing.token = *router::parse_pg_lsn("0/600");  // a write no replica is known to have replayed
  b->routing.choose(true);
  CHECK(b->routing.route.replica);  // one may have caught up since the last check: it is asked
  CHECK(b->routing.route.verify);
  b->routing.token = *router::parse_pg_lsn("0/400");  // one every replica has
  b->routing.choose(true);
  CHECK(b->routing.route.replica);
  b->routing.token = router::Position::unreachable();
  REQUIRE(b->routing.read_your_writes_token());
  CHECK(*b->routing.read_your_writes_token() == router::Position::unreachable());
  // A write whose position is unknown: no replica can ever be shown to have it, so none is asked.
  b->routing.choose(true);
  CHECK_FALSE(b->routing.route.replica);
  CHECK_FALSE(b->routing.route.verify);
}
