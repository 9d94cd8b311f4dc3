// Shadow traffic (mirror.hpp).
#include "src/router/mirror.hpp"

#include <fmt/format.h>

#include "protocols/mysql/codec.hpp"
#include "protocols/postgres/codec.hpp"
#include "src/observe/log.hpp"
#include "src/pool/mysql_io.hpp"
#include "src/pool/pg_exchange.hpp"

namespace sluice::router {

namespace asio = boost::asio;
using asio::awaitable;
using asio::use_awaitable;

void AnswerSum::row(std::string_view bytes) {
  std::uint64_t h = 14695981039346656037ull;
  for (unsigned char ch : bytes) h = (h ^ ch) * 1099511628211ull;
  digest += h;
}

std::uint64_t AnswerSum::tag_rows(std::string_view tag) {
  while (!tag.empty() && tag.back() == '\0') tag.remove_suffix(1);
  auto sp = tag.rfind(' ');
  if (sp == std::string_view::npos) return 0;
  std::uint64_t n = 0;
  for (char ch : tag.substr(sp + 1)) {
    if (ch < '0' || ch > '9') return 0;
    n = n * 10 + static_cast<std::uint64_t>(ch - '0');
  }
  return n;
}

Mirror::Mirror(config::Cluster cluster, config::Mirroring settings, pool::ServerTls tls)
    : cluster_(std::move(cluster)), settings_(settings), tls_(std::move(tls)) {}

void Mirror::count(const std::string& fingerprint, std::uint64_t Counts::*field) {
  std::lock_guard lock(mu_);
  auto it = counts_.find(fingerprint);
  if (it == counts_.end()) {
    if (counts_.size() >= 5000) it = counts_.try_emplace("(other)").first;  // bounded, as the digests
    else it = counts_.try_emplace(fingerprint).first;
  }
  ++(it->second.*field);
}

void Mirror::offer(MirrorCopy c) {
  std::string fp = c.fingerprint;
  bool dropped = false, wake = false;
  {
    std::lock_guard lock(mu_);
    if (stopped_ || queue_.size() >= settings_.queue) {
      dropped = true;
    } else {
      queue_.push_back(std::move(c));
      wake = timer_ != nullptr;
    }
  }
  count(fp, dropped ? &Counts::dropped : &Counts::sent);
  if (wake) wake_sender();
}

void Mirror::wake_sender() {
  // The sender's timer lives on its executor: cancelled there.
  asio::post(ex_, [self = shared_from_this()] {
    std::lock_guard lock(self->mu_);
    if (self->timer_) self->timer_->cancel();
  });
}

void Mirror::start(asio::any_io_executor ex) {
  ex_ = ex;
  asio::co_spawn(
      ex, [self = shared_from_this(), ex]() { return self->sender(ex); }, asio::detached);
}

void Mirror::stop() {
  {
    std::lock_guard lock(mu_);
    stopped_ = true;
    queue_.clear();
  }
  if (ex_) wake_sender();
}

std::size_t Mirror::waiting() const {
  std::lock_guard lock(mu_);
  return queue_.size();
}

std::vector<Mirror::Row> Mirror::rows() const {
  std::lock_guard lock(mu_);
  std::vector<Row> out;
  for (auto& [fp, c] : counts_) out.push_back({fp, c.sent, c.matched, c.mismatched, c.failed, c.dropped});
  return out;
}

awaitable<void> Mirror::sender(asio::any_io_executor ex) {
  asio::steady_timer timer(ex);
  for (;;) {
    std::optional<MirrorCopy> c;
    {
      std::lock_guard lock(mu_);
      if (stopped_) {
        timer_ = nullptr;
        break;
      }
      if (!queue_.empty()) {
        c = std::move(queue_.front());
        queue_.pop_front();
      } else {
        timer_ = &timer;
      }
    }
    if (!c) {
      timer.expires_after(std::chrono::milliseconds(200));
      boost::system::error_code ec;
      co_await timer.async_wait(asio::redirect_error(use_awaitable, ec));
      std::lock_guard lock(mu_);
      timer_ = nullptr;
      continue;
    }
    auto got = co_await run(ex, *c);
    if (!got) count(c->fingerprint, &Counts::failed);
    else if (*got == c->answer) count(c->fingerprint, &Counts::matched);
    else {
      count(c->fingerprint, &Counts::mismatched);
      log::info("mirror {}: answer differs for \"{}\" (rows {} / {})", cluster_.name, c->fingerprint, c->answer.rows,
                got->rows);
    }
  }
  for (auto& [k, conn] : conns_) conn->close_quietly();
}

awaitable<std::optional<AnswerSum>> Mirror::run(asio::any_io_executor ex, const MirrorCopy& c) {
  const bool pg = cluster_.protocol == config::Protocol::Postgres;
  std::string key = c.creds->user + '\x1f' + c.database;
  std::shared_ptr<pool::ServerConn> conn;
  for (std::size_t i = 0; i < conns_.size(); ++i)
    if (conns_[i].first == key) {
      conn = conns_[i].second;
      conns_.erase(conns_.begin() + static_cast<std::ptrdiff_t>(i));
      break;
    }
  if (!conn) {
    pool::ConnectResult r;
    if (pg) r = co_await pool::connect_server(ex, cluster_.primary, c.creds, c.database, settings_.timeout, 0, tls_);
    else r = co_await pool::connect_mysql(ex, cluster_.primary, c.creds, c.database, settings_.timeout, 0, 0, 0, tls_);
    if (!r.conn) {
      log::debug("mirror {}: cannot connect: {}", cluster_.name, r.error.fields.message);
      co_return std::nullopt;
    }
    conn = std::move(r.conn);
  }
  AnswerSum sum;
  bool ok = true;
  {
    pool::Deadline deadline(conn->sock, settings_.timeout);
    if (pg) {
      std::string out;
      pg::query(out, c.text);
      boost::system::error_code ec;
      co_await conn->channel().write(asio::buffer(out), ec);
      auto each = [&](const pg::Frame& f) {
        if (f.type == pg::be::DataRow) sum.row(pg::as_sv(f.body));
        else if (f.type == pg::be::CommandComplete) sum.rows += AnswerSum::tag_rows(pg::as_sv(f.body));
        else if (f.type == pg::be::ErrorResponse) sum.error = true;
        return true;
      };
      ok = !ec && co_await pool::read_until_ready(conn->channel(), 1, each);
    } else {
      pool::MysqlIo io(conn->sock);
      io.set_tls(conn->tls.get());
      std::string cmd;
      my::build_command(cmd, my::com::QUERY, c.text);
      ok = co_await io.write(cmd, 0) && co_await io.read();
      auto first = [&] { return io.payload().empty() ? 0 : static_cast<std::uint8_t>(io.payload()[0]); };
      if (ok && first() == 0xFF) {
        sum.error = true;
      } else if (ok && first() == 0x00) {
        my::Ok okp;
        if (my::parse_ok(io.bytes(), false, okp)) sum.rows = okp.affected_rows;
      } else if (ok) {
        my::Reader rd(io.bytes());
        std::uint64_t columns = rd.lenenc();
        for (std::uint64_t i = 0; ok && i < columns + 1; ++i) ok = co_await io.read();  // definitions, EOF
        while (ok) {
          ok = co_await io.read();
          if (!ok) break;
          auto f = first();
          if (f == 0xFF) {
            sum.error = true;
            break;
          }
          if (f == 0xFE && io.payload().size() < 9) break;  // EOF: the last row
          sum.row(io.payload());
          ++sum.rows;
        }
      }
    }
    if (deadline.expired()) ok = false;
  }
  if (!ok) {
    conn->close_quietly();
    co_return std::nullopt;
  }
  conns_.emplace_back(std::move(key), std::move(conn));
  if (conns_.size() > settings_.connections) {
    conns_.front().second->close_quietly();
    conns_.erase(conns_.begin());
  }
  co_return sum;
}

void Mirrors::reconfigure(const config::Config& cfg, const pool::ServerTlsMap& tls, asio::any_io_executor ex) {
  std::map<std::string, std::shared_ptr<Mirror>, std::less<>> next;
  std::map<std::string, std::string, std::less<>> keys;
  for (auto& r : cfg.rules) {
    if (r.mirror.empty() || next.count(r.mirror)) continue;
    const auto& c = cfg.clusters.at(r.mirror);
    std::string key =
        fmt::format("{}|{}|{}|{}|{}|{}", c.primary.text(), config::to_string(c.protocol), cfg.mirror.queue,
                    cfg.mirror.timeout.count(), cfg.mirror.connections, config::to_string(c.server_tls));
    std::lock_guard lock(mu_);
    if (auto it = mirrors_.find(r.mirror); it != mirrors_.end() && keys_[r.mirror] == key) {
      next[r.mirror] = it->second;
    } else {
      auto t = tls.find(r.mirror);
      auto m = std::make_shared<Mirror>(c, cfg.mirror, t == tls.end() ? pool::ServerTls{} : t->second);
      m->start(ex);
      next[r.mirror] = std::move(m);
    }
    keys[r.mirror] = key;
  }
  std::lock_guard lock(mu_);
  for (auto& [name, m] : mirrors_)
    if (!next.count(name) || next[name] != m) m->stop();
  mirrors_ = std::move(next);
  keys_ = std::move(keys);
}

std::shared_ptr<Mirror> Mirrors::find(std::string_view cluster) const {
  std::lock_guard lock(mu_);
  auto it = mirrors_.find(cluster);
  return it == mirrors_.end() ? nullptr : it->second;
}

std::vector<std::shared_ptr<Mirror>> Mirrors::all() const {
  std::lock_guard lock(mu_);
  std::vector<std::shared_ptr<Mirror>> out;
  for (auto& [n, m] : mirrors_) out.push_back(m);
  return out;
}

void Mirrors::stop() {
  std::lock_guard lock(mu_);
  for (auto& [n, m] : mirrors_) m->stop();
  mirrors_.clear();
}

}  // namespace sluice::router
