// Recognizes the few session-state statements the PostgreSQL front end must track in
// transaction pooling (SET search_path, RESET, DISCARD, DEALLOCATE ALL). Skips comments and
// quotes correctly; the full lexer/classifier arrives with the router.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace sluice::sql {

enum class SessionCommand { None, SetSearchPath, ResetSearchPath, ResetAll, DiscardAll, DeallocateAll };

struct SessionEffect {
  SessionCommand command = SessionCommand::None;
  std::string value;  // for SetSearchPath: the raw list after TO / =
};

// Splits `text` into statements at top-level semicolons (quotes, $tag$, comments respected).
std::vector<std::string_view> split_statements(std::string_view text);
// Effects of each statement in a simple Query, in order; statements with no effect are skipped.
std::vector<SessionEffect> session_effects(std::string_view text);

}  // namespace sluice::sql
