// Leveled logging to stderr, one line per event: text (a UTC time, the level, the message) or,
// with [general] log_format = "json", one JSON object per line with stable keys:
//   time, level, event, message, and when known: client_id, address, port, user, database,
//   reason, fingerprint, duration_ms, rows.
// Formatting happens only when the level is enabled. No secret is ever a field: passwords and
// statement parameters are not passed here (slow queries log fingerprints unless
// [general] log_parameters = true).
#pragma once

#include <fmt/format.h>

#include <atomic>
#include <cstdint>
#include <string>
#include <string_view>

namespace sluice::log {

enum class Level { Debug = 0, Info = 1, Warn = 2, Error = 3 };
enum class Format { Text = 0, Json = 1 };

extern std::atomic<Level> g_level;
extern std::atomic<Format> g_format;
void set_level(std::string_view name);
void set_format(std::string_view name);  // "text" or "json"

// What an event is about; empty / zero fields are left out of a JSON line.
struct Fields {
  std::uint64_t client_id = 0;
  std::string_view address;
  int port = 0;
  std::string_view user, database, reason;
  std::string_view fingerprint, statement;  // statement: only with log_parameters
  double duration_ms = -1;
  std::int64_t rows = -1;
};

// An event with a name ("client_connected", "slow_query", ...) and fields; `message` is what
// the text format prints.
void write_event(Level level, std::string_view event, const Fields& fields, std::string_view message);
inline void write(Level level, std::string_view message) { write_event(level, "log", Fields{}, message); }
// The JSON line write_event() prints in the json format (without the newline), for tests.
std::string json_line(std::string_view time, Level level, std::string_view event, const Fields& fields,
                      std::string_view message);

inline bool enabled(Level l) { return l >= g_level.load(std::memory_order_relaxed); }

template <typename... Args>
void debug(fmt::format_string<Args...> f, Args&&... args) {
  if (enabled(Level::Debug)) write(Level::Debug, fmt::format(f, std::forward<Args>(args)...));
}
template <typename... Args>
void info(fmt::format_string<Args...> f, Args&&... args) {
  if (enabled(Level::Info)) write(Level::Info, fmt::format(f, std::forward<Args>(args)...));
}
template <typename... Args>
void warn(fmt::format_string<Args...> f, Args&&... args) {
  if (enabled(Level::Warn)) write(Level::Warn, fmt::format(f, std::forward<Args>(args)...));
}
template <typename... Args>
void error(fmt::format_string<Args...> f, Args&&... args) {
  if (enabled(Level::Error)) write(Level::Error, fmt::format(f, std::forward<Args>(args)...));
}
// An event with fields at `level`: log::event(Level::Info, "client_connected", {...}, "fmt", ...).
template <typename... Args>
void event(Level level, std::string_view name, const Fields& fields, fmt::format_string<Args...> f, Args&&... args) {
  if (enabled(level)) write_event(level, name, fields, fmt::format(f, std::forward<Args>(args)...));
}

}  // namespace sluice::log
