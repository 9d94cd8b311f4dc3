// PostgreSQL client session, the transaction loop: serve() waits for the client between
// transactions, attaches, and runs the attached phase: client messages through the Relay to the
// server and its answers back, half duplex in the common case and full duplex when needed, with
// watches on the other socket. (One file: serve() and relay_attached() together keep the
// per-transaction path within one translation unit.)
#include "src/frontend/postgres/client_session.hpp"
#include "src/net/read_wait.hpp"
#include "src/observe/loop_clock.hpp"

namespace sluice::frontend::pg {

// What forward_buffered() asks for before the translated messages may go to the server: free
// the databases a CREATE/DROP DATABASE needs, or have the listening connection listen first.
awaitable<void> Session::work_before_send(Outcome o) {
  if (o == Outcome::FreeDatabases) {
    co_await free_databases();
  } else if (o == Outcome::RateWait) {
    asio::steady_timer t(client_.get_executor(), rate_wait_);
    error_code ec;
    co_await t.async_wait(asio::redirect_error(use_awaitable, ec));
  } else {
    co_await prepare_listen();
  }
}

awaitable<Outcome> Session::client_to_server() {
  for (;;) {
    if (auto o = forward_buffered()) {
      if (is_work_before_send(*o)) {
        co_await work_before_send(*o);
        continue;
      }
      co_return stop(*o);
    }
    if (!relay_->server_out.empty()) {
      server_writing_ = true;
      error_code ec;
      co_await server_->channel().write(asio::buffer(relay_->server_out), ec);
      server_writing_ = false;
      relay_->server_out.clear();
      if (ec) co_return stop(Outcome::ServerGone);
    }
    if (relay_->has_pending() && relay_->only_synthetic_pending() && relay_->quiescent_stream() && !client_writing_) {
      client_writing_ = true;
      relay_->drain_synthetic(relay_->synth_out);
      bool ok = co_await write_client(relay_->synth_out);
      client_writing_ = false;
      w().write_done_.cancel();
      if (!ok) co_return stop(Outcome::ClientGone);
      if (stopping_) co_return Outcome::Detach;
    }
    bool got = co_await read_client();
    // The other direction may have finished while this read was completing: leave what was
    // read in the buffer for the next cycle.
    if (stopping_) co_return Outcome::Detach;
    if (!got) co_return stop(Outcome::ClientGone);
  }
}

awaitable<Outcome> Session::server_to_client() {
  for (;;) {
    error_code ec;
    std::size_t n = 0;
    if (relay_->server_in.empty()) relay_->server_in = net::server_buffers().take();  // given back at detach
    if (server_->tls) n = co_await server_->tls->read_some(asio::buffer(relay_->server_in), ec);
    else
      n = co_await server_->sock.async_read_some(asio::buffer(relay_->server_in),
                                                 asio::redirect_error(use_awaitable, ec));
    if (ec) co_return stopping_ ? Outcome::ClientGone : stop(Outcome::ServerGone);
    if (relay_->server_bytes(wire::Bytes(relay_->server_in.data(), n), *server_, relay_->client_out) !=
        Relay::Verdict::Ok)
      co_return stop(Outcome::ServerError);
    if (capturing_) capture(relay_->client_out);
    if (stopping_) co_return Outcome::ClientGone;  // the client side ended first
    while (client_writing_) {                      // the other direction is writing synthetic replies: wait
      w().write_done_.expires_after(std::chrono::seconds(1));
      co_await w().write_done_.async_wait(asio::redirect_error(use_awaitable, ec));
      if (stopping_) co_return Outcome::ClientGone;
    }
    if (!relay_->client_out.empty()) {
      client_writing_ = true;
      bool ok = co_await write_client(relay_->client_out);
      client_writing_ = false;
      if (!ok) co_return stop(Outcome::ClientGone);
      if (stopping_) co_return Outcome::ClientGone;
    }
    if (!server_writing_ && relay_->quiescent() && !relay_->in_copy_in()) {
      if (auto o = boundary_outcome()) co_return stop(*o);
      co_return stop(Outcome::Resume);  // back to the half-duplex path
    }
  }
}

std::optional<Outcome> Session::boundary_outcome() {
  if (!relay_->at_boundary()) return std::nullopt;
  if (timeout_armed_) [[unlikely]]
    disarm_statement_timeout();
  char tx = relay_->tx_status();
  if (mode_ == config::PoolMode::Statement && tx != 'I') return Outcome::StatementMode;
  if (mode_ != config::PoolMode::Session && tx == 'I') {
    if (relay_->take_notified()) own_notify_pid_ = server_->backend_pid;
    if (mailbox_ && (relay_->take_listen_changed() || listen_pending_)) [[unlikely]] {
      for (auto& ch : mailbox_->settle(relay_->listening())) hub_->unsubscribe(mailbox_, ch);
      listen_pending_ = false;
    }
    if (!relay_->pinned()) return Outcome::Detach;
    if (relay_->take_may_unpin()) return Outcome::CheckPins;
    if (published_pins_ != relay_->pin_reasons()) publish_pins();
  }
  return std::nullopt;
}

std::optional<Outcome> Session::forward_buffered() {
  // On a replica, one batch at a time: the next one may be a write for the primary.
  if (routing_.route.replica && batch_sent_) {
    if (relay_->tx_status() == 'I' || relay_->has_pending()) return std::nullopt;
    batch_sent_ = false;  // inside a read-only transaction: it stays here
  }
  for (;;) {
    wire::Frame f;
    auto d = wire::next_frame(buffered_bytes(), max_packet_, f);
    if (d == wire::Decode::NeedMore) return std::nullopt;
    if (d == wire::Decode::Malformed) {
      w().client_error_ = fmt::format("invalid message length (limit max_packet_size = {} bytes)", max_packet_);
      return Outcome::ClientError;
    }
    if ((f.type == wire::fe::Query || f.type == wire::fe::Parse) && in_begin_ != exclusive_checked_at_ &&
        needs_free_databases(f)) [[unlikely]] {
      exclusive_checked_at_ = in_begin_;
      return Outcome::FreeDatabases;  // first free_databases(), then this message again
    }
    exclusive_checked_at_ = std::string::npos;
    if (mode_ == config::PoolMode::Session && ctx_.rates_on() && in_begin_ != rate_checked_at_ &&
        relay_->at_boundary() && relay_->tx_status() == 'I' &&
        (f.type == wire::fe::Query || f.type == wire::fe::Parse || f.type == wire::fe::Bind ||
         f.type == wire::fe::Execute)) [[unlikely]] {
      rate_checked_at_ = in_begin_;
      if (auto o = rate_limit_attached(f)) return o;
      continue;  // refused (answered by the relay), or it may go now: look at it again
    }
    const std::size_t consumed = f.size();  // a rule's rewrite sends another message in its place
    if ((ctx_.firewall_on() || ctx_.rules_on()) &&
        (f.type == wire::fe::Query || f.type == wire::fe::Parse || (f.type == wire::fe::Bind && ctx_.rules_on()) ||
         (f.type == wire::fe::Sync && parse_judged_))) [[unlikely]] {
      if (f.type == wire::fe::Sync) parse_judged_ = false;  // the next batch's Binds are judged
      else if (refused_by_rules(f)) {
        in_begin_ += consumed;
        continue;
      }
    }
    if (ctx_.cache_enabled() && (f.type == wire::fe::Query || f.type == wire::fe::Parse)) note_for_invalidation(f);
    if (ctx_.digests_on() && (f.type == wire::fe::Query || f.type == wire::fe::Parse || f.type == wire::fe::Bind))
        [[unlikely]]
      name_digest(f);
    auto v = relay_->client_message(f, *server_, relay_->server_out);
    if (pending_timeout_.count() > 0) [[unlikely]]
      arm_statement_timeout();
    if (journal_on_ && v == Relay::Verdict::Ok) {
      // Kept while the read may still run again elsewhere (its server dies before answering).
      if (relay_->journal.size() + f.size() > kMaxJournal) journal_on_ = false, relay_->journal.clear();
      else relay_->journal.append(reinterpret_cast<const char*>(f.body.data()) - 5, f.size());
    }
    in_begin_ += consumed;
    rate_checked_at_ = std::string::npos;  // that request went: the next one at this offset counts
    if (routing_.route.replica && (f.type == wire::fe::Query || f.type == wire::fe::Sync)) {
      batch_sent_ = true;
      return std::nullopt;
    }
    if (v == Relay::Verdict::Terminate) return Outcome::ClientGone;
    if (v == Relay::Verdict::ProtocolError) {
      w().client_error_ = relay_->error();
      return Outcome::ClientError;
    }
    if (relay_->has_new_listens()) [[unlikely]]
      return Outcome::PrepareListen;  // before relay_->server_out is written
    if (listen_pending_) [[unlikely]]
      mailbox_->mark();
  }
}

bool Session::write_now(tcp::socket& sock, net::TlsStream* tls, std::string& buf) {
  if (buf.empty()) return true;
  error_code ec;
  std::size_t n =
      tls ? tls->write_now(asio::buffer(buf), ec) : net::send_raw(sock.native_handle(), buf.data(), buf.size(), ec);
  if (ec && ec != asio::error::would_block && ec != asio::error::try_again) return false;
  buf.erase(0, n);
  if (stats_ && &sock == &client_) stats_->bytes_out.fetch_add(n, std::memory_order_relaxed);
  return true;
}

awaitable<bool> Session::flush_client() {
  if (relay_->client_out.empty()) co_return true;
  if (!write_now(client_, tls_.get(), relay_->client_out)) co_return false;
  if (relay_->client_out.empty()) co_return true;
  co_return co_await write_client(relay_->client_out);
}

awaitable<Outcome> Session::full_duplex() {
  stopping_ = false;
  auto r = co_await (client_to_server() || server_to_client());
  co_return r.index() == 0 ? std::get<0>(r) : std::get<1>(r);
}

std::optional<Outcome> Session::server_read_done(std::size_t n, error_code ec) {
  waiting_server_ = false;
  if (client_watch_) unwatch_client();
  if (client_gone_) return Outcome::ClientGone;
  if (ec) return Outcome::ServerGone;
  if (relay_->server_bytes(wire::Bytes(relay_->server_in.data(), n), *server_, relay_->client_out) !=
      Relay::Verdict::Ok)
    return Outcome::ServerError;
  if (capturing_) capture(relay_->client_out);
  if (!write_now(client_, tls_.get(), relay_->client_out)) return Outcome::ClientGone;
  return std::nullopt;
}

awaitable<Outcome> Session::relay_attached(std::optional<Outcome> work) {
  if (work) co_await work_before_send(*work);
  if (relay_->in_copy_in()) {  // serve() stopped at COPY FROM STDIN
    Outcome o = co_await full_duplex();
    if (o != Outcome::Resume) co_return o;
  }
  for (;;) {
    if (auto o = forward_buffered()) {
      if (is_work_before_send(*o)) {
        co_await work_before_send(*o);
        continue;
      }
      co_return *o;
    }
    if (!relay_->server_out.empty()) {
      if (!write_now(server_->sock, server_->tls.get(), relay_->server_out)) co_return Outcome::ServerGone;
      if (!relay_->server_out.empty() || relay_->in_copy_in()) {
        Outcome o = co_await full_duplex();
        if (o != Outcome::Resume) co_return o;
        continue;
      }
    }
    if (relay_->has_pending() && !relay_->server_may_be_silent()) {
      if (relay_->only_synthetic_pending()) {
        relay_->drain_synthetic(relay_->client_out);
        if (auto awaited = co_await flush_client(); !awaited) co_return Outcome::ClientGone;
        continue;
      }
      error_code ec;
      std::size_t n = 0;
      if (!server_->tls) {
        // Plain TCP: Asio's own read, which knows when the last read emptied the socket and then
        // waits without first trying (try_read_server + async_wait costs a failed recv and an
        // epoll_ctl per answer). relay_->server_in is this session's while attached.
        begin_server_read();
        std::tie(ec, n) = co_await server_->sock.async_read_some(asio::buffer(relay_->server_in), net::await_op);
      }
      while (server_->tls) {  // try_read_server, waiting in this frame when there is nothing yet
        Step st = try_read_server(n, ec);
        if (st == Step::Done || st == Step::Fail) break;
        // A wait that lasts gets the client watched too (janitor_tick): one that leaves
        // meanwhile is noticed then, not when the answer comes.
        waiting_server_ = true;
        wait_ticks_ = 0;
        const auto wait = st == Step::WantWrite ? tcp::socket::wait_write : tcp::socket::wait_read;
        co_await server_->sock.async_wait(wait, asio::redirect_error(use_awaitable, ec));
        waiting_server_ = false;
        if (client_watch_) unwatch_client();
        if (client_gone_) co_return Outcome::ClientGone;
        if (ec) break;
      }
      if (auto o = server_read_done(n, ec)) co_return *o;
      if (!relay_->client_out.empty()) {
        bool written = co_await write_client(relay_->client_out);
        if (!written) co_return Outcome::ClientGone;
      }
      if (relay_->in_copy_in()) {
        Outcome o = co_await full_duplex();
        if (o != Outcome::Resume) co_return o;
        continue;
      }
      if (auto o = boundary_outcome()) co_return *o;
      continue;
    }
    if (auto o = boundary_outcome()) co_return *o;
    // Nothing in flight: the client owes the next message (in a transaction, mid-batch, or
    // a session-mode client). The server may still speak first (a notification, a parameter
    // change, a notice, the FATAL of a terminated backend): both sockets are watched.
    for (;;) {
      // A pinned client between transactions hears its notifications as an idle one does.
      if (mailbox_ && relay_->tx_status() == 'I' && mailbox_->ready() && relay_->at_boundary()) [[unlikely]]
        if (auto awaited = co_await deliver_notifications(); !awaited) co_return Outcome::ClientGone;
      Step st = try_read_client();
      if (st == Step::Fail) co_return Outcome::ClientGone;
      if (st == Step::Done) break;
      error_code ec;
      if (st == Step::WantRead && !server_dead_) watch_server();
      idle_attached_ = true;
      ec = std::get<0>(co_await client_ready(st));
      idle_attached_ = false;
      if (server_spoke_) {
        server_spoke_ = false;
        if (auto o = co_await server_spoke()) co_return *o;
        continue;
      }
      if (notified_) {
        notified_ = false;
        continue;
      }
      if (ec) co_return Outcome::ClientGone;
    }
  }
}

void Session::watch_server() {
  if (server_watch_) return;
  server_watch_ = true;
  server_->sock.async_wait(tcp::socket::wait_read,
                           [this, alive = std::weak_ptr<bool>(alive_), gen = server_watch_gen_](error_code ec) {
                             if (alive.expired() || gen != server_watch_gen_) return;
                             server_watch_ = false;
                             if (ec || !idle_attached_) return;
                             server_spoke_ = true;
                             error_code ignored;
                             net::cancel_reads(client_, ignored);
                           });
}

void Session::unwatch_server() {
  if (!server_watch_ || !server_) return;
  ++server_watch_gen_;
  server_watch_ = false;
  error_code ignored;
  net::cancel_reads(server_->sock, ignored);
}

void Session::watch_client() {
  client_watch_ = true;
  client_.async_wait(tcp::socket::wait_read,
                     [this, alive = std::weak_ptr<bool>(alive_), gen = client_watch_gen_](error_code ec) {
                       if (alive.expired() || gen != client_watch_gen_) return;
                       client_watch_ = false;
                       if (ec || !waiting_server_ || !server_) return;
                       Step cs = try_read_client();
                       if (cs == Step::Fail || client_leaving()) {
                         client_gone_ = true;
                         error_code ignored;
                         net::cancel_reads(server_->sock, ignored);
                       } else if (cs == Step::WantRead) {
                         watch_client();  // a TLS record half received
                       }                  // else data: the client is alive, and its next request waits in in_
                     });
}

void Session::unwatch_client() {
  ++client_watch_gen_;
  client_watch_ = false;
  error_code ignored;
  net::cancel_reads(client_, ignored);
}

void Session::janitor_tick() {
  if (waiting_server_ && !client_watch_ && ++wait_ticks_ >= 2) watch_client();
  if (!park_ok_ && !info_->parked) return;  // not in the idle wait between transactions
  ++idle_ticks_;
  // client_idle_timeout, counted in janitor periods since the idle wait began (the first one
  // partial): the wait ends no sooner than the timeout, and at most a period later.
  auto timeout = snap_->config->general.client_idle_timeout;
  if (timeout.count() > 0 && !idle_timed_out_ && idle_ticks_ >= timeout / kJanitorPeriod + 1) {
    idle_timed_out_ = true;
    cancel_idle_wait();
    return;
  }
  if (park_ok_ && !park_requested_ && idle_ticks_ >= 2) {
    // Idle for a janitor period or more: the wait ends (cancelled) and the session parks.
    park_requested_ = true;
    cancel_idle_wait();
  }
  if (parked_ && !sleep_requested_ && idle_ticks_ >= kSleepAfter / kJanitorPeriod && sleepable()) {
    // Parked for a while: it goes to sleep (its session object goes), outside the janitor's loop.
    sleep_requested_ = true;
    asio::post(executor(), [this, alive = std::weak_ptr<bool>(alive_)] {
      if (!alive.expired() && parked_) parking::sleep_parked<Session>(parked_, executor());
    });
  }
}

awaitable<void> Session::idle_timeout_goodbye() {
  co_await send_error("FATAL", "08P01", "client_idle_timeout: closing idle client connection");
}

void Session::woke(error_code ec, std::size_t n) {
  parked_ = nullptr;
  sleep_requested_ = false;
  idle_wait_ = false;
  info_->parked = false;
  woke_ok_ = !ec;  // readable: bytes (or the client's end) came first
  if (woke_ok_) idle_timed_out_ = false;
  if (woke_ok_ && n > 0) take_first_bytes(n);
}

void Session::shed_for_parking() {
  // Nothing is buffered when a session parks; were it otherwise, the input leaves first_bytes_.
  if (buffered() == 0) give_back_idle_input(Step::WantRead);
  else own_input();
  work_.drop_if_disposable();
  // Nothing is buffered or being sent: what the last transaction grew the relay's strings to
  // goes back, and the relay itself when nothing in it outlives that transaction.
  if (relay_.made()) {
    for (auto* s : {&relay_->client_out, &relay_->server_out, &relay_->synth_out, &relay_->journal})
      std::string().swap(*s);
    relay_->release_request_storage();
  }
  relay_.drop_if_disposable();
  if (tls_) tls_->release_buffers();  // OpenSSL's record buffers, until the next read or write
}

awaitable<bool> Session::resume() {
  // As after the idle wait in serve(): a failed wait ends the session unless it was a kick (say
  // goodbye) or a notification (deliver it).
  if (!woke_ok_ && !ctx_.shutting_down && !notified_ && !ctx_.upgrading) {
    if (std::exchange(idle_timed_out_, false)) co_await idle_timeout_goodbye();
    co_return false;
  }
  co_return co_await serve();
}

bool Session::client_leaving() const {
  auto b = buffered_bytes();
  return b.size() >= 5 && b[0] == wire::fe::Terminate && wire::load_u32(b.data() + 1) == 4;
}

awaitable<std::optional<Outcome>> Session::server_spoke() {
  error_code ec;
  std::size_t n = 0;
  Step st = try_read_server(n, ec);
  if (st == Step::Fail || (st == Step::Done && n == 0)) {
    // Pooled, inside a transaction: the client learns of the loss with its next statement
    // (fail_in_flight answers that one), unless the server ended the transaction for being
    // idle, which the client is told now, as directly.
    if (mode_ != config::PoolMode::Session && relay_->tx_status() != 'I' && relay_->server_end_code() != "25P03") {
      server_dead_ = true;
      co_return std::nullopt;
    }
    co_return Outcome::ServerGone;
  }
  if (st != Step::Done) co_return std::nullopt;  // nothing after all (or TLS wants more)
  if (relay_->server_bytes(wire::Bytes(relay_->server_in.data(), n), *server_, relay_->client_out) !=
      Relay::Verdict::Ok)
    co_return Outcome::ServerError;
  if (auto awaited = co_await flush_client(); !awaited) co_return Outcome::ClientGone;
  co_return std::nullopt;
}

awaitable<bool> Session::serve() {
  // Only the common turns are here; the rare ones are coroutines of their own (serve_rare.cpp).
  for (;;) {
    if (!server_) {
      wire::Frame f;
      auto d = wire::next_frame(buffered_bytes(), max_packet_, f);
      if (d == wire::Decode::NeedMore && !tls_ && buffered() == 0 && !ctx_.shutting_down &&
          !ctx_.upgrading.load(std::memory_order_relaxed) && !(mailbox_ && mailbox_->ready())) {
        // The common idle wait between transactions, plain TCP: Asio's own read, into the
        // session's few bytes (no pooled buffer while idle). It knows when the last read
        // emptied the socket and then waits without a failed recv and an epoll_ctl first.
        notified_ = false;
        idle_wait_ = true;
        give_back_idle_input(Step::WantRead);  // nothing buffered: the read buffer goes back
        park_ok_ = true, idle_ticks_ = 0;
        auto [ec, n] = co_await net::async_read_fast(client_, asio::buffer(w().first_bytes_), net::await_op);
        park_ok_ = idle_wait_ = false;
        if (!ec && n > 0) {
          take_first_bytes(n);
          park_requested_ = idle_timed_out_ = false;  // bytes came first
          continue;
        }
        Next next = co_await idle_wait_ended();
        if (next == Next::Again) continue;
        co_return next == Next::Park;
      }
      if (d != wire::Decode::Ok || ctx_.shutting_down || f.type == wire::fe::Terminate || discard_until_sync_ ||
          is_copy_message(f.type) || rate_checked(f)) [[unlikely]] {
        Next next = co_await between_requests();
        if (next == Next::Again) continue;
        if (next != Next::Attach) co_return next == Next::Park;
      }
      if (f.type == wire::fe::Parse && !retrying_ && !failed_tx_) {
        // Prepare-only round trips (e.g. libpq's PQprepare) need no server connection when
        // the statement is known: this also keeps clients that prepare synchronously from
        // deadlocking behind transactions of their own thread.
        std::string local;
        if (std::size_t used = relay_->try_answer_locally(buffered_bytes(), max_packet_, local)) {
          in_begin_ += used;
          if (auto awaited = co_await write_client(local); !awaited) co_return false;
          continue;
        }
      }
      rule_memo_ = false;  // a new request: its statements are judged afresh
      if (ctx_.cache_enabled() && mode_ != config::PoolMode::Session && !no_cache_ && !retrying_ && !failed_tx_ &&
          (f.type == wire::fe::Query || f.type == wire::fe::Parse || f.type == wire::fe::Bind)) {
        bool served = false;
        if (f.type == wire::fe::Query) served = co_await try_cache(f);
        else served = co_await try_cache_extended();
        if (served) continue;
      }
      if (ctx_.controls.any_paused()) [[unlikely]]
        co_await wait_while_paused();
      prepare_attach();
      if (!attach_ready()) {
        if (!server_ && !routing_.route.replica && !routing_.route.verify && !routing_.login_pending()) {
          // attach_rest()'s common case in this frame (one coroutine frame less per wait):
          // wait in line for the pool, the turn awaited here (no frame of the pool's either);
          // parameters to apply go on to attach_rest().
          auto wait_start = observe::loop_now();
          info_->set_state(observe::ClientState::Waiting);
          auto ex = client_.get_executor();
          auto deadline = wait_start + snap_->config->general.query_wait_timeout;
          auto turn = co_await pool_->async_take_turn(ex, deadline, asio::deferred);
          auto settled = pool_->settle(turn, ex);
          if (!settled) settled = co_await pool_->finish_turn(std::move(turn), ex, deadline);
          auto& r = *settled;
          if (!r.conn) {
            co_await report_lease_failure(r);
            co_return false;
          }
          server_ = std::move(r.conn);
          if (stats_) stats_->wait(observe::loop_micros_since(wait_start));
          if (!attach_ready()) {
            bool attached = co_await attach_rest();
            if (!attached) co_return false;
          }
        } else if (auto awaited = co_await attach_rest(); !awaited) {
          co_return false;
        }
      }
      if (failed_tx_) {
        bool recreated = co_await recreate_failed_tx();
        if (!recreated) co_return false;
      }
    }
    // relay_attached()'s common turns in this frame, plain TCP to the server: the request in
    // one write, the answer read and passed on until the transaction or the request ends.
    // Anything else is left to relay_attached(), at the top of a turn.
    Outcome o = Outcome::Resume;
    bool rest = true;
    while (!server_->tls) {
      // Every request sent so far is answered and read: the answer to what goes now is the
      // next thing the socket can wake for, and its read need not try first (net/read_wait.hpp).
      bool answered = !relay_->has_pending();
      if (auto f = forward_buffered()) {
        if (is_work_before_send(*f)) {
          o = *f;  // done first by relay_attached()
          break;
        }
        o = *f, rest = false;
        break;
      }
      if (!relay_->server_out.empty()) {
        if (!write_now(server_->sock, nullptr, relay_->server_out)) {
          o = Outcome::ServerGone, rest = false;
          break;
        }
        if (!relay_->server_out.empty() || relay_->in_copy_in()) break;
      }
      if (!relay_->has_pending() || relay_->server_may_be_silent() || relay_->only_synthetic_pending()) break;
      begin_server_read();
      if (answered) net::wait_first(server_->sock);
      auto [ec, n] = co_await net::async_read_fast(server_->sock, asio::buffer(relay_->server_in), net::await_op);
      if (auto d = server_read_done(n, ec)) {
        o = *d, rest = false;
        break;
      }
      bool written = relay_->client_out.empty();
      if (!written) written = co_await write_client(relay_->client_out);
      if (!written) {
        o = Outcome::ClientGone, rest = false;
        break;
      }
      if (relay_->in_copy_in()) break;
      if (auto b = boundary_outcome()) {
        o = *b, rest = false;
        break;
      }
    }
    if (rest) {
      std::optional<Outcome> work;
      if (is_work_before_send(o)) work = o;
      o = co_await relay_attached(work);
    }
    if ((o == Outcome::Resume || (o == Outcome::Detach && !(relay_->untracked() && !relay_->pinned()))) &&
        !needs_write_token() && !server_->listening) [[likely]] {
      // The plain end of a transaction (after_relay() has the rest).
      finish_capture();
      if (!w().pending_invalidation_.empty() || invalidate_all_) apply_invalidations(false);
      retries_ = 0;
      if (o == Outcome::Detach && relay_->pinned()) [[unlikely]]
        publish_pins();  // the client keeps this server connection (SHOW CLIENTS says why)
      else detach(true);
      continue;
    }
    if (auto awaited = co_await after_relay(o); !awaited) co_return false;
  }
}

}  // namespace sluice::frontend::pg
