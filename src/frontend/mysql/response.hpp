// Follows one server response (to one client command) through the byte stream, packet by
// packet, without buffering rows: result sets (text or binary), multiple results, prepare
// responses, cursors, LOCAL INFILE requests. Packets that decide where the response ends (OK,
// EOF, ERR, column counts) are read whole and may be rewritten: the statement id in
// COM_STMT_PREPARE_OK, and OK packets for clients that did not negotiate SESSION_TRACK while
// Sluice's server connection did. Sans-io: unit-tested byte by byte.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "protocols/mysql/codec.hpp"

namespace sluice::frontend::mysql {

namespace my = sluice::my;

enum class ResponseKind {
  Query,       // COM_QUERY, COM_STMT_EXECUTE: OK | ERR | LOCAL INFILE | result set(s)
  Fetch,       // COM_STMT_FETCH: rows, then EOF/OK | ERR
  Prepare,     // COM_STMT_PREPARE: PREPARE_OK + parameter and column definitions | ERR
  FieldList,   // COM_FIELD_LIST: column definitions until EOF | ERR
  Single,      // one OK | ERR | EOF packet (PING, INIT_DB, SET_OPTION, RESET_CONNECTION, STMT_RESET)
  Raw1,        // exactly one packet, not interpreted (COM_STATISTICS)
};

struct ResponseSummary {
  std::uint16_t status = 0;      // server status of the last OK/EOF seen
  bool has_status = false;
  bool error = false;            // ended with ERR
  my::Err err;
  bool cursor_opened = false;    // an execute opened a cursor (CURSOR_EXISTS)
  bool last_row_sent = false;    // a fetch exhausted the cursor
  bool local_infile = false;     // the server asks for a LOCAL INFILE: forward the client's data
  std::uint64_t last_insert_id = 0, affected_rows = 0;
  std::uint64_t rows = 0;        // rows of the result sets (query digests)
  std::uint16_t warnings = 0;    // of the last OK/EOF
  bool result_set = false;       // at least one result set (not just OK packets)
  my::SessionChanges changes;    // accumulated from every OK's session state
  std::optional<my::PrepareOk> prepare;

  // As a new one, keeping the strings' storage (ResponseTracker::start(), once per command).
  // `err` is written only with `error` set (an ERR packet), so without it it is as new.
  void reset() {
    status = 0;
    if (error) [[unlikely]] {
      err.code = 0;
      err.sqlstate = "HY000";
      err.message.clear();
    }
    has_status = error = false;
    cursor_opened = last_row_sent = local_infile = false;
    last_insert_id = affected_rows = rows = 0;
    warnings = 0;
    result_set = false;
    changes.schema.reset();
    changes.variables.clear();
    changes.state_changed = false;
    prepare.reset();
  }
};

class ResponseTracker {
 public:
  ResponseTracker() = default;
  ResponseTracker(const ResponseTracker&) = delete;  // out_ may point at its own summary
  ResponseTracker& operator=(const ResponseTracker&) = delete;
  // `server_caps`/`client_caps`: capabilities each side negotiated. For Prepare,
  // `client_statement_id` replaces the server's id in PREPARE_OK.
  // The response's summary goes to `*into` when given (reset first), else to `summary`.
  void start(ResponseKind kind, std::uint32_t server_caps, std::uint32_t client_caps,
             std::uint32_t client_statement_id = 0, ResponseSummary* into = nullptr);
  // Consumes what it can of `in`, appending what the client must see to `out`. Returns the bytes
  // consumed; the rest (an incomplete packet that must be read whole) must be fed again with more.
  std::size_t feed(my::Bytes in, std::string& out);
  // Packets shorter than this are passed on whole (larger ones stream in pieces).
  static constexpr std::size_t kWholeBelow = 64 * 1024;
  bool done() const { return state_ == State::Done; }
  bool malformed() const { return malformed_; }
  // The server asked for the client's LOCAL INFILE data: nothing more comes from the server until
  // the client's data (ending with an empty packet) has been sent.
  bool awaiting_infile() const { return state_ == State::InfileWait; }
  // The client has sent its LOCAL INFILE data (ending with an empty packet): expect OK / ERR.
  void infile_sent();
  // The sequence id an ERR packet would carry if the response broke off here: set at a packet
  // boundary where the protocol allows an ERR next (before the first packet, between rows, before
  // the next result of several), nullopt in the middle of a packet or of column definitions.
  std::optional<std::uint8_t> error_seq() const;
  // The server ended its connection with this ERR (a KILL of the connection, a shutdown, an idle
  // timeout), rather than failing one statement.
  static bool ends_connection(std::uint16_t code);
  // Bytes of the ERR packet that ended the response (the last ones appended to `out`), or 0.
  std::size_t err_packet_size() const { return err_packet_size_; }

  ResponseSummary summary;
  // The summary of the response being followed (or last followed): `summary` or start()'s `into`.
  const ResponseSummary& result() const { return *out_; }

 private:
  enum class State { First, Defs, Eof, Rows, PrepareOk, Raw, InfileWait, Done };
  struct Step {
    State state;
    std::uint64_t count;
  };
  bool needs_whole(std::uint8_t first, std::size_t len) const;
  void on_whole(my::Bytes packet, std::string& out);  // a whole packet, its 4-byte header first
  void on_passed_start();  // a passed-through logical packet began (counts definitions)
  void next_step();
  void handle_ok(my::Bytes packet, std::string& out, bool ends_result);  // likewise
  void push_defs(std::uint64_t n);

  State state_ = State::Done;
  ResponseKind kind_ = ResponseKind::Query;
  std::vector<Step> steps_;  // what follows the current state (Prepare, column definitions)
  std::uint64_t defs_left_ = 0;
  std::uint32_t server_caps_ = 0, client_caps_ = 0, client_statement_id_ = 0;
  bool deprecate_eof_ = false, server_track_ = false, rewrite_ok_ = false;
  std::size_t pass_left_ = 0;    // bytes of the current packet still to pass through
  bool continuation_ = false;    // the next packet continues a 0xFFFFFF-long one
  std::uint8_t next_seq_ = 1;    // the sequence id the next packet of the response carries
  std::size_t err_packet_size_ = 0;
  bool malformed_ = false;
  ResponseSummary* out_ = &summary;
};

}  // namespace sluice::frontend::mysql
