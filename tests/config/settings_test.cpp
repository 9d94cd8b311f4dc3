// The table of changeable settings (settings.hpp) is the one source of the bounds the loader,
// SHOW CONFIG and the console's SET use: the same value is refused by both, with the same words.
#include <doctest/doctest.h>

#include "src/config/config.hpp"
#include "src/config/settings.hpp"
#include "tests/config/load_error.hpp"

#include <fmt/format.h>

#include <cctype>

using namespace sluice::config;

namespace {
using sluice::test::load_error;

std::string set_error(std::string_view key, std::string_view value) {
  Config c;
  const Setting* s = find_setting(key);
  REQUIRE(s);
  return s->set_text(c, value);
}
std::string upper_case_of(std::string s) {
  for (auto& ch : s) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
  return s;
}
}  // namespace

TEST_CASE("the loader and SET refuse the same values with the same words") {
  // Each: section, key, a TOML value, the same value as SET text, the problem.
  struct Case {
    const char *section, *key, *toml, *text, *problem;
  };
  const Case cases[] = {
      {"general", "max_client_conn", "0", "0", "must be between 1 and 1000000"},
      {"general", "max_client_conn", "1000001", "1000001", "must be between 1 and 1000000"},
      {"general", "max_packet_size", "\"512B\"", "512B", "must be between 1KiB and 1GiB"},
      {"general", "max_packet_size", "\"2GiB\"", "2GiB", "must be between 1KiB and 1GiB"},
      {"general", "log_level", "\"loud\"", "loud", "unknown value \"loud\" (expected error | warn | info | debug)"},
      // Once a drift: the loader took any cache size, SET only 1KiB and more.
      {"cache", "max_bytes", "100", "100", "must be at least 1KiB"},
      {"general", "query_wait_timeout", "\"soon\"", "soon", "invalid duration \"soon\" (use ms, s, m, h or d)"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.key);
    CAPTURE(c.toml);
    CHECK(load_error(fmt::format("[{}]\n{} = {}\n", c.section, c.key, c.toml)) ==
          fmt::format("t.toml:2: {}.{}: {}", c.section, c.key, c.problem));
    CHECK(set_error(fmt::format("{}.{}", c.section, c.key), c.text) == c.problem);
  }
}

TEST_CASE("every changeable setting: SHOW CONFIG's text of the default sets the default; SET changes only it") {
  const Config defaults;
  for (const Setting& s : live_settings()) {
    CAPTURE(s.key());
    Config c;
    CHECK(s.set_text(c, s.text(defaults)) == "");
    CHECK(s.text(c) == s.text(defaults));
    CHECK(find_setting(s.key()) == &s);
    CHECK(find_setting(upper_case_of(s.key())) == &s);
  }
  Config c;
  CHECK(find_setting("max_client_conn")->set_text(c, "50") == "");
  CHECK(c.general.max_client_conn == 50);
  CHECK(find_setting("cache.enabled")->set_text(c, "on") == "");
  CHECK(c.cache.enabled);
  CHECK(find_setting("cache.default_ttl")->set_text(c, "250ms") == "");
  CHECK(c.cache.default_ttl.count() == 250);
  CHECK(find_setting("max_client_conn")->set_text(c, "5x") == "expected an integer");
  CHECK(find_setting("workers") == nullptr);  // not changeable on a running Sluice
  CHECK(find_setting("enabled") == nullptr);  // a [cache] setting needs its section
}

TEST_CASE("the loader reads the table's settings with TOML's types") {
  auto cfg = load_string(
      "[general]\nmax_client_conn = 77\nquery_wait_timeout = 5\nmax_packet_size = \"2MiB\"\n"
      "log_level = \"debug\"\n[cache]\nenabled = false\nmax_bytes = \"1MiB\"\n",
      "t.toml");
  CHECK(cfg->general.max_client_conn == 77);
  CHECK(cfg->general.query_wait_timeout.count() == 5000);
  CHECK(cfg->general.max_packet_size == 2u << 20);
  CHECK(cfg->general.log_level == "debug");
  CHECK_FALSE(cfg->cache.enabled);
  CHECK(cfg->cache.max_bytes == 1u << 20);
  CHECK(load_error("[cache]\nenabled = \"yes\"\n") == "t.toml:2: cache.enabled: expected true or false");
}
