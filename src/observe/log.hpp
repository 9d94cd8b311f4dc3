// Leveled logging to stderr. Formatting happens only when the level is enabled.
#pragma once

#include <fmt/format.h>

#include <atomic>
#include <string_view>

namespace sluice::log {

enum class Level { Debug = 0, Info = 1, Warn = 2, Error = 3 };

extern std::atomic<Level> g_level;
void set_level(std::string_view name);
void write(Level level, std::string_view message);

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

}  // namespace sluice::log
