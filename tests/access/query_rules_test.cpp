// Traffic rules: the configuration ([[rules]], [[zones]], member tags, time windows) and what the
// rules decide (first match, continue, deny, route, cache, rewrite, tags), time zones from the
// system's tz files, and counters across reloads.
#include <doctest/doctest.h>

#include <ctime>

#include "src/access/query_rules.hpp"
#include "src/config/time_zone.hpp"
#include "tests/config/load_error.hpp"

using namespace sluice;

namespace {
const char* kBase = R"(
[[users]]
name = "app"
password = "x"
[[users]]
name = "reports"
password = "x"
groups = ["bi"]
[clusters.pg]
protocol = "postgres"
primary = "127.0.0.1:5432"
replicas = ["127.0.0.1:5433", "127.0.0.1:5434"]
tags = { "127.0.0.1:5433" = { zone = "eu-1", tier = "analytics" }, "127.0.0.1:5434" = { zone = "eu-2" } }
)";

std::int64_t utc(int y, int mo, int d, int h, int mi) {
  std::tm tm{};
  tm.tm_year = y - 1900, tm.tm_mon = mo - 1, tm.tm_mday = d, tm.tm_hour = h, tm.tm_min = mi;
  return static_cast<std::int64_t>(timegm(&tm));
}

access::RuleOutcome decide(const access::QueryRules& rules, const char* text, std::string_view user = "app",
                           std::int64_t now = 0, std::string_view app = "", std::string_view addr = "10.0.0.1") {
  sql::Analysis a;
  a.of(text, sql::Dialect::Postgres);
  access::StatementFacts f;
  f.user = user;
  f.database = "app";
  f.application = app;
  f.address = addr;
  f.now = now ? now : utc(2026, 12, 7, 12, 0);
  static const std::vector<std::string> bi{"bi"};
  if (user == "reports") f.groups = &bi;
  return rules.apply(f, a);
}
}  // namespace

TEST_CASE("time zones from the tz database: offsets in winter and summer, fixed offsets, unknown names") {
  std::string err;
  auto berlin = config::TimeZone::load("Europe/Berlin", err);
  REQUIRE(berlin);
  CHECK(berlin->offset_at(utc(2026, 1, 15, 12, 0)) == 3600);
  CHECK(berlin->offset_at(utc(2026, 7, 15, 12, 0)) == 7200);
  // The switch: last Sunday of March 2026 (29th) at 01:00 UTC.
  CHECK(berlin->offset_at(utc(2026, 3, 29, 0, 59)) == 3600);
  CHECK(berlin->offset_at(utc(2026, 3, 29, 1, 0)) == 7200);
  auto ny = config::TimeZone::load("America/New_York", err);
  REQUIRE(ny);
  CHECK(ny->offset_at(utc(2026, 12, 7, 12, 0)) == -5 * 3600);
  CHECK(config::TimeZone::load("+05:30", err)->offset_at(0) == 5 * 3600 + 1800);
  CHECK(config::TimeZone::load("UTC", err)->offset_at(0) == 0);
  CHECK_FALSE(config::TimeZone::load("Mars/Olympus", err));
  CHECK(err.find("unknown time zone") != std::string::npos);
  CHECK_FALSE(config::TimeZone::load("../../etc/passwd", err));
  CHECK_FALSE(config::TimeZone::parse("TZif2 but far too short", err));
  CHECK_FALSE(config::TimeZone::parse(std::string("TZif2") + std::string(100, '\xff'), err));
}

TEST_CASE("time windows: days and hours in a time zone, past midnight") {
  auto cfg = config::load_string(std::string(kBase) + R"(
[[rules]]
name = "office"
days = "mon-fri"
hours = "09:00-17:00"
time_zone = "Europe/Berlin"
tag = "office"
[[rules]]
name = "night"
days = ["fri"]
hours = "22:00-06:00"
tag = "night"
)",
                                 "t.toml");
  const auto& office = *cfg->rules[0].on.window;
  CHECK(office.text == "mon,tue,wed,thu,fri 09:00-17:00 Europe/Berlin");
  CHECK(access::in_window(office, utc(2026, 12, 7, 8, 30)));        // Monday 09:30 in Berlin
  CHECK_FALSE(access::in_window(office, utc(2026, 12, 7, 7, 59)));  // 08:59
  CHECK_FALSE(access::in_window(office, utc(2026, 12, 7, 16, 0)));  // 17:00: the end is out
  CHECK(access::in_window(office, utc(2026, 7, 6, 7, 30)));         // summer time: 09:30 on a Monday
  CHECK_FALSE(access::in_window(office, utc(2026, 12, 5, 10, 0)));  // a Saturday
  const auto& night = *cfg->rules[1].on.window;
  CHECK(access::in_window(night, utc(2026, 12, 4, 23, 0)));       // Friday 23:00 UTC
  CHECK(access::in_window(night, utc(2026, 12, 5, 3, 0)));        // Saturday 03:00: Friday's night
  CHECK_FALSE(access::in_window(night, utc(2026, 12, 6, 3, 0)));  // Sunday 03:00: Saturday is not listed
  CHECK_FALSE(access::in_window(night, utc(2026, 12, 4, 21, 59)));
  access::QueryRules rules(cfg->rules, nullptr);
  CHECK(decide(rules, "SELECT 1", "app", utc(2026, 12, 7, 8, 30)).tag == "office");
  CHECK(decide(rules, "SELECT 1", "app", utc(2026, 12, 5, 3, 0)).tag == "night");
  CHECK_FALSE(decide(rules, "SELECT 1", "app", utc(2026, 12, 6, 3, 0)).matched);
}

TEST_CASE("rules: first match wins, continue adds, deny stops; route, tags, cache, rewrite; counters") {
  auto cfg = config::load_string(std::string(kBase) + R"(
[[rules]]
name = "tag reports"
user = "+bi"
tag = "reports"
continue = true
[[rules]]
name = "reports to analytics"
user = "+bi"
kinds = ["read"]
route_tags = { tier = "analytics" }
cache_ttl = "30s"
[[rules]]
name = "no truncate"
kinds = ["truncate"]
action = "deny"
message = "no truncating here"
[[rules]]
name = "orders on primary"
tables = ["orders"]
route = "primary"
cache = false
[[rules]]
name = "old name"
match = "legacy_items"
replace_match = "legacy_items"
replace_with = "items"
[[rules]]
name = "batch app"
application = ["batch"]
address = "10.0.0.0/8"
statement_timeout = "2s"
)",
                                 "t.toml");
  access::QueryRules rules(cfg->rules, nullptr);
  auto r = decide(rules, "SELECT * FROM t WHERE id = 1", "reports");
  CHECK(r.matched);
  CHECK(r.last_rule == 2);
  CHECK(r.tag == "reports");
  REQUIRE(r.route_tags);
  CHECK((*r.route_tags)[0].second == "analytics");
  CHECK(r.cache == true);
  CHECK(r.cache_ttl == config::Duration(30'000));
  r = decide(rules, "UPDATE t SET v = 1", "reports");  // rule 1 only: it continues, rule 2 is for reads
  CHECK(r.last_rule == 1);
  CHECK_FALSE(r.route_tags);
  r = decide(rules, "TRUNCATE t");
  CHECK(r.deny);
  CHECK(r.message == "no truncating here");
  r = decide(rules, "SELECT * FROM orders");
  CHECK(r.route == config::RouteTo::Primary);
  CHECK(r.cache == false);
  r = decide(rules, "SELECT * FROM legacy_items WHERE id = 7");
  REQUIRE(r.rewrite_rule == 4);
  std::string text = "SELECT * FROM legacy_items WHERE id = 7";
  CHECK(rules.rewrite(r.rewrite_rule, text));
  CHECK(text == "SELECT * FROM items WHERE id = 7");
  CHECK(decide(rules, "SELECT 1", "app", 0, "batch").statement_timeout == config::Duration(2000));
  CHECK_FALSE(decide(rules, "SELECT 1", "app", 0, "batch", "192.168.1.1").matched);
  CHECK_FALSE(decide(rules, "SELECT 1", "app", 0, "web").matched);
  auto rows = rules.rows();
  REQUIRE(rows.size() == 6);
  CHECK(rows[0].hits == 2);
  CHECK(rows[1].hits == 1);
  CHECK(rows[1].actions == "route_tags.tier=analytics cache_ttl=30000ms");
  CHECK(rows[0].next);
  // A reload keeps the counts of rules that did not change, and starts changed ones at zero.
  auto cfg2 = std::make_shared<config::Config>(*cfg);
  cfg2->rules[1].cache_ttl = config::Duration(60'000);
  access::QueryRules again(cfg2->rules, &rules);
  CHECK(again.rows()[0].hits == 2);
  CHECK(again.rows()[1].hits == 0);
}

TEST_CASE("rules and zones: configuration errors name the key") {
  using test::load_error;
  std::string base = kBase;
  CHECK(load_error(base + "[[rules]]\nname = \"x\"\nuser = \"app\"\n").find("rules[0].action: the rule does nothing") !=
        std::string::npos);
  CHECK(load_error(base + "[[rules]]\nroute_tags = { tier = \"gold\" }\n").find("no cluster member has the tag tier") !=
        std::string::npos);
  CHECK(load_error(base + "[[rules]]\nhours = \"9-17\"\ntag = \"x\"\n").find("rules[0].hours: expected") !=
        std::string::npos);
  CHECK(load_error(base + "[[rules]]\ndays = \"mon-fry\"\ntag = \"x\"\n").find("unknown day") != std::string::npos);
  CHECK(load_error(base + "[[rules]]\ntime_zone = \"Nowhere/City\"\ntag = \"x\"\n").find("rules[0].time_zone") !=
        std::string::npos);
  CHECK(load_error(base + "[[rules]]\nreplace_match = \"(a\"\nreplace_with = \"b\"\n").find("replace_match") !=
        std::string::npos);
  CHECK(load_error(base + "[[rules]]\nreplace_match = \"(a)\"\nreplace_with = \"\\\\2\"\n").find("replace_with") !=
        std::string::npos);
  CHECK(load_error(base + "[[rules]]\nreplace_match = \"a\"\n").find("go together") != std::string::npos);
  CHECK(load_error(base + "[[rules]]\ncache = false\ncache_ttl = \"5s\"\n").find("conflicts") != std::string::npos);
  CHECK(load_error(base + "[[rules]]\ntag = \"a\"\nname = \"n\"\n[[rules]]\ntag = \"b\"\nname = \"n\"\n")
            .find("already defined") != std::string::npos);
  CHECK(load_error(base + "[[rules]]\ntag = \"a\"\nbogus = 1\n").find("rules[0].bogus: unknown key") !=
        std::string::npos);
  CHECK(load_error(base + "[[zones]]\nname = \"eu-1\"\n").find("zones[0].addresses: is required") != std::string::npos);
  CHECK(load_error(base + "[[zones]]\nname = \"eu-1\"\naddresses = [\"10.0.0.0/33\"]\n").find("zones[0].addresses") !=
        std::string::npos);
  CHECK(load_error(std::string(kBase) +
                   "[clusters.x]\nprotocol = \"mysql\"\nprimary = \"h:1\"\ntags = { \"h:2\" = { zone = \"a\" } }\n")
            .find("\"h:2\" is not a member") != std::string::npos);
  auto ok =
      config::load_string(base + "[[zones]]\nname = \"eu-1\"\naddresses = [\"10.1.0.0/16\", \"::1\"]\n", "t.toml");
  REQUIRE(ok->zones.size() == 1);
  CHECK(ok->zones[0].addresses.size() == 2);
  CHECK(ok->clusters.at("pg").member_tags.size() == 3);
  CHECK(ok->clusters.at("pg").member_tags[1].at("tier") == "analytics");
  CHECK(ok->clusters.at("pg").member_tags[0].empty());
}

TEST_CASE("[[pools]] split: arms, a smooth turn order, errors") {
  std::string clusters = std::string(kBase) +
                         "[clusters.blue]\nprotocol = \"postgres\"\nprimary = \"10.0.0.1:5432\"\n"
                         "[clusters.green]\nprotocol = \"postgres\"\nprimary = \"10.0.0.2:5432\"\n"
                         "[clusters.my]\nprotocol = \"mysql\"\nprimary = \"10.0.0.3:3306\"\n";
  auto cfg =
      config::load_string(clusters + "[[pools]]\ndatabase = \"app\"\nsplit = { blue = 90, green = 10 }\n", "t.toml");
  const auto& p = cfg->pools[0];
  REQUIRE(p.arms.size() == 2);
  CHECK(p.cluster == "blue");
  CHECK(p.arms[1].cluster == "green");
  CHECK(p.arms[1].split.empty());
  REQUIRE(p.cycle.size() == 100);
  // Any run of new clients splits within one client of the weights.
  for (std::size_t start = 0; start < 100; start += 7) {
    int green = 0;
    for (std::size_t i = 0; i < 50; ++i) green += p.cycle[(start + i) % 100] == 1;
    CHECK(green >= 4);
    CHECK(green <= 6);
  }
  CHECK(p.arm("green") == &p.arms[1]);
  CHECK(p.arm("pg") == nullptr);
  using test::load_error;
  CHECK(load_error(clusters + "[[pools]]\ndatabase = \"app\"\nsplit = { blue = 1, my = 1 }\n").find("one protocol") !=
        std::string::npos);
  CHECK(load_error(clusters + "[[pools]]\ndatabase = \"app\"\nsplit = { blue = 1, red = 1 }\n")
            .find("no [clusters.red]") != std::string::npos);
  CHECK(
      load_error(clusters + "[[pools]]\ndatabase = \"app\"\nsplit = { blue = 0, green = 0 }\n").find("every weight") !=
      std::string::npos);
  CHECK(load_error(clusters + "[[pools]]\ndatabase = \"app\"\nsplit = { blue = 1 }\n").find("two or more") !=
        std::string::npos);
  CHECK(load_error(clusters + "[[pools]]\ndatabase = \"app\"\ncluster = \"blue\"\nsplit = { blue = 1, green = 1 }\n")
            .find("not both") != std::string::npos);
}

TEST_CASE("the rule index: a statement is checked against the rules it may match, in rule order") {
  auto cfg = config::load_string(std::string(kBase) + R"(
[[rules]]
name = "r1"
kinds = ["update"]
tag = "u"
continue = true
[[rules]]
name = "r2"
tables = ["a", "b"]
tag = "t"
continue = true
[[rules]]
name = "r3"
user = "app"
tag = "who"
continue = true
[[rules]]
name = "r4"
match = "from b"
tag = "p"
continue = true
[[rules]]
name = "r5"
fingerprint = "select * from a where x = ?"
tag = "f"
continue = true
[[rules]]
name = "r6"
kinds = ["read"]
tables = ["c"]
tag = "rc"
continue = true
)",
                                 "t.toml");
  access::QueryRules rules(cfg->rules, nullptr);
  auto tags = [&](const char* sql, std::string_view user = "app") {
    std::vector<std::size_t> hit;
    decide(rules, sql, user);
    for (auto& row : rules.rows()) hit.push_back(row.hits);
    return hit;
  };
  CHECK(tags("SELECT * FROM a WHERE x = 1") == std::vector<std::size_t>{0, 1, 1, 0, 1, 0});
  CHECK(tags("SELECT * FROM b") == std::vector<std::size_t>{0, 2, 2, 1, 1, 0});
  CHECK(tags("UPDATE c SET x = 1", "reports") == std::vector<std::size_t>{1, 2, 2, 1, 1, 0});
  CHECK(tags("SELECT 1 FROM c") == std::vector<std::size_t>{1, 2, 3, 1, 1, 1});
  // Last match wins for the tag, in rule order, whichever index found each rule.
  CHECK(decide(rules, "SELECT * FROM b").tag == "p");
  CHECK(decide(rules, "SELECT * FROM a WHERE x = 2").tag == "f");
}
