// Recognizes the session-state statements the PostgreSQL front end must track in transaction
// pooling: what can be carried to another server session (SET, RESET, SET ROLE, set_config with
// is_local false, search_path, LISTEN and UNLISTEN), what pins a client to its server session
// (advisory locks, temporary tables, WITH HOLD cursors, SQL PREPARE, SET SESSION AUTHORIZATION),
// what may end such state, and what changes the session untracked (DO blocks, set_config of
// expressions).
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace sluice::sql {

enum class SessionCommand {
  None,
  SetSearchPath,
  ResetSearchPath,
  ResetAll,
  DiscardAll,
  DeallocateAll,
  SetParam,    // SET name TO value, SET ROLE, set_config(name, value, false): name, value (SQL text)
  ResetParam,  // RESET name, SET name TO DEFAULT, RESET ROLE, SET ROLE NONE: name
  Pin,         // state that cannot be carried to another server session: value = why
  MayUnpin,    // may end such state (DEALLOCATE, CLOSE, DROP, DISCARD, advisory unlocks)
  Untracked,   // changes the session in a way not followed here (DO, set_config(expr, ...)): value = what
  Begin,       // BEGIN / START TRANSACTION
  Commit,      // COMMIT / END
  Rollback,    // ROLLBACK / ABORT (not TO SAVEPOINT)
  Savepoint,   // SAVEPOINT name: name (folded as the server folds it)
  RollbackTo,  // ROLLBACK [WORK | TRANSACTION] TO [SAVEPOINT] name: name
  Release,     // RELEASE [SAVEPOINT] name: name
  Listen,      // LISTEN channel: name (folded and truncated as the server does)
  Unlisten,    // UNLISTEN channel | *: name ("*" for all)
  Notify,      // NOTIFY, or a call of pg_notify
};

struct SessionEffect {
  SessionCommand command = SessionCommand::None;
  std::string value;  // SetSearchPath: the raw list after TO / =; SetParam: the value as written; Pin: why
  std::string name;   // SetParam, ResetParam: the parameter, lower case; savepoints: the savepoint
};

// A channel name (LISTEN, UNLISTEN, NOTIFY, pg_notify) as the server keys it: at most 63 bytes
// (NAMEDATALEN - 1), cut at a character boundary.
std::string channel_name(std::string name);

// Parameters the server reports in ParameterStatus (followed from those messages instead).
bool is_reported_param(std::string_view lower_name);

// Splits `text` into statements at top-level semicolons (quotes, $tag$, comments respected).
std::vector<std::string_view> split_statements(std::string_view text);
// Effects of each statement in a simple Query, in order; statements with no effect are skipped.
std::vector<SessionEffect> session_effects(std::string_view text);

}  // namespace sluice::sql
