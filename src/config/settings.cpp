// The table of changeable settings and their parsing, checking and rendering.
#include "src/config/settings.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>

#include "src/config/units.hpp"

namespace sluice::config {

namespace {

constexpr std::array<std::string_view, 4> kLogLevels = {"error", "warn", "info", "debug"};
constexpr std::array<std::string_view, 2> kRateActions = {"queue", "refuse"};
constexpr std::array<std::string_view, 3> kFirewallModes = {"off", "learning", "enforcing"};

// Where a setting lives in Config: one member pointer per field type and section.
using Field =
    std::variant<std::uint32_t General::*, std::uint64_t General::*, Duration General::*, std::string General::*,
                 bool Cache::*, std::uint64_t Cache::*, Duration Cache::*, std::uint32_t Limits::*,
                 std::string Limits::*, Duration Limits::*, std::string Firewall::*, bool Digests::*>;

template <typename M>
struct member_of;
template <typename T, typename S>
struct member_of<T S::*> {
  using section = S;
  using type = T;
};

template <typename Section>
Section& section_of(Config& c) {
  if constexpr (std::is_same_v<Section, General>) return c.general;
  else if constexpr (std::is_same_v<Section, Limits>) return c.limits;
  else if constexpr (std::is_same_v<Section, Firewall>) return c.firewall;
  else if constexpr (std::is_same_v<Section, Digests>) return c.digests;
  else return c.cache;
}
template <typename Section>
const Section& section_of(const Config& c) {
  if constexpr (std::is_same_v<Section, General>) return c.general;
  else if constexpr (std::is_same_v<Section, Limits>) return c.limits;
  else if constexpr (std::is_same_v<Section, Firewall>) return c.firewall;
  else if constexpr (std::is_same_v<Section, Digests>) return c.digests;
  else return c.cache;
}

using K = SettingKind;
constexpr Setting def(std::string_view section, std::string_view name, SettingKind kind, std::uint64_t min = 0,
                      std::uint64_t max = UINT64_MAX, std::span<const std::string_view> choices = {}) {
  Setting s;
  s.section = section;
  s.name = name;
  s.kind = kind;
  s.min = min;
  s.max = max;
  s.choices = choices;
  return s;
}
const std::array<Setting, 23> kSettings = {{
    def("general", "log_level", K::Choice, 0, 0, kLogLevels),
    def("general", "max_client_conn", K::Integer, 1, 1'000'000),
    def("general", "max_packet_size", K::Size, 1024, 1ull << 30),
    def("general", "shutdown_timeout", K::Duration),
    def("general", "client_login_timeout", K::Duration),
    def("general", "client_idle_timeout", K::Duration),
    def("general", "server_connect_timeout", K::Duration),
    def("general", "server_idle_timeout", K::Duration),
    def("general", "server_lifetime", K::Duration),
    def("general", "query_wait_timeout", K::Duration),
    def("cache", "enabled", K::Bool),
    def("cache", "max_bytes", K::Size, 1024),
    def("cache", "default_ttl", K::Duration),
    def("limits", "max_connections_per_user", K::Integer, 0, 1'000'000),
    def("limits", "max_connections_per_database", K::Integer, 0, 1'000'000),
    def("limits", "max_connections_per_address", K::Integer, 0, 1'000'000),
    def("limits", "connections_per_second_per_address", K::Integer, 0, 1'000'000),
    def("limits", "queries_per_second_per_user", K::Integer, 0, 100'000'000),
    def("limits", "queries_per_second_per_address", K::Integer, 0, 100'000'000),
    def("limits", "rate_limit_action", K::Choice, 0, 0, kRateActions),
    def("limits", "rate_limit_max_wait", K::Duration),
    def("firewall", "mode", K::Choice, 0, 0, kFirewallModes),
    def("digests", "enabled", K::Bool),
}};
// Where each of kSettings lives in Config, by position.
const std::array<Field, 23> kFields = {{
    &General::log_level,
    &General::max_client_conn,
    &General::max_packet_size,
    &General::shutdown_timeout,
    &General::client_login_timeout,
    &General::client_idle_timeout,
    &General::server_connect_timeout,
    &General::server_idle_timeout,
    &General::server_lifetime,
    &General::query_wait_timeout,
    &Cache::enabled,
    &Cache::max_bytes,
    &Cache::default_ttl,
    &Limits::max_connections_per_user,
    &Limits::max_connections_per_database,
    &Limits::max_connections_per_address,
    &Limits::connections_per_second_per_address,
    &Limits::queries_per_second_per_user,
    &Limits::queries_per_second_per_address,
    &Limits::rate_limit_action,
    &Limits::rate_limit_max_wait,
    &Firewall::mode,
    &Digests::enabled,
}};

const Field& field_of(const Setting& s) { return kFields.at(static_cast<std::size_t>(&s - kSettings.data())); }

std::string size_text(std::uint64_t n) {
  if (n >= (1ull << 30) && n % (1ull << 30) == 0) return fmt::format("{}GiB", n >> 30);
  if (n >= (1ull << 20) && n % (1ull << 20) == 0) return fmt::format("{}MiB", n >> 20);
  if (n >= 1024 && n % 1024 == 0) return fmt::format("{}KiB", n >> 10);
  return std::to_string(n);
}

std::string duration_text(Duration d) {
  auto ms = d.count();
  if (ms % 1000 == 0) return fmt::format("{}s", ms / 1000);
  return fmt::format("{}ms", ms);
}

std::string lower(std::string_view s) {
  std::string o(s);
  for (auto& c : o) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return o;
}

}  // namespace

SettingValue Setting::get(const Config& c) const {
  return std::visit(
      [&](auto member) -> SettingValue {
        using Section = typename member_of<decltype(member)>::section;
        const auto& v = section_of<Section>(c).*member;
        using V = std::decay_t<decltype(v)>;
        if constexpr (std::is_integral_v<V> && !std::is_same_v<V, bool>) return static_cast<std::uint64_t>(v);
        else return v;
      },
      field_of(*this));
}

void Setting::put(Config& c, const SettingValue& value) const {
  std::visit(
      [&](auto member) {
        using Section = typename member_of<decltype(member)>::section;
        auto& v = section_of<Section>(c).*member;
        using V = std::decay_t<decltype(v)>;
        if constexpr (std::is_integral_v<V> && !std::is_same_v<V, bool>)
          v = static_cast<V>(std::get<std::uint64_t>(value));
        else v = std::get<V>(value);
      },
      field_of(*this));
}

std::string Setting::check(const SettingValue& v) const {
  if (kind == SettingKind::Integer || kind == SettingKind::Size) {
    auto n = std::get<std::uint64_t>(v);
    if (n >= min && n <= max) return {};
    auto show = [&](std::uint64_t x) { return kind == SettingKind::Size ? size_text(x) : std::to_string(x); };
    if (max == UINT64_MAX) return fmt::format("must be at least {}", show(min));
    return fmt::format("must be between {} and {}", show(min), show(max));
  }
  if (kind == SettingKind::Choice) {
    const auto& s = std::get<std::string>(v);
    if (std::find(choices.begin(), choices.end(), s) != choices.end()) return {};
    return fmt::format("unknown value \"{}\" (expected {})", s, fmt::join(choices, " | "));
  }
  return {};
}

std::string Setting::text(const Config& c) const {
  auto v = get(c);
  switch (kind) {
    case SettingKind::Integer:
    case SettingKind::Size:
      return std::to_string(std::get<std::uint64_t>(v));
    case SettingKind::Duration:
      return duration_text(std::get<Duration>(v));
    case SettingKind::Bool:
      return std::get<bool>(v) ? "true" : "false";
    case SettingKind::Choice:
      return std::get<std::string>(v);
  }
  return {};
}

std::string Setting::set_text(Config& c, std::string_view text) const {
  SettingValue v;
  switch (kind) {
    case SettingKind::Integer: {
      std::uint64_t n = 0;
      auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
      if (text.empty() || ec != std::errc() || p != text.data() + text.size()) return "expected an integer";
      v = n;
      break;
    }
    case SettingKind::Size: {
      auto n = parse_size(text);
      if (!n) return fmt::format("invalid size \"{}\" (use B, KiB, MiB, GiB, KB, MB, GB)", text);
      v = *n;
      break;
    }
    case SettingKind::Duration: {
      auto d = parse_duration(text);
      if (!d) return fmt::format("invalid duration \"{}\" (use ms, s, m, h or d)", text);
      v = *d;
      break;
    }
    case SettingKind::Bool: {
      auto l = lower(text);
      if (l == "true" || l == "on" || l == "1") v = true;
      else if (l == "false" || l == "off" || l == "0") v = false;
      else return "expected true or false";
      break;
    }
    case SettingKind::Choice:
      v = std::string(text);
      break;
  }
  if (auto problem = check(v); !problem.empty()) return problem;
  put(c, v);
  return {};
}

std::span<const Setting> live_settings() { return kSettings; }

const Setting* find_setting(std::string_view key) {
  auto k = lower(key);
  for (const Setting& s : kSettings) {
    if (k == s.key() || (s.section == "general" && k == s.name)) return &s;
  }
  return nullptr;
}

}  // namespace sluice::config
