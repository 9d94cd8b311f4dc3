// Recognizes PostgreSQL statements that need a database to have no other sessions: CREATE
// DATABASE (its template: "template1" unless TEMPLATE names another), DROP DATABASE and ALTER
// DATABASE ... RENAME TO (the database itself). A pooler holding idle connections to those
// databases would make them fail with 55006 "being accessed by other users".
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace sluice::sql {

// The databases `text` (a simple Query or a Parse's statement) needs free of other sessions, in
// the server's spelling (unquoted names folded to lower case); empty for any other statement.
std::vector<std::string> databases_needing_exclusive_use(std::string_view text);

}  // namespace sluice::sql
