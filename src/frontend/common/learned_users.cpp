// Learned users (learned_users.hpp).
#include "src/frontend/common/learned_users.hpp"

namespace sluice::frontend {

LearnedUsers& learned_users(config::Protocol protocol) {
  static LearnedUsers pg, my;
  return protocol == config::Protocol::Postgres ? pg : my;
}

bool LearnedUsers::find(const std::string& user, std::shared_ptr<const pool::Credentials>& out) const {
  std::lock_guard lock(mu_);
  auto it = users_.find(user);
  if (it == users_.end()) return false;
  auto age = Clock::now() - it->second.at;
  if (age > (it->second.creds ? kTtl : kNegativeTtl)) return false;
  out = it->second.creds;
  return true;
}

std::shared_ptr<const pool::Credentials> LearnedUsers::remember(
    const std::string& user, const std::string& secret,
    const std::function<std::shared_ptr<const pool::Credentials>()>& make) {
  std::lock_guard lock(mu_);
  auto it = users_.find(user);
  std::shared_ptr<const pool::Credentials> creds;
  if (it != users_.end() && it->second.creds && it->second.secret == secret) creds = it->second.creds;
  else if (!secret.empty()) creds = make();
  if (users_.size() >= kMaxUsers && it == users_.end()) users_.erase(users_.begin());  // bounded
  users_[user] = Entry{creds, secret, Clock::now()};
  return creds;
}

void LearnedUsers::forget(const std::string& user) {
  std::lock_guard lock(mu_);
  users_.erase(user);
}

}  // namespace sluice::frontend
