// The pool's listening connection and its clients' mailboxes (see header).
#include "src/pool/notify_hub.hpp"

#include <fmt/format.h>

#include <array>

#include "src/observe/log.hpp"

namespace sluice::pool {

namespace wire = sluice::pg;

// ---- NotifyMailbox ---------------------------------------------------------------------------

void NotifyMailbox::wake_locked() {
  if (wake_posted_) return;
  wake_posted_ = true;
  asio::post(ex_, [self = shared_from_this()] {
    {
      std::lock_guard lock(self->mu_);
      self->wake_posted_ = false;
    }
    self->wake_();
  });
}

void NotifyMailbox::deliver(const std::string& channel, std::uint32_t pid, std::string_view message) {
  std::lock_guard lock(mu_);
  if (closed_) return;
  auto it = channels_.find(channel);
  if (it == channels_.end()) return;
  if (queued_bytes_ + message.size() > kMaxQueued) {
    std::string fatal;
    wire::error_response(fatal, "FATAL", "54000",
                         "sluice: too many notifications waiting for this client (it stays in a transaction "
                         "while they come)");
    closed_ = std::move(fatal);
    ready_.clear();
    held_.clear();
    wake_locked();
    return;
  }
  queued_bytes_ += message.size();
  (it->second ? ready_ : held_).push_back(Msg{channel, ++seq_, pid, std::string(message)});
  if (it->second) wake_locked();
}

void NotifyMailbox::close(std::string fatal) {
  std::lock_guard lock(mu_);
  if (closed_) return;
  closed_ = std::move(fatal);
  wake_locked();
}

void NotifyMailbox::mark() {
  std::lock_guard lock(mu_);
  mark_ = seq_;
}

void NotifyMailbox::expect(const std::string& channel) {
  std::lock_guard lock(mu_);
  channels_.emplace(channel, false);  // an active one stays active
}

std::vector<std::string> NotifyMailbox::settle(const std::set<std::string>& committed) {
  std::lock_guard lock(mu_);
  std::vector<std::string> dropped;
  for (auto it = channels_.begin(); it != channels_.end();) {
    if (committed.count(it->first)) {
      it->second = true;
      ++it;
    } else {
      dropped.push_back(it->first);
      it = channels_.erase(it);
    }
  }
  for (const auto& ch : committed)
    if (!channels_.count(ch)) channels_.emplace(ch, true);  // not expected: subscribed by the caller
  auto gone = [&](const Msg& m) { return !channels_.count(m.channel); };
  std::erase_if(ready_, gone);
  std::erase_if(held_, gone);
  for (auto& m : held_)
    if (m.seq > mark_) ready_.push_back(std::move(m));
  held_.clear();
  queued_bytes_ = 0;
  for (auto& m : ready_) queued_bytes_ += m.bytes.size();
  if (!ready_.empty()) wake_locked();
  return dropped;
}

bool NotifyMailbox::ready() const {
  std::lock_guard lock(mu_);
  return !ready_.empty() || closed_;
}

std::string NotifyMailbox::take(std::uint32_t own, std::uint32_t as) {
  std::lock_guard lock(mu_);
  std::string out;
  for (auto& m : ready_) {
    std::size_t at = out.size();
    out += m.bytes;
    if (own && m.pid == own && out.size() >= at + 9) {
      for (int i = 0; i < 4; ++i) out[at + 5 + i] = static_cast<char>((as >> (24 - 8 * i)) & 0xFF);
    }
    queued_bytes_ -= m.bytes.size();
  }
  ready_.clear();
  return out;
}

std::optional<std::string> NotifyMailbox::closed() const {
  std::lock_guard lock(mu_);
  return closed_;
}

// ---- NotifyHub -------------------------------------------------------------------------------

struct NotifyHub::Waiter {
  explicit Waiter(const asio::any_io_executor& ex) : timer(ex, asio::steady_timer::time_point::max()) {}
  asio::steady_timer timer;
  std::optional<std::string> result;
};

asio::awaitable<std::string> NotifyHub::subscribe(std::shared_ptr<NotifyMailbox> box, std::string channel) {
  co_return co_await asio::co_spawn(ex_, subscribe_here(std::move(box), std::move(channel)), asio::use_awaitable);
}

asio::awaitable<std::string> NotifyHub::subscribe_here(std::shared_ptr<NotifyMailbox> box, std::string channel) {
  auto self = shared_from_this();
  if (shut_) co_return "Sluice is shutting down";
  subs_[channel].insert(box);
  publish();
  if (listening_.count(channel) && !unlistening_.count(channel)) co_return "";
  auto w = std::make_shared<Waiter>(ex_);
  waiters_[channel].push_back(w);
  if (!requested_.count(channel)) {
    requested_.insert(channel);
    if (conn_) send({channel, true});  // else run() listens on every requested channel once connected
  }
  if (!running_) {
    running_ = true;
    asio::co_spawn(ex_, run(), asio::detached);
  }
  boost::system::error_code ec;
  while (!w->result) co_await w->timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  if (!w->result->empty()) unsubscribe_here(box, channel);
  co_return *w->result;
}

void NotifyHub::unsubscribe(std::shared_ptr<NotifyMailbox> box, std::string channel) {
  asio::post(ex_, [self = shared_from_this(), box = std::move(box), channel = std::move(channel)] {
    self->unsubscribe_here(box, channel);
  });
}

void NotifyHub::unsubscribe_here(const std::shared_ptr<NotifyMailbox>& box, const std::string& channel) {
  for (auto it = subs_.begin(); it != subs_.end();) {
    if (channel != "*" && it->first != channel) {
      ++it;
      continue;
    }
    it->second.erase(box);
    if (!it->second.empty() || waiters_.count(it->first)) {
      ++it;
      continue;
    }
    if (conn_ && listening_.count(it->first) && !unlistening_.count(it->first)) {
      unlistening_.insert(it->first);
      send({it->first, false});
    }
    it = subs_.erase(it);
  }
  publish();
  maybe_close();
}

void NotifyHub::close() {
  asio::post(ex_, [self = shared_from_this()] {
    self->shut_ = true;
    self->subs_.clear();
    self->maybe_close();
  });
}

// Nobody listens and nothing is on its way: the connection closes (it would keep a database in
// use: DROP DATABASE waits for it).
void NotifyHub::maybe_close() {
  if (!subs_.empty() || !waiters_.empty() || !conn_ || closing_) return;
  closing_ = true;
  conn_->close_quietly();  // run() sees the end
}

void NotifyHub::send(const Command& c) {
  wire::query(out_, fmt::format("{} {}", c.listen ? "LISTEN" : "UNLISTEN", wire::quote_ident(c.channel)));
  inflight_.push_back(c);
  if (!writing_) {
    writing_ = true;
    asio::co_spawn(ex_, write_out(), asio::detached);
  }
}

asio::awaitable<void> NotifyHub::write_out() {
  auto self = shared_from_this();
  while (!out_.empty() && conn_) {
    std::string buf = std::move(out_);
    out_.clear();
    auto conn = conn_;
    boost::system::error_code ec;
    co_await conn->channel().write(asio::buffer(buf), ec);
    if (ec) {
      boost::system::error_code ignored;
      conn->sock.close(ignored);  // run() sees the end
      break;
    }
  }
  out_.clear();
  writing_ = false;
}

asio::awaitable<void> NotifyHub::run() {
  auto self = shared_from_this();
  auto r = co_await connect_(ex_);
  if (!r.conn) {
    std::string why =
        r.error.fields.message.empty() ? std::string("cannot connect") : std::string(r.error.fields.message);
    log::warn("pool {}: cannot open the connection that listens for clients' notifications: {}", name_, why);
    lost({});
    running_ = false;
    // Waiters came meanwhile: they were answered by lost().
    co_return;
  }
  conn_ = r.conn;
  closing_ = false;
  fatal_.clear();
  fatal_text_.clear();
  log::info("pool {}: listening connection open (server process {})", name_, conn_->backend_pid);
  for (auto& ch : requested_) send({ch, true});
  publish();
  std::vector<std::uint8_t> in;
  std::size_t used = 0;
  std::array<std::uint8_t, 16 * 1024> chunk{};
  for (;;) {
    maybe_close();
    boost::system::error_code ec;
    std::size_t n = co_await conn_->channel().read_some(asio::buffer(chunk), ec);
    if (ec || n == 0) break;
    in.insert(in.end(), chunk.begin(), chunk.begin() + static_cast<std::ptrdiff_t>(n));
    bool bad = false;
    for (;;) {
      wire::Frame f;
      auto d = wire::next_frame(wire::Bytes(in.data() + used, in.size() - used), 1u << 20, f);
      if (d == wire::Decode::NeedMore) break;
      if (d == wire::Decode::Malformed) {
        bad = true;
        break;
      }
      used += f.size();
      on_message(static_cast<char>(f.type),
                 std::string_view(reinterpret_cast<const char*>(f.body.data()), f.body.size()));
    }
    if (bad) break;
    if (used == in.size()) in.clear(), used = 0;
  }
  bool quiet = closing_;
  boost::system::error_code ignored;
  conn_->sock.close(ignored);
  conn_.reset();
  closing_ = false;
  if (quiet) {
    log::info("pool {}: listening connection closed (no client listens)", name_);
    listening_.clear();
    requested_.clear();
    unlistening_.clear();
    inflight_.clear();
  } else {
    log::warn("pool {}: the connection listening for clients' notifications was lost{}", name_,
              fatal_text_.empty() ? std::string() : ": " + fatal_text_);
    lost(fatal_);
  }
  running_ = false;
  publish();
  // A subscription that came after the quiet close: start over.
  if (!waiters_.empty() && !shut_) {
    running_ = true;
    for (auto& [ch, ws] : waiters_) requested_.insert(ch);
    asio::co_spawn(ex_, run(), asio::detached);
  }
}

void NotifyHub::on_message(char type, std::string_view body) {
  wire::Bytes bytes(reinterpret_cast<const std::uint8_t*>(body.data()), body.size());
  switch (type) {
    case wire::be::NotificationResponse: {
      wire::Reader rd(bytes);
      std::uint32_t pid = static_cast<std::uint32_t>(rd.i32());
      std::string channel(rd.cstr());
      if (!rd.ok()) return;
      auto it = subs_.find(channel);
      if (it == subs_.end()) return;
      std::string msg;
      wire::Builder(msg).begin(type).raw(bytes).end();
      for (auto& box : it->second) box->deliver(channel, pid, msg);
      return;
    }
    case wire::be::ErrorResponse: {
      wire::ErrorFields ef;
      wire::parse_error_fields(bytes, ef);
      if (ef.severity == "FATAL" || ef.severity == "PANIC") {
        std::string raw;
        wire::Builder(raw).begin(type).raw(bytes).end();
        fatal_ = raw;
        fatal_text_ = fmt::format("{} {}: {}", ef.severity, ef.code, ef.message);
        return;
      }
      inflight_failed_ = true;
      inflight_error_ = fmt::format("{} {}", ef.code, ef.message);
      return;
    }
    case wire::be::ReadyForQuery: {
      if (inflight_.empty()) return;
      Command c = inflight_.front();
      inflight_.pop_front();
      bool ok = !inflight_failed_;
      std::string why = std::exchange(inflight_error_, {});
      inflight_failed_ = false;
      if (!c.listen) {
        unlistening_.erase(c.channel);
        listening_.erase(c.channel);
        return;
      }
      requested_.erase(c.channel);
      if (ok) listening_.insert(c.channel);
      auto it = waiters_.find(c.channel);
      if (it == waiters_.end()) return;
      auto ws = std::move(it->second);
      waiters_.erase(it);
      for (auto& w : ws) {
        w->result = ok ? std::string() : (why.empty() ? std::string("LISTEN failed") : why);
        w->timer.cancel();
      }
      if (ok && unlistening_.count(c.channel) == 0 && !subs_.count(c.channel)) {
        unlistening_.insert(c.channel);
        send({c.channel, false});
      }
      return;
    }
    default:
      return;  // CommandComplete, ParameterStatus, NoticeResponse
  }
}

// The connection ended without being asked to: clients listening through it are closed, with the
// server's own message when it sent one; those waiting for a LISTEN are told it failed.
void NotifyHub::lost(std::string fatal) {
  if (fatal.empty())
    wire::error_response(fatal, "FATAL", "08006",
                         "sluice: the server connection listening for this client's notifications was lost");
  for (auto& [ch, boxes] : subs_)
    for (auto& box : boxes)
      if (!waiters_.count(ch)) box->close(fatal);
  for (auto& [ch, ws] : waiters_)
    for (auto& w : ws) {
      w->result = "the listening connection could not be opened or was lost";
      w->timer.cancel();
    }
  waiters_.clear();
  subs_.clear();
  listening_.clear();
  requested_.clear();
  unlistening_.clear();
  inflight_.clear();
  inflight_failed_ = false;
  out_.clear();
}

void NotifyHub::publish() {
  std::lock_guard lock(usage_mu_);
  usage_.channels = subs_.size();
  usage_.subscriptions = 0;
  for (auto& [ch, boxes] : subs_) usage_.subscriptions += boxes.size();
  usage_.backend_pid = conn_ ? conn_->backend_pid : 0;
}

NotifyHub::Usage NotifyHub::usage() const {
  std::lock_guard lock(usage_mu_);
  return usage_;
}

}  // namespace sluice::pool
