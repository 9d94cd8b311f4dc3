// Server response tracking (see response.hpp).
#include "src/frontend/mysql/response.hpp"

namespace sluice::frontend::mysql {

// A member added to ResponseSummary needs its line in reset() (then update the size here).
static_assert(sizeof(ResponseSummary) == 208, "ResponseSummary changed: give the new member its line in reset()");

void ResponseTracker::start(ResponseKind kind, std::uint32_t server_caps, std::uint32_t client_caps,
                            std::uint32_t client_statement_id, ResponseSummary* into) {
  kind_ = kind;
  server_caps_ = server_caps;
  client_caps_ = client_caps;
  client_statement_id_ = client_statement_id;
  deprecate_eof_ = (server_caps & my::cap::DEPRECATE_EOF) != 0;
  server_track_ = (server_caps & my::cap::SESSION_TRACK) != 0;
  rewrite_ok_ = server_track_ && !(client_caps & my::cap::SESSION_TRACK);
  out_ = into ? into : &summary;
  out_->reset();
  steps_.clear();
  defs_left_ = 0;
  pass_left_ = 0;
  continuation_ = false;
  malformed_ = false;
  next_seq_ = 1;  // the command went out with sequence id 0
  err_packet_size_ = 0;
  switch (kind) {
    case ResponseKind::Query: state_ = State::First; break;
    case ResponseKind::Fetch: state_ = State::Rows; break;
    case ResponseKind::Prepare: state_ = State::PrepareOk; break;
    case ResponseKind::FieldList: state_ = State::Rows; break;
    case ResponseKind::Single: state_ = State::First; break;
    case ResponseKind::Raw1: state_ = State::Raw; break;
  }
}

std::optional<std::uint8_t> ResponseTracker::error_seq() const {
  if (pass_left_ > 0 || continuation_ || malformed_) return std::nullopt;
  if (state_ != State::First && state_ != State::Rows && state_ != State::PrepareOk) return std::nullopt;
  return next_seq_;
}

bool ResponseTracker::ends_connection(std::uint16_t code) {
  // ER_SERVER_SHUTDOWN, ER_CONNECTION_KILLED, ER_CLIENT_INTERACTION_TIMEOUT (MySQL 8), and
  // ER_NEW_ABORTING_CONNECTION.
  return code == 1053 || code == 1927 || code == 4031 || code == 1184;
}

void ResponseTracker::infile_sent() {
  if (state_ == State::InfileWait) state_ = State::First;
}

bool ResponseTracker::needs_whole(std::uint8_t first, std::size_t len) const {
  switch (state_) {
    case State::First:
    case State::Eof:
    case State::PrepareOk:
      return true;
    case State::Rows:
      return first == 0xFF || (first == 0xFE && len < my::kMaxPayload);
    default:
      return false;
  }
}

void ResponseTracker::push_defs(std::uint64_t n) {
  if (n == 0) return;
  steps_.push_back({State::Defs, n});
  if (!deprecate_eof_) steps_.push_back({State::Eof, 0});
}

void ResponseTracker::next_step() {
  if (steps_.empty()) {
    state_ = State::Done;
    return;
  }
  auto s = steps_.front();
  steps_.erase(steps_.begin());
  state_ = s.state;
  defs_left_ = s.count;
}

void ResponseTracker::handle_ok(my::Bytes packet, std::string& out, bool ends_result) {
  const auto payload = packet.subspan(4);
  const std::uint8_t seq = packet[3];
  my::Ok ok;
  if (!my::parse_ok(payload, server_track_, ok)) {
    malformed_ = true;
    return;
  }
  out_->status = ok.status;
  out_->has_status = true;
  out_->last_insert_id = ok.last_insert_id;
  out_->affected_rows = ok.affected_rows;
  out_->warnings = ok.warnings;
  if (!ok.session_state.empty()) my::parse_session_state(ok.session_state, out_->changes);
  if (rewrite_ok_) {
    std::string p;
    my::build_ok(p, ok, false);
    my::append_packets(out, p, seq);
  } else {
    out.append(my::as_sv(packet));
  }
  (void)ends_result;
  if (ok.status & my::status::CURSOR_EXISTS) out_->cursor_opened = true;
  if (ok.status & my::status::LAST_ROW_SENT) out_->last_row_sent = true;
  if (kind_ == ResponseKind::Query && (ok.status & my::status::MORE_RESULTS_EXISTS)) state_ = State::First;
  else state_ = State::Done;
}

void ResponseTracker::on_whole(my::Bytes packet, std::string& out) {
  const auto p = packet.subspan(4);
  const std::uint8_t seq = packet[3];
  auto pass = [&] { out.append(my::as_sv(packet)); };  // header and payload as they came
  std::uint8_t first = p.empty() ? 0 : p[0];
  if (first == 0xFF && state_ != State::Eof) {  // ERR ends any response
    my::parse_err(p, out_->err);
    out_->error = true;
    pass();
    err_packet_size_ = 4 + p.size();
    state_ = State::Done;
    return;
  }
  switch (state_) {
    case State::First: {
      if (kind_ == ResponseKind::Single) {
        if (first == 0x00) {
          handle_ok(packet, out, false);
          state_ = State::Done;
        } else {  // EOF (COM_SET_OPTION) or anything else: pass as is
          if (first == 0xFE) {
            out_->status = my::eof_status(p, false, false);
            out_->has_status = true;
          }
          pass();
          state_ = State::Done;
        }
        return;
      }
      if (first == 0x00) {
        handle_ok(packet, out, false);
        return;
      }
      if (first == 0xFB) {
        out_->local_infile = true;
        pass();
        state_ = State::InfileWait;
        return;
      }
      my::Reader r(p);
      std::uint64_t columns = r.lenenc();
      if (!r.ok() || !r.at_end() || columns == 0) {
        malformed_ = true;
        return;
      }
      pass();
      out_->result_set = true;
      push_defs(columns);
      steps_.push_back({State::Rows, 0});
      next_step();
      return;
    }
    case State::Eof: {
      // The EOF after definitions (no DEPRECATE_EOF). After a cursor-opening execute the rows
      // come later, with COM_STMT_FETCH.
      if (first != 0xFE) {
        malformed_ = true;
        return;
      }
      std::uint16_t st = my::eof_status(p, false, false);
      pass();
      if (kind_ == ResponseKind::Query && steps_.size() == 1 && (st & my::status::CURSOR_EXISTS)) {
        out_->status = st;
        out_->has_status = true;
        out_->cursor_opened = true;
        steps_.clear();
        state_ = State::Done;
        return;
      }
      next_step();
      return;
    }
    case State::Rows: {  // a terminator (0xFE): EOF, or OK with DEPRECATE_EOF
      if (kind_ == ResponseKind::FieldList) {
        pass();
        state_ = State::Done;
        return;
      }
      if (deprecate_eof_) {
        handle_ok(packet, out, true);
        return;
      }
      std::uint16_t st = my::eof_status(p, false, false);
      out_->status = st;
      out_->has_status = true;
      if (p.size() >= 3) out_->warnings = static_cast<std::uint16_t>(p[1] | (p[2] << 8));
      if (st & my::status::CURSOR_EXISTS) out_->cursor_opened = true;
      if (st & my::status::LAST_ROW_SENT) out_->last_row_sent = true;
      pass();
      state_ = (kind_ == ResponseKind::Query && (st & my::status::MORE_RESULTS_EXISTS)) ? State::First : State::Done;
      return;
    }
    case State::PrepareOk: {
      my::PrepareOk pok;
      if (!my::parse_prepare_ok(p, pok)) {
        malformed_ = true;
        return;
      }
      out_->prepare = pok;
      std::string copy(my::as_sv(p));
      my::patch_statement_id(reinterpret_cast<std::uint8_t*>(copy.data()), client_statement_id_);
      my::put_header(out, copy.size(), seq);
      out.append(copy);
      push_defs(pok.params);
      push_defs(pok.columns);
      next_step();
      return;
    }
    default:
      malformed_ = true;
  }
}

void ResponseTracker::on_passed_start() {
  switch (state_) {
    case State::Defs:
      if (--defs_left_ == 0) next_step();
      break;
    case State::Raw:
      state_ = State::Done;
      break;
    case State::Rows:
      ++out_->rows;
      break;
    default:
      break;
  }
}

std::size_t ResponseTracker::feed(my::Bytes in, std::string& out) {
  std::size_t pos = 0;
  while (pos < in.size() && !malformed_) {
    if (pass_left_ > 0) {
      std::size_t n = std::min(pass_left_, in.size() - pos);
      out.append(reinterpret_cast<const char*>(in.data() + pos), n);
      pos += n;
      pass_left_ -= n;
      continue;
    }
    if (state_ == State::Done || state_ == State::InfileWait) break;
    if (in.size() - pos < 4) break;
    std::size_t len = my::payload_length(in.data() + pos);
    bool continued = len == my::kMaxPayload;
    const auto seq_after = static_cast<std::uint8_t>(in[pos + 3] + 1);
    if (continuation_) {  // the rest of a long packet: never interpreted
      continuation_ = continued;
      pass_left_ = 4 + len;
      next_seq_ = seq_after;
      continue;
    }
    if (len > 0 && in.size() - pos < 5) break;
    std::uint8_t first = len > 0 ? in[pos + 4] : 0;
    if (needs_whole(first, len)) {
      if (continued) {  // a status packet never spans packets
        malformed_ = true;
        break;
      }
      if (in.size() - pos < 4 + len) break;
      on_whole(in.subspan(pos, 4 + len), out);
      pos += 4 + len;
      next_seq_ = seq_after;
      continue;
    }
    // A packet that fits kWholeBelow is passed on only once it is all here: then a server that
    // dies mid-response leaves the client at a packet boundary, where an ERR can take over.
    if (4 + len < kWholeBelow && in.size() - pos < 4 + len) break;
    on_passed_start();
    continuation_ = continued;
    pass_left_ = 4 + len;
    next_seq_ = seq_after;
  }
  return pos;
}

}  // namespace sluice::frontend::mysql
