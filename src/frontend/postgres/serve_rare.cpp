// PostgreSQL client session, the rare turns of the transaction loop. serve() (relay_loop.cpp)
// keeps the common ones in its own frame: the idle wait for the next request, the request that
// may go, the lease, the attached phase and the detach. What else happens between transactions
// and after the attached phase is here, in coroutines of their own, so that serve()'s frame
// holds few slots (clang computes the address of each slot every time a frame resumes).
#include "src/frontend/postgres/client_session.hpp"

namespace sluice::frontend::pg {

awaitable<Session::Next> Session::idle_wait_ended() {
  // Kicked: the goodbye, or the handover (an idle wait that ended otherwise, e.g. the client's
  // end, is not one to wait again after).
  if (ctx_.shutting_down || std::exchange(upgrade_kicked_, false)) co_return Next::Again;
  if (notified_) co_return Next::Again;           // woken for a notification: delivered next
  if (std::exchange(idle_timed_out_, false)) {
    co_await idle_timeout_goodbye();
    co_return Next::Stop;
  }
  if (std::exchange(park_requested_, false)) {
    shed_for_parking();
    co_return Next::Park;  // wait_parked() goes on
  }
  co_return Next::Stop;
}

awaitable<Session::Next> Session::between_requests() {
  if (ctx_.shutting_down) {
    co_await send_error("FATAL", "57P01", "terminating connection: Sluice is shutting down");
    co_return Next::Stop;
  }
  if (ctx_.upgrading && buffered() == 0 && !tls_) {
    // An online upgrade: a client with nothing under way goes to the new process (park() hands
    // it over); one that cannot go yet is served here as before.
    shed_for_parking();
    if (sleepable()) co_return Next::Park;
  }
  wire::Frame f;
  auto d = wire::next_frame(buffered_bytes(), max_packet_, f);
  if (d == wire::Decode::Malformed) {
    co_await send_error("FATAL", "08P01",
                        fmt::format("invalid message length (limit max_packet_size = {} bytes)", max_packet_));
    co_return Next::Stop;
  }
  if (d == wire::Decode::NeedMore) {
    if (mailbox_ && mailbox_->ready()) {
      bool delivered = co_await deliver_notifications();
      co_return delivered ? Next::Again : Next::Stop;
    }
    // Over TLS, or a message begun: OpenSSL's record or the rest of the message may be there
    // already, so try first, then wait.
    notified_ = false;
    idle_wait_ = true;
    bool got = false;
    for (;;) {  // read_client(), inlined
      Step st = try_read_client();
      if (st == Step::Done || st == Step::Fail) {
        got = st == Step::Done;
        break;
      }
      park_ok_ = st == Step::WantRead && buffered() == 0, idle_ticks_ = 0;
      error_code ec = std::get<0>(co_await client_ready(st));
      park_ok_ = false;
      if (ec) break;
    }
    idle_wait_ = false;
    if (!got) co_return co_await idle_wait_ended();
    park_requested_ = idle_timed_out_ = false;  // bytes came first
    co_return Next::Again;
  }
  if (f.type == wire::fe::Terminate) co_return Next::Stop;
  if (discard_until_sync_ || is_copy_message(f.type)) {
    // After a failed request, as the server: messages up to the next Sync are dropped and
    // the Sync answered; COPY data arriving outside COPY is dropped (55.2.6).
    in_begin_ += f.size();
    if (discard_until_sync_ && f.type == wire::fe::Sync) {
      discard_until_sync_ = false;
      std::string out;
      wire::ready_for_query(out, failed_tx_ ? 'E' : 'I');
      if (auto awaited = co_await write_client(out); !awaited) co_return Next::Stop;
    }
    co_return Next::Again;
  }
  if (rate_checked(f)) {
    bool refused = co_await rate_limited(f);
    if (refused) co_return Next::Again;  // answered, the request dropped
  }
  co_return Next::Attach;
}

// Everything after the attached phase but a plain detach, as serve() did in line before: true
// when serve() goes on.
awaitable<bool> Session::after_relay(Outcome o) {
  if (o == Outcome::CheckPins) {
    co_await pins_released();
    o = Outcome::Detach;  // below: kept while still pinned
  }
  if (o == Outcome::Detach && relay_->untracked() && !relay_->pinned()) [[unlikely]] {
    // The session changed in ways not followed: the next client gets it reset.
    if (auto awaited = co_await reset_server_session(); !awaited) o = Outcome::ServerGone;
  }
  if (o == Outcome::Detach || o == Outcome::Resume) {
    finish_capture();
    const bool token = needs_write_token();
    if (!w().pending_invalidation_.empty() || invalidate_all_) apply_invalidations(token && routing_.split());
    if (token) {
      co_await take_write_token();
      settle_invalidations(routing_.token);
    }
  } else {
    capturing_ = false;
    end_fill();
  }
  if (o != Outcome::ServerGone) retries_ = 0;
  switch (o) {
    case Outcome::Detach:
      if (relay_->pinned()) [[unlikely]] {
        publish_pins();  // the client keeps this server connection (SHOW CLIENTS says why)
        break;
      }
      [[fallthrough]];
    case Outcome::Resume:
      if (server_->listening) [[unlikely]] {
        // The client's LISTEN ran here: its notifications come by the listening connection.
        bool clean = co_await run_internal("UNLISTEN *", false);
        server_->listening = false;
        detach(clean);
        break;
      }
      detach(true);
      break;
    case Outcome::ClientGone:
      co_await release_server_after_client();
      co_return false;
    case Outcome::ClientError:
      co_await release_server_after_client();
      co_await send_error("FATAL", relay_->error_code(), w().client_error_);
      co_return false;
    case Outcome::ServerGone:
      routing_.report_failure();
      if (journal_on_ && relay_->replayable()) {
        // A read whose server died before any row of its answer reached the client: once
        // more, on another member (the failed one is out of the rotation now).
        log::warn("pool {}: server connection {} lost before answering a read{}; running it again", pool_->name(),
                  server_->id, end_note());
        detach(false);
        unread(relay_->journal);
        ++retries_;
        retrying_ = true;
        co_return true;
      }
      if (mode_ != config::PoolMode::Session) {
        if (relay_->server_end_code() == "25P03" && !relay_->has_pending()) {
          // The server ended this client's own idle transaction (idle_in_transaction_session_timeout):
          // its verdict on the session the client holds, passed on as it was, as directly.
          end_reason_ = "the server ended its idle transaction";
          std::string out = relay_->server_end_bytes();
          detach(false);
          co_await write_client(out);
          co_return false;
        }
        if (auto awaited = co_await fail_in_flight(); !awaited) co_return false;
        co_return true;
      }
      if (relay_->server_broken()) {
        // The server's own FATAL reached the client (session mode passes it on): it closes, as directly.
        log::info("pool {}: server connection {} ended by the server{}", pool_->name(), server_->id, end_note());
        end_reason_ = "the server ended the session";
        detach(false);
        co_return false;
      }
      log::warn("pool {}: server connection {} lost while serving a client{}", pool_->name(), server_->id, end_note());
      detach(false);
      co_await send_error("FATAL", "08006",
                          "sluice: server connection lost; the statement in flight may or may not have completed",
                          "reconnect and retry");
      co_return false;
    case Outcome::ServerError:
      log::error("pool {}: server connection {}: {}", pool_->name(), server_->id, relay_->error());
      detach(false);
      co_await send_error("FATAL", "08P01", fmt::format("sluice: server protocol error: {}", relay_->error()));
      co_return false;
    case Outcome::FreeDatabases:  // handled inside relay_attached
    case Outcome::PrepareListen:  // handled inside relay_attached
    case Outcome::RateWait:       // handled inside relay_attached
    case Outcome::CheckPins:      // handled above
      break;
    case Outcome::StatementMode:
      detach(false);  // closing the server connection rolls the transaction back
      co_await send_error("FATAL", "25P01", "transaction blocks are not allowed in statement pool mode",
                          "use pool_mode = \"transaction\" for this pool");
      co_return false;
  }
  co_return true;
}

void Session::unread(const std::string& bytes) {
  own_input();
  if (in_begin_ >= bytes.size()) {
    in_begin_ -= bytes.size();
    std::memcpy(in_.data() + in_begin_, bytes.data(), bytes.size());
    return;
  }
  std::vector<std::uint8_t> joined(bytes.begin(), bytes.end());
  joined.insert(joined.end(), in_.begin() + static_cast<std::ptrdiff_t>(in_begin_),
                in_.begin() + static_cast<std::ptrdiff_t>(in_end_));
  in_end_ = joined.size();
  in_begin_ = 0;
  joined.resize(std::max(joined.size(), in_.size()));
  in_ = std::move(joined);
}

}  // namespace sluice::frontend::pg
