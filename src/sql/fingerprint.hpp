// A statement's fingerprint (what the firewall's allow-list and rules key on) and the verbs of
// its statements. The fingerprint is the normalized text with every literal and parameter
// replaced by "?" and a list of them ("IN (1, 2, 3)", "VALUES (1,2),(3,4)") folded to one
// "?, ..." so that one query shape has one fingerprint, as ProxySQL's digests do.
#pragma once

#include <string>
#include <vector>

#include "src/sql/lexer.hpp"

namespace sluice::sql {

std::string fingerprint(const Lexed& lexed);

// The verb of each statement in the text, lower case: its first word, or for WITH … the word
// of the statement the common table expressions lead to (select, insert, update, delete,
// merge). "SELECT 1; DROP TABLE t" gives {"select", "drop"}.
std::vector<std::string> verbs(const Lexed& lexed);

// The kind a verb belongs to: "ddl" (create, alter, drop, truncate, rename, comment), "dml"
// (insert, update, delete, merge, replace, copy, load, call), "dcl" (grant, revoke), "read"
// (select, values, table, show, explain, describe, desc), else "other".
const char* verb_kind(const std::string& verb);

}  // namespace sluice::sql
