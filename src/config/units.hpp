// Parsing of durations ("30s", "250ms", "5m", "1h", "2d") and sizes ("256MiB", "64KB", "1024").
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string_view>

namespace sluice::config {

using Duration = std::chrono::milliseconds;

// The longest duration a config value may say (milliseconds): far beyond any use, and far from
// overflowing the arithmetic done on it.
inline constexpr std::int64_t kMaxDurationMs = 1'000'000'000'000'000;
std::optional<Duration> parse_duration(std::string_view text);
std::optional<std::uint64_t> parse_size(std::string_view text);

}  // namespace sluice::config
