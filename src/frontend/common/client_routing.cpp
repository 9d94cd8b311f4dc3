// A client's routing over its cluster (client_routing.hpp).
#include "src/frontend/common/client_routing.hpp"

namespace sluice::frontend {

void ClientRouting::bind(const config::Config& cfg, const config::Pool& pc, const std::string& user,
                         std::shared_ptr<pool::Pool> primary, const router::Router& router, PoolMaker make,
                         std::string_view address) {
  const auto& cluster = cfg.clusters.at(pc.cluster);
  cluster_ = router.find(pc.cluster);
  auto routing = cluster.routing;
  if (pc.routing) routing = *pc.routing;
  if (auto* u = cfg.find_user(user); u && u->routing) routing = *u->routing;
  split_ = cluster_ && routing == config::Routing::ReadWriteSplit && !cluster.replicas.empty() &&
           pc.mode != config::PoolMode::Session;
  pools_.assign(cluster.replicas.size() + 1, nullptr);
  pools_[0] = std::move(primary);
  make_ = std::move(make);
  route.member = 0;
  write_functions_ = &cluster.write_functions;
  zone_ = nullptr;
  if (!cfg.zones.empty()) {
    auto addr = config::IpAddress::parse(address);
    for (auto& z : cfg.zones) {
      for (auto& c : z.addresses)
        if (addr && c.contains(*addr)) zone_ = &z.name;
      if (zone_) break;
    }
  }
}

void ClientRouting::begin_session() {
  if (read_your_writes() && cluster_->config().read_your_writes_from_login) token = router::Position::login_pending();
}

std::shared_ptr<pool::Pool> ClientRouting::pool(int member) {
  auto& p = pools_[static_cast<std::size_t>(member)];
  if (!p) p = make_(cluster_->view()->members[static_cast<std::size_t>(member)].endpoint);
  return p;
}

std::shared_ptr<pool::Pool> ClientRouting::choose(bool read,
                                                  const std::vector<std::pair<std::string, std::string>>* tags) {
  // After a failed position check, give the replica a moment before asking again.
  bool may_verify = std::chrono::steady_clock::now() - verify_failed_at_ > std::chrono::milliseconds(50);
  router::ReadPreference pref;
  if (read) pref.tags = tags, pref.zone = zone();
  auto d = cluster_->route(read, token, may_verify, pref);
  route.replica = d.replica;
  route.verify = d.verify;
  route.member = d.member;
  return pool(d.member);
}

boost::asio::awaitable<pool::LeaseResult> ClientRouting::lease(std::shared_ptr<pool::ServerConn> conn,
                                                               config::Protocol protocol,
                                                               boost::asio::any_io_executor ex, config::Duration wait) {
  protocol_ = protocol;
  ex_ = &ex;
  wait_ = wait;
  auto r = co_await lease_on_route(std::move(conn), route, token, *this, verify_failed_at_);
  if (r.conn && !route.replica && token.is_login_pending()) [[unlikely]] {
    // Everything committed before this client's first statement: writes it made before it
    // connected included. Unknown: its reads stay on the primary.
    auto p = co_await router::fetch_primary_position(*r.conn, protocol);
    token = p && !p->empty() ? *p : router::Position::unreachable();
    if (!p) {  // the connection failed under the query, or answered it oddly: not kept
      release(route.member, std::move(r.conn), false);
      r = co_await lease(route.member);
    }
  }
  ex_ = nullptr;
  route.verify = false;
  co_return r;
}

void ClientRouting::report_failure() {
  if (split_) cluster_->report_failure(route.member);
}

bool ClientRouting::read_your_writes() const {
  return split_ && cluster_->config().consistency == config::Consistency::ReadYourWrites;
}

const router::Position* ClientRouting::read_your_writes_token() const { return read_your_writes() ? &token : nullptr; }

router::Position ClientRouting::applied() const {
  return split_ ? cluster_->applied(route.member, !route.replica, token) : router::Position{};
}

boost::asio::awaitable<pool::LeaseResult> ClientRouting::lease(int member) {
  co_return co_await pool(member)->lease(*ex_, wait_);
}

void ClientRouting::release(int member, std::shared_ptr<pool::ServerConn> conn, bool reusable) {
  pool(member)->release(std::move(conn), reusable);
}

void ClientRouting::report_failure(int member) {
  if (cluster_) cluster_->report_failure(member);
}

int ClientRouting::pick_write() { return cluster_ ? cluster_->pick_write() : 0; }

boost::asio::awaitable<std::optional<router::Position>> ClientRouting::position(pool::ServerConn& conn) {
  co_return co_await router::fetch_replica_position(conn, protocol_);
}

void ClientRouting::note_position(int member, const router::Position& p) {
  if (cluster_) cluster_->note_position(member, p);
}

}  // namespace sluice::frontend
