// The relay when its server connection ends: recognizing the server's goodbye, and answering
// what was still outstanding the way the server answers failed requests (see relay.hpp).
#include "src/frontend/postgres/relay.hpp"

#include <fmt/format.h>

namespace sluice::frontend::pg {

std::size_t Relay::outstanding_groups() const {
  std::size_t n = 0;
  for (auto& e : pending_) n += e.kind == Kind::Sync || e.kind == Kind::Simple;
  return n;
}

bool Relay::fail_outstanding(std::string_view sqlstate, std::string_view message, std::string_view hint, char status,
                             std::string& client_out) {
  bool open = false;  // an ErrorResponse went out for a group whose end is still to come
  for (auto& e : pending_) {
    if (e.mode == Mode::Swallow) continue;  // Sluice's own Parse/Close: the client expects nothing
    if (!open) {
      wire::error_response(client_out, "ERROR", sqlstate, message, {}, hint);
      open = true;
    }
    if (e.kind == Kind::Sync || e.kind == Kind::Simple) {
      wire::ready_for_query(client_out, status);
      open = false;
    }
  }
  pending_.clear();
  trail_.clear();
  if (!synthetic_errors_.empty()) synthetic_errors_.clear();
  replacement_errors_.clear();
  partial_.clear();
  effects_.clear();
  ++effects_base_;
  copy_in_ = false;
  tx_status_ = status;
  unsynced_ = false;
  in_query_ = in_xact_ = false;
  // Messages after the last Sync with nothing of them answered yet: the error is still owed.
  return open;
}

// A held ErrorResponse or NoticeResponse is complete: true when it announces the end of the
// server connection (FATAL/PANIC, or a class 57P notice such as PostgreSQL's "terminating
// connection due to immediate shutdown command", sent as a WARNING before it exits).
bool Relay::announces_end(char type) {
  wire::ErrorFields ef;
  if (!wire::parse_error_fields(wire::as_bytes(captured_), ef)) return false;
  bool end = type == wire::be::ErrorResponse ? (ef.severity == "FATAL" || ef.severity == "PANIC")
                                             : ef.code.rfind("57P", 0) == 0;
  if (end) {
    server_end_ = fmt::format("{} {}: {}", ef.severity, ef.code, ef.message);
    server_end_code_ = std::string(ef.code);
    server_end_msg_.assign(reinterpret_cast<const char*>(hdr_), 5).append(captured_);
  }
  return end;
}

}  // namespace sluice::frontend::pg
