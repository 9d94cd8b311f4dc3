// Statement classification for routing: may this text run on a replica? Reads are
// SELECT / WITH … SELECT / VALUES / TABLE / SHOW / EXPLAIN (not ANALYZE) / DESCRIBE without
// locking clauses (FOR UPDATE/SHARE, LOCK IN SHARE MODE), without INTO, without data-modifying
// CTEs and without calls to functions that write, lock or read session state (nextval,
// pg_advisory_lock…, GET_LOCK, LAST_INSERT_ID…, plus a configurable list). Transaction control
// and session statements are recognized so the router can keep a transaction on one connection.
// A leading comment /* sluice:primary */ or /* sluice:replica */ is returned as a hint.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "src/sql/lexer.hpp"

namespace sluice::sql {

enum class StatementKind { Read, Write, Begin, Commit, Rollback, SetTransaction, Session };
enum class Hint { None, Primary, Replica };

struct Classification {
  StatementKind kind = StatementKind::Write;
  bool read_only = false;  // Begin / SetTransaction: READ ONLY
  Hint hint = Hint::None;
  const char* reason = "";  // why a candidate read is not one (tests, debug logs)
  // Some statement of the text writes data (is a Write), whatever the text's kind: "BEGIN;
  // UPDATE t …; COMMIT" is a Begin that writes (invalidation needs this, routing the kind).
  bool writes = false;
  // It calls one of the operator's write functions: what it writes is not in its text.
  bool opaque_write = false;
  bool read() const { return kind == StatementKind::Read; }
};

Classification classify(std::string_view text, Dialect dialect,
                        const std::vector<std::string>& extra_write_functions = {});
Classification classify(const Lexed& lexed, const std::vector<std::string>& extra_write_functions = {});

// Functions that make an otherwise read-only statement go to the primary, by dialect.
bool is_write_function(std::string_view lowercase_name, Dialect dialect);

}  // namespace sluice::sql
