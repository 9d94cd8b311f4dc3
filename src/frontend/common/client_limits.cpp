// A client's connection places and request rate (client_limits.hpp).
#include "src/frontend/common/client_limits.hpp"

namespace sluice::frontend {

std::optional<access::Limit> ClientLimits::login(access::LimitState& state, const config::Config& cfg,
                                                 std::string_view user, std::string_view database, bool console) {
  logout();
  const config::User* u = cfg.find_user(user);
  user_rate_override_ = u ? u->queries_per_second : std::nullopt;
  if (console && cfg.is_stats(user)) return std::nullopt;
  std::uint32_t per_user = u && u->max_connections ? *u->max_connections : cfg.limits.max_connections_per_user;
  user_ = state.connections.take(access::Scope::User, user, per_user);
  if (!user_) {
    state.count_refusal(access::Limit::ConnectionsPerUser);
    return access::Limit::ConnectionsPerUser;
  }
  db_ = state.connections.take(access::Scope::Database, database, cfg.limits.max_connections_per_database);
  if (!db_) {
    user_.reset();
    state.count_refusal(access::Limit::ConnectionsPerDatabase);
    return access::Limit::ConnectionsPerDatabase;
  }
  return std::nullopt;
}

ClientLimits::Rate ClientLimits::request_slow(access::LimitState& state, const config::Limits& limits,
                                              std::string_view user, std::string_view address) {
  auto now = std::chrono::steady_clock::now();
  const bool queue = limits.rate_limit_action == "queue";
  const std::chrono::nanoseconds max_wait =
      queue ? std::chrono::nanoseconds(limits.rate_limit_max_wait) : std::chrono::nanoseconds(0);
  Rate r;
  const std::uint32_t per_user = user_rate(limits), per_address = limits.queries_per_second_per_address;
  std::optional<std::chrono::nanoseconds> wu, wa;
  if (!buckets_) buckets_ = std::make_unique<Buckets>();
  auto& user_bucket = buckets_->user;
  auto& address_bucket = buckets_->address;
  if (per_user) {
    if (!user_bucket) user_bucket = state.rates.get(access::Limit::QueryRateUser, user);
    wu = user_bucket->admit(per_user, max_wait, now);
    if (!wu) {
      state.count_refusal(access::Limit::QueryRateUser);
      r.refused = access::Limit::QueryRateUser;
      r.limit = per_user;
      return r;
    }
    r.wait = *wu;
  }
  if (per_address) {
    if (!address_bucket) address_bucket = state.rates.get(access::Limit::QueryRateAddress, address);
    wa = address_bucket->admit(per_address, max_wait, now);
    if (!wa) {
      if (wu) user_bucket->undo(per_user);
      state.count_refusal(access::Limit::QueryRateAddress);
      r.refused = access::Limit::QueryRateAddress;
      r.limit = per_address;
      return r;
    }
    r.wait = std::max(r.wait, *wa);
  }
  if (r.wait.count() > 0)
    state
        .queued[static_cast<std::size_t>(per_user && wu && *wu == r.wait ? access::Limit::QueryRateUser
                                                                         : access::Limit::QueryRateAddress)]
        .fetch_add(1, std::memory_order_relaxed);
  return r;
}

}  // namespace sluice::frontend
