// Result-set writers for the admin console: the same Result as PostgreSQL messages (text or
// binary format per column) and as MySQL packets (text protocol, or binary rows for prepared
// statements).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "src/admin/console.hpp"

namespace sluice::admin {

// ---- PostgreSQL --------------------------------------------------------------------------
// formats: result format codes from Bind (none = all text, one = for all, else per column).
void pg_row_description(std::string& out, const std::vector<Column>& cols, const std::vector<std::int16_t>& formats = {});
// DataRows, a NOTICE for `info`, then CommandComplete (or EmptyQueryResponse, or the error).
void pg_result(std::string& out, const Result& r, const std::vector<std::int16_t>& formats = {});
std::uint32_t pg_type_oid(Type t);

// ---- MySQL -------------------------------------------------------------------------------
// Appends the whole answer as framed packets, sequence ids from `seq`. `binary`: rows in the
// binary protocol (COM_STMT_EXECUTE). `caps`: the client's (DEPRECATE_EOF, SESSION_TRACK).
void mysql_result(std::string& out, const Result& r, std::uint8_t seq, std::uint32_t caps, bool binary,
                  std::uint16_t status, std::uint32_t mariadb_caps = 0);
// Column definition packets (COM_STMT_PREPARE_OK's column section, and result sets).
// `mariadb_caps`: the client's MariaDB extended capabilities (EXTENDED_METADATA adds a field).
void mysql_column_def(std::string& payload, const Column& c, std::uint32_t mariadb_caps = 0);

}  // namespace sluice::admin
