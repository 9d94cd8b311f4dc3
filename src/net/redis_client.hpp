// A client of one Redis (or Valkey) server for one worker: commands pipelined on one connection,
// replies matched in order, every command bounded by a timeout. Redis is an optional helper (the
// result cache's shared store), never needed for an answer, so the client fails fast: a command
// that times out, a lost connection or a malformed reply closes the connection and fails every
// command waiting on it; while the connection is down, commands fail at once, and it is tried
// again after 1 s, backing off to 8 s. Used from its executor's thread only (no locks).
#pragma once

#include <boost/asio.hpp>

#include <chrono>
#include <cstdint>
#include <deque>
#include <span>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "protocols/common/resp.hpp"

namespace sluice::net {

struct RedisOptions {
  std::string host = "127.0.0.1";
  std::uint16_t port = 6379;
  std::string password;  // AUTH when not empty
  std::chrono::milliseconds timeout{20};
  std::size_t max_bulk = 64u << 20;
};

class RedisClient : public std::enable_shared_from_this<RedisClient> {
 public:
  RedisClient(boost::asio::any_io_executor ex, RedisOptions options);
  ~RedisClient();
  // The reply (an error reply too), or nullopt when Redis could not answer; `why` says why.
  boost::asio::awaitable<std::optional<resp::Reply>> command(std::span<const std::string_view> args,
                                                             std::string* why = nullptr);
  bool up() const { return state_ == State::Up; }
  const std::string& last_error() const { return last_error_; }
  const RedisOptions& options() const { return options_; }
  void close();

 private:
  enum class State { Down, Connecting, Up };
  struct Pending {
    explicit Pending(boost::asio::any_io_executor ex) : signal(ex) {}
    boost::asio::steady_timer signal;  // cancelled when the reply (or a failure) is in
    std::optional<resp::Reply> reply;
    bool finished = false;
  };
  boost::asio::awaitable<bool> connect();
  boost::asio::awaitable<void> read_loop(std::uint64_t generation);
  boost::asio::awaitable<void> write_loop(std::uint64_t generation);
  void fail(const std::string& why);

  boost::asio::any_io_executor ex_;
  RedisOptions options_;
  boost::asio::ip::tcp::socket sock_;
  State state_ = State::Down;
  std::uint64_t generation_ = 0;  // of the connection: loops of an older one stop
  std::chrono::steady_clock::time_point retry_at_{};
  std::chrono::milliseconds backoff_{1000};
  std::string last_error_;
  std::string out_;  // encoded commands not yet written
  bool writing_ = false;
  std::deque<std::shared_ptr<Pending>> waiting_;  // sent or queued, in order
};

}  // namespace sluice::net
