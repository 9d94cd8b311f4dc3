// Config loading: the contract's keys, units, and errors that name file:line and key.
#include <doctest/doctest.h>

#include "src/config/config.hpp"
#include "tests/config/load_error.hpp"

using namespace sluice::config;

namespace {
std::string error_of(const std::string& text) { return sluice::test::load_error(text); }
const char* kBase = R"(
[clusters.pg]
protocol = "postgres"
primary = "127.0.0.1:5432"
)";
}  // namespace

TEST_CASE("durations and sizes with units") {
  CHECK(parse_duration("30s")->count() == 30000);
  CHECK(parse_duration("250ms")->count() == 250);
  CHECK(parse_duration("5m")->count() == 300000);
  CHECK(parse_duration("1h")->count() == 3600000);
  CHECK(parse_duration("1.5s")->count() == 1500);
  CHECK(parse_duration("10")->count() == 10000);
  CHECK_FALSE(parse_duration("10 parsecs"));
  CHECK_FALSE(parse_duration("-1s"));
  CHECK_FALSE(parse_duration(""));
  CHECK(*parse_size("256MiB") == 256ull << 20);
  CHECK(*parse_size("64KB") == 64000);
  CHECK(*parse_size("1GiB") == 1ull << 30);
  CHECK(*parse_size("100") == 100);
  CHECK_FALSE(parse_size("12 apples"));
}

TEST_CASE("the contract example loads") {
  auto cfg = load_string(R"(
[general]
workers = 0
admin_users = ["admin"]
[postgres]
listen = "127.0.0.1:6432"
[mysql]
listen = "127.0.0.1:6033"
[http]
listen = "127.0.0.1:9930"
[[users]]
name = "app"
password = "app"
[[users]]
name = "admin"
password = "admin"
[[users]]
name = "reporting"
auth = "trust"
[clusters.pg]
protocol = "postgres"
primary = "127.0.0.1:5432"
replicas = ["127.0.0.1:5433"]
[clusters.my]
protocol = "mysql"
primary = "127.0.0.1:3306"
replicas = ["127.0.0.1:3307"]
[[pools]]
database = "app"
cluster = "pg"
server_database = "app"
pool_mode = "transaction"
pool_size = 20
[[pools]]
database = "app"
cluster = "my"
pool_mode = "transaction"
pool_size = 20
[[pools]]
database = "*"
cluster = "pg"
pool_mode = "session"
pool_size = 5
[cache]
enabled = true
max_bytes = "256MiB"
default_ttl = "60s"
)", "contract.toml");
  CHECK(cfg->general.workers >= 1);
  CHECK(cfg->postgres.listen.port == 6432);
  CHECK(cfg->users.size() == 3);
  CHECK(cfg->find_user("reporting")->auth == AuthMethod::Trust);
  CHECK(cfg->clusters.at("pg").replicas.size() == 1);
  CHECK(cfg->find_pool(Protocol::Postgres, "app")->pool_size == 20);
  CHECK(cfg->find_pool(Protocol::Mysql, "app")->cluster == "my");
  CHECK(cfg->find_pool(Protocol::Postgres, "other")->database == "*");
  CHECK(cfg->find_pool(Protocol::Postgres, "other")->mode == PoolMode::Session);
  CHECK(cfg->find_pool(Protocol::Mysql, "other") == nullptr);
  CHECK(cfg->cache.max_bytes == 256ull << 20);
  CHECK(cfg->is_admin("admin"));
  CHECK_FALSE(cfg->is_admin("app"));
}

TEST_CASE("errors name file:line and key") {
  CHECK(error_of("[general]\nworkerz = 2\n") == "t.toml:2: general.workerz: unknown key");
  CHECK(error_of("[general]\nworkers = \"two\"\n") == "t.toml:2: general.workers: expected an integer");
  CHECK(error_of("[general]\n\nshutdown_timeout = \"10 parsecs\"\n") ==
        "t.toml:3: general.shutdown_timeout: invalid duration \"10 parsecs\" (use ms, s, m, h or d)");
  // A duration in seconds too large for milliseconds is refused like "1e20s", not overflowed
  // (found by fuzz_config: 5555555555555555552 * 1000 wrapped around).
  CHECK(error_of("[general]\nquery_wait_timeout = 5555555555555555552\n") ==
        "t.toml:2: general.query_wait_timeout: duration out of range (at most 1e15 ms)");
  CHECK(error_of("[general]\nquery_wait_timeout = 1000000000000\n") == "");
  CHECK(error_of("[general]\nquery_wait_timeout = 1000000000001\n") != "");
  CHECK(error_of("[postgres]\nlisten = \"localhost\"\n") ==
        "t.toml:2: postgres.listen: expected \"host:port\", got \"localhost\"");
  CHECK(error_of("[postgres]\nlisten = \"127.0.0.1:99999\"\n") ==
        "t.toml:2: postgres.listen: invalid port in \"127.0.0.1:99999\"");
  CHECK(error_of(std::string(kBase) + "[[pools]]\ndatabase = \"a\"\ncluster = \"nope\"\n") ==
        "t.toml:7: pools[0].cluster: no [clusters.nope] is defined");
  CHECK(error_of(std::string(kBase) + "[[pools]]\ndatabase = \"a\"\ncluster = \"pg\"\npool_mode = \"batch\"\n") ==
        "t.toml:8: pools[0].pool_mode: unknown value \"batch\" (expected session | transaction | statement)");
  CHECK(error_of("[[users]]\nname = \"u\"\n") == "t.toml:1: users[0].password: is required unless auth = \"trust\" or \"cert\"");
  CHECK(error_of("[[users]]\nname = \"u\"\npassword = \"p\"\nauth = \"kerberos\"\n") ==
        "t.toml:4: users[0].auth: unknown value \"kerberos\" (expected scram-sha-256 | md5 | password | trust | cert)");
  CHECK(error_of("bogus = 1\n") == "t.toml:1: bogus: unknown key");
  CHECK(error_of("[postgres]\ntls = \"require\"\n") ==
        "t.toml:2: postgres.tls_cert: is required when tls is \"allow\" or \"require\"");
  CHECK(error_of("[mysql]\ntls = \"sometimes\"\n") ==
        "t.toml:2: mysql.tls: unknown value \"sometimes\" (expected disable | allow | require)");
  CHECK(error_of("[postgres]\ntls_client_cert = \"verify-full\"\n") ==
        "t.toml:2: postgres.tls_ca: is required to verify client certificates");
  CHECK(error_of("[postgres]\ntls_min_version = \"1.1\"\n") ==
        "t.toml:2: postgres.tls_min_version: unknown value \"1.1\" (expected 1.2 | 1.3)");
  CHECK(error_of("[general]\nworkers = \n").rfind("t.toml:2: ", 0) == 0);  // TOML syntax error
  CHECK(error_of("[cache]\nmax_bytes = \"lots\"\n") ==
        "t.toml:2: cache.max_bytes: invalid size \"lots\" (use B, KiB, MiB, GiB, KB, MB, GB)");
  CHECK(error_of("[general]\nadmin_users = [\"root\"]\n") ==
        "t.toml:2: general.admin_users: \"root\" is not defined in [[users]]");
  CHECK(error_of("[mysql]\nauth_user = \"lookup\"\n") ==
        "t.toml:2: mysql.auth_user: \"lookup\" is not defined in [[users]]");
  CHECK(error_of(std::string(kBase) + "[[pools]]\ndatabase = \"a\"\ncluster = \"pg\"\n[[pools]]\ndatabase = \"a\"\ncluster = \"pg\"\n") ==
        "t.toml:9: pools[1].database: a postgres pool for \"a\" is already defined");
}

TEST_CASE("server_tls keys: modes, paths relative to the config file, certificate and key together") {
  auto cfg = load_string(std::string(kBase) +
                             "server_tls = \"verify-full\"\nserver_tls_ca = \"certs/ca.pem\"\n"
                             "server_tls_cert = \"/etc/sluice/client.pem\"\nserver_tls_key = \"certs/client.key\"\n",
                         "/etc/sluice/sluice.toml");
  const auto& c = cfg->clusters.at("pg");
  CHECK(c.server_tls == ServerTlsMode::VerifyFull);
  CHECK(c.server_tls_ca == "/etc/sluice/certs/ca.pem");
  CHECK(c.server_tls_cert == "/etc/sluice/client.pem");
  CHECK(c.server_tls_key == "/etc/sluice/certs/client.key");
  CHECK(load_string(kBase, "t.toml")->clusters.at("pg").server_tls == ServerTlsMode::Disable);
  for (auto [text, mode] : {std::pair{"disable", ServerTlsMode::Disable}, {"prefer", ServerTlsMode::Prefer},
                            {"require", ServerTlsMode::Require}, {"verify-ca", ServerTlsMode::VerifyCa}}) {
    auto c2 = load_string(std::string(kBase) + "server_tls = \"" + text + "\"\n", "t.toml");
    CHECK(c2->clusters.at("pg").server_tls == mode);
    CHECK(std::string(to_string(mode)) == text);
  }
  CHECK(error_of(std::string(kBase) + "server_tls = \"always\"\n") ==
        "t.toml:5: clusters.pg.server_tls: unknown value \"always\" (expected disable | prefer | require | verify-ca | verify-full)");
  CHECK(error_of(std::string(kBase) + "server_tls_cert = \"c.pem\"\n") ==
        "t.toml:5: clusters.pg.server_tls_key: server_tls_cert and server_tls_key go together");
}

TEST_CASE("cache rules' patterns are RE2: refused at load when they are not") {
  std::string bad = error_of("[cache]\n[[cache.rules]]\nmatch = \"(?<=x)y\"\n");  // look-behind: not RE2
  CHECK(bad.find("t.toml:3: cache.rules[0].match: invalid regular expression (RE2 syntax)") == 0);
  CHECK(error_of("[cache]\n[[cache.rules]]\nmatch = \"^select .* from (t|u)\\\\b\"\n") == "");
}

TEST_CASE("cache.shared: a Redis address, only with stream invalidation; its timeout is bounded") {
  CHECK(error_of("[cache]\nshared = \"127.0.0.1:6379\"\n")
            .find("shared: a shared store needs invalidation = \"stream\"") != std::string::npos);
  CHECK(error_of("[cache]\ninvalidation = \"stream\"\nshared = \"nowhere\"\n").find("expected \"host:port\"") !=
        std::string::npos);
  CHECK(error_of("[cache]\ninvalidation = \"stream\"\nshared = \"127.0.0.1:6379\"\nshared_timeout = \"0ms\"\n")
            .find("shared_timeout: must be from 1ms to 10s") != std::string::npos);
  auto cfg = load_string(
      "[cache]\ninvalidation = \"stream\"\nshared = \"[::1]:6380\"\nshared_password = \"pw\"\n"
      "shared_prefix = \"app1:\"\nshared_timeout = \"5ms\"\n",
      "t.toml");
  CHECK(cfg->cache.shared.host == "::1");
  CHECK(cfg->cache.shared.port == 6380);
  CHECK(cfg->cache.shared_password == "pw");
  CHECK(cfg->cache.shared_prefix == "app1:");
  CHECK(cfg->cache.shared_timeout.count() == 5);
  CHECK(load_string("[cache]\n", "t.toml")->cache.shared.port == 0);
}

TEST_CASE("Unix-domain sockets: a path in listen or as a server, its mode and group") {
  auto cfg = load_string(R"(
[postgres]
listen = ["127.0.0.1:6432", "/run/sluice/.s.PGSQL.6432"]
unix_socket_mode = "0770"
unix_socket_group = "app"
[mysql]
listen = "/run/sluice/mysqld.sock"
[clusters.pg]
protocol = "postgres"
primary = "/var/run/postgresql/.s.PGSQL.5432"
replicas = ["127.0.0.1:5433"]
)",
                         "t.toml");
  REQUIRE(cfg->postgres.listen_more.size() == 1);
  CHECK(cfg->postgres.listen_more[0].unix_socket());
  CHECK(cfg->postgres.listen_more[0].text() == "/run/sluice/.s.PGSQL.6432");
  CHECK_FALSE(cfg->postgres.listen.unix_socket());
  CHECK(cfg->postgres.unix_socket.mode == 0770);
  CHECK(cfg->postgres.unix_socket.group == "app");
  CHECK(cfg->mysql.listen.unix_socket());
  CHECK(cfg->mysql.unix_socket.mode == 0777);  // the default, as PostgreSQL's unix_socket_permissions
  CHECK(cfg->clusters.at("pg").primary.text() == "/var/run/postgresql/.s.PGSQL.5432");
  CHECK(cfg->clusters.at("pg").primary.port == 0);
  CHECK(error_of("[postgres]\nunix_socket_mode = \"0800\"\n") ==
        "t.toml:2: postgres.unix_socket_mode: \"0800\" is not an octal mode from 0000 to 0777");
  CHECK(error_of("[postgres]\nunix_socket_mode = 511\n") ==
        "t.toml:2: postgres.unix_socket_mode: expected an octal mode such as \"0770\"");
  CHECK(error_of("[postgres]\nlisten = \"/" + std::string(120, 'x') + "\"\n").find("at most 107 bytes") !=
        std::string::npos);
  CHECK(error_of("[http]\nlisten = \"/run/sluice/http.sock\"\n") ==
        "t.toml:2: http.listen: the HTTP listener takes \"host:port\"");
}
