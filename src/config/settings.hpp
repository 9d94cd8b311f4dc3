// The settings an operator may change on a running Sluice (the console's SET), described once:
// their section and name, kind, bounds or choices, and where they live in Config. The loader reads
// them from the file with these bounds, SHOW CONFIG lists them with their values and defaults, and
// SET parses, checks and applies them: one table, so a range cannot differ between the three.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>

#include "src/config/config.hpp"

namespace sluice::config {

enum class SettingKind { Integer, Size, Duration, Bool, Choice };

// One setting's value, typed by kind: Integer and Size as uint64, Duration, Bool, Choice as text.
using SettingValue = std::variant<std::uint64_t, Duration, bool, std::string>;

struct Setting {
  std::string_view section;  // "general", "cache" or "limits"
  std::string_view name;
  SettingKind kind = SettingKind::Integer;
  std::uint64_t min = 0, max = UINT64_MAX;    // Integer and Size, inclusive
  std::span<const std::string_view> choices;  // Choice

  std::string key() const { return std::string(section) + "." + std::string(name); }
  // The value in `c` and storing one (already checked).
  SettingValue get(const Config& c) const;
  void put(Config& c, const SettingValue& v) const;
  // "" when `v` is within the setting's bounds or choices, else what is wrong ("must be between
  // 1 and 1000000").
  std::string check(const SettingValue& v) const;
  // The value as SHOW CONFIG prints it ("30s", "67108864", "true", "info").
  std::string text(const Config& c) const;
  // SET: parses `text`, checks it and stores it in `c`: "" or what is wrong.
  std::string set_text(Config& c, std::string_view text) const;
};

// Every changeable setting, in the order SHOW CONFIG lists them.
std::span<const Setting> live_settings();
// By "name" (a [general] setting) or "section.name", case-insensitive; null when unknown.
const Setting* find_setting(std::string_view key);

}  // namespace sluice::config
