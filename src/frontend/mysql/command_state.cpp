// The rules of what a MySQL client's commands leave on its server connection (command_state.hpp).
#include "src/frontend/mysql/command_state.hpp"

namespace sluice::frontend::mysql {

void CommandState::absorb_status(const ResponseSummary& r) {
  if (!r.has_status) return;
  status = static_cast<std::uint16_t>(r.status & (my::status::IN_TRANS | my::status::AUTOCOMMIT |
                                                  my::status::IN_TRANS_READONLY | my::status::NO_BACKSLASH_ESCAPES));
}

const char* CommandState::after_query(const sql::MysqlStatementInfo& info, const ResponseSummary& r, bool server_lost) {
  hold_next = (info.next_transaction_setting && !r.error) || holds_for_next(r);
  return info.pins && !r.error && !server_lost ? info.pins : nullptr;
}

void CommandState::after_execute(const ResponseSummary& r, bool cursor_requested) {
  long_data = false;
  hold_next = holds_for_next(r);
  if (cursor_requested && r.cursor_opened) cursor_open = true;
}

void CommandState::after_fetch(const ResponseSummary& r) {
  if (r.error || r.last_row_sent) cursor_open = false;
}

bool CommandState::lose_server() {
  bool had = in_transaction() || pinned;
  status &= static_cast<std::uint16_t>(~my::status::IN_TRANS);
  pinned = cursor_open = long_data = hold_next = false;
  return had;
}

void CommandState::reset() {
  pinned = cursor_open = long_data = hold_next = false;
  status = my::status::AUTOCOMMIT;
}

bool CommandState::holds_for_next(const ResponseSummary& r) {
  return r.warnings > 0 || (!r.result_set && !r.error && r.last_insert_id != 0);
}

}  // namespace sluice::frontend::mysql
