// stderr sink: one line per event, with a UTC timestamp and the level.
#include "src/observe/log.hpp"

#include <chrono>
#include <cstdio>
#include <ctime>

namespace sluice::log {

std::atomic<Level> g_level{Level::Info};

void set_level(std::string_view name) {
  if (name == "debug") g_level = Level::Debug;
  else if (name == "warn") g_level = Level::Warn;
  else if (name == "error") g_level = Level::Error;
  else g_level = Level::Info;
}

void write(Level level, std::string_view message) {
  static const char* names[] = {"DEBUG", "INFO", "WARN", "ERROR"};
  auto now = std::chrono::system_clock::now();
  auto t = std::chrono::system_clock::to_time_t(now);
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
  std::tm tm{};
  gmtime_r(&t, &tm);
  char ts[32];
  std::strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
  auto line = fmt::format("{}.{:03d}Z {} {}\n", ts, static_cast<int>(ms), names[static_cast<int>(level)], message);
  std::fwrite(line.data(), 1, line.size(), stderr);
}

}  // namespace sluice::log
