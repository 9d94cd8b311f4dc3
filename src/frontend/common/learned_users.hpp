// Users absent from [[users]] whose secret Sluice read from a server ([postgres] auth_query,
// [mysql] auth_user), kept a short while per protocol: the same credentials object while the
// secret does not change (so what it learned, a SCRAM ClientKey or a SHA1(password), stays), a
// negative entry for users the server has no usable secret for, and at most 10,000 users.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include "src/config/config.hpp"
#include "src/pool/credentials.hpp"

namespace sluice::frontend {

class LearnedUsers {
 public:
  using Clock = std::chrono::steady_clock;
  static constexpr std::size_t kMaxUsers = 10'000;
  static constexpr Clock::duration kTtl = std::chrono::seconds(30), kNegativeTtl = std::chrono::seconds(5);

  // Whether an entry (positive or negative) is still fresh; then `out` holds it.
  bool find(const std::string& user, std::shared_ptr<const pool::Credentials>& out) const;
  // `secret` as read from the server ("" when none is usable); `make` builds credentials from
  // it (null: refused) unless the entry already holds credentials for the same secret.
  std::shared_ptr<const pool::Credentials> remember(
      const std::string& user, const std::string& secret,
      const std::function<std::shared_ptr<const pool::Credentials>()>& make);
  void forget(const std::string& user);

 private:
  struct Entry {
    std::shared_ptr<const pool::Credentials> creds;
    std::string secret;
    Clock::time_point at;
  };
  mutable std::mutex mu_;
  std::unordered_map<std::string, Entry> users_;
};

// The process's learned users, one set per protocol.
LearnedUsers& learned_users(config::Protocol protocol);

}  // namespace sluice::frontend
