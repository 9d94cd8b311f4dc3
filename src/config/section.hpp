// Reading one TOML table of the configuration, key by key, with "file:line: key: problem" errors
// (Section), and the helpers the config readers share. Internal to src/config.
#pragma once

#include <fmt/format.h>

#include <charconv>
#include <limits>
#include <set>
#include <string>
#include <string_view>
#include <toml++/toml.h>
#include <vector>

#include "src/config/config.hpp"
#include "src/config/settings.hpp"

namespace sluice::config {

// Walks one TOML table, remembering which keys were read so leftovers can be reported.
class Section {
 public:
  Section(const toml::table& t, std::string prefix, const std::string& file)
      : t_(t), prefix_(std::move(prefix)), file_(file) {}

  [[noreturn]] void fail(const toml::node* n, std::string_view key, std::string_view what) const {
    int line = n ? static_cast<int>(n->source().begin.line) : static_cast<int>(t_.source().begin.line);
    throw ConfigError(fmt::format("{}:{}: {}{}: {}", file_, line, prefix_, key, what));
  }
  const toml::node* get(std::string_view key) {
    seen_.insert(std::string(key));
    return t_.get(key);
  }
  std::string key_path(std::string_view key) const { return prefix_ + std::string(key); }

  void str(std::string_view key, std::string& out) {
    if (auto n = get(key)) {
      if (!n->is_string()) fail(n, key, "expected a string");
      out = n->as_string()->get();
    }
  }
  bool str_required(std::string_view key, std::string& out) {
    if (!t_.contains(key)) fail(nullptr, key, "is required");
    str(key, out);
    return true;
  }
  void boolean(std::string_view key, bool& out) {
    if (auto n = get(key)) {
      if (!n->is_boolean()) fail(n, key, "expected true or false");
      out = n->as_boolean()->get();
    }
  }
  template <typename Int>
  void integer(std::string_view key, Int& out, std::int64_t min, std::int64_t max) {
    if (auto n = get(key)) {
      if (!n->is_integer()) fail(n, key, "expected an integer");
      auto v = n->as_integer()->get();
      if (v < min || v > max) fail(n, key, fmt::format("must be between {} and {}", min, max));
      out = static_cast<Int>(v);
    }
  }
  void duration(std::string_view key, Duration& out) {
    if (auto n = get(key)) {
      if (n->is_integer() && n->as_integer()->get() >= 0) {
        // Seconds, bounded as parse_duration bounds a text (1e15 ms).
        if (n->as_integer()->get() > kMaxDurationMs / 1000) fail(n, key, "duration out of range (at most 1e15 ms)");
        out = Duration(n->as_integer()->get() * 1000);
        return;
      }
      if (!n->is_string()) fail(n, key, "expected a duration such as \"30s\", \"250ms\" or \"5m\"");
      auto d = parse_duration(n->as_string()->get());
      if (!d) fail(n, key, fmt::format("invalid duration \"{}\" (use ms, s, m, h or d)", n->as_string()->get()));
      out = *d;
    }
  }
  void size(std::string_view key, std::uint64_t& out) {
    if (auto n = get(key)) {
      if (n->is_integer() && n->as_integer()->get() >= 0) {
        out = static_cast<std::uint64_t>(n->as_integer()->get());
        return;
      }
      if (!n->is_string()) fail(n, key, "expected a size such as \"256MiB\"");
      auto s = parse_size(n->as_string()->get());
      if (!s) fail(n, key, fmt::format("invalid size \"{}\" (use B, KiB, MiB, GiB, KB, MB, GB)", n->as_string()->get()));
      out = *s;
    }
  }
  void strings(std::string_view key, std::vector<std::string>& out) {
    if (auto n = get(key)) {
      auto arr = n->as_array();
      if (!arr) fail(n, key, "expected an array of strings");
      out.clear();
      for (auto& e : *arr) {
        if (!e.is_string()) fail(&e, key, "expected an array of strings");
        out.push_back(e.as_string()->get());
      }
    }
  }
  Endpoint endpoint_of(const toml::node* n, std::string_view key) {
    if (!n->is_string()) fail(n, key, "expected \"host:port\"");
    std::string text = n->as_string()->get();
    if (!text.empty() && text.front() == '/') {  // a Unix-domain socket's path
      if (text.size() >= 108) fail(n, key, fmt::format("a Unix socket path is at most 107 bytes: \"{}\"", text));
      return Endpoint{text, 0};
    }
    auto colon = text.rfind(':');
    if (colon == std::string::npos || colon == 0) fail(n, key, fmt::format("expected \"host:port\", got \"{}\"", text));
    Endpoint e;
    e.host = text.substr(0, colon);
    if (e.host.size() > 2 && e.host.front() == '[' && e.host.back() == ']') e.host = e.host.substr(1, e.host.size() - 2);
    unsigned port = 0;
    auto ps = text.substr(colon + 1);
    auto [p, ec] = std::from_chars(ps.data(), ps.data() + ps.size(), port);
    if (ec != std::errc() || p != ps.data() + ps.size() || port == 0 || port > 65535)
      fail(n, key, fmt::format("invalid port in \"{}\"", text));
    e.port = static_cast<std::uint16_t>(port);
    return e;
  }
  void endpoint(std::string_view key, Endpoint& out) {
    if (auto n = get(key)) out = endpoint_of(n, key);
  }
  template <typename Enum>
  void choice(std::string_view key, Enum& out, std::initializer_list<std::pair<const char*, Enum>> options) {
    if (auto n = get(key)) {
      if (!n->is_string()) fail(n, key, "expected a string");
      std::string v = n->as_string()->get();
      std::string names;
      for (auto& [name, value] : options) {
        if (v == name) {
          out = value;
          return;
        }
        names += names.empty() ? name : std::string(" | ") + name;
      }
      fail(n, key, fmt::format("unknown value \"{}\" (expected {})", v, names));
    }
  }
  // A changeable setting (settings.hpp): read by its kind, checked against the table's bounds.
  void setting(const Setting& st, Config& cfg) {
    auto n = get(st.name);
    if (!n) return;
    SettingValue v = st.get(cfg);
    switch (st.kind) {
      case SettingKind::Integer: {
        std::uint64_t x = 0;
        integer(st.name, x, static_cast<std::int64_t>(st.min),
                static_cast<std::int64_t>(std::min<std::uint64_t>(st.max, std::numeric_limits<std::int64_t>::max())));
        v = x;
        break;
      }
      case SettingKind::Size: {
        std::uint64_t x = 0;
        size(st.name, x);
        v = x;
        break;
      }
      case SettingKind::Duration: {
        Duration d{};
        duration(st.name, d);
        v = d;
        break;
      }
      case SettingKind::Bool: {
        bool b = false;
        boolean(st.name, b);
        v = b;
        break;
      }
      case SettingKind::Choice: {
        std::string text;
        str(st.name, text);
        v = text;
        break;
      }
    }
    if (auto problem = st.check(v); !problem.empty()) fail(n, st.name, problem);
    st.put(cfg, v);
  }
  const toml::table& table() const { return t_; }
  // Reports the first key that no reader asked for.
  void finish() const {
    for (auto&& [k, v] : t_) {
      if (!seen_.count(std::string(k.str()))) {
        throw ConfigError(fmt::format("{}:{}: {}{}: unknown key", file_, k.source().begin.line,
                                      prefix_, k.str()));
      }
    }
  }

 private:
  const toml::table& t_;
  std::string prefix_;
  const std::string& file_;
  std::set<std::string> seen_;
};

inline const toml::table* sub_table(Section& root, std::string_view key) {
  auto n = root.get(key);
  if (!n) return nullptr;
  if (!n->is_table()) root.fail(n, key, "expected a table");
  return n->as_table();
}

inline void check_name(Section& s, std::string_view key, const std::string& value, const toml::node* n) {
  if (value.empty()) s.fail(n, key, "must not be empty");
  if (value.size() > 63) s.fail(n, key, "is longer than 63 bytes");
}

inline std::string resolve_path(const std::string& p, const std::string& file) {
  if (p.empty() || p.front() == '/') return p;
  auto slash = file.rfind('/');
  return slash == std::string::npos ? p : file.substr(0, slash + 1) + p;
}

}  // namespace sluice::config
