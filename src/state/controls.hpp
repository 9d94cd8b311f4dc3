// Operator controls (PAUSE/RESUME, DISABLE/ENABLE), shared by the console that sets them and the
// sessions that obey them.
#pragma once

#include <boost/asio.hpp>

#include <atomic>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "src/observe/stats.hpp"

namespace sluice::state {

namespace asio = boost::asio;

// Operator controls from the admin console: PAUSE/RESUME and DISABLE/ENABLE, by the
// database name clients use ("" = every database).
class Controls {
 public:
  // Fast path for sessions: nothing paused at all.
  bool any_paused() const { return any_paused_.load(std::memory_order_relaxed); }
  bool paused(std::string_view database) const;
  void pause(const std::string& database);
  // Returns false when that database was not paused.
  bool resume(const std::string& database);
  bool disabled(std::string_view database) const;
  void set_disabled(const std::string& database, bool disabled);
  std::vector<std::string> paused_list() const;
  // PAUSE: holds a client (shown as waiting) until `database` is resumed or its socket closes.
  asio::awaitable<void> wait_resumed(const std::string& database, const asio::ip::tcp::socket& client,
                                     observe::ClientInfo& info) const;
  std::vector<std::string> disabled_list() const;

 private:
  mutable std::mutex mu_;
  std::vector<std::string> paused_, disabled_;
  std::atomic<bool> any_paused_{false};
};

}  // namespace sluice::state
