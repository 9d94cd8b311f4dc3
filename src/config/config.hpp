// Typed, validated configuration loaded from TOML. Every error names file:line and the key.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "src/config/cidr.hpp"
#include "src/config/units.hpp"

namespace sluice::config {

class ConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

enum class Protocol { Postgres, Mysql };
enum class PoolMode { Session, Transaction, Statement };
enum class AuthMethod { ScramSha256, Md5, Password, Trust, Cert };
enum class Routing { ReadWriteSplit, PrimaryOnly };
enum class Consistency { ReadYourWrites, Eventual };
enum class Balance { LeastOutstanding, RoundRobin, Random };
enum class ReadsOnPrimary { Fallback, Always, Never };

const char* to_string(Protocol p);
const char* to_string(PoolMode m);
const char* to_string(AuthMethod m);
const char* to_string(Routing r);

// "host:port", or the path of a Unix-domain socket (host = the path, port = 0).
struct Endpoint {
  std::string host;
  std::uint16_t port = 0;
  bool unix_socket() const { return !host.empty() && host.front() == '/'; }
  std::string text() const {
    if (unix_socket()) return host;
    return (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" + std::to_string(port);
  }
  bool operator==(const Endpoint&) const = default;
};

struct General {
  unsigned workers = 0;  // 0 in the file means one per core; resolved at load
  std::vector<std::string> admin_users, stats_users;
  std::uint32_t max_client_conn = 10000;
  Duration shutdown_timeout{30'000};
  Duration client_login_timeout{60'000};
  Duration client_idle_timeout{0};  // 0 = never
  Duration server_connect_timeout{5'000};
  Duration server_idle_timeout{600'000};
  Duration server_lifetime{3'600'000};
  Duration query_wait_timeout{120'000};
  // Failed logins per client address: this many pass at once, then one per second; past that
  // each failure's answer is held for login_failure_delay (0 = no throttling).
  std::uint32_t login_failure_burst = 10;
  // Prepared statements one client may hold at once (PostgreSQL named statements, MySQL
  // COM_STMT_PREPARE); a client past it gets an error (54000 / 1461).
  std::uint32_t max_client_prepared_statements = 10'000;
  Duration login_failure_delay{1'000};
  std::uint64_t max_packet_size = 64ull << 20;
  std::string log_level = "info";
  // Log lines as text, or one JSON object per line (src/observe/log.hpp).
  enum class LogFormat { Text, Json } log_format = LogFormat::Text;
  // Statements that take at least this long are logged ("slow_query") with their fingerprint;
  // 0 = off. Their text with its values only with log_parameters.
  Duration log_min_duration{0};
  bool log_parameters = false;
  // Written with the process id once the listeners are up (an online upgrade's new process
  // writes its own); removed at exit if it still names this process. Empty: none.
  std::string pid_file;
  // Online upgrade: how long the old process goes on serving the clients that cannot move (TLS,
  // LISTEN, pinned or session-mode ones, the console) before it shuts down for them as on
  // SIGTERM. 0: until they leave.
  Duration upgrade_timeout{0};
};

enum class TlsMode { Disable, Allow, Require };
// Client certificates on a TLS listener: none (not required), verify-ca (a certificate signed by
// tls_ca), verify-full (and its CN is the user name), as pg_hba.conf's clientcert.
enum class ClientCert { None, VerifyCa, VerifyFull };

// TLS for a client-facing listener. Paths are resolved against the config file's directory.
struct ListenerTls {
  TlsMode mode = TlsMode::Disable;
  std::string cert, key, ca;     // PEM files; ca: to verify client certificates (optional)
  std::string min_version = "1.2";  // "1.2" | "1.3"
  std::string ciphers;           // OpenSSL cipher list for TLS 1.2 ("" = OpenSSL's default)
  ClientCert client_cert = ClientCert::None;
  bool operator==(const ListenerTls&) const = default;
};

// Clients behind a load balancer that sends the PROXY protocol header (v1 or v2): peers in
// `trusted` must begin with one, and its source address becomes the client's; a header from any
// other peer is refused and never changes an address. `only`: peers outside `trusted` are refused.
struct ListenerProxy {
  std::vector<Cidr> trusted;
  bool only = false;
  bool operator==(const ListenerProxy&) const = default;
};

// A `listen` entry that is a path is a Unix-domain socket: created with this mode (octal, as
// PostgreSQL's unix_socket_permissions) and, when set, this group.
struct UnixSocketOptions {
  unsigned mode = 0777;
  std::string group;
  std::string owner;  // a user name; "" = the process's (changing it needs root or CAP_CHOWN)
  bool operator==(const UnixSocketOptions&) const = default;
};

struct PostgresListener {
  bool enabled = false;
  Endpoint listen{"127.0.0.1", 6432};
  std::vector<Endpoint> listen_more;  // `listen` given as a list: the addresses after the first
  UnixSocketOptions unix_socket;      // for a path among them
  ListenerTls tls;
  ListenerProxy proxy;
  std::string server_reset_query = "DISCARD ALL";
  bool server_reset_query_always = false;
  std::uint32_t max_prepared_statements = 256;  // per server connection (LRU)
  // Users absent from [[users]]: with auth_user (a [[users]] entry whose server role may read
  // the query's catalog), Sluice runs auth_query on the primary with the user's name as $1 and
  // takes the secret (SCRAM verifier or md5 hash) from its first column; a second column, when
  // true, marks the role expired. auth_dbname: where the query runs ("" = the database the client
  // asked for).
  std::string auth_user;
  std::string auth_query =
      "SELECT rolpassword, rolvaliduntil IS NOT NULL AND rolvaliduntil < now() FROM pg_catalog.pg_authid "
      "WHERE rolname = $1 AND rolcanlogin";
  std::string auth_dbname;
};

struct MysqlListener {
  bool enabled = false;
  Endpoint listen{"127.0.0.1", 6033};
  std::vector<Endpoint> listen_more;
  UnixSocketOptions unix_socket;
  ListenerTls tls;
  ListenerProxy proxy;
  std::string server_version = "";        // announced to clients; empty = "<server's>-sluice"
  std::string default_auth_plugin = "mysql_native_password";  // or caching_sha2_password
  bool local_infile = false;                // advertise LOCAL_FILES (LOAD DATA LOCAL INFILE)
  // A [[users]] entry whose server account may read mysql.user: users absent from [[users]]
  // are then looked up on the server (mysql_native_password hashes). Empty: unknown users are refused.
  std::string auth_user;
  std::uint32_t max_prepared_statements = 256;  // per server connection (LRU)
};

struct Http {
  bool enabled = false;
  Endpoint listen{"127.0.0.1", 9930};
};

struct User {
  std::string name;
  std::string password;  // plaintext, or a stored secret (SCRAM-SHA-256$..., md5..., *HEX)
  AuthMethod auth = AuthMethod::ScramSha256;
  std::optional<Routing> routing;  // overrides pool and cluster
  std::vector<std::string> groups;  // what [[access]] rules name as "+group"
  std::optional<std::uint32_t> max_connections;     // overrides [limits] max_connections_per_user
  std::optional<std::uint32_t> queries_per_second;  // overrides [limits] queries_per_second_per_user
  int line = 0;
};

// One [[access]] rule (ordered, the first that matches decides, as pg_hba.conf). An empty list
// matches anything.
enum class AccessTls { Any, Required, Forbidden };
struct AccessRule {
  std::string name;                    // for SHOW ACCESS and the log (default: "rule N")
  std::optional<Protocol> protocol;    // none = both listeners
  std::vector<std::string> databases;  // names; the console is "sluice"
  std::vector<std::string> users;      // names, or "+group" for members of [[users]] groups
  std::vector<Cidr> addresses;         // the client's (real) address
  AccessTls tls = AccessTls::Any;
  bool allow = true;                   // action = "allow" | "reject"
  std::optional<AuthMethod> auth;      // allow: the method asked of these clients (default: the user's)
  int line = 0;
};

// TLS from Sluice to a cluster's servers, as libpq's sslmode: prefer (TLS when the server offers
// it), require (TLS, no verification), verify-ca (chain against server_tls_ca), verify-full (and
// the server's name or IP address in its certificate).
enum class ServerTlsMode { Disable, Prefer, Require, VerifyCa, VerifyFull };
const char* to_string(ServerTlsMode m);

struct Cluster {
  std::string name;
  Protocol protocol = Protocol::Postgres;
  Endpoint primary;
  std::vector<Endpoint> replicas;
  std::vector<std::uint32_t> weights;  // per member: primary first, then replicas (default 1)
  Routing routing = Routing::ReadWriteSplit;
  Consistency consistency = Consistency::ReadYourWrites;
  // read_your_writes for writes made before this client connected, through another Sluice
  // instance or directly: a new client's token is the primary's position when its first
  // statement leases the primary (that statement goes there).
  bool read_your_writes_from_login = false;
  Duration max_replica_lag{10'000};
  Balance balance = Balance::LeastOutstanding;
  Duration health_check_period{500};
  ReadsOnPrimary reads_on_primary = ReadsOnPrimary::Fallback;
  std::vector<std::string> write_functions;  // more functions that send a read to the primary
  std::string health_user;                   // [[users]] entry the health checks log in as
  // [[users]] entry the cache's change stream logs in as (a role with REPLICATION); default:
  // health_user.
  std::string stream_user;
  std::uint32_t rise = 2;                    // good checks before a failed member is used again
  ServerTlsMode server_tls = ServerTlsMode::Disable;
  std::string server_tls_ca;                 // PEM CA file (verify-*); "" = the system's CAs
  std::string server_tls_cert, server_tls_key;  // Sluice's client certificate (optional)
  // Per member, primary first then replicas (`tags`, keyed by "host:port"): zone = "eu-1", ...
  std::vector<std::map<std::string, std::string>> member_tags;
};

struct Pool {
  std::string database;  // "*" = any database not listed, passed through as is
  std::string cluster;
  std::string server_database;  // empty = same as the client's database
  PoolMode mode = PoolMode::Transaction;
  std::uint32_t pool_size = 20;
  std::uint32_t min_pool_size = 0;
  Protocol protocol = Protocol::Postgres;  // the cluster's, filled at load
  std::optional<Routing> routing;          // overrides the cluster's
  // split = { blue = 90, green = 10 } instead of `cluster`: each new client is placed on one of
  // these clusters in proportion to the weights (in turn, smoothly: 1,000 clients split exactly
  // 900 / 100) and stays there for its whole session. `cluster` is then the first arm's.
  std::vector<std::pair<std::string, std::uint32_t>> split;
  std::vector<Pool> arms;            // filled at load: this pool once per arm, with that arm's cluster
  std::vector<std::uint16_t> cycle;  // the order arms take new clients in (one turn of the weights)
  // The arm on `cluster` of a split pool (null: none); a pool without a split is its own arm.
  const Pool* arm(std::string_view cluster) const {
    if (split.empty()) return cluster == this->cluster ? this : nullptr;
    for (auto& a : arms)
      if (a.cluster == cluster) return &a;
    return nullptr;
  }
  // This pool on a cluster a [[rules]] `cluster` sends statements to (filled at load).
  std::vector<Pool> rule_arms;
  const Pool* on_rule_cluster(std::string_view cluster) const {
    for (auto& a : rule_arms)
      if (a.cluster == cluster) return &a;
    return nullptr;
  }
};

struct CacheRule {
  std::vector<std::string> tables;  // any of these tables read (empty = any)
  std::string match;                // RE2 pattern searched in the normalized text (empty = any)
  std::string database, user;       // empty = any
  Duration ttl{0};                  // 0 = [cache] default_ttl
};

struct Cache {
  bool enabled = false;
  std::uint64_t max_bytes = 256ull << 20;
  std::uint64_t max_entry_bytes = 1ull << 20;
  Duration default_ttl{60'000};
  bool all = false;  // mode = "all": every cacheable read; "rules": rules and hints only
  std::vector<CacheRule> rules;
  // invalidation = "stream": also follow each PostgreSQL cluster's primary through logical
  // decoding, so writes that bypass Sluice invalidate too; "local" (default): writes through
  // this Sluice only. stream_plugin: "test_decoding" (default: no publication, every table) or
  // "pgoutput" (the tables of publication `stream_publication`, which the operator makes).
  bool stream = false;
  bool stream_pgoutput = false;
  std::string stream_publication = "sluice";
  // shared = "host:port": a Redis or Valkey server several instances share as a second-level
  // store (src/state/shared_cache): a miss here asks it before the database. Needs "stream"
  // invalidation (an entry is used only if its position covers every write the streams read).
  Endpoint shared;  // port 0: none
  std::string shared_password;
  std::string shared_prefix = "sluice:";
  Duration shared_timeout{20};
};

// [limits]: client connections and request rates (0 = no limit). All changeable with SET.
// Connection counts hold while a client is connected; admin and stats users on the console are
// not counted against the user and database limits (an operator can always get in).
struct Limits {
  std::uint32_t max_connections_per_user = 0;
  std::uint32_t max_connections_per_database = 0;
  std::uint32_t max_connections_per_address = 0;
  // New connections per second from one address, decided at accept, before any TLS or password
  // work (a burst of this many, then this many per second).
  std::uint32_t connections_per_second_per_address = 0;
  // Requests per second: PostgreSQL counts each request a client starts outside a transaction
  // (an autocommit statement, or a whole BEGIN...COMMIT), MySQL each COM_QUERY and
  // COM_STMT_EXECUTE. A burst of one second's worth passes at once.
  std::uint32_t queries_per_second_per_user = 0;
  std::uint32_t queries_per_second_per_address = 0;
  // Over the rate: "queue" holds the request (up to rate_limit_max_wait, then refuses), "refuse"
  // answers it at once with a retryable error (PostgreSQL 53400, MySQL 1226).
  std::string rate_limit_action = "queue";
  Duration rate_limit_max_wait{1'000};
};

// A time-of-day window on some days of the week, in a time zone (an IANA name read from the
// system's tz database at load, or "UTC"): [from, to) in minutes after midnight; a window whose
// `to` is not after `from` runs past midnight ("22:00-06:00"), the days naming where it starts.
class TimeZone;
struct TimeWindow {
  std::uint8_t days = 0x7f;  // bit 0 Sunday ... bit 6 Saturday
  int from_minute = 0, to_minute = 24 * 60;
  std::string time_zone = "UTC";
  std::shared_ptr<const TimeZone> zone;  // loaded from time_zone
  std::string text;                      // as SHOW RULES prints it
};

// What a statement rule matches, the same for [[firewall.rules]] and [[rules]] (one rule engine,
// src/access/statement_rules). Empty lists match anything.
struct StatementMatch {
  std::optional<Protocol> protocol;
  std::vector<std::string> users, databases;  // names ("+group" for users)
  std::vector<std::string> applications;      // PostgreSQL application_name, MySQL program_name
  std::vector<Cidr> addresses;
  std::vector<std::string> kinds;    // verbs ("drop", "truncate", "grant"...) or kinds (ddl, dml, dcl, read)
  std::vector<std::string> tables;   // any of these tables touched
  std::string pattern;               // `match`: RE2 searched in the fingerprint
  std::string fingerprint;           // exactly this fingerprint
  std::optional<TimeWindow> window;  // `days`, `hours`, `time_zone`
  // One line for SHOW: "user=app tables=t match=..." ("" when it matches everything).
  std::string describe() const;
  // A stable text of the whole match, to keep a rule's counters across reloads.
  std::string key() const;
};

// [firewall]: statements checked before they reach a server. Rules first (ordered, the first
// that matches decides: deny with 42501 / 1142, or allow); then, in "enforcing" mode, a
// statement whose fingerprint is not on the user's allow-list is denied. "learning" records
// every fingerprint per user on that list (allowlist_file, written by Sluice) and denies nothing
// the rules do not.
struct FirewallRule {
  std::string name;  // SHOW FIREWALL_RULES and the log (default "rule N")
  StatementMatch on;
  bool deny = true;  // action = "deny" | "allow"
  int line = 0;
};
struct Firewall {
  std::string mode = "off";  // off | learning | enforcing (changeable with SET)
  std::string allowlist_file;
  std::vector<FirewallRule> rules;
};

// [[rules]]: traffic rules, ordered; the first that matches applies its actions and ends the
// search, unless it says `continue = true` (then later matches add to, or override, its actions).
enum class RouteTo { Default, Primary, Replica };
struct QueryRule {
  std::string name;  // SHOW RULES, metrics and the log (default "rule N")
  StatementMatch on;
  bool next = false;  // continue = true
  // Actions (any number):
  RouteTo route = RouteTo::Default;  // route = "primary" (reads too) | "replica" (as the hint)
  // Reads go to members carrying all these tags (clusters' `tags`), else where they would go.
  std::vector<std::pair<std::string, std::string>> route_tags;
  std::optional<bool> cache;  // false: never cached; true: cached, for cache_ttl
  Duration cache_ttl{0};      // 0 = [cache] default_ttl
  bool deny = false;          // refused with `message` (42501 / 1142)
  std::string message;
  std::string replace_match, replace_with;  // RE2 rewrite of the statement text (all matches)
  Duration statement_timeout{0};            // cancelled on the server after this long
  std::string tag;                          // a label for metrics (SHOW RULES, /metrics)
  // A copy of the statement (simple Query / COM_QUERY text) runs on this cluster too; its answer
  // is compared with the client's (row count and a digest of the rows) and discarded. Reads only
  // unless mirror_writes.
  std::string mirror;
  bool mirror_writes = false;
  // The statement runs on this cluster's primary (between transactions, pooled clients only),
  // with the client's user and database; a transaction it begins stays there.
  std::string cluster;
  int line = 0;
};

// [[zones]]: clients in these networks are in the zone `name`; their reads prefer members whose
// tags say zone = name.
struct Zone {
  std::string name;
  std::vector<Cidr> addresses;
};

// [digests]: per statement shape (fingerprint), database and user, what statements cost (SHOW
// QUERIES). Off by default: it fingerprints every statement.
struct Digests {
  bool enabled = false;                   // changeable with SET
  std::uint32_t max_fingerprints = 5000;  // distinct (fingerprint, database, user); the rest in "(other)"
  std::uint32_t metrics_top = 20;         // the most costly ones by total time in /metrics
};

// [mirror]: copies of statements for [[rules]] mirror clusters, per cluster: at most `queue`
// waiting (the rest dropped and counted), each given `timeout` on the mirror.
struct Mirroring {
  std::uint32_t queue = 1024;
  Duration timeout{5'000};
  std::uint32_t connections = 4;  // per mirror cluster, (user, database) pairs kept open
};

struct Config {
  std::string path;
  General general;
  PostgresListener postgres;
  MysqlListener mysql;
  Http http;
  std::vector<User> users;
  std::map<std::string, Cluster> clusters;
  std::vector<Pool> pools;
  Cache cache;
  std::vector<AccessRule> access;
  Limits limits;
  Firewall firewall;
  std::vector<QueryRule> rules;
  std::vector<Zone> zones;
  Digests digests;
  Mirroring mirror;

  const User* find_user(std::string_view name) const;
  // The pool serving `database` on a listener of `protocol`: exact name first, then "*".
  const Pool* find_pool(Protocol protocol, std::string_view database) const;
  bool is_admin(std::string_view user) const;
  bool is_stats(std::string_view user) const;
};

// Parses and validates; throws ConfigError("file:line: key: problem").
std::shared_ptr<const Config> load_file(const std::string& path);
std::shared_ptr<const Config> load_string(const std::string& text, const std::string& name);

}  // namespace sluice::config
