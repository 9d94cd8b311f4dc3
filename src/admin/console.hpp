// The admin console: commands as data. A statement sent to the virtual database `sluice`
// (on either SQL listener) is parsed and run here; the answer is typed columns and rows, which
// each protocol's result-set writer renders (src/admin/render_*.cpp). Column names follow
// PgBouncer where it has the same command.
#pragma once

#include <boost/asio.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "src/config/config.hpp"

namespace sluice::state {
struct Context;
}

namespace sluice::admin {

namespace asio = boost::asio;

enum class Type { Text, Int, Float, Bool, Timestamp };

struct Column {
  std::string name;
  Type type = Type::Text;
};

// A cell in its canonical text form: Int "42", Float "0.5", Bool "t"/"f",
// Timestamp "2026-11-22 03:40:00.123456" (UTC); nullopt = NULL.
using Cell = std::optional<std::string>;

struct Result {
  std::vector<Column> columns;  // empty: a command without rows (tag only)
  std::vector<std::vector<Cell>> rows;
  std::string tag;  // PostgreSQL CommandComplete tag ("SHOW", "RELOAD", ...)
  std::string info;  // a message for the caller (PostgreSQL NOTICE, MySQL OK info)
  // An error instead of a result.
  bool error = false;
  std::string sqlstate;
  std::uint16_t mysql_code = 0;
  std::string message;

  static Result fail(std::string sqlstate, std::uint16_t mysql_code, std::string message);
};

struct Caller {
  std::string user;
  bool admin = false;  // general.admin_users (else a stats user: SHOW only)
  std::uint64_t client_id = 0;
  config::Protocol protocol = config::Protocol::Postgres;
};

// Columns a statement returns, without running it (PostgreSQL Describe, MySQL prepare);
// nullopt when the statement returns no rows (or is not understood).
std::optional<std::vector<Column>> describe(std::string_view sql);

// Runs one statement. Suspends only for PAUSE (waiting for transactions) and SHUTDOWN WAIT.
asio::awaitable<Result> run(state::Context& ctx, std::string sql, Caller caller);

// Statements drivers send on connect that the console answers harmlessly (SET NAMES,
// SET application_name, SELECT @@version_comment ...): true and a result when handled.
std::optional<Result> driver_noise(std::string_view sql);

// Splits a simple-protocol query string at top-level semicolons (quotes and comments respected);
// empty pieces are dropped.
std::vector<std::string> split_statements(std::string_view sql);

// SQL LIKE (case-insensitive; % and _, backslash escapes).
bool like(std::string_view text, std::string_view pattern);

// Timestamp cell for a system_clock time.
std::string timestamp(std::chrono::system_clock::time_point t);

}  // namespace sluice::admin
