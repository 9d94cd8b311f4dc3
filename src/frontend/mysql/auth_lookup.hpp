// MySQL users absent from [[users]], authenticated as MaxScale does: with `[mysql] auth_user`
// set, Sluice reads the user's mysql_native_password hash (SHA1(SHA1(password))) from the
// primary's mysql.user over a pooled connection of that user, verifies the client's scramble
// against it like any configured user's, and logs in to servers with the SHA1(password) the
// scramble yields. Learned users are kept a short while (bounded); a user with no native hash,
// or none at all, is refused as unknown.
#pragma once

#include <boost/asio.hpp>

#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include "src/pool/credentials.hpp"

namespace sluice::state {
struct Context;
class Snapshot;
}  // namespace sluice::state

namespace sluice::frontend::mysql {

class LearnedUsers {
 public:
  using Clock = std::chrono::steady_clock;
  static constexpr std::size_t kMaxUsers = 10'000;
  static constexpr Clock::duration kTtl = std::chrono::seconds(30), kNegativeTtl = std::chrono::seconds(5);

  // `known`: whether an entry (positive or negative) is still fresh; then `out` holds it.
  bool find(const std::string& user, std::shared_ptr<const pool::Credentials>& out) const;
  // A user's credentials (null: the server has no usable hash for it). The same object is kept
  // when the hash did not change, so what it learned (SHA1(password)) stays.
  std::shared_ptr<const pool::Credentials> remember(const std::string& user, const std::string& stage2_hex);
  void forget(const std::string& user);

 private:
  struct Entry {
    std::shared_ptr<const pool::Credentials> creds;
    std::string stage2_hex;
    Clock::time_point at;
  };
  mutable std::mutex mu_;
  std::unordered_map<std::string, Entry> users_;
};

// The process's learned users ([mysql] auth_user's lookups).
LearnedUsers& learned_users();

// The credentials of `user` from the server (see above), or null.
boost::asio::awaitable<std::shared_ptr<const pool::Credentials>> lookup_mysql_user(state::Context& ctx, const state::Snapshot& snap,
                                                                                   const std::string& user,
                                                                                   boost::asio::any_io_executor ex);

}  // namespace sluice::frontend::mysql
