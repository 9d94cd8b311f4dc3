// A client's share of [limits] (src/access/limits.hpp), the same on both protocols: its places
// under the per-user and per-database connection limits, taken at login and held while it is
// connected, and its request rate, checked per request. With every limit off a request costs
// three loads and no lock.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "src/access/limits.hpp"
#include "src/config/config.hpp"

namespace sluice::frontend {

class ClientLimits {
 public:
  // After authentication: places under the user and database limits (console users of the
  // admin or stats lists are not counted). The limit that refused, if one did (counted).
  std::optional<access::Limit> login(access::LimitState& state, const config::Config& cfg, std::string_view user,
                                     std::string_view database, bool console);
  // COM_CHANGE_USER and the like: the places go.
  void logout() {
    user_.reset();
    db_.reset();
    if (buckets_) buckets_->user.reset();
  }

  struct Rate {
    std::chrono::nanoseconds wait{0};      // queue: hold the request this long first
    std::optional<access::Limit> refused;  // refuse now (counted)
    std::uint32_t limit = 0;               // the rate that refused, for the message
  };
  // One request from `user` at `address` under cfg.limits.
  Rate request(access::LimitState& state, const config::Limits& limits, std::string_view user,
               std::string_view address) {
    if (!limited(limits)) return {};
    return request_slow(state, limits, user, address);
  }
  // Whether any request rate applies to this client.
  bool limited(const config::Limits& limits) const {
    return user_rate(limits) != 0 || limits.queries_per_second_per_address != 0;
  }
  // The configured limit that applies to this user's rate (its [[users]] override, or [limits]).
  std::uint32_t user_rate(const config::Limits& limits) const {
    return user_rate_override_ ? *user_rate_override_ : limits.queries_per_second_per_user;
  }

 private:
  Rate request_slow(access::LimitState& state, const config::Limits& limits, std::string_view user,
                    std::string_view address);
  access::Ticket user_, db_;
  // The rates' buckets, made at the first request a rate applies to (every client holds its
  // places; few are rate-limited, and an idle client keeps this object: 32 bytes).
  struct Buckets {
    std::shared_ptr<access::Gcra> user, address;
  };
  std::unique_ptr<Buckets> buckets_;
  std::optional<std::uint32_t> user_rate_override_;  // from [[users]] at login
};

}  // namespace sluice::frontend
