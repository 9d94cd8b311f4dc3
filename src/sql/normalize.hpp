// Cache-key text and the tables a statement touches, from the shared lexer.
//   normalize(): comments stripped, whitespace collapsed to single spaces between tokens,
//   keywords case-folded; literals, quoted identifiers and parameters kept exactly. PostgreSQL
//   folds unquoted identifiers to lower case itself, so all words are folded there; MySQL table
//   and column names can be case-sensitive, so only keywords and function names are folded.
//   tables(): the tables named after FROM / JOIN / UPDATE / INTO / TABLE and in DDL, as the
//   server would resolve their spelling (schema-qualified names kept whole). `complete` is false
//   when the statement may touch tables it does not name (then a writer must drop everything).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "src/sql/lexer.hpp"

namespace sluice::sql {

std::string normalize(std::string_view text, Dialect dialect);
std::string normalize(const Lexed& lexed);

struct TableRefs {
  std::vector<std::string> names;  // unique, in order of appearance
  bool complete = true;
};
TableRefs tables(std::string_view text, Dialect dialect);
TableRefs tables(const Lexed& lexed);

}  // namespace sluice::sql
