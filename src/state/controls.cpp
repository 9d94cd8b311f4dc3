// PAUSE/RESUME and DISABLE/ENABLE by database name ("" = every database).
#include "src/state/controls.hpp"

#include <algorithm>

namespace sluice::state {

namespace {
bool listed(const std::vector<std::string>& v, std::string_view db) {
  for (auto& x : v)
    if (x.empty() || x == db) return true;
  return false;
}
}  // namespace

bool Controls::paused(std::string_view database) const {
  if (!any_paused()) return false;
  std::lock_guard lock(mu_);
  return listed(paused_, database);
}

void Controls::pause(const std::string& database) {
  std::lock_guard lock(mu_);
  if (std::find(paused_.begin(), paused_.end(), database) == paused_.end()) paused_.push_back(database);
  any_paused_ = true;
}

bool Controls::resume(const std::string& database) {
  std::lock_guard lock(mu_);
  bool found = false;
  if (database.empty()) {
    found = !paused_.empty();
    paused_.clear();
  } else {
    found = std::erase(paused_, database) > 0;
  }
  any_paused_ = !paused_.empty();
  return found;
}

bool Controls::disabled(std::string_view database) const {
  std::lock_guard lock(mu_);
  return listed(disabled_, database);
}

void Controls::set_disabled(const std::string& database, bool disabled) {
  std::lock_guard lock(mu_);
  std::erase(disabled_, database);
  if (disabled) disabled_.push_back(database);
}

asio::awaitable<void> Controls::wait_resumed(const std::string& database, const asio::ip::tcp::socket& client,
                                             observe::ClientInfo& info) const {
  if (!paused(database)) co_return;
  info.set_state(observe::ClientState::Waiting);
  asio::steady_timer t(co_await asio::this_coro::executor);
  while (paused(database) && client.is_open()) {
    t.expires_after(std::chrono::milliseconds(10));
    boost::system::error_code ec;
    co_await t.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }
}

std::vector<std::string> Controls::paused_list() const {
  std::lock_guard lock(mu_);
  return paused_;
}

std::vector<std::string> Controls::disabled_list() const {
  std::lock_guard lock(mu_);
  return disabled_;
}

}  // namespace sluice::state
