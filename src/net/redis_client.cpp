// Redis client for one worker (see header).
#include "src/net/redis_client.hpp"

#include "src/net/await_op.hpp"

namespace sluice::net {

namespace asio = boost::asio;
using boost::system::error_code;

RedisClient::RedisClient(asio::any_io_executor ex, RedisOptions options)
    : ex_(ex), options_(std::move(options)), sock_(ex) {}

RedisClient::~RedisClient() {
  error_code ignored;
  sock_.close(ignored);
}

void RedisClient::close() {
  fail("closed");
  retry_at_ = {};
}

void RedisClient::fail(const std::string& why) {
  if (state_ == State::Up) backoff_ = std::chrono::milliseconds(1000);
  else backoff_ = std::min(backoff_ * 2, std::chrono::milliseconds(8000));
  state_ = State::Down;
  retry_at_ = std::chrono::steady_clock::now() + backoff_;
  last_error_ = why;
  ++generation_;
  error_code ignored;
  sock_.close(ignored);
  out_.clear();
  for (auto& p : waiting_) {
    p->finished = true;
    p->signal.cancel();
  }
  waiting_.clear();
}

asio::awaitable<bool> RedisClient::connect() {
  state_ = State::Connecting;
  auto self = shared_from_this();
  error_code ec;
  asio::ip::tcp::resolver resolver(ex_);
  auto [rec, results] = co_await resolver.async_resolve(options_.host, std::to_string(options_.port), await_op);
  if (rec || results.empty()) {
    fail("cannot resolve " + options_.host + ": " + rec.message());
    co_return false;
  }
  sock_ = asio::ip::tcp::socket(ex_);
  // The connect and AUTH get the command timeout each.
  asio::steady_timer guard(ex_);
  guard.expires_after(options_.timeout * 5);
  guard.async_wait([this, self, g = generation_](error_code e) {
    if (!e && g == generation_ && state_ == State::Connecting) {
      error_code ignored;
      sock_.close(ignored);
    }
  });
  auto [cec, ep] = co_await asio::async_connect(sock_, results, await_op);
  if (cec) {
    guard.cancel();
    fail("cannot connect to " + options_.host + ":" + std::to_string(options_.port) + ": " + cec.message());
    co_return false;
  }
  sock_.set_option(asio::ip::tcp::no_delay(true), ec);
  if (!options_.password.empty()) {
    std::string auth;
    resp::encode(auth, {"AUTH", options_.password});
    auto [wec, wn] = co_await asio::async_write(sock_, asio::buffer(auth), await_op);
    std::string in;
    resp::Reply r;
    std::size_t used = 0;
    std::string err;
    char buf[512];
    auto d = resp::Decode::NeedMore;
    while (!wec && d == resp::Decode::NeedMore) {
      auto [rec2, n] = co_await sock_.async_read_some(asio::buffer(buf), await_op);
      if (rec2) {
        wec = rec2;
        break;
      }
      in.append(buf, n);
      d = resp::decode(in, r, used, err);
    }
    guard.cancel();
    if (wec || d != resp::Decode::Ok) {
      fail("AUTH got no answer: " + (wec ? wec.message() : err));
      co_return false;
    }
    if (r.kind == resp::Reply::Kind::Error) {
      fail("AUTH was refused: " + r.text);
      co_return false;
    }
  }
  guard.cancel();
  state_ = State::Up;
  last_error_.clear();
  asio::co_spawn(ex_, read_loop(generation_), asio::detached);
  co_return true;
}

asio::awaitable<std::optional<resp::Reply>> RedisClient::command(std::span<const std::string_view> args,
                                                                 std::string* why) {
  auto self = shared_from_this();
  if (state_ == State::Connecting || (state_ == State::Down && std::chrono::steady_clock::now() < retry_at_)) {
    if (why) *why = state_ == State::Connecting ? "connecting" : "down: " + last_error_;
    co_return std::nullopt;
  }
  if (state_ == State::Down) {
    bool connected = co_await connect();
    if (!connected) {
      if (why) *why = last_error_;
      co_return std::nullopt;
    }
  }
  auto p = std::make_shared<Pending>(ex_);
  p->signal.expires_after(options_.timeout);
  resp::encode(out_, args);
  waiting_.push_back(p);
  if (!writing_) {
    writing_ = true;
    asio::co_spawn(ex_, write_loop(generation_), asio::detached);
  }
  co_await p->signal.async_wait(await_op);
  if (!p->finished) {  // the timer ran out
    fail("no reply within " + std::to_string(options_.timeout.count()) + " ms");
  }
  if (!p->reply && why) *why = last_error_;
  co_return std::move(p->reply);
}

asio::awaitable<void> RedisClient::write_loop(std::uint64_t generation) {
  auto self = shared_from_this();
  std::string sending;
  while (generation == generation_ && !out_.empty()) {
    sending.swap(out_);
    out_.clear();
    auto [ec, n] = co_await asio::async_write(sock_, asio::buffer(sending), await_op);
    if (generation != generation_) break;
    if (ec) {
      fail("the connection was lost: " + ec.message());
      break;
    }
    sending.clear();
  }
  if (generation == generation_) writing_ = false;
  else if (state_ != State::Up) writing_ = false;
}

asio::awaitable<void> RedisClient::read_loop(std::uint64_t generation) {
  auto self = shared_from_this();
  std::string in;
  std::vector<char> buf(16384);
  resp::Limits limits;
  limits.max_bulk = options_.max_bulk;
  while (generation == generation_) {
    auto [ec, n] = co_await sock_.async_read_some(asio::buffer(buf), await_op);
    if (generation != generation_) co_return;
    if (ec) {
      fail("the connection was lost: " + ec.message());
      co_return;
    }
    in.append(buf.data(), n);
    std::size_t pos = 0;
    for (;;) {
      resp::Reply r;
      std::size_t used = 0;
      std::string err;
      auto d = resp::decode(std::string_view(in).substr(pos), r, used, err, limits);
      if (d == resp::Decode::NeedMore) break;
      if (d == resp::Decode::Malformed || waiting_.empty()) {
        fail(d == resp::Decode::Malformed ? "a malformed reply: " + err : "a reply nobody asked for");
        co_return;
      }
      pos += used;
      auto p = std::move(waiting_.front());
      waiting_.pop_front();
      p->reply = std::move(r);
      p->finished = true;
      p->signal.cancel();
    }
    in.erase(0, pos);
  }
}

}  // namespace sluice::net
