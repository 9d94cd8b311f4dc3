// MySQL commands: reading one, dispatching it, relaying it to the attached server connection
// and streaming the response back (ResponseTracker), LOCAL INFILE, and what a server
// connection lost under a command means for the client. The hot path.
#include "src/frontend/mysql/client_session.hpp"
#include "src/net/await_op.hpp"
#include "src/net/fast_reads.hpp"
#include "src/net/read_wait.hpp"

namespace sluice::frontend::mysql {

awaitable<const ResponseSummary*> Session::exchange(std::string_view payload, ResponseKind kind, bool to_client,
                                                    std::uint32_t client_stmt_id, std::string* capture,
                                                    ResponseSummary* into) {
  w().srv_out_.clear();
  for (auto id : pending_closes_) {
    std::string c;
    my::build_command(c, my::com::STMT_CLOSE);
    my::put_u32(c, id);
    my::append_packets(w().srv_out_, c, 0);
  }
  pending_closes_.clear();
  my::append_packets(w().srv_out_, payload, 0);
  // Every way this ends in a lost server connection comes to one co_await of broken_server() at
  // the end: each co_await of a coroutine has its own slot in this frame, and Asio recycles no
  // frame above 1020 bytes (this one would then cost a malloc and a free per command).
  struct Broken {
    bool mid_response = false;
    std::optional<std::uint8_t> err_seq;
  };
  std::optional<Broken> broken;
  error_code ec;
  // Nothing of the server's is left unread: the response to this command is the next thing its
  // socket can wake for, and the first read need not try first (net/read_wait.hpp).
  bool answered = w().server_buf_.empty();
  // The hot path: plaintext goes straight to the socket (no extra coroutine frame).
  if (server_->tls) {
    co_await server_->tls->write(asio::buffer(w().srv_out_), ec);
  } else if (std::size_t sent = net::send_now(server_->sock, asio::buffer(w().srv_out_));
             sent < w().srv_out_.size()) {  // the kernel took it all at once: no operation
    co_await asio::async_write(server_->sock, asio::buffer(w().srv_out_) + sent,
                               asio::redirect_error(use_awaitable, ec));
  }
  if (ec) broken = Broken{};
  if (!broken)
    w().tracker_.start(kind, server_->capabilities, to_client ? caps_ : server_->capabilities, client_stmt_id, into);
  bool sent_any = false;
  while (!broken) {
    w().cli_out_.clear();
    std::size_t used = w().tracker_.feed(my::as_bytes(w().server_buf_), w().cli_out_);
    w().server_buf_.erase(0, used);
    if (w().tracker_.malformed()) {
      broken = Broken{sent_any, std::nullopt};
      break;
    }
    std::optional<std::uint8_t> end_seq;
    if (w().tracker_.done() && w().tracker_.result().error &&
        ResponseTracker::ends_connection(w().tracker_.result().err.code) &&
        (!to_client || mode_ != config::PoolMode::Session)) {
      // The server ends this connection (KILL, shutdown, idle timeout): in a pooled mode that
      // is not the client's to see; the command is answered as for any lost server connection.
      std::size_t err = w().tracker_.err_packet_size();
      end_seq = static_cast<std::uint8_t>(w().cli_out_[w().cli_out_.size() - err + 3]);
      w().cli_out_.resize(w().cli_out_.size() - err);
      server_end_ = fmt::format("{} {}", w().tracker_.result().err.code, w().tracker_.result().err.message);
    }
    if (kind == ResponseKind::Prepare && w().tracker_.done() && w().tracker_.result().error &&
        w().tracker_.result().err.code == kTooManyPrepared && !sent_any && evictable()) {
      // The server's max_prepared_stmt_count: the caller makes room and retries; the error
      // reaches the client only if that does not help (Work::held_error_).
      w().held_error_ = std::move(w().cli_out_);
      w().cli_out_.clear();
    }
    if (capture && capture->size() <= capture_limit_) capture->append(w().cli_out_);
    if (to_client && !w().cli_out_.empty()) {
      sent_any = true;
      if (stats_) stats_->bytes_out.fetch_add(w().cli_out_.size(), std::memory_order_relaxed);
      std::size_t sent = io_.write_now(w().cli_out_);  // all of it, usually: no coroutine frame
      if (sent < w().cli_out_.size()) {
        bool written = co_await io_.write_raw(std::string_view(w().cli_out_).substr(sent));
        if (!written) client_gone_ = true;  // keep draining the server so the connection stays usable
      }
    }
    if (end_seq) {
      broken = Broken{sent_any, end_seq};
      break;
    }
    if (w().tracker_.done()) {
      if (!w().server_buf_.empty()) broken = Broken{true, std::nullopt};  // more than one response
      break;
    }
    if (w().tracker_.awaiting_infile() && w().server_buf_.empty()) {
      if (auto awaited = co_await forward_infile(); !awaited) {
        broken = Broken{true, std::nullopt};
        break;
      }
      w().tracker_.infile_sent();
      continue;
    }
    if (rbuf_.empty()) rbuf_ = net::server_buffers().take();  // given back at detach
    std::size_t n = 0;
    if (server_->tls) n = co_await server_->tls->read_some(asio::buffer(rbuf_), ec);
    else {
      if (std::exchange(answered, false)) net::wait_first(server_->sock);
      std::tie(ec, n) = co_await net::async_read_fast(server_->sock, asio::buffer(rbuf_), net::await_op);
    }
    if (ec) {
      broken = Broken{sent_any, std::nullopt};
      break;
    }
    w().server_buf_.append(reinterpret_cast<const char*>(rbuf_.data()), n);
  }
  if (broken) co_return co_await broken_server(to_client, broken->mid_response, broken->err_seq);
  co_return &w().tracker_.result();
}

awaitable<bool> Session::forward_infile() {
  for (;;) {
    if (auto awaited = co_await io_.read(); !awaited) co_return false;
    w().srv_out_.clear();
    my::append_packets(w().srv_out_, io_.payload(), io_.seq());
    error_code ec;
    co_await server_->channel().write(asio::buffer(w().srv_out_), ec);
    if (ec) co_return false;
    if (io_.payload().empty()) co_return true;
  }
}

awaitable<const ResponseSummary*> Session::broken_server(bool to_client, bool mid_response,
                                                         std::optional<std::uint8_t> err_seq) {
  std::string server = server_ ? server_->endpoint.text() : std::string("?");
  if (server_)
    log::warn("server connection {} (thread {}) failed or desynchronized{}; closing it", server, server_->backend_pid,
              server_end_.empty() ? "" : ": the server said " + server_end_);
  server_end_.clear();
  routing_.report_failure();
  std::optional<std::uint8_t> seq = !mid_response ? std::optional<std::uint8_t>(1)
                                    : err_seq     ? err_seq
                                                  : w().tracker_.error_seq();
  broken_ = true;
  detach(false);
  broken_ = false;
  server_lost_ = true;
  // The session state Sluice tracked lives on; whatever the server held (a transaction, pinned
  // state) is gone, and the client is told.
  bool had_tx = cmd_.lose_server();
  if (to_client && retry_allowed_ && !mid_response) {
    retry_pending_ = true;  // nothing reached the client: the caller runs it elsewhere
    co_return nullptr;
  }
  if (!to_client) co_return nullptr;
  if (mode_ == config::PoolMode::Session) {  // the client owned that server session
    // Closed, as the server's loss closes a direct connection: the client library reports
    // 2013 "Lost connection" itself (an error packet with 2013 would read as malformed).
    close_client();
    co_return nullptr;
  }
  if (!seq) {
    log::warn("mysql client {}: its server connection was lost in the middle of a packet; closing the client",
              handle_->id);
    close_client();
    co_return nullptr;
  }
  const auto& row = refusal_row(Refusal::ServerLost);
  std::string p;
  my::build_err(p, row.code, row.sqlstate,
                refusal_text(Refusal::ServerLost, loss_text(classify_loss(had_tx, cmd_read_), server)));
  co_await io_.write(p, *seq);
  co_return nullptr;
}

void Session::watch_server() {
  server_watch_ = true;
  server_->sock.async_wait(tcp::socket::wait_read, [this, alive = std::weak_ptr<bool>(alive_),
                                                    gen = ++watch_gen_](error_code ec) {
    if (alive.expired() || gen != watch_gen_) return;
    server_watch_ = false;
    if (ec || !server_) return;
    char buf[4096];
    ssize_t n = ::recv(server_->sock.native_handle(), buf, sizeof buf, MSG_DONTWAIT);
    if (n > 0) {
      error_code e;
      std::string out = io_.framed(std::string_view(buf, static_cast<std::size_t>(n)));
      if (tls_) tls_->write_now(asio::buffer(out), e);
      else ::send(sock_.native_handle(), out.data(), out.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
    }
    log::info("client {}: server connection {} ended by the server while the client was idle", info_->id, server_->id);
    broken_ = true;
    close_client();
  });
}

void Session::unwatch_server() {
  if (!server_watch_) return;
  ++watch_gen_;
  server_watch_ = false;
  if (!server_) return;
  error_code ignored;
  net::cancel_reads(server_->sock, ignored);
}

void Session::begin_command_wait() {
  idle_wait_ = !server_;
  idle_ticks_ = 0;  // client_idle_timeout and parking count from here (janitor_tick)
  if (server_ && !server_->tls && mode_ == config::PoolMode::Session) watch_server();
}

bool Session::command_read(bool ok) {
  idle_wait_ = false;
  if (std::exchange(park_requested_, false) && !ok && !server_) {
    parking_ = true;  // the wait was cancelled to park: serve() returns, wait_parked() goes on
    shed_for_parking();
    return false;
  }
  unwatch_server();
  if (ok && stats_) stats_->bytes_in.fetch_add(io_.payload().size() + 4, std::memory_order_relaxed);
  return ok && !io_.payload().empty();
}

awaitable<bool> Session::command_unread(bool ok) {
  if (parking_) co_return false;
  if (!ok) {
    if (io_.error() == "message larger than the limit") co_await refuse(Refusal::PacketTooLarge);
    co_return false;
  }
  co_return co_await refuse(Refusal::EmptyCommand);  // ok: an empty command
}

awaitable<bool> Session::dispatch() {
  std::uint8_t cmd = static_cast<std::uint8_t>(io_.payload()[0]);
  // The per-command checks ([limits] rates, [firewall], [[rules]]): one await site, taken only
  // when one of them is on (each co_await site grows this frame, which Asio recycles under 1 KiB).
  if (front_door_on(cmd)) [[unlikely]] {
    if (auto awaited = co_await front_door(cmd); !awaited) co_return sock_.is_open();
  }
  switch (cmd) {
    case my::com::QUIT:
      co_return false;
    case my::com::PING:
      co_return co_await send_ok();
    case my::com::QUERY:
      co_return co_await com_query();
    case my::com::INIT_DB:
    case my::com::FIELD_LIST:
    case my::com::STATISTICS:
      co_return co_await forward_simple(cmd);
    case my::com::STMT_PREPARE:
      co_return co_await com_prepare();
    case my::com::STMT_EXECUTE:
      co_return co_await com_execute();
    case my::com::STMT_SEND_LONG_DATA:
      co_return co_await com_long_data();
    case my::com::STMT_CLOSE:
      co_return com_close();
    case my::com::STMT_RESET:
      co_return co_await com_stmt_reset();
    case my::com::STMT_FETCH:
      co_return co_await com_fetch();
    case my::com::SET_OPTION:
      co_return co_await com_set_option();
    case my::com::RESET_CONNECTION:
      co_return co_await com_reset_connection();
    case my::com::CHANGE_USER:
      co_return co_await com_change_user();
    case my::com::PROCESS_KILL: {
      my::Reader r(io_.bytes());
      r.u8();
      std::uint32_t id = r.u32();
      if (!r.ok()) break;
      const sql::MysqlKill k{false, id};
      co_return co_await kill(k);
    }
    default:
      break;
  }
  co_return co_await refuse(Refusal::UnknownCommand);
}

awaitable<bool> Session::relay(std::string_view payload, ResponseKind kind, std::uint32_t client_stmt_id,
                               std::string* capture) {
  if (!attach_now()) {
    bool attached = co_await attach();
    if (!attached) co_return !client_gone_ && sock_.is_open();
  }
  if (ruled_ && w().rule_.statement_timeout.count() > 0) [[unlikely]]
    arm_statement_timeout(w().rule_.statement_timeout);
  auto r = co_await exchange(payload, kind, true, client_stmt_id, capture, &w().last_);
  if (timeout_armed_) [[unlikely]] {
    timeout_armed_ = false;
    w().statement_timer_.cancel();
  }
  if (!r) {
    w().last_ = ResponseSummary{};  // what the statement did is unknown (a write may have landed)
    co_return sock_.is_open();
  }
  absorb(*r);  // (the summary is last_ already)
  co_return !client_gone_;
}

awaitable<bool> Session::com_query() {
  // Copied (storage reused): a LOCAL INFILE replaces io_'s payload before invalidation reads the
  // text; lexed once, for every look at it below.
  const auto& lexed = w().analysis_.of(std::string_view(io_.payload()).substr(1), sql::Dialect::Mysql);
  auto info = sql::inspect_mysql(lexed);
  if (info.kill) co_return co_await kill(*info.kill);
  if (ctx_.digests_on()) [[unlikely]]
    digest_query(w().analysis_);
  bool relayed = false;
  // Classified once for everything below: routing (command_is_read reads it), the cache,
  // invalidation and read-your-writes tokens.
  CommandClassification classified(*this);
  bool was_read = routing_.split() && command_is_read();
  auto cls_kind = classified.kind();
  cmd_read_ = cls_kind == sql::StatementKind::Read;
  server_lost_ = false;
  gtid_seen_ = false;
  // Result cache: a read outside a transaction may be answered from memory.
  std::string* capture = nullptr;
  if (ctx_.cache_enabled() && cls_kind == sql::StatementKind::Read && !server_ && cmd_.may_use_cache()) {
    int served = co_await try_cache(lexed);
    if (served == 1) {
      w().digest_hit_ = true;
      co_return true;
    }
    if (served == 2) {
      w().capture_.clear();
      capture = &w().capture_;
    }
  }
  // [[rules]] mirror: the answer is kept (with the cache's capture, or its own) to be compared.
  if (ruled_ && !w().rule_.mirror.empty() && prepare_mirror() && !capture) [[unlikely]] {
    capture = &w().mirror_capture_;
    capture_limit_ = kMirrorCapture;
  }
  // A read outside a transaction runs again elsewhere if its server dies before any of its
  // answer reached the client.
  for (int attempt = 0;; ++attempt) {
    retry_allowed_ =
        attempt < kMaxReadRetries && routing_.split() && !server_ && !cmd_.in_transaction() && command_is_read();
    retry_pending_ = false;
    if (capture) capture->clear();
    relayed = co_await relay(io_.payload(), ResponseKind::Query, 0, capture);
    retry_allowed_ = false;
    if (!retry_pending_) break;
    log::warn("mysql client {}: server lost before answering a read; running it again", handle_->id);
  }
  if (w().mirror_) [[unlikely]]
    offer_mirror(capture, relayed);
  if (capture && capture == &w().capture_) finish_capture(relayed);
  if (!relayed) co_return false;
  if (ctx_.cache_enabled())
    note_for_invalidation(cls_kind, classified.cls && classified.cls->opaque_write,
                          classified.cls && classified.cls->writes ? &w().analysis_.tables() : nullptr);
  ro_next_tx_ = was_read && cls_kind == sql::StatementKind::SetTransaction;
  after_statement(cls_kind, was_read);
  // Held for the next command: SET TRANSACTION (applies to the next transaction) and
  // statements that left warnings (SHOW WARNINGS reads them on the same connection).
  if (const char* why = cmd_.after_query(info, w().last_, server_lost_)) pin(why);
  maybe_detach();
  co_return true;
}

awaitable<bool> Session::forward_simple(std::uint8_t cmd) {
  auto kind = cmd == my::com::STATISTICS   ? ResponseKind::Raw1
              : cmd == my::com::FIELD_LIST ? ResponseKind::FieldList
                                           : ResponseKind::Single;
  std::string arg(std::string_view(io_.payload()).substr(1));
  if (auto awaited = co_await relay(io_.payload(), kind); !awaited) co_return false;
  if (cmd == my::com::INIT_DB && !w().last_.error) {
    schema_ = arg;
    if (server_) server_->schema = arg;
  }
  maybe_detach();
  co_return true;
}

}  // namespace sluice::frontend::mysql
