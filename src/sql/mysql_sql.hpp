// What the MySQL front end must know about a COM_QUERY before sending it: KILL statements it
// answers itself, and statements whose effects stay on one server connection (pinning).
// Quotes ('', "", ``), backslash escapes and comments (#, -- , /* */) are skipped; the contents
// of MySQL executable comments (/*! ... */) are read as code.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "src/sql/lexer.hpp"

namespace sluice::sql {

struct MysqlKill {
  bool query_only = false;  // KILL QUERY n (else KILL [CONNECTION] n)
  std::uint64_t id = 0;
};

struct MysqlStatementInfo {
  std::optional<MysqlKill> kill;  // the whole text is one KILL statement
  const char* pins = nullptr;     // why it pins the client to its server connection, or null
  bool next_transaction_setting = false;  // SET TRANSACTION ... without SESSION/GLOBAL
};

MysqlStatementInfo inspect_mysql(std::string_view text);
MysqlStatementInfo inspect_mysql(const Lexed& lexed);  // lexed as MySQL

}  // namespace sluice::sql
