// Relay core: request/response bookkeeping for simple and extended query protocols.
#include "src/frontend/postgres/relay.hpp"

#include <cstring>

#include <fmt/format.h>

#include "src/observe/log.hpp"
#include "src/observe/loop_clock.hpp"

namespace sluice::frontend::pg {
namespace {

bool is_copy(char type) {
  return type == wire::fe::CopyData || type == wire::fe::CopyDone || type == wire::fe::CopyFail;
}

constexpr std::size_t kMaxCapture = 1 << 20;  // ParameterStatus / ReadyForQuery / ErrorResponse

void append_frame(std::string& out, const wire::Frame& f) {
  out.append(reinterpret_cast<const char*>(f.body.data()) - 5, f.body.size() + 5);
}

}  // namespace

bool is_tracked_reported_param(std::string_view name) {
  return name == "client_encoding" || name == "DateStyle" || name == "TimeZone" ||
         name == "IntervalStyle" || name == "standard_conforming_strings" || name == "application_name";
}

Relay::Verdict Relay::desync(std::string what) {
  error_ = std::move(what);
  server_broken_ = true;
  return Verdict::ProtocolError;
}

void Relay::note_listens(const std::vector<sql::SessionEffect>& effects) {
  for (auto& e : effects)
    if (e.command == sql::SessionCommand::Listen) new_listens_.push_back(e.name);
}

std::uint16_t Relay::answering_digest() const {
  for (auto& e : pending_)
    if (e.kind == Kind::Sync || e.kind == Kind::Simple) return e.digest;
  return 0;
}

bool Relay::disposable() const {
  return client_out.empty() && server_out.empty() && synth_out.empty() && journal.empty() && server_in.empty() &&
         at_boundary() && tx_status_ == 'I' && !skipping_ && !in_xact_ && statements_.empty() && parsing_.empty() &&
         effects_.empty() && batch_effects_.empty() && deferred_.empty() && synthetic_errors_.empty() &&
         listening_.empty() && new_listens_.empty() && !listen_changed_ && !notified_ && pins_.empty() && !may_unpin_ &&
         !untracked_ && !server_broken_ && server_end_.empty() && trail_.idle();
}

void Relay::reset_server_side() {
  trail_.clear();
  parsing_.clear();
  in_query_ = in_xact_ = false;
  unsynced_ = false;
  skipping_ = false;
  flushed_ = false;
  copy_in_ = false;
  pending_.clear();
  if (!synthetic_errors_.empty()) synthetic_errors_.clear();
  replacement_errors_.clear();
  effects_.clear();
  effects_base_ = 0;
  hdr_len_ = body_left_ = 0;
  capture_ = false;
  hold_ = false;
  captured_.clear();
  partial_.clear();
  server_broken_ = taken_back_ = false;
  server_end_.clear();
  server_end_code_.clear();
  server_end_msg_.clear();
  tx_status_ = 'I';
}

bool Relay::only_synthetic_pending() const {
  for (auto& e : pending_)
    if (e.mode != Mode::Synthetic) return false;
  return true;
}

void Relay::ensure_prepared(const ClientStatement& cs, pool::ServerConn& server, std::string& server_out) {
  const pool::Statement& stmt = *cs.stmt;
  if (server.prepared.fresh(stmt.id, cs.since)) {
    server.prepared.touch(stmt.id);
    return;
  }
  prepare_on_server(cs.stmt, server, server_out, Mode::Swallow);
}

// Prepares `stmt` on `server` now: a copy made before the client's Parse is closed first (its
// plan may predate a table change the client's own Parse would see: 0A000 "cached plan must not
// change result type" where a direct connection works), and a full set makes room.
void Relay::prepare_on_server(const std::shared_ptr<const pool::Statement>& held, pool::ServerConn& server,
                              std::string& server_out, Mode mode) {
  const pool::Statement& stmt = *held;
  if (server.prepared.contains(stmt.id)) {
    wire::close_message(server_out, 'S', stmt.server_name);
    push({Kind::Close, Mode::Swallow});
  }
  if (std::uint64_t evicted = server.prepared.insert(stmt.id)) {
    wire::close_message(server_out, 'S', "sluice_" + std::to_string(evicted));
    push({Kind::Close, Mode::Swallow, evicted});
  }
  server_out.append(stmt.parse_message);
  parsing_.push_back(held);
  push({Kind::Parse, mode, stmt.id, &stmt});
}

std::size_t Relay::try_answer_locally(wire::Bytes buffered, std::size_t max_len, std::string& client_out) {
  std::size_t pos = 0, parses = 0;
  std::vector<std::shared_ptr<const pool::Statement>> found;  // held: the registry's hold is weak
  // First pass: check the shape without side effects.
  for (;;) {
    wire::Frame f;
    if (wire::next_frame(buffered.subspan(pos), max_len, f) != wire::Decode::Ok) return 0;
    pos += f.size();
    if (f.type == wire::fe::Sync) break;
    wire::ParseView p;
    if (f.type != wire::fe::Parse || !wire::parse_parse(f.body, p) || p.name.empty()) return 0;
    auto stmt = pool::StatementRegistry::global().find(p.query, wire::as_sv(p.param_types));
    if (!stmt || !stmt->validated.load(std::memory_order_relaxed)) return 0;
    if (statements_.size() + ++parses > max_statements_) return 0;  // the server path enforces the limit
    found.push_back(std::move(stmt));
  }
  if (parses == 0) return 0;
  std::size_t consumed = pos;
  pos = 0;
  for (std::size_t i = 0; i < parses; ++i) {
    wire::Frame f;
    wire::next_frame(buffered.subspan(pos), max_len, f);
    pos += f.size();
    wire::ParseView p;
    wire::parse_parse(f.body, p);
    statements_[std::string(p.name)] = {std::move(found[i]), pool::prepare_sequence()};
    wire::parse_complete(client_out);
  }
  wire::ready_for_query(client_out, tx_status_);
  return consumed;
}

Relay::Verdict Relay::client_message(const wire::Frame& f, pool::ServerConn& server, std::string& server_out) {
  if (stats_ && !in_query_ && (f.type == wire::fe::Query || f.type == wire::fe::Sync || f.type == wire::fe::Parse ||
                               f.type == wire::fe::Bind || f.type == wire::fe::Execute)) {
    in_query_ = true;
    query_start_ = observe::loop_now();
    if (!in_xact_) {
      in_xact_ = true;
      xact_start_ = query_start_;
    }
  }
  if (skipping_ && f.type != wire::fe::Sync && f.type != wire::fe::Terminate) [[unlikely]]
    return Verdict::Ok;  // the server discards it (55.2.3): neither sent nor answered
  if (copy_in_ && !client_copy_done_) [[unlikely]] {
    // COPY FROM STDIN: the server ignores Sync and Flush until CopyDone or CopyFail (55.2.6).
    if (f.type == wire::fe::CopyDone || f.type == wire::fe::CopyFail) client_copy_done_ = true;
    if (f.type == wire::fe::Sync || f.type == wire::fe::Flush || is_copy(f.type)) {
      append_frame(server_out, f);
      return Verdict::Ok;
    }
  }
  switch (f.type) {
    case wire::fe::Parse:
    case wire::fe::Bind:
    case wire::fe::Describe:
    case wire::fe::Execute:
    case wire::fe::Close:
      unsynced_ = true;
      flushed_ = false;
      break;
    case wire::fe::Flush:
      flushed_ = true;
      break;
    case wire::fe::Sync:
      unsynced_ = false;
      skipping_ = false;
      break;
    default:
      break;
  }
  switch (f.type) {
    case wire::fe::Query: {
      wire::Reader r(f.body);
      auto q = r.cstr();
      if (!r.ok()) return error_ = "malformed Query message", Verdict::ProtocolError;
      Entry e{Kind::Simple};
      if (may_change_session(q, !deferred_.empty())) {
        auto effects = sql::session_effects(q);
        if (!effects.empty()) {
          if (pooled_) note_listens(effects);
          effects_.push_back(std::move(effects));
          e.effects = effects_base_ + static_cast<std::int32_t>(effects_.size()) - 1;
        }
      }
      append_frame(server_out, f);
      push(e);
      return Verdict::Ok;
    }
    case wire::fe::Parse: {
      wire::ParseView p;
      if (!wire::parse_parse(f.body, p)) return error_ = "malformed Parse message", Verdict::ProtocolError;
      if (may_change_session(p.query, !deferred_.empty())) [[unlikely]] {
        // Extended protocol: a batch that prepares it is taken to run it; its effects count at
        // the batch's Sync, unless the batch fails.
        auto effects = sql::session_effects(p.query);
        if (pooled_) note_listens(effects);
        batch_effects_.insert(batch_effects_.end(), effects.begin(), effects.end());
      }
      if (p.name.empty()) {
        append_frame(server_out, f);
        push({Kind::Parse});
        return Verdict::Ok;
      }
      if (statements_.size() >= max_statements_ && !statements_.count(std::string(p.name))) {
        error_code_ = "54000";
        error_ = "too many prepared statements on this connection (max_client_prepared_statements = " +
                 std::to_string(max_statements_) + ")";
        return Verdict::ProtocolError;
      }
      if (statements_.count(std::string(p.name))) {
        // As the server: the name is taken (42P05), and what follows is skipped until Sync.
        std::string err;
        wire::error_response(err, "ERROR", "42P05", fmt::format("prepared statement \"{}\" already exists", p.name));
        skipping_ = true;
        if (tx_status_ == 'T') {
          // In a transaction the error fails it, on the server too: a Parse that cannot succeed
          // (into a name never created) goes there, and its error is replaced by this one.
          replacement_errors_.push_back(std::move(err));
          wire::Builder(server_out).begin(wire::fe::Parse).str("sluice_42P05").str("SLUICE 42P05").i16(0).end();
          Entry e{Kind::Parse};
          e.replace_error = true;
          push(e);
          return Verdict::Ok;
        }
        synthetic_errors_.push_back(std::move(err));
        push({Kind::Parse, Mode::Synthetic, 0, nullptr, -1, true});
        return Verdict::Ok;
      }
      auto stmt = pool::StatementRegistry::global().intern(p.query, wire::as_sv(p.param_types));
      // The client's own Parse is always answered by a server that prepares it now: a copy
      // prepared earlier (by any client) may carry a plan older than this Parse.
      statements_[std::string(p.name)] = {stmt, pool::prepare_sequence()};
      prepare_on_server(stmt, server, server_out, Mode::Forward);
      return Verdict::Ok;
    }
    case wire::fe::Bind: {
      wire::BindHead b;
      if (!wire::parse_bind_head(f.body, b)) return error_ = "malformed Bind message", Verdict::ProtocolError;
      auto it = b.statement.empty() ? statements_.end() : statements_.find(std::string(b.statement));
      if (it == statements_.end()) {
        append_frame(server_out, f);  // unnamed, or unknown: the server reports the error itself
      } else {
        ensure_prepared(it->second, server, server_out);
        wire::Builder(server_out)
            .begin(wire::fe::Bind)
            .str(b.portal)
            .str(it->second.stmt->server_name)
            .raw(f.body.subspan(b.rest_offset))
            .end();
      }
      push({Kind::Bind});
      return Verdict::Ok;
    }
    case wire::fe::Describe: {
      wire::TargetView t;
      if (!wire::parse_target(f.body, t)) return error_ = "malformed Describe message", Verdict::ProtocolError;
      if (t.kind == 'P') {
        append_frame(server_out, f);
        push({Kind::DescribePortal});
        return Verdict::Ok;
      }
      auto it = t.name.empty() ? statements_.end() : statements_.find(std::string(t.name));
      if (it == statements_.end()) {
        append_frame(server_out, f);
      } else {
        ensure_prepared(it->second, server, server_out);
        wire::Builder(server_out).begin(wire::fe::Describe).i8('S').str(it->second.stmt->server_name).end();
      }
      push({Kind::DescribeStmt});
      return Verdict::Ok;
    }
    case wire::fe::Close: {
      wire::TargetView t;
      if (!wire::parse_target(f.body, t)) return error_ = "malformed Close message", Verdict::ProtocolError;
      if (t.kind == 'S' && !t.name.empty()) {
        // The server copy stays for other clients; closing a missing name is not an error (55.7).
        statements_.erase(std::string(t.name));
        push({Kind::Close, Mode::Synthetic});
        return Verdict::Ok;
      }
      append_frame(server_out, f);
      push({Kind::Close});
      return Verdict::Ok;
    }
    case wire::fe::Execute:
      append_frame(server_out, f);
      push({Kind::Execute});
      return Verdict::Ok;
    case wire::fe::Sync: {
      append_frame(server_out, f);
      Entry e{Kind::Sync};
      if (!batch_effects_.empty()) [[unlikely]] {
        effects_.push_back(std::move(batch_effects_));
        batch_effects_.clear();
        e.effects = effects_base_ + static_cast<std::int32_t>(effects_.size()) - 1;
      }
      push(e);
      return Verdict::Ok;
    }
    case wire::fe::FunctionCall:
      append_frame(server_out, f);
      push({Kind::Simple});
      return Verdict::Ok;
    case wire::fe::Flush:
    case wire::fe::CopyData:
    case wire::fe::CopyDone:
    case wire::fe::CopyFail:
      append_frame(server_out, f);
      return Verdict::Ok;
    case wire::fe::Terminate:
      return Verdict::Terminate;
    default:
      error_ = std::string("unexpected message type '") + f.type + "'";
      return Verdict::ProtocolError;
  }
}

void Relay::drain_synthetic(std::string& client_out) {
  std::size_t start = client_out.size();
  drain_synthetic_internal(client_out);
  output_from(client_out, start);  // synthetic answers only: they repeat as they were
}

bool Relay::output_from(std::string& out, std::size_t start) {
  if (skip_pos_ < skip_.size() && start < out.size()) {
    std::size_t n = std::min(out.size() - start, skip_.size() - skip_pos_);
    if (out.compare(start, n, skip_, skip_pos_, n) != 0) return false;
    out.erase(start, n);
    skip_pos_ += n;
  }
  if (recording_) {
    if (seen_.size() + (out.size() - start) > kMaxPreamble) {  // not kept: the read will not run again
      recording_ = false;
      seen_.clear();
    } else {
      seen_.append(out, start);
    }
  }
  return true;
}

void Relay::drain_synthetic_slow(std::string& client_out) {
  while (!pending_.empty() && pending_.front().mode == Mode::Synthetic) {
    if (pending_.front().failed) {
      client_out.append(synthetic_errors_.front());
      synthetic_errors_.pop_front();
    } else if (pending_.front().kind == Kind::Parse) {
      wire::parse_complete(client_out);
    } else {
      wire::close_complete(client_out);
    }
    pending_.pop_front();
  }
}

void Relay::refuse(const wire::Frame& f, std::string error, std::string& server_out) {
  if (f.type == wire::fe::Query) {
    replacement_errors_.push_back(std::move(error));
    wire::Builder(server_out).begin(wire::fe::Query).str("SLUICE REFUSED").end();
    Entry e{Kind::Simple};
    e.replace_error = true;
    push(e);
    return;
  }
  unsynced_ = true;
  flushed_ = false;
  skipping_ = true;
  if (tx_status_ == 'T') {
    replacement_errors_.push_back(std::move(error));
    wire::Builder(server_out).begin(wire::fe::Parse).str("").str("SLUICE REFUSED").i16(0).end();
    Entry e{Kind::Parse};
    e.replace_error = true;
    push(e);
    return;
  }
  synthetic_errors_.push_back(std::move(error));
  push({Kind::Parse, Mode::Synthetic, 0, nullptr, -1, true});
}

void Relay::on_message_start(char type, pool::ServerConn&, std::string& client_out) {
  drain_synthetic_internal(client_out);
  if (type == wire::be::CopyInResponse || type == wire::be::CopyBothResponse) {
    copy_in_ = true;
    client_copy_done_ = false;
    // Syncs the client sent behind the COPY reach the server in copy-in mode: ignored (55.2.6).
    while (pending_.size() > 1 && pending_[1].kind == Kind::Sync) pending_.erase(1);
  } else if (copy_in_ &&
             (type == wire::be::CommandComplete || type == wire::be::ErrorResponse || type == wire::be::ReadyForQuery))
    copy_in_ = false;
  forward_ = true;
  if (type == wire::be::NotificationResponse && pooled_ && !pass_notifications_) [[unlikely]] {
    forward_ = false;  // the listening connection brings it to the client (listening())
    capture_ = false;
    return;
  }
  if (!pending_.empty() && pending_.front().mode == Mode::Swallow &&
      ((type == wire::be::ParseComplete && pending_.front().kind == Kind::Parse) ||
       (type == wire::be::CloseComplete && pending_.front().kind == Kind::Close)))
    forward_ = false;
  capture_ = type == wire::be::ReadyForQuery || type == wire::be::ParameterStatus ||
             (trail_.any() && (type == wire::be::CommandComplete ||  // its tag's row count (digests, mirrors)
                               (type == wire::be::DataRow && trail_.hashing())));  // a mirrored answer
  if (type == wire::be::ErrorResponse || type == wire::be::NoticeResponse) [[unlikely]] {
    capture_ = type == wire::be::ErrorResponse;
    // Errors are held, and appended whole at their end (server statement names in them are
    // given back their client names); pooled, notices too, unless one announces the server's end.
    if (forward_ && (capture_ || (pooled_ && body_left_ <= kMaxCapture))) {
      hold_ = capture_ = true;
      forward_ = false;
    }
  }
  if (capture_) captured_.clear();
  if (!forward_) return;
  // Past the answer's preamble: a retry could no longer hide what the client has seen.
  if (recording_ && type != wire::be::ParseComplete && type != wire::be::BindComplete &&
      type != wire::be::ParameterDescription && type != wire::be::RowDescription && type != wire::be::NoData &&
      type != wire::be::CloseComplete) [[unlikely]]
    recording_ = false;
  client_out.append(reinterpret_cast<const char*>(hdr_), 5);
}

// An error or notice naming a statement by its server name ("sluice_<id>") is given the name
// this client prepared it under, as the server would have said it directly.
void Relay::rename_statements_back(std::string& client_out) {
  std::string body;
  std::size_t pos = 0;
  for (std::size_t q; (q = captured_.find("\"sluice_", pos)) != std::string::npos;) {
    std::size_t end = captured_.find('"', q + 1);
    if (end == std::string::npos) break;
    std::string_view server_name(captured_.data() + q + 1, end - q - 1);
    std::string_view client_name;
    for (auto& [name, cs] : statements_)
      if (cs.stmt->server_name == server_name) {
        client_name = name;
        break;
      }
    body.append(captured_, pos, q + 1 - pos);
    body.append(client_name.empty() ? server_name : client_name);
    pos = end;
  }
  body.append(captured_, pos);
  wire::Builder(client_out).begin(static_cast<char>(hdr_[0])).raw(wire::as_bytes(body)).end();
}

Relay::Verdict Relay::on_message_end(pool::ServerConn& server, std::string& client_out) {
  auto front_is = [&](Kind k) { return !pending_.empty() && pending_.front().kind == k; };
  if (hold_) {
    hold_ = false;
    if (pooled_ && announces_end(type_)) {
      server_broken_ = true;  // the server closes next; what is outstanding stays for the session
      return Verdict::Ok;
    }
    if (type_ == wire::be::ErrorResponse && !pending_.empty() && pending_.front().replace_error) [[unlikely]] {
      if (!replacement_errors_.empty()) {
        client_out.append(replacement_errors_.front());
        replacement_errors_.erase(replacement_errors_.begin());
      }
    } else if (captured_.find("\"sluice_") != std::string::npos) [[unlikely]] {
      rename_statements_back(client_out);
    } else {
      client_out.append(reinterpret_cast<const char*>(hdr_), 5);
      client_out.append(captured_);
    }
    recording_ = false;  // a notice or error is no preamble
  }
  switch (type_) {
    case wire::be::ReadyForQuery: {
      if (captured_.size() != 1) return desync("malformed ReadyForQuery from server");
      if (!front_is(Kind::Sync) && !front_is(Kind::Simple)) return desync("unexpected ReadyForQuery from server");
      Entry e = pending_.front();
      pending_.pop_front();
      if (e.digest) [[unlikely]]
        trail_.close(e.digest);
      if (e.effects >= 0) {
        if (!e.failed && !effects_.empty()) apply_effects(effects_.front(), server, tx_status_);
        if (!effects_.empty()) effects_.pop_front();
        ++effects_base_;
      }
      tx_status_ = captured_[0];
      if (!parsing_.empty() && pending_.empty()) [[unlikely]]
        parsing_.clear();
      if (tx_status_ == 'I' && !deferred_.empty()) deferred_.clear();  // the transaction ended without COMMIT
      ++cycles_;
      if (stats_ && in_query_) {
        auto now = observe::loop_now();
        stats_->query(observe::micros_between(query_start_, now));
        if (client_queries_) client_queries_->fetch_add(1, std::memory_order_relaxed);
        // Pipelined requests: the next one's time starts where this one ended.
        bool more = false;
        for (auto& p : pending_) more = more || p.kind == Kind::Sync || p.kind == Kind::Simple;
        in_query_ = more;
        query_start_ = now;
        if (tx_status_ == 'I' && in_xact_) {
          stats_->xact(observe::micros_between(xact_start_, now));
          in_xact_ = false;
        }
      }
      break;
    }
    case wire::be::ParameterStatus: {
      std::string_view name, value;
      if (!wire::parse_parameter_status(wire::as_bytes(captured_), name, value))
        return desync("malformed ParameterStatus from server");
      server.params.set(name, value);
      client_params.set(name, value);
      break;
    }
    case wire::be::ErrorResponse: {
      wire::ErrorFields ef;
      wire::parse_error_fields(wire::as_bytes(captured_), ef);
      if (ef.severity == "FATAL" || ef.severity == "PANIC") server_broken_ = true;
      if (trail_.any()) [[unlikely]]
        trail_.error(answering_digest());
      if (pending_.empty() || front_is(Kind::Sync)) break;
      if (front_is(Kind::Simple)) {
        pending_.front().failed = true;
        break;
      }
      // Extended protocol: the server discards messages until Sync (55.2.3).
      while (!pending_.empty() && !front_is(Kind::Sync) && !front_is(Kind::Simple)) {
        const Entry& e = pending_.front();
        if (e.kind == Kind::Parse && e.stmt_id) server.prepared.erase(e.stmt_id);
        if (e.kind == Kind::Close && e.mode == Mode::Swallow) server_broken_ = true;  // statement set unknown
        if (e.mode == Mode::Synthetic && e.failed) synthetic_errors_.pop_front();
        pending_.pop_front();
      }
      if (front_is(Kind::Sync)) pending_.front().failed = true;  // the batch's session effects do not count
      // No Sync sent yet (the error came on a Flush): what the client sends until its Sync is
      // discarded by the server too.
      if (pending_.empty() && unsynced_) {
        skipping_ = true;
        batch_effects_.clear();
      }
      break;
    }
    case wire::be::ParseComplete:
      if (!front_is(Kind::Parse)) return desync("unexpected ParseComplete from server");
      if (pending_.front().stmt) pending_.front().stmt->validated.store(true, std::memory_order_relaxed);
      pending_.pop_front();
      break;
    case wire::be::BindComplete:
      if (!front_is(Kind::Bind)) return desync("unexpected BindComplete from server");
      pending_.pop_front();
      break;
    case wire::be::CloseComplete:
      if (!front_is(Kind::Close)) return desync("unexpected CloseComplete from server");
      pending_.pop_front();
      break;
    case wire::be::RowDescription:
    case wire::be::NoData:
      if (front_is(Kind::DescribeStmt) || front_is(Kind::DescribePortal)) pending_.pop_front();
      else if (type_ == wire::be::NoData) return desync("unexpected NoData from server");
      break;
    case wire::be::DataRow:
      if (trail_.hashing()) [[unlikely]]
        trail_.data_row(answering_digest(), captured_);
      break;
    case wire::be::CommandComplete:
    case wire::be::EmptyQueryResponse:
    case wire::be::PortalSuspended:
      if (type_ == wire::be::CommandComplete && trail_.any()) [[unlikely]]
        trail_.command_complete(answering_digest(), captured_);
      if (front_is(Kind::Execute)) pending_.pop_front();
      break;
    default:
      break;
  }
  drain_synthetic_internal(client_out);
  return Verdict::Ok;
}

Relay::Verdict Relay::server_bytes(wire::Bytes chunk, pool::ServerConn& server, std::string& client_out) {
  std::size_t i = 0;
  const std::size_t n = chunk.size();
  if (taken_back_) [[unlikely]]
    return desync("the server sent more after announcing its end");
  const std::size_t out_start = client_out.size();
  const bool replayable_before = recording_ && !server_broken_;
  const std::uint64_t cycles_before = cycles_;
  msg_start_ = std::string::npos;  // set when a message starts in this chunk
  if (!partial_.empty()) {         // the start of a message held back at the end of the last chunk
    msg_start_ = client_out.size();
    client_out.append(partial_);
    partial_.clear();
  }
  while (i < n) {
    if (std::size_t j = hdr_len_ == 0 ? run_end(chunk, i) : i; j > i) {  // forwarded as one run
      client_out.append(reinterpret_cast<const char*>(chunk.data() + i), j - i);
      i = j;
      continue;
    }
    if (hdr_len_ < 5) {
      std::size_t take = std::min<std::size_t>(5 - hdr_len_, n - i);
      std::memcpy(hdr_ + hdr_len_, chunk.data() + i, take);
      hdr_len_ += take;
      i += take;
      if (hdr_len_ < 5) break;
      std::uint32_t len = wire::load_u32(hdr_ + 1);
      if (len < 4) return desync("malformed message length from server");
      type_ = static_cast<char>(hdr_[0]);
      body_left_ = len - 4;
      msg_start_ = client_out.size();
      on_message_start(type_, server, client_out);
      if (capture_ && body_left_ > kMaxCapture) return desync("oversized control message from server");
    }
    std::size_t take = std::min(body_left_, n - i);
    if (take) {
      const char* p = reinterpret_cast<const char*>(chunk.data() + i);
      if (forward_) client_out.append(p, take);
      if (capture_) captured_.append(p, take);
      body_left_ -= take;
      i += take;
    }
    if (body_left_ == 0) {
      hdr_len_ = 0;
      if (on_message_end(server, client_out) != Verdict::Ok) return Verdict::ProtocolError;
    }
  }
  // A forwarded message cut off by the chunk's end is held back when it is small (most rows):
  // the client then only ever sees whole messages unless one is large, so a server that dies
  // mid-answer leaves the client's stream at a message boundary, where an error can follow.
  if (hdr_len_ == 5 && body_left_ > 0 && forward_ && msg_start_ != std::string::npos &&
      client_out.size() - msg_start_ + body_left_ < kWholeBelow) {
    partial_.assign(client_out, msg_start_);
    client_out.resize(msg_start_);
  }
  if (server_broken_ && replayable_before && cycles_ == cycles_before) [[unlikely]] {
    // The server said goodbye with a read's answer unfinished, in the same chunk as rows of it
    // (an immediate shutdown flushes what a backend had buffered with its 57P01 warning). None
    // of this chunk has reached the client: it is dropped, and the read stays replayable.
    client_out.resize(out_start);
    partial_.clear();
    recording_ = taken_back_ = true;
    return Verdict::Ok;
  }
  if ((recording_ || skip_pos_ < skip_.size()) && !output_from(client_out, out_start)) [[unlikely]]
    return desync("a read run again on another server answered differently");
  return Verdict::Ok;
}

}  // namespace sluice::frontend::pg
