// What a MySQL client's commands leave on its server connection, and what follows from it: an
// open transaction, state Sluice cannot carry to another connection (a pin), an open cursor,
// long data waiting for its execute, per-statement state the next command may read (warnings for
// SHOW WARNINGS, a generated id for LAST_INSERT_ID()). From these: whether the connection may go
// back to the pool, whether it needs a reset before another client gets it, whether a read may
// be answered from the cache, and what a lost connection took with it. No I/O: the session tells
// it what each command was and what the server answered (ResponseSummary, from the sans-io
// ResponseTracker); unit-tested with response bytes.
#pragma once

#include <cstdint>

#include "protocols/mysql/codec.hpp"
#include "src/config/config.hpp"
#include "src/frontend/mysql/response.hpp"
#include "src/sql/mysql_sql.hpp"

namespace sluice::frontend::mysql {

struct CommandState {
  std::uint16_t status = my::status::AUTOCOMMIT;  // the server's status flags the client last saw
  bool pinned = false;                            // holds state Sluice cannot describe or move
  bool cursor_open = false;                       // an execute opened a cursor not yet exhausted
  bool long_data = false;                         // COM_STMT_SEND_LONG_DATA waits for its execute
  bool hold_next = false;                         // the next command may read this one's per-statement state

  bool in_transaction() const { return (status & my::status::IN_TRANS) != 0; }
  // The client keeps its server connection (a pooled mode may not detach).
  bool holds_server() const { return in_transaction() || pinned || cursor_open || long_data || hold_next; }
  // The server connection must be reset before another client gets it.
  bool needs_reset(config::PoolMode mode) const { return holds_server() || mode == config::PoolMode::Session; }
  // A read may be answered from the result cache (no transaction or pinned state it could see).
  bool may_use_cache() const { return !in_transaction() && !pinned; }
  // A connection held on a replica (for warnings) may be left for a command that belongs on the
  // primary: nothing but per-statement state ties the client to it.
  bool may_leave_replica() const { return !in_transaction() && !pinned && !cursor_open && !long_data; }

  // The status flags of an answer that reported them.
  void absorb_status(const ResponseSummary& r);
  // After COM_QUERY: SET TRANSACTION and per-statement state hold the connection for the next
  // command. Returns why the statement pins the client (the caller pins, logs and marks the
  // connection), or null: it does not, failed, or its connection was lost under it.
  const char* after_query(const sql::MysqlStatementInfo& info, const ResponseSummary& r, bool server_lost);
  // After COM_STMT_EXECUTE (`cursor_requested`: flags asked for a cursor).
  void after_execute(const ResponseSummary& r, bool cursor_requested);
  void after_long_data() { long_data = true; }
  // COM_STMT_RESET (or a reset of a statement no server holds).
  void after_stmt_reset() { long_data = cursor_open = false; }
  // After COM_STMT_FETCH: the cursor ends with an error or its last row.
  void after_fetch(const ResponseSummary& r);
  // The server connection was lost: whatever it held is gone. True when that was a transaction
  // or pinned state (the client must be told its work is lost).
  bool lose_server();
  // COM_RESET_CONNECTION, COM_CHANGE_USER: a new session.
  void reset();
  // Per-statement server state the next command may read: warnings (SHOW WARNINGS) and a
  // generated id (LAST_INSERT_ID()).
  static bool holds_for_next(const ResponseSummary& r);
};

}  // namespace sluice::frontend::mysql
