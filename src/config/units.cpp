// Unit parsing for config values; plain integers are seconds (durations) and bytes (sizes).
#include "src/config/units.hpp"

#include <cctype>
#include <charconv>
#include <string>

namespace sluice::config {
namespace {

bool split_number(std::string_view text, double& number, std::string_view& unit) {
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.front()))) text.remove_prefix(1);
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) text.remove_suffix(1);
  std::size_t i = 0;
  while (i < text.size() && (std::isdigit(static_cast<unsigned char>(text[i])) || text[i] == '.')) ++i;
  if (i == 0) return false;
  auto [p, ec] = std::from_chars(text.data(), text.data() + i, number);
  if (ec != std::errc() || p != text.data() + i || number < 0) return false;
  unit = text.substr(i);
  while (!unit.empty() && std::isspace(static_cast<unsigned char>(unit.front()))) unit.remove_prefix(1);
  return true;
}

}  // namespace

std::optional<Duration> parse_duration(std::string_view text) {
  double n = 0;
  std::string_view unit;
  if (!split_number(text, n, unit)) return std::nullopt;
  double ms = 0;
  if (unit == "ms") ms = n;
  else if (unit == "s" || unit.empty()) ms = n * 1000;
  else if (unit == "m" || unit == "min") ms = n * 60'000;
  else if (unit == "h") ms = n * 3'600'000;
  else if (unit == "d") ms = n * 86'400'000;
  else return std::nullopt;
  if (ms > static_cast<double>(kMaxDurationMs)) return std::nullopt;
  return Duration(static_cast<std::int64_t>(ms));
}

std::optional<std::uint64_t> parse_size(std::string_view text) {
  double n = 0;
  std::string_view unit;
  if (!split_number(text, n, unit)) return std::nullopt;
  std::string u(unit);
  for (auto& c : u) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  double mult = 0;
  if (u.empty() || u == "b") mult = 1;
  else if (u == "kib" || u == "k") mult = 1024.0;
  else if (u == "mib" || u == "m") mult = 1024.0 * 1024;
  else if (u == "gib" || u == "g") mult = 1024.0 * 1024 * 1024;
  else if (u == "kb") mult = 1000.0;
  else if (u == "mb") mult = 1000.0 * 1000;
  else if (u == "gb") mult = 1000.0 * 1000 * 1000;
  else return std::nullopt;
  double v = n * mult;
  if (v > 1e18) return std::nullopt;
  return static_cast<std::uint64_t>(v);
}

}  // namespace sluice::config
