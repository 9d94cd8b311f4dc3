// The firewall's decision: rules by kind, table, pattern, fingerprint, user and address, first
// match wins; learning and enforcing the allow-list; the allow-list file round trip.
#include <doctest/doctest.h>

#include <cstdio>
#include <fstream>
#include <unistd.h>

#include "src/access/firewall.hpp"
#include "src/config/config.hpp"
#include "tests/config/load_error.hpp"

using namespace sluice;

namespace {
const char* kBase = R"(
[[users]]
name = "app"
password = "x"
[[users]]
name = "ops"
password = "x"
groups = ["dba"]
[clusters.pg]
protocol = "postgres"
primary = "127.0.0.1:5432"
)";

access::StatementFacts req(std::string_view user, std::string_view addr = "10.0.0.1",
                           const std::vector<std::string>* groups = nullptr) {
  access::StatementFacts r;
  r.user = user;
  r.database = "app";
  r.address = addr;
  r.groups = groups;
  return r;
}
// The firewall's verdict on `text` (an Analysis per call, as a session's for a new text).
access::FirewallVerdict judge(const config::Firewall& cfg, const access::FirewallRules& rules, access::Allowlist& list,
                              const access::StatementFacts& f, const char* text) {
  sql::Analysis a;
  a.of(text, sql::Dialect::Postgres);
  return access::check_statement(cfg, rules, list, f, a);
}
}  // namespace

TEST_CASE("firewall rules: kinds, tables, patterns, fingerprints, users; first match wins") {
  auto cfg = config::load_string(std::string(kBase) + R"(
[firewall]
[[firewall.rules]]
name = "dba may"
user = "+dba"
action = "allow"
[[firewall.rules]]
name = "no ddl"
kinds = ["ddl", "grant"]
action = "deny"
[[firewall.rules]]
tables = ["secrets"]
action = "deny"
[[firewall.rules]]
match = "pg_sleep"
action = "deny"
[[firewall.rules]]
fingerprint = "delete from t"
address = "10.0.0.0/8"
action = "deny"
)",
                                 "t.toml");
  access::FirewallRules rules(cfg->firewall.rules, nullptr);
  access::Allowlist list;
  auto check = [&](const char* sql, std::string_view user = "app", std::string_view addr = "10.0.0.1",
                   const std::vector<std::string>* groups = nullptr) {
    return judge(cfg->firewall, rules, list, req(user, addr, groups), sql);
  };
  CHECK(check("SELECT 1").allow);
  auto v = check("DROP TABLE t");
  CHECK_FALSE(v.allow);
  CHECK(v.rule == 2);
  CHECK(check("select 1; truncate t").rule == 2);  // any statement of the text
  CHECK(check("GRANT ALL ON t TO x").rule == 2);
  CHECK(check("SELECT * FROM secrets WHERE id = 1").rule == 3);
  CHECK(check("SELECT pg_sleep(10)").rule == 4);
  CHECK(check("DELETE FROM t").rule == 5);
  CHECK(check("DELETE FROM t", "app", "192.168.0.1").allow);  // the rule is for 10/8 only
  CHECK(check("DELETE FROM t WHERE id = 1").allow);           // another fingerprint
  std::vector<std::string> dba{"dba"};
  v = check("DROP TABLE t", "ops", "10.0.0.1", &dba);
  CHECK(v.allow);
  CHECK(v.rule == 1);
  auto rows = rules.rows();
  REQUIRE(rows.size() == 5);
  CHECK(rows[1].hits == 3);
  CHECK(rows[1].what == "kinds=ddl,grant");
  CHECK(list.denied() == 6);
}

TEST_CASE("firewall: learning fills the allow-list, enforcing refuses what is not on it; the file round trip") {
  const std::string path = "/tmp/sluice-unit-allow-" + std::to_string(::getpid());
  auto cfg = std::make_shared<config::Config>(*config::load_string(
      std::string(kBase) + "[firewall]\nmode = \"learning\"\nallowlist_file = \"" + path + "\"\n", "t.toml"));
  access::FirewallRules rules({}, nullptr);
  access::Allowlist list;
  auto check = [&](const char* sql, std::string_view user = "app") {
    return judge(cfg->firewall, rules, list, req(user), sql);
  };
  CHECK(check("SELECT * FROM t WHERE id = 1").allow);
  CHECK(check("SELECT * FROM t WHERE id = 2").allow);
  CHECK(check("SELECT 'tab\there'").allow);
  CHECK(check("UPDATE t SET v = 1", "ops").allow);
  auto rows = list.rows();
  REQUIRE(rows.size() == 3);
  CHECK(rows[0].user == "app");
  CHECK(rows[0].seen + rows[1].seen == 3);
  CHECK(list.save_if_dirty(path).empty());
  CHECK(list.save_if_dirty("/nonexistent/dir/x").empty());  // nothing new: nothing written
  cfg->firewall.mode = "enforcing";
  CHECK(check("SELECT * FROM t WHERE id = 99").allow);  // same shape
  auto v = check("SELECT * FROM t WHERE id = 1 OR 1 = 1");
  CHECK_FALSE(v.allow);
  CHECK(v.unlisted);
  CHECK(v.fingerprint == "select * from t where id = ? or ? = ?");
  CHECK_FALSE(check("UPDATE t SET v = 1").allow);  // learned for ops, not app
  CHECK(check("UPDATE t SET v = 2", "ops").allow);
  // The file, re-read: the same list (a quoted identifier with a tab survives the escaping).
  access::Allowlist again;
  CHECK(again.load(path).empty());
  CHECK(again.rows().size() == 3);
  CHECK(again.allowed("app", "select * from t where id = ?"));
  // An operator's edit: one line gone.
  {
    std::ifstream in(path);
    std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>()), kept;
    std::size_t pos = 0;
    for (std::size_t nl; (nl = all.find('\n', pos)) != std::string::npos; pos = nl + 1) {
      std::string line = all.substr(pos, nl - pos + 1);
      if (line.find("update") == std::string::npos) kept += line;
    }
    std::ofstream(path) << kept;
  }
  CHECK(list.load(path).empty());
  CHECK_FALSE(check("UPDATE t SET v = 2", "ops").allow);
  std::ofstream(path) << "no tab here\n";
  CHECK_FALSE(list.load(path).empty());
  std::remove(path.c_str());
}

TEST_CASE("firewall config errors") {
  auto err = [](const std::string& t) { return test::load_error(std::string(kBase) + t); };
  CHECK(err("[firewall]\nmode = \"enforcing\"\n").find("allowlist_file") != std::string::npos);
  CHECK(err("[firewall]\nmode = \"strict\"\n").find("unknown value") != std::string::npos);
  CHECK(err("[[firewall.rules]]\nmatch = \"(\"\naction = \"deny\"\n").find("invalid regular expression") !=
        std::string::npos);
  CHECK(err("[[firewall.rules]]\nkinds = [\"drop\"]\n").find("action: is required") != std::string::npos);
}
