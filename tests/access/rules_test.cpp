// [[access]] rules: CIDR matching, first match wins, every criterion, counting, the refusal by
// address alone, reload keeping counts, and the config errors an operator gets.
#include <doctest/doctest.h>

#include <cstdlib>
#include <fstream>
#include <unistd.h>

#include "src/access/rules.hpp"
#include "src/config/config.hpp"
#include "tests/config/load_error.hpp"

using namespace sluice;
using config::Protocol;

namespace {

const char* kBase = R"(
[[users]]
name = "app"
password = "app"
groups = ["writers"]
[[users]]
name = "report"
password = "r"
groups = ["readers"]
[clusters.pg]
protocol = "postgres"
primary = "127.0.0.1:5432"
)";

std::shared_ptr<const config::Config> load(const std::string& rules) {
  return config::load_string(std::string(kBase) + rules, "t.toml");
}

config::Cidr cidr(const char* t) {
  std::string err;
  auto c = config::Cidr::parse(t, err);
  REQUIRE_MESSAGE(c, err);
  return *c;
}

access::Request req(std::string_view user, std::string_view db, std::string_view addr, bool tls = false,
                    Protocol p = Protocol::Postgres, const std::vector<std::string>* groups = nullptr) {
  access::Request r;
  r.protocol = p;
  r.user = user;
  r.database = db;
  r.address = addr;
  r.tls = tls;
  r.groups = groups;
  return r;
}

}  // namespace

TEST_CASE("CIDR blocks: IPv4, IPv6, mapped IPv4, bare hosts") {
  auto a = [](const char* t) { return *config::IpAddress::parse(t); };
  CHECK(cidr("10.0.0.0/8").contains(a("10.255.1.2")));
  CHECK_FALSE(cidr("10.0.0.0/8").contains(a("11.0.0.1")));
  CHECK(cidr("10.0.0.0/8").contains(a("::ffff:10.1.2.3")));  // a dual-stack listener's view
  CHECK(cidr("192.168.1.128/25").contains(a("192.168.1.200")));
  CHECK_FALSE(cidr("192.168.1.128/25").contains(a("192.168.1.127")));
  CHECK(cidr("0.0.0.0/0").contains(a("8.8.8.8")));
  CHECK_FALSE(cidr("0.0.0.0/0").contains(a("2001:db8::1")));
  CHECK(cidr("::/0").contains(a("2001:db8::1")));
  CHECK(cidr("2001:db8::/32").contains(a("2001:db8:ffff::1")));
  CHECK_FALSE(cidr("2001:db8::/32").contains(a("2001:db9::1")));
  CHECK(cidr("::1").contains(a("::1")));
  CHECK_FALSE(cidr("::1").contains(a("127.0.0.1")));
  CHECK(cidr("127.0.0.1").contains(a("127.0.0.1")));
  CHECK_FALSE(cidr("127.0.0.1").contains(a("127.0.0.2")));
  CHECK(cidr("fe80::/10").contains(a("fe80::1%lo")));
  std::string err;
  for (const char* bad : {"10.0.0.0/33", "::/129", "10.1.0.0/8", "10.0.0.0/", "10.0.0.0/a", "host.example", "", "1.2.3",
                          "10.0.0.0/8/8", "fe80::1%lo"}) {
    INFO(bad);
    CHECK_FALSE(config::Cidr::parse(bad, err));
  }
  CHECK_FALSE(config::IpAddress::parse("not an address"));
}

TEST_CASE("access rules: first match wins, on every criterion") {
  auto cfg = load(R"(
[[access]]
name = "office reports over TLS"
protocol = "postgres"
database = "reports"
user = "+readers"
address = ["10.1.0.0/16", "2001:db8::/32"]
tls = "required"
action = "allow"
auth = "md5"
[[access]]
name = "no reports otherwise"
database = "reports"
action = "reject"
[[access]]
protocol = "mysql"
address = "192.0.2.0/24"
action = "reject"
[[access]]
address = ["127.0.0.1", "::1"]
action = "allow"
auth = "trust"
[[access]]
user = ["app", "report"]
tls = "forbidden"
action = "allow"
)");
  access::Rules rules(cfg->access, nullptr);
  std::vector<std::string> readers{"readers"};
  auto v = rules.decide(req("report", "reports", "10.1.2.3", true, Protocol::Postgres, &readers));
  CHECK(v.allow);
  CHECK(v.rule == 1);
  CHECK(v.auth == config::AuthMethod::Md5);
  CHECK(v.rule_name == "office reports over TLS");
  // The same client without TLS, from elsewhere, or over MySQL falls to rule 2.
  CHECK(rules.decide(req("report", "reports", "10.1.2.3", false, Protocol::Postgres, &readers)).rule == 2);
  CHECK(rules.decide(req("report", "reports", "10.2.0.1", true, Protocol::Postgres, &readers)).rule == 2);
  CHECK(rules.decide(req("report", "reports", "10.1.2.3", true, Protocol::Mysql, &readers)).rule == 2);
  CHECK(rules.decide(req("report", "reports", "2001:db8::7", true, Protocol::Postgres, &readers)).rule == 1);
  // Not in the group: rule 2.
  CHECK(rules.decide(req("app", "reports", "10.1.2.3", true)).rule == 2);
  CHECK_FALSE(rules.decide(req("app", "reports", "10.1.2.3", true)).allow);
  // MySQL from 192.0.2.x: rejected by rule 3; PostgreSQL from there goes on to rule 5.
  CHECK(rules.decide(req("app", "app", "192.0.2.9", false, Protocol::Mysql)).rule == 3);
  CHECK(rules.decide(req("app", "app", "192.0.2.9", false, Protocol::Postgres)).rule == 5);
  // Loopback: trust.
  v = rules.decide(req("anyone", "app", "::1"));
  CHECK(v.rule == 4);
  CHECK(v.auth == config::AuthMethod::Trust);
  // Rule 5 forbids TLS; nothing after it: refused, rule 0.
  v = rules.decide(req("app", "app", "203.0.113.1", true));
  CHECK_FALSE(v.allow);
  CHECK(v.rule == 0);
  CHECK(rules.decide(req("app", "app", "203.0.113.1", false)).rule == 5);
  // An address Sluice could not parse matches only rules without addresses.
  CHECK(rules.decide(req("app", "app", "unknown", false)).rule == 5);

  auto rows = rules.rows();
  REQUIRE(rows.size() == 5);
  CHECK(rows[0].matches == 2);
  CHECK(rows[1].matches == 5);
  CHECK(rows[0].address == "10.1.0.0/16,2001:db8::/32");
  CHECK(rows[0].user == "+readers");
  CHECK(rows[4].address == "*");
  CHECK(rows[4].name == "rule 5");
  CHECK(rules.unmatched() == 1);
}

TEST_CASE("access rules: none means everyone; a refusal by address alone") {
  access::Rules none({}, nullptr);
  CHECK(none.decide(req("x", "y", "1.2.3.4")).allow);
  CHECK_FALSE(none.refused_by_address(Protocol::Mysql, "1.2.3.4"));

  auto cfg = load(R"(
[[access]]
address = "198.51.100.0/24"
action = "reject"
[[access]]
address = "10.0.0.0/8"
user = "app"
action = "reject"
[[access]]
protocol = "postgres"
address = "192.0.2.0/24"
action = "allow"
[[access]]
address = "10.0.0.0/8"
action = "allow"
)");
  access::Rules rules(cfg->access, nullptr);
  auto v = rules.refused_by_address(Protocol::Mysql, "198.51.100.5");
  REQUIRE(v);
  CHECK(v->rule == 1);
  // 10.x: rule 2 depends on the user, so the address alone decides nothing.
  CHECK_FALSE(rules.refused_by_address(Protocol::Mysql, "10.0.0.1"));
  // 192.0.2.x over MySQL: no rule can ever match.
  v = rules.refused_by_address(Protocol::Mysql, "192.0.2.1");
  REQUIRE(v);
  CHECK(v->rule == 0);
  CHECK_FALSE(rules.refused_by_address(Protocol::Postgres, "192.0.2.1"));
  CHECK(rules.rows()[0].matches == 1);
  CHECK(rules.unmatched() == 1);
}

TEST_CASE("access rules: a reload keeps the counts of unchanged rules") {
  auto a = load(R"(
[[access]]
address = "10.0.0.0/8"
action = "allow"
[[access]]
action = "reject"
)");
  access::Rules first(a->access, nullptr);
  first.decide(req("app", "app", "10.0.0.1"));
  first.decide(req("app", "app", "11.0.0.1"));
  auto b = load(R"(
[[access]]
address = "10.0.0.0/8"
action = "allow"
[[access]]
address = "11.0.0.0/8"
action = "allow"
[[access]]
action = "reject"
)");
  access::Rules second(b->access, &first);
  auto rows = second.rows();
  CHECK(rows[0].matches == 1);  // same rule
  CHECK(rows[1].matches == 0);  // new
  CHECK(rows[2].matches == 0);  // "rule 3" now: its name is part of what it is
}

TEST_CASE("access rules: the refusal's words") {
  access::Verdict none{false, 0, std::nullopt, {}};
  CHECK(access::refusal_text(none, "10.0.0.1", "app", "db", false) ==
        "no access rule for host \"10.0.0.1\", user \"app\", database \"db\", no encryption");
  access::Verdict rule{false, 3, std::nullopt, "x"};
  CHECK(access::refusal_text(rule, "::1", "app", "db", true) ==
        "access rule 3 rejects connection for host \"::1\", user \"app\", database \"db\", SSL encryption");
}

TEST_CASE("access and front-door config errors name file:line and key") {
  auto err = [](const std::string& rules) { return test::load_error(std::string(kBase) + rules); };
  CHECK(err("[[access]]\naddress = \"10.0.0.0/33\"\naction = \"allow\"\n").find("access[0].address") !=
        std::string::npos);
  CHECK(err("[[access]]\naddress = \"10.0.0.0/8\"\n").find("access[0].action: is required") != std::string::npos);
  CHECK(err("[[access]]\naction = \"deny\"\n").find("unknown value \"deny\"") != std::string::npos);
  CHECK(err("[[access]]\naction = \"reject\"\nauth = \"trust\"\n").find("only an allow rule") != std::string::npos);
  CHECK(err("[[access]]\nuser = \"+nobody\"\naction = \"allow\"\n").find("group \"nobody\"") != std::string::npos);
  CHECK(err("[[access]]\nuser = [\"*\", \"app\"]\naction = \"allow\"\n").find("cannot be listed") != std::string::npos);
  CHECK(err("[[access]]\nuser = []\naction = \"allow\"\n").find("matches nothing") != std::string::npos);
  CHECK(err("[[access]]\ntls = \"maybe\"\naction = \"allow\"\n").find("access[0].tls") != std::string::npos);
  CHECK(err("[[access]]\nport = 5\naction = \"allow\"\n").find("access[0].port: unknown key") != std::string::npos);
  CHECK(err("[postgres]\nproxy_protocol_only = true\n").find("needs proxy_protocol_trusted") != std::string::npos);
  CHECK(err("[postgres]\nproxy_protocol_trusted = [\"lb.example\"]\n").find("postgres.proxy_protocol_trusted") !=
        std::string::npos);
  CHECK(err("[postgres]\nlisten = [\"127.0.0.1:1\", \"127.0.0.1:1\"]\n").find("listed twice") != std::string::npos);
  auto cfg = load(
      "[postgres]\nlisten = [\"127.0.0.1:6432\", \"[::1]:6432\"]\nproxy_protocol_trusted = [\"10.0.0.5\", "
      "\"fd00::/8\"]\nproxy_protocol_only = true\n");
  CHECK(cfg->postgres.listen.text() == "127.0.0.1:6432");
  REQUIRE(cfg->postgres.listen_more.size() == 1);
  CHECK(cfg->postgres.listen_more[0].host == "::1");
  CHECK(cfg->postgres.proxy.trusted.size() == 2);
  CHECK(cfg->postgres.proxy.only);
  // Any address, spelled out.
  CHECK(load("[[access]]\naddress = \"*\"\naction = \"allow\"\n")->access[0].addresses.empty());
}

TEST_CASE("secrets out of the file: password_file and password_env") {
  const std::string path = "/tmp/sluice-unit-secret-" + std::to_string(::getpid());
  {
    std::ofstream f(path);
    f << "s3cret\n";
  }
  ::setenv("SLUICE_UNIT_SECRET", "from-env", 1);
  auto cfg = config::load_string(R"(
[[users]]
name = "a"
password_file = ")" + path + R"("
[[users]]
name = "b"
password_env = "SLUICE_UNIT_SECRET"
)",
                                 "t.toml");
  CHECK(cfg->users[0].password == "s3cret");  // the trailing newline is not part of it
  CHECK(cfg->users[1].password == "from-env");
  auto err = [](const std::string& t) { return test::load_error(t); };
  CHECK(err("[[users]]\nname = \"a\"\npassword = \"x\"\npassword_env = \"SLUICE_UNIT_SECRET\"\n").find("give one of") !=
        std::string::npos);
  CHECK(err("[[users]]\nname = \"a\"\npassword_env = \"SLUICE_UNIT_NOT_SET_ANYWHERE\"\n").find("is not set") !=
        std::string::npos);
  CHECK(err("[[users]]\nname = \"a\"\npassword_file = \"/nonexistent/secret\"\n").find("cannot read") !=
        std::string::npos);
  // The error never shows the secret itself.
  CHECK(err("[[users]]\nname = \"a\"\npassword_file = \"" + path + "\"\nauth = \"md7\"\n").find("s3cret") ==
        std::string::npos);
  std::remove(path.c_str());
}
