// TOML -> Config with strict validation: unknown keys, wrong types and bad values are rejected
// with "file:line: key: problem" so operators can fix them without guessing.
#include "src/config/config.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <charconv>
#include <set>
#include <thread>
#include <re2/re2.h>
#include <toml++/toml.h>

#include <limits>

#include "src/config/front_door.hpp"
#include "src/config/traffic.hpp"
#include "src/config/section.hpp"
#include "src/config/settings.hpp"

namespace sluice::config {
namespace {

void read_listener_tls(Section& s, ListenerTls& tls, const std::string& file) {
  s.choice("tls", tls.mode, {{"disable", TlsMode::Disable}, {"allow", TlsMode::Allow}, {"require", TlsMode::Require}});
  s.str("tls_cert", tls.cert);
  s.str("tls_key", tls.key);
  s.str("tls_ca", tls.ca);
  s.choice("tls_min_version", tls.min_version, {{"1.2", std::string("1.2")}, {"1.3", std::string("1.3")}});
  s.str("tls_ciphers", tls.ciphers);
  s.choice("tls_client_cert", tls.client_cert,
           {{"none", ClientCert::None}, {"verify-ca", ClientCert::VerifyCa}, {"verify-full", ClientCert::VerifyFull}});
  if (tls.client_cert != ClientCert::None && tls.ca.empty())
    s.fail(s.get("tls_client_cert"), "tls_ca", "is required to verify client certificates");
  if (tls.mode != TlsMode::Disable) {
    if (tls.cert.empty()) s.fail(s.get("tls"), "tls_cert", "is required when tls is \"allow\" or \"require\"");
    if (tls.key.empty()) s.fail(s.get("tls"), "tls_key", "is required when tls is \"allow\" or \"require\"");
  }
  tls.cert = resolve_path(tls.cert, file);
  tls.key = resolve_path(tls.key, file);
  tls.ca = resolve_path(tls.ca, file);
}

// A user's secret: `password` in the file, or `password_file` (read at each load; one trailing
// newline dropped) or `password_env` (the variable's value), so the file itself holds none.
void read_password(Section& s, std::string& out, const std::string& file) {
  std::string path, env;
  s.str("password", out);
  s.str("password_file", path);
  s.str("password_env", env);
  int given = !out.empty() + !path.empty() + !env.empty();
  if (given > 1) s.fail(s.get(!path.empty() ? "password_file" : "password_env"), "password",
                        "give one of password, password_file and password_env");
  if (!path.empty()) {
    path = resolve_path(path, file);
    std::ifstream f(path, std::ios::binary);
    if (!f) s.fail(s.get("password_file"), "password_file", fmt::format("cannot read \"{}\"", path));
    std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    if (text.size() > 4096) s.fail(s.get("password_file"), "password_file", "longer than 4096 bytes");
    if (!text.empty() && text.back() == '\n') text.pop_back();
    if (!text.empty() && text.back() == '\r') text.pop_back();
    if (text.empty()) s.fail(s.get("password_file"), "password_file", fmt::format("\"{}\" is empty", path));
    out = std::move(text);
  }
  if (!env.empty()) {
    const char* v = std::getenv(env.c_str());
    if (!v || !*v) s.fail(s.get("password_env"), "password_env", fmt::format("the variable {} is not set", env));
    out = v;
  }
}

std::shared_ptr<const Config> build(const toml::table& root_table, const std::string& file) {
  auto cfg = std::make_shared<Config>();
  cfg->path = file;
  Section root(root_table, "", file);

  if (auto t = sub_table(root, "general")) {
    Section s(*t, "general.", file);
    s.integer("workers", cfg->general.workers, 0, 256);
    s.strings("admin_users", cfg->general.admin_users);
    s.strings("stats_users", cfg->general.stats_users);
    for (auto& st : live_settings())
      if (st.section == "general") s.setting(st, *cfg);
    s.integer("login_failure_burst", cfg->general.login_failure_burst, 1, 1'000'000);
    s.integer("max_client_prepared_statements", cfg->general.max_client_prepared_statements, 1, 10'000'000);
    s.duration("login_failure_delay", cfg->general.login_failure_delay);
    s.choice("log_format", cfg->general.log_format,
             {{"text", General::LogFormat::Text}, {"json", General::LogFormat::Json}});
    s.duration("log_min_duration", cfg->general.log_min_duration);
    s.boolean("log_parameters", cfg->general.log_parameters);
    s.str("pid_file", cfg->general.pid_file);
    s.duration("upgrade_timeout", cfg->general.upgrade_timeout);
    s.finish();
  }
  if (cfg->general.workers == 0)
    cfg->general.workers = std::max(1u, std::thread::hardware_concurrency());

  if (auto t = sub_table(root, "postgres")) {
    Section s(*t, "postgres.", file);
    cfg->postgres.enabled = true;
    s.boolean("enabled", cfg->postgres.enabled);
    read_listen(s, cfg->postgres.listen, cfg->postgres.listen_more);
    read_unix_socket(s, cfg->postgres.unix_socket);
    read_listener_proxy(s, cfg->postgres.proxy);
    s.str("server_reset_query", cfg->postgres.server_reset_query);
    s.boolean("server_reset_query_always", cfg->postgres.server_reset_query_always);
    s.integer("max_prepared_statements", cfg->postgres.max_prepared_statements, 1, 100'000);
    s.str("auth_user", cfg->postgres.auth_user);
    s.str("auth_query", cfg->postgres.auth_query);
    if (cfg->postgres.auth_query.find("$1") == std::string::npos)
      s.fail(s.get("auth_query"), "auth_query", "must take the user name as $1");
    s.str("auth_dbname", cfg->postgres.auth_dbname);
    read_listener_tls(s, cfg->postgres.tls, file);
    s.finish();
  }
  if (auto t = sub_table(root, "mysql")) {
    Section s(*t, "mysql.", file);
    cfg->mysql.enabled = true;
    s.boolean("enabled", cfg->mysql.enabled);
    read_listen(s, cfg->mysql.listen, cfg->mysql.listen_more);
    read_unix_socket(s, cfg->mysql.unix_socket);
    read_listener_proxy(s, cfg->mysql.proxy);
    s.str("server_version", cfg->mysql.server_version);
    s.choice("default_auth_plugin", cfg->mysql.default_auth_plugin,
             {{"mysql_native_password", std::string("mysql_native_password")},
              {"caching_sha2_password", std::string("caching_sha2_password")}});
    s.boolean("local_infile", cfg->mysql.local_infile);
    s.str("auth_user", cfg->mysql.auth_user);
    s.integer("max_prepared_statements", cfg->mysql.max_prepared_statements, 1, 100'000);
    read_listener_tls(s, cfg->mysql.tls, file);
    s.finish();
  }
  if (auto t = sub_table(root, "http")) {
    Section s(*t, "http.", file);
    cfg->http.enabled = true;
    s.boolean("enabled", cfg->http.enabled);
    s.endpoint("listen", cfg->http.listen);
    if (cfg->http.listen.unix_socket()) s.fail(s.get("listen"), "listen", "the HTTP listener takes \"host:port\"");
    s.finish();
  }

  if (auto n = root.get("users")) {
    auto arr = n->as_array();
    if (!arr || !arr->is_array_of_tables()) root.fail(n, "users", "expected [[users]] tables");
    std::size_t i = 0;
    for (auto& e : *arr) {
      Section s(*e.as_table(), fmt::format("users[{}].", i++), file);
      User u;
      u.line = static_cast<int>(e.source().begin.line);
      s.str_required("name", u.name);
      check_name(s, "name", u.name, s.get("name"));
      read_password(s, u.password, file);
      bool has_auth = e.as_table()->contains("auth");
      s.choice("auth", u.auth,
               {{"scram-sha-256", AuthMethod::ScramSha256}, {"md5", AuthMethod::Md5},
                {"password", AuthMethod::Password}, {"trust", AuthMethod::Trust}, {"cert", AuthMethod::Cert}});
      if (u.auth != AuthMethod::Trust && u.auth != AuthMethod::Cert && u.password.empty())
        s.fail(has_auth ? s.get("auth") : nullptr, "password",
               "is required unless auth = \"trust\" or \"cert\"");
      if (u.auth == AuthMethod::Md5 && u.password.rfind("SCRAM-SHA-256$", 0) == 0)
        s.fail(s.get("auth"), "auth", "md5 needs a plaintext password or an md5 secret, not a SCRAM verifier");
      if (u.password.rfind("SCRAM-SHA-256$", 0) == 0 && u.password.find(':') == std::string::npos)
        s.fail(s.get("password"), "password", "malformed SCRAM-SHA-256 verifier");
      if (cfg->find_user(u.name)) s.fail(s.get("name"), "name", fmt::format("duplicate user \"{}\"", u.name));
      s.strings("groups", u.groups);
      if (s.get("max_connections")) {
        std::uint32_t n = 0;
        s.integer("max_connections", n, 0, 1'000'000);
        u.max_connections = n;
      }
      if (s.get("queries_per_second")) {
        std::uint32_t n = 0;
        s.integer("queries_per_second", n, 0, 100'000'000);
        u.queries_per_second = n;
      }
      if (s.get("routing")) {
        Routing r{};
        s.choice("routing", r, {{"read_write_split", Routing::ReadWriteSplit}, {"primary_only", Routing::PrimaryOnly}});
        u.routing = r;
      }
      s.finish();
      cfg->users.push_back(std::move(u));
    }
  }

  if (auto t = sub_table(root, "clusters")) {
    for (auto&& [k, v] : *t) {
      std::string name(k.str());
      if (!v.is_table())
        throw ConfigError(fmt::format("{}:{}: clusters.{}: expected a table", file, k.source().begin.line, name));
      Section s(*v.as_table(), "clusters." + name + ".", file);
      Cluster c;
      c.name = name;
      s.choice("protocol", c.protocol, {{"postgres", Protocol::Postgres}, {"mysql", Protocol::Mysql}});
      if (!v.as_table()->contains("protocol")) s.fail(nullptr, "protocol", "is required (\"postgres\" or \"mysql\")");
      if (!v.as_table()->contains("primary")) s.fail(nullptr, "primary", "is required");
      s.endpoint("primary", c.primary);
      if (auto r = s.get("replicas")) {
        auto arr = r->as_array();
        if (!arr) s.fail(r, "replicas", "expected an array of \"host:port\"");
        for (auto& e : *arr) c.replicas.push_back(s.endpoint_of(&e, "replicas"));
      }
      s.choice("routing", c.routing, {{"read_write_split", Routing::ReadWriteSplit}, {"primary_only", Routing::PrimaryOnly}});
      s.choice("consistency", c.consistency,
               {{"read_your_writes", Consistency::ReadYourWrites}, {"eventual", Consistency::Eventual}});
      s.boolean("read_your_writes_from_login", c.read_your_writes_from_login);
      s.duration("max_replica_lag", c.max_replica_lag);
      s.choice("balance", c.balance,
               {{"least_outstanding", Balance::LeastOutstanding}, {"round_robin", Balance::RoundRobin},
                {"random", Balance::Random}});
      s.duration("health_check_period", c.health_check_period);
      if (c.health_check_period.count() < 50) s.fail(s.get("health_check_period"), "health_check_period", "must be at least 50ms");
      s.choice("reads_on_primary", c.reads_on_primary,
               {{"fallback", ReadsOnPrimary::Fallback}, {"always", ReadsOnPrimary::Always}, {"never", ReadsOnPrimary::Never}});
      s.strings("write_functions", c.write_functions);
      for (auto& f : c.write_functions)
        for (auto& ch : f) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
      s.str("health_user", c.health_user);
      if (!c.health_user.empty() && !cfg->find_user(c.health_user))
        s.fail(s.get("health_user"), "health_user", fmt::format("no [[users]] entry named \"{}\"", c.health_user));
      s.str("stream_user", c.stream_user);
      if (!c.stream_user.empty() && !cfg->find_user(c.stream_user))
        s.fail(s.get("stream_user"), "stream_user", fmt::format("no [[users]] entry named \"{}\"", c.stream_user));
      s.integer("rise", c.rise, 1, 100);
      s.choice("server_tls", c.server_tls,
               {{"disable", ServerTlsMode::Disable}, {"prefer", ServerTlsMode::Prefer}, {"require", ServerTlsMode::Require},
                {"verify-ca", ServerTlsMode::VerifyCa}, {"verify-full", ServerTlsMode::VerifyFull}});
      s.str("server_tls_ca", c.server_tls_ca);
      s.str("server_tls_cert", c.server_tls_cert);
      s.str("server_tls_key", c.server_tls_key);
      if (c.server_tls_cert.empty() != c.server_tls_key.empty())
        s.fail(s.get(c.server_tls_cert.empty() ? "server_tls_key" : "server_tls_cert"),
               c.server_tls_cert.empty() ? "server_tls_cert" : "server_tls_key",
               "server_tls_cert and server_tls_key go together");
      c.server_tls_ca = resolve_path(c.server_tls_ca, file);
      c.server_tls_cert = resolve_path(c.server_tls_cert, file);
      c.server_tls_key = resolve_path(c.server_tls_key, file);
      if (auto w = s.get("weights")) {
        auto arr = w->as_array();
        if (!arr || arr->size() != c.replicas.size() + 1)
          s.fail(w, "weights", fmt::format("expected {} integers: the primary's, then one per replica", c.replicas.size() + 1));
        for (auto& e : *arr) {
          if (!e.is_integer() || e.as_integer()->get() < 0 || e.as_integer()->get() > 1000)
            s.fail(&e, "weights", "expected integers between 0 and 1000");
          c.weights.push_back(static_cast<std::uint32_t>(e.as_integer()->get()));
        }
      }
      read_member_tags(s, c);
      s.finish();
      cfg->clusters.emplace(name, std::move(c));
    }
  }

  if (auto n = root.get("pools")) {
    auto arr = n->as_array();
    if (!arr || !arr->is_array_of_tables()) root.fail(n, "pools", "expected [[pools]] tables");
    std::size_t i = 0;
    for (auto& e : *arr) {
      Section s(*e.as_table(), fmt::format("pools[{}].", i++), file);
      Pool p;
      s.str_required("database", p.database);
      check_name(s, "database", p.database, s.get("database"));
      if (s.table().contains("split")) {
        if (s.table().contains("cluster"))
          s.fail(s.get("cluster"), "cluster", "a pool names a cluster or a split, not both");
        read_split(s, *cfg, p);
      } else {
        s.str_required("cluster", p.cluster);
      }
      auto it = cfg->clusters.find(p.cluster);
      if (it == cfg->clusters.end())
        s.fail(s.get("cluster"), "cluster", fmt::format("no [clusters.{}] is defined", p.cluster));
      p.protocol = it->second.protocol;
      s.str("server_database", p.server_database);
      s.choice("pool_mode", p.mode,
               {{"session", PoolMode::Session}, {"transaction", PoolMode::Transaction},
                {"statement", PoolMode::Statement}});
      s.integer("pool_size", p.pool_size, 1, 100'000);
      if (s.get("routing")) {
        Routing r{};
        s.choice("routing", r, {{"read_write_split", Routing::ReadWriteSplit}, {"primary_only", Routing::PrimaryOnly}});
        p.routing = r;
      }
      s.integer("min_pool_size", p.min_pool_size, 0, 100'000);
      if (p.min_pool_size > p.pool_size)
        s.fail(s.get("min_pool_size"), "min_pool_size", "must not exceed pool_size");
      if (p.database == "*" && !p.server_database.empty())
        s.fail(s.get("server_database"), "server_database", "cannot be set on the \"*\" pool");
      for (auto& other : cfg->pools)
        if (other.protocol == p.protocol && other.database == p.database)
          s.fail(s.get("database"), "database",
                 fmt::format("a {} pool for \"{}\" is already defined", to_string(p.protocol), p.database));
      s.finish();
      for (auto& [arm, weight] : p.split) {
        Pool a = p;
        a.cluster = arm;
        a.split.clear();
        a.arms.clear();
        a.cycle.clear();
        p.arms.push_back(std::move(a));
      }
      cfg->pools.push_back(std::move(p));
    }
  }

  read_access(root, *cfg, file);
  read_firewall(root, *cfg, file);
  if (auto t = sub_table(root, "digests")) {
    Section s(*t, "digests.", file);
    for (auto& st : live_settings())
      if (st.section == "digests") s.setting(st, *cfg);
    s.integer("max_fingerprints", cfg->digests.max_fingerprints, 1, 1'000'000);
    s.integer("metrics_top", cfg->digests.metrics_top, 0, 1000);
    s.finish();
  }
  if (auto t = sub_table(root, "mirror")) {
    Section s(*t, "mirror.", file);
    s.integer("queue", cfg->mirror.queue, 1, 1'000'000);
    s.duration("timeout", cfg->mirror.timeout);
    s.integer("connections", cfg->mirror.connections, 1, 64);
    s.finish();
  }
  read_zones(root, *cfg, file);
  read_rules(root, *cfg, file);
  if (auto t = sub_table(root, "limits")) {
    Section s(*t, "limits.", file);
    for (auto& st : live_settings())
      if (st.section == "limits") s.setting(st, *cfg);
    s.finish();
  }

  if (auto t = sub_table(root, "cache")) {
    Section s(*t, "cache.", file);
    cfg->cache.enabled = true;
    for (auto& st : live_settings())
      if (st.section == "cache") s.setting(st, *cfg);
    s.size("max_entry_bytes", cfg->cache.max_entry_bytes);
    s.choice("mode", cfg->cache.all, {{"rules", false}, {"all", true}});
    s.choice("invalidation", cfg->cache.stream, {{"local", false}, {"stream", true}});
    s.choice("stream_plugin", cfg->cache.stream_pgoutput, {{"test_decoding", false}, {"pgoutput", true}});
    s.str("stream_publication", cfg->cache.stream_publication);
    if (cfg->cache.stream_publication.empty() || cfg->cache.stream_publication.size() > 63)
      s.fail(s.get("stream_publication"), "stream_publication", "must be a name of 1 to 63 bytes");
    if (s.get("shared")) {
      s.endpoint("shared", cfg->cache.shared);
      if (cfg->cache.shared.unix_socket()) s.fail(s.get("shared"), "shared", "expected \"host:port\"");
      if (!cfg->cache.stream)
        s.fail(s.get("shared"), "shared",
               "a shared store needs invalidation = \"stream\" (an entry another instance filled is used only "
               "if it covers every write the change streams read)");
    }
    s.str("shared_password", cfg->cache.shared_password);
    s.str("shared_prefix", cfg->cache.shared_prefix);
    if (cfg->cache.shared_prefix.size() > 256) s.fail(s.get("shared_prefix"), "shared_prefix", "at most 256 bytes");
    s.duration("shared_timeout", cfg->cache.shared_timeout);
    if (cfg->cache.shared_timeout.count() < 1 || cfg->cache.shared_timeout.count() > 10'000)
      s.fail(s.get("shared_timeout"), "shared_timeout", "must be from 1ms to 10s");
    std::set<std::string> pooled;  // clusters pools send to
    for (auto& p : cfg->pools) {
      pooled.insert(p.cluster);
      for (auto& a : p.arms) pooled.insert(a.cluster);
    }
    if (cfg->cache.stream)
      for (auto& [name, c] : cfg->clusters)
        if (pooled.count(name) && c.stream_user.empty() && c.health_user.empty())
          s.fail(s.get("invalidation"), "invalidation",
                 fmt::format("\"stream\" needs clusters.{}.stream_user (a [[users]] entry for a role with "
                             "REPLICATION on PostgreSQL, REPLICATION SLAVE on MariaDB)",
                             name));
    if (cfg->cache.stream)
      for (auto& p : cfg->pools)
        if (p.protocol == Protocol::Postgres && p.database == "*" && p.server_database.empty())
          s.fail(s.get("invalidation"), "invalidation",
                 "\"stream\" follows the databases pools name; a pool with database = \"*\" would cache "
                 "answers from databases no change stream follows");
    if (auto n = s.get("rules")) {
      auto arr = n->as_array();
      if (!arr || !arr->is_array_of_tables()) s.fail(n, "rules", "expected [[cache.rules]] tables");
      std::size_t i = 0;
      for (auto& e : *arr) {
        Section r(*e.as_table(), fmt::format("cache.rules[{}].", i++), file);
        CacheRule rule;
        r.strings("tables", rule.tables);
        r.str("match", rule.match);
        if (!rule.match.empty()) {
          re2::RE2 re(rule.match, re2::RE2::Quiet);
          if (!re.ok()) r.fail(r.get("match"), "match", fmt::format("invalid regular expression (RE2 syntax): {}", re.error()));
        }
        r.str("database", rule.database);
        r.str("user", rule.user);
        r.duration("ttl", rule.ttl);
        r.finish();
        cfg->cache.rules.push_back(std::move(rule));
      }
    }
    s.finish();
  }
  root.finish();

  for (auto& a : cfg->general.admin_users)
    if (!cfg->find_user(a))
      throw ConfigError(fmt::format("{}:{}: general.admin_users: \"{}\" is not defined in [[users]]", file,
                                    root_table["general"]["admin_users"].node()->source().begin.line, a));
  if (!cfg->postgres.auth_user.empty() && !cfg->find_user(cfg->postgres.auth_user))
    throw ConfigError(fmt::format("{}:{}: postgres.auth_user: \"{}\" is not defined in [[users]]", file,
                                  root_table["postgres"]["auth_user"].node()->source().begin.line,
                                  cfg->postgres.auth_user));
  if (!cfg->mysql.auth_user.empty() && !cfg->find_user(cfg->mysql.auth_user))
    throw ConfigError(fmt::format("{}:{}: mysql.auth_user: \"{}\" is not defined in [[users]]", file,
                                  root_table["mysql"]["auth_user"].node()->source().begin.line, cfg->mysql.auth_user));
  return cfg;
}

}  // namespace

const char* to_string(Routing r) { return r == Routing::ReadWriteSplit ? "read_write_split" : "primary_only"; }
const char* to_string(ServerTlsMode m) {
  switch (m) {
    case ServerTlsMode::Disable: return "disable";
    case ServerTlsMode::Prefer: return "prefer";
    case ServerTlsMode::Require: return "require";
    case ServerTlsMode::VerifyCa: return "verify-ca";
    case ServerTlsMode::VerifyFull: return "verify-full";
  }
  return "?";
}
const char* to_string(Protocol p) { return p == Protocol::Postgres ? "postgres" : "mysql"; }
const char* to_string(PoolMode m) {
  switch (m) {
    case PoolMode::Session: return "session";
    case PoolMode::Transaction: return "transaction";
    case PoolMode::Statement: return "statement";
  }
  return "?";
}
const char* to_string(AuthMethod m) {
  switch (m) {
    case AuthMethod::ScramSha256: return "scram-sha-256";
    case AuthMethod::Md5: return "md5";
    case AuthMethod::Password: return "password";
    case AuthMethod::Trust: return "trust";
    case AuthMethod::Cert: return "cert";
  }
  return "?";
}

const User* Config::find_user(std::string_view name) const {
  for (auto& u : users)
    if (u.name == name) return &u;
  return nullptr;
}

const Pool* Config::find_pool(Protocol protocol, std::string_view database) const {
  const Pool* wildcard = nullptr;
  for (auto& p : pools) {
    if (p.protocol != protocol) continue;
    if (p.database == database) return &p;
    if (p.database == "*") wildcard = &p;
  }
  return wildcard;
}

bool Config::is_admin(std::string_view user) const {
  return std::find(general.admin_users.begin(), general.admin_users.end(), user) != general.admin_users.end();
}
bool Config::is_stats(std::string_view user) const {
  return is_admin(user) ||
         std::find(general.stats_users.begin(), general.stats_users.end(), user) != general.stats_users.end();
}

std::shared_ptr<const Config> load_string(const std::string& text, const std::string& name) {
  toml::table t;
  try {
    t = toml::parse(text, name);
  } catch (const toml::parse_error& e) {
    throw ConfigError(fmt::format("{}:{}: {}", name, e.source().begin.line, e.description()));
  }
  return build(t, name);
}

std::shared_ptr<const Config> load_file(const std::string& path) {
  toml::table t;
  try {
    t = toml::parse_file(path);
  } catch (const toml::parse_error& e) {
    throw ConfigError(fmt::format("{}:{}: {}", path, e.source().begin.line, e.description()));
  }
  return build(t, path);
}

}  // namespace sluice::config
